"""Compare the strategies on one dataset: scratch, feature extraction, partial and full fine-tuning.

Each member is an ordinary run (its own run folder, submitted through JobManager.submit), on
the same split, backbone, seed and epochs; only the strategy, its default learning rate and (for
scratch) the starting weights differ. A CompareGroup submits the members one after another (a
hosted session may have one active job at a time) and keeps a small JSON file in
<runs root>/compare/ that the leaderboard, the verdict and the teacher's class board read.

Before it starts, tl_core.training.estimate times a few real training and inference steps of this
backbone on this computer and turns them into the announced time. This module loads no torch
(the class board and the pages read groups through it).
"""
from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

from tl_core.base.config import DEFAULT_LR, ConfigError, RunConfig
from tl_core.base.events import EpochEnd, Failed, Finished, Started
from tl_core.data.dataset import Dataset
from tl_core.jobs import runs
from tl_core.trust.metrics import right_per_image
from tl_core.trust.verdict import Member, Verdict, decide, render, wilson

ORDER = ("scratch", "feature_extraction", "partial", "full")
GROUP_DIR = "compare"


def member_configs(base: RunConfig, strategies=ORDER) -> list[RunConfig]:
    """One RunConfig per strategy: the same backbone, split, seed and epochs; each strategy's
    default learning rate; scratch starts from random weights, the others from base.pretrained."""
    if base.pretrained == "none":
        raise ConfigError("compare.needs_pretrained")
    unknown = [s for s in strategies if s not in ORDER]
    if unknown or not strategies:
        raise ConfigError("compare.bad_strategies", choices=", ".join(ORDER))
    return [base.replace(strategy=s, lr=DEFAULT_LR[s], pretrained="none" if s == "scratch" else base.pretrained,
                         unfreeze=max(1, base.unfreeze))
            for s in ORDER if s in strategies]


# ------------------------------------------------------------------ the group


def groups_root(runs_root: str | Path) -> Path:
    return Path(runs_root) / GROUP_DIR


class CompareGroup:
    """The members of one comparison, run one after another as ordinary jobs."""

    def __init__(self, manager, members: list[RunConfig], dataset: Dataset, runs_root: str | Path,
                 owner: str | None = None, estimate_s: float | None = None, before_submit=None):
        self.id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(4)
        self.manager, self.members, self.dataset = manager, members, dataset
        self.runs_root, self.owner = Path(runs_root), owner
        self.before_submit = before_submit  # e.g. the hosted mode's make_room_for_run
        self.jobs: dict[str, object] = {}
        self._stop = threading.Event()
        self.path = groups_root(runs_root) / f"{self.id}.json"
        self.info = {"id": self.id, "created": time.time(), "backbone": members[0].backbone,
                     "pretrained": next((m.pretrained for m in members if m.strategy != "scratch"), "none"),
                     "epochs": members[0].epochs, "n_train": len(dataset.train), "n_val": len(dataset.val),
                     "classes": list(dataset.classes), "estimate_s": estimate_s, "started": None, "ended": None,
                     "members": [{"strategy": m.strategy, "run_dir": None} for m in members]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._save()
        self._thread = threading.Thread(target=self._work, name=f"tl-compare-{self.id[-8:]}", daemon=True)

    def start(self) -> "CompareGroup":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for job in list(self.jobs.values()):
            job.stop()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def done(self) -> bool:
        return self.info["ended"] is not None

    def _save(self) -> None:
        runs.write_json_atomic(self.path, self.info)

    def _submit(self, cfg: RunConfig):
        # hosted: a session may have one active job; if the user started another run meanwhile,
        # wait for it rather than fail the comparison. Any other refusal (the queue at redis://...
        # does not answer, the disk is full) ends the group with its sentence: retrying those
        # would wait forever and say nothing.
        while not self._stop.is_set():
            try:
                if self.before_submit is not None:
                    self.before_submit()
                return self.manager.submit(cfg, self.dataset, self.runs_root, owner=self.owner)
            except ConfigError as e:
                if e.message.kind != "job.one_at_a_time":
                    raise
                time.sleep(1.0)
        return None

    def _work(self) -> None:
        self.info["started"] = time.time()
        self._save()
        try:
            for i, cfg in enumerate(self.members):
                job = self._submit(cfg)
                if job is None:
                    break
                self.jobs[cfg.strategy] = job
                self.info["members"][i]["run_dir"] = str(job.run_dir)
                self._save()
                job.join()
                unserved = _no_worker_served(job)
                if unserved is not None:  # the next member would wait as long again for nothing
                    self.info["error"] = unserved
                    break
        except ConfigError as e:  # PoolError and RunsFolderError too: a sentence, kept in the group file
            self.info["error"] = e.message.to_dict()
        finally:
            self.info["ended"] = time.time()
            self.info["stopped"] = self._stop.is_set()
            self._save()


def _no_worker_served(job) -> dict | None:
    """The sentence (as a Message dict) of a pool job that ended because no worker served its queue."""
    last = next((e for e in reversed(job.events()) if isinstance(e, Failed)), None)
    return last.says().to_dict() if last is not None and last.kind == "pool.no_worker_gave_up" else None


def read_group(path: str | Path) -> dict:
    return runs.read_json(Path(path))


def list_groups(runs_root: str | Path) -> list[dict]:
    """This runs folder's comparisons, newest first (unreadable files left out)."""
    folder = groups_root(runs_root)
    out = []
    for p in folder.glob("*.json") if folder.is_dir() else []:
        try:
            out.append(read_group(p))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda g: g.get("created", 0), reverse=True)


# ------------------------------------------------------------------ results


def member_result(strategy: str, run_dir: str | Path) -> dict:
    """One member's row for the leaderboard: status, accuracy, its curve, time and energy."""
    run_dir = Path(run_dir)
    try:
        info = runs.read_json(run_dir / "run.json")
    except (OSError, ValueError):
        return {"strategy": strategy, "run_dir": str(run_dir), "status": "missing"}
    events = runs.read_events(run_dir)
    started = next((e for e in events if isinstance(e, Started)), None)
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    finished = next((e for e in events if isinstance(e, Finished)), None)
    # time at the end of epoch k: overhead (model building, the feature pass) counted before epoch 1
    overhead = (finished.train_seconds - sum(e.seconds for e in epochs)) if finished else 0.0
    clock, curve = max(0.0, overhead), []
    for e in epochs:
        clock += e.seconds
        curve.append((round(clock, 3), e.metrics.get("val/acc", 0.0)))
    n_val = started.n_val if started else 0
    acc = info.get("metrics", {}).get("val/acc")
    energy = info.get("energy") or {}
    return {"strategy": strategy, "run_dir": str(run_dir), "status": runs.run_status(info),
            "acc": acc, "n_val": n_val, "correct": round(acc * n_val) if acc is not None else None,
            "curve": curve, "wall_s": energy.get("wall_s", info.get("train_seconds")),
            "energy_wh": energy.get("wh"), "energy_estimate": energy.get("estimate", True),
            "energy_source": energy.get("source"), "energy": energy, "best_epoch": info.get("best_epoch")}


def results(group: dict) -> list[dict]:
    """Every member of a group (read from its file) with what its run folder says so far."""
    out = []
    for m in group["members"]:
        if m["run_dir"]:
            out.append(member_result(m["strategy"], m["run_dir"]))
        else:
            out.append({"strategy": m["strategy"], "run_dir": None, "status": "Waiting"})
    return out


def verdict_for(rows: list[dict]) -> Verdict | None:
    """The verdict over the members that finished (None until one has)."""
    members = [Member(r["strategy"], r["correct"], r["n_val"], tuple(r["curve"]), r.get("wall_s"),
                      r.get("energy_wh"), r.get("energy_estimate", True), right_per_image(r["run_dir"]))
               for r in rows if r.get("status") == runs.FINISHED and r.get("n_val")]
    return decide(members) if members else None


def summary(group: dict) -> dict:
    """The comparison as one JSON-able dict: members, accuracies, intervals, verdict, times."""
    rows = results(group)
    for r in rows:
        if r.get("correct") is not None and r.get("n_val"):
            r["interval"] = [round(v, 4) for v in wilson(r["correct"], r["n_val"])]
    v = verdict_for(rows)
    actual = (group["ended"] - group["started"]) if group.get("ended") and group.get("started") else None
    return {"group": group["id"], "backbone": group["backbone"], "epochs": group["epochs"],
            "estimate_s": group.get("estimate_s"), "actual_s": actual,
            "members": [{k: r.get(k) for k in ("strategy", "status", "acc", "correct", "n_val", "interval",
                                               "wall_s", "energy_wh", "energy_source", "run_dir")} for r in rows],
            "verdict": v.to_dict() if v else None, "sentences": render(v.messages) if v else []}
