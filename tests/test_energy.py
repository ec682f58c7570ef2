"""Energy per run: each job is charged its own CPU time (not the whole process's), and a GPU job
reads the counter of the GPU it actually uses."""
from __future__ import annotations

import threading

import pytest

from tl_core.jobs.energy import EnergyMeter, visible_gpu


def _metered(work, out: dict, key: str, powercap) -> None:
    meter = EnergyMeter("cpu", powercap=powercap)  # made and read in this thread, as runs.record does
    work()
    out[key] = meter.read()


def _burn_cpu(done: threading.Event) -> None:
    x = 0
    for _ in range(2_000_000):  # a fixed amount of work (~0.2 s of one core), whatever the load
        x = (x * 31 + 7) % 1_000_003
    done.set()


def test_two_concurrent_jobs_are_each_charged_their_own_cpu_time(tmp_path):
    # one job computes while the other waits, in the same process: the waiting one used ~no CPU
    done, out = threading.Event(), {}
    busy = threading.Thread(target=_metered, args=(lambda: _burn_cpu(done), out, "busy", tmp_path / "none"))
    idle = threading.Thread(target=_metered, args=(lambda: done.wait(120), out, "idle", tmp_path / "none"))
    idle.start()
    busy.start()
    busy.join(120)
    idle.join(120)
    assert out["busy"]["cpu_s"] > 0.05, out
    assert out["idle"]["cpu_s"] < out["busy"]["cpu_s"] / 4, out  # process-wide time would charge both alike
    assert out["idle"]["joules"] < out["busy"]["joules"] / 4


@pytest.mark.parametrize("device,visible,expected", [
    ("cuda", None, ("index", 0)),
    ("cuda:1", None, ("index", 1)),
    ("cuda:1", "2,3", ("index", 3)),  # torch's cuda:1 is the second visible GPU: NVML's GPU 3
    ("cuda:0", "GPU-5f3e2a", ("uuid", "GPU-5f3e2a")),
    ("cuda:0", " 1 , 0 ", ("index", 1)),
])
def test_the_gpu_counter_is_the_one_cuda_visible_devices_names(device, visible, expected):
    assert visible_gpu(device, visible) == expected
