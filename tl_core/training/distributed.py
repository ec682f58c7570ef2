"""One run on several GPUs (or CPU processes): torchrun --standalone + DistributedDataParallel.

`python -m tl_core train ... --devices N` re-runs itself under torchrun with N processes. Each
process (rank) trains on its share of every epoch's batches (a DistributedSampler; the global
batch stays --batch-size, so the learning-rate schedule is the one-process schedule); DDP averages
the gradients; the epoch's metrics are summed over ranks; validation is sharded and gathered, so
every rank sees the same metrics and stops (early, or on request) at the same step. Rank 0 alone
writes the run folder. Feature extraction shards the embedding pass and gathers the features.

Outside torchrun every function here is a no-op for one process, so train.py calls them always.

A dead or silent rank ends the run, never hangs it: a rank killed outright closes its sockets, so
rank 0's next collective fails at once and the run ends Failed with the sentence (peer_failure);
a rank that is alive but silent (stopped, stuck) fails the others' collectives after
TL_DDP_TIMEOUT_S. torchrun (which watches its ranks every 0.1 s) SIGTERMs the surviving ranks when
one dies: rank 0 lets that pass (it is already saying why, and would otherwise die mid-sentence:
the final line was lost that way) and exits by itself; torchrun SIGKILLs after 30 s. What a killed
rank 0 could not write, the launcher writes after torchrun (tl_core.jobs.launch.close_after_torchrun).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from tl_core.base.events import TERMINAL
from tl_core.base.messages import Message, SettingsError

# How long a rank waits in a collective for another before the run fails (torch's own default is
# 30 min). The longest legitimate wait is rank 0 writing a checkpoint while the others wait at the
# next step: 45 MB (resnet18) to a few hundred MB (the gallery's largest) with fsync, up to about
# a minute on slow shared storage. 600 s leaves 10x that, and a stuck peer costs 10 min, not 30.
DDP_TIMEOUT_S = 600
_torn_down = threading.Event()  # torchrun sent SIGTERM: another rank died and the group is ending


def timeout_s() -> int:
    """TL_DDP_TIMEOUT_S (SettingsError, a sentence, when it is not a whole number of seconds >= 1)."""
    raw = os.environ.get("TL_DDP_TIMEOUT_S", "").strip()
    if not raw:
        return DDP_TIMEOUT_S
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError("settings.not_a_number", name="TL_DDP_TIMEOUT_S", raw=raw, default=DDP_TIMEOUT_S)
    return int(raw)


def under_torchrun() -> bool:
    """True in a process torchrun started as one of several ranks."""
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def gpu_count() -> int:
    """GPUs this process can use: the app offers one run on several where there are more than one."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def launch(argv: list[str], devices: int) -> int:
    """Run `python -m tl_core ARGV` under torchrun (standalone: one machine) with `devices` ranks."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={devices}",
           "-m", "tl_core", *argv]
    return subprocess.call(cmd)


def init(device_pref: str) -> torch.device:
    """Join torchrun's process group (NCCL on GPUs, gloo on CPU) and return this rank's device."""
    local = int(os.environ["LOCAL_RANK"])
    cuda = device_pref != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    elif not os.environ.get("TL_NUM_THREADS"):
        # N CPU ranks share the cores: one rank using them all would stall the others at each op
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        os.environ["TL_NUM_THREADS"] = str(max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    if not active():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s()))
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            signal.signal(signal.SIGTERM, lambda *_: _torn_down.set())  # see the note at the top
    return torch.device("cuda", local) if cuda else torch.device("cpu")


# words of the errors a rank gets when another dies or goes silent. Not every one names its library:
# gloo's timeout comes as a bare RuntimeError "Application timeout caused pair closure" on some waits
# (seen once in 2 CPU-rank runs under CI load; usually "[.../gloo/.../pair.cc] Timed out waiting ...")
_PEER_WORDS = ("gloo", "nccl", "connection closed", "connection reset", "broken pipe", "pair closure")


def peer_failure(e: BaseException) -> Message | None:
    """The sentence for an error that means another rank of this run died or went silent; None
    for any other error (and outside torchrun)."""
    text = str(e).strip()
    lowered = text.lower()
    dist_error = isinstance(e, getattr(dist, "DistError", ())) or any(w in lowered for w in _PEER_WORDS)
    if not (active() and (dist_error or _torn_down.is_set())):
        return None
    if "timed out" in lowered or "timeout" in lowered:
        how = Message("ddp.how_timeout", {"seconds": timeout_s()})
    else:
        # gloo's text starts with its source file ("[.../pair.cc:545] Read error ...: Connection reset by
        # peer. This is typically caused by ..."): keep the error itself
        first = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0]).split(". ")[0][:200] if text else ""
        first = first or type(e).__name__
        how = Message("ddp.how_closed", {"detail": first})
    return Message("ddp.peer_died", {"how": how})


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model DDP-wrapped for training steps (gradients averaged over ranks), or itself."""
    if not active():
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def same_weights(model: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (after a change each rank made on its own,
    e.g. a head solved on every rank: float noise must not let the replicas drift apart)."""
    if not active():
        return
    for t in [*model.parameters(), *model.buffers()]:
        dist.broadcast(t.data, 0)


def main_decides(decide):
    """What rank 0's `decide()` returns, on every rank (one process: decide()). For a choice that
    each rank could make differently from its own timing, e.g. the memory layout, which DDP needs
    the same everywhere. The wait has the group's deadline (TL_DDP_TIMEOUT_S)."""
    if not active():
        return decide()
    box = [decide() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def train_sampler(dataset, seed: int):
    """This rank's share of each epoch (None for one process: the loader shuffles as before)."""
    if not active():
        return None
    return DistributedSampler(dataset, num_replicas=world(), rank=rank(), shuffle=True, seed=seed)


def eval_sampler(dataset):
    if not active():
        return None
    # every rank gets ceil(n / world) items (the last ones repeated): gather_rows drops the repeats
    return DistributedSampler(dataset, num_replicas=world(), rank=rank(), shuffle=False)


def _device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def sum_over_ranks(*values: float) -> list[float]:
    if not active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return t.tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank if it is True on any (a stop seen by rank 0 stops them all together)."""
    if not active():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_rows(t: torch.Tensor, n: int) -> torch.Tensor:
    """Rows sharded by eval_sampler (rank r has rows r, r+W, ...) back in order: the first n rows."""
    if not active():
        return t
    local = t.to(_device()).contiguous()
    parts = [torch.empty_like(local) for _ in range(world())]
    dist.all_gather(parts, local)
    return torch.stack(parts, 1).reshape(-1, *t.shape[1:])[:n].to(t.device)


def shard(items: list) -> list:
    """This rank's share of `items` for a one-off pass, padded so every rank has as many (the same
    count of steps on every rank: a rank with fewer would wait forever in a collective)."""
    if not active() or not items:
        return items
    return _shard_of(items, rank())


def gather_features(mine: dict, keys: list) -> dict:
    """Every rank's {key: feature row} for `keys` (this rank computed `mine`), as one dict on every rank."""
    if not active() or not keys:
        return mine
    order = shard(keys)
    rows = torch.stack([mine[k] for k in order])
    parts = [torch.empty_like(rows.to(_device())) for _ in range(world())]
    dist.all_gather(parts, rows.to(_device()).contiguous())
    out = {}
    for r, part in enumerate(parts):
        for k, row in zip(_shard_of(keys, r), part.cpu()):
            out[k] = row.clone()
    return out


def _shard_of(items: list, r: int) -> list:
    per = -(-len(items) // world())
    mine = items[r::world()]
    return mine + items[:per - len(mine)]


def finish() -> None:
    if active():
        dist.destroy_process_group()


def finish_at_end(events):
    """A run's events, this process group ended as the run's last event (Finished, Stopped or
    Failed) passes: what rank 0 does after it (runs.record builds the out-of-domain bank) is its
    own, and a collective there would wait on peers that are gone ("Connection closed by peer")."""
    for event in events:
        if isinstance(event, TERMINAL):
            finish()
        yield event
