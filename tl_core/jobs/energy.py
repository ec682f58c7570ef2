"""Wall time and energy of a run: measured where the machine exposes it, else estimated and said so.

Sources, best first:
- NVML (NVIDIA GPUs, Volta or newer): the GPU's own energy counter (millijoules), through the
  `nvidia-ml-py` bindings, on the GPU the job uses (CUDA_VISIBLE_DEVICES respected). Counts the
  whole GPU, whatever else runs on it.
- Intel RAPL (/sys/class/powercap/intel-rapl:N/energy_uj, Linux): the CPU package counters
  (microjoules, they wrap at max_energy_range_uj). Counts the whole package, other processes too;
  readable by root only on most distributions since 2020 (CVE-2020-8694).
- An estimate: this job's CPU time (JobCpuClock) times a stated power per busy core (TL_WATTS_PER_CORE,
  default 10 W: a desktop/laptop x86 core under load draws roughly 5-15 W), or on a GPU without
  an energy counter the wall time times TL_GPU_WATTS (default 250 W). Labelled an estimate.

The result is a plain dict stored in run.json under "energy".
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from pathlib import Path

import psutil

POWERCAP = Path("/sys/class/powercap")
DEFAULT_WATTS_PER_CORE = 10.0
DEFAULT_GPU_WATTS = 250.0


def _float_env(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return value if value > 0 else default


class Rapl:
    """The CPU package energy counters under `root` (one per socket), or unusable."""

    def __init__(self, root: Path = POWERCAP):
        # top-level zones only (intel-rapl:0, :1...): sub-zones (core, dram) are parts of a package
        self.zones = sorted(p for p in Path(root).glob("intel-rapl:*") if p.name.count(":") == 1)
        self.start = self._read()

    def _read(self) -> list[tuple[int, int]] | None:
        try:
            return [(int((z / "energy_uj").read_text()), int((z / "max_energy_range_uj").read_text()))
                    for z in self.zones] or None
        except (OSError, ValueError):
            return None  # not readable (no root) or not there: not a source

    @property
    def usable(self) -> bool:
        return self.start is not None

    def joules(self) -> float:
        now = self._read() or self.start
        total = 0
        for (e0, _), (e1, wrap) in zip(self.start, now):
            total += e1 - e0 if e1 >= e0 else e1 + wrap - e0  # the counter wrapped once
        return total / 1e6


def visible_gpu(device: str, visible: str | None) -> tuple[str, int | str]:
    """Which physical GPU torch's `device` ("cuda", "cuda:1") is, as NVML names it: ("index", n)
    or ("uuid", "GPU-..."). CUDA_VISIBLE_DEVICES renumbers GPUs for torch, never for NVML: with
    CUDA_VISIBLE_DEVICES=2,3 torch's cuda:1 is NVML's GPU 3."""
    n = int(device.split(":", 1)[1]) if ":" in device else 0
    entries = [e.strip() for e in (visible or "").split(",") if e.strip()]
    if not entries or n >= len(entries):
        return ("index", n)
    entry = entries[n]
    return ("index", int(entry)) if entry.isdigit() else ("uuid", entry)


def _nvml_handle(pynvml, device: str):
    """NVML's handle on the GPU the job uses: by PCI bus id from torch (exact whatever the device
    order), else through CUDA_VISIBLE_DEVICES (visible_gpu)."""
    n = int(device.split(":", 1)[1]) if ":" in device else 0
    try:
        import torch  # deferred: only a run on a GPU asks; torch is loaded by then

        props = torch.cuda.get_device_properties(n)
        bus = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
        return pynvml.nvmlDeviceGetHandleByPciBusId(bus)
    except Exception:  # an older torch without pci ids, or NVML's bus id spelt otherwise
        kind, value = visible_gpu(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
        return (pynvml.nvmlDeviceGetHandleByIndex(value) if kind == "index"
                else pynvml.nvmlDeviceGetHandleByUUID(value))


class Nvml:
    """The energy counter of the GPU the job uses (see _nvml_handle), or unusable."""

    def __init__(self, device: str = "cuda"):
        self.handle, self.start = None, None
        try:
            import pynvml  # optional: nvidia-ml-py; deferred so machines without a GPU never load it

            pynvml.nvmlInit()
            self.handle = _nvml_handle(pynvml, device)
            self.start = pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)  # mJ since driver load
            self._pynvml = pynvml
        except Exception:  # no library, no driver, no GPU, or a GPU older than Volta: not a source
            self.handle = None

    @property
    def usable(self) -> bool:
        return self.handle is not None and self.start is not None

    def joules(self) -> float:
        return (self._pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) - self.start) / 1e3


class JobCpuClock:
    """CPU seconds spent for one job in a process that may run several at once.

    The job's own thread (time.thread_time, read in that thread) plus its share of the threads no
    Python code runs on (torch's intra-op pool, which every job's steps use): their CPU time split
    evenly between the jobs metering at the time. Process-wide CPU time would charge each of two
    concurrent jobs for both.
    """

    _active: "weakref.WeakSet[JobCpuClock]" = weakref.WeakSet()  # running clocks; a run that never ends drops out with its clock
    _lock = threading.Lock()

    def __init__(self):
        self.own0 = time.thread_time()
        self.pool0 = _pool_cpu_s()
        with self._lock:
            self._active.add(self)

    def read(self) -> float:
        """CPU seconds so far; call it from the thread that made the clock (the job's thread)."""
        with self._lock:
            sharing = max(1, len(self._active))
        return time.thread_time() - self.own0 + max(0.0, _pool_cpu_s() - self.pool0) / sharing

    def close(self) -> None:
        with self._lock:
            self._active.discard(self)


def _pool_cpu_s() -> float:
    """CPU seconds of this process's threads that run no Python (native worker pools)."""
    python_threads = {t.native_id for t in threading.enumerate()}
    try:
        threads = psutil.Process().threads()
    except psutil.Error:  # /proc unreadable: the job's own thread still counts
        return 0.0
    return sum(t.user_time + t.system_time for t in threads if t.id not in python_threads)


class EnergyMeter:
    """Started when a run starts, in the job's thread; read() at its end, in that thread, gives
    {"wall_s", "cpu_s", "joules", "wh", "source", ...}."""

    def __init__(self, device: str = "cpu", powercap: Path = POWERCAP):
        self.device = device
        self.t0 = time.perf_counter()
        self.cpu = JobCpuClock()
        self.gpu = None
        self.rapl = Rapl(powercap)
        self.on_device(device)

    def on_device(self, device: str) -> None:
        """Add the GPU's counter once the run says it trains there (the Started event)."""
        if device.startswith("cuda") and self.gpu is None:
            self.gpu = Nvml(device)

    def read(self) -> dict:
        wall = time.perf_counter() - self.t0
        cpu_s = self.cpu.read()
        self.cpu.close()
        out = {"wall_s": round(wall, 3), "cpu_s": round(cpu_s, 3)}
        if self.gpu is not None and self.gpu.usable:
            joules = self.gpu.joules() + (self.rapl.joules() if self.rapl.usable else 0.0)
            source = "nvml+rapl" if self.rapl.usable else "nvml"
            out.update(joules=joules, source=source, estimate=False)
        elif self.gpu is None and self.rapl.usable:
            out.update(joules=self.rapl.joules(), source="rapl", estimate=False)
        elif self.gpu is not None:
            watts = _float_env("TL_GPU_WATTS", DEFAULT_GPU_WATTS)
            out.update(joules=wall * watts, source="estimate", estimate=True, stated_watts=watts,
                       basis="wall time x stated GPU power")
        else:
            watts = _float_env("TL_WATTS_PER_CORE", DEFAULT_WATTS_PER_CORE)
            out.update(joules=cpu_s * watts, source="estimate", estimate=True, stated_watts=watts,
                       basis="CPU time of this job x stated power per busy core")
        out["joules"] = round(out["joules"], 2)
        out["wh"] = round(out["joules"] / 3600, 5)
        return out


def describe(energy: dict | None) -> str:
    """'0.41 Wh (measured: rapl)' or '0.41 Wh (estimate: 10 W per busy core)', for the CLI."""
    if not energy:
        return "not measured"
    if energy.get("estimate"):
        unit = "per busy core" if "core" in energy.get("basis", "") else "GPU"
        return f"{energy['wh']:.3g} Wh (estimate: {energy['stated_watts']:g} W {unit})"
    return f"{energy['wh']:.3g} Wh (measured: {energy['source']})"
