"""What machine a run is on, found without importing TensorFlow (the Hydra process must stay light)."""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def gpu_details() -> tuple[dict[str, str], ...]:
    """Every NVIDIA GPU in the machine, by ``nvidia-smi`` (asked once per process): ``name``,
    ``memory`` (total) and ``driver`` (version)."""
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found = []
    for line in out.splitlines():
        name, memory, driver = ([part.strip() for part in line.split(",")] + ["", ""])[:3]
        if name:
            found.append({"name": name, "memory": memory, "driver": driver})
    return tuple(found)


def _nvidia_smi_names() -> tuple[str, ...]:
    """Names of every NVIDIA GPU in the machine, by ``nvidia-smi``."""
    return tuple(gpu["name"] for gpu in gpu_details())


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs this process may use, by ``nvidia-smi`` (empty list if none).

    A quick pre-check so that a GPU cell on a machine without one is skipped in well under a second;
    the run itself checks again with the backend (a GPU can be present but unusable by it).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return []
    return list(_nvidia_smi_names())


def machine_fingerprint() -> dict[str, object]:
    """What makes this machine's timings this machine's: CPU model and count, and every GPU in it
    (whether or not this process may use it, so that a CPU run and the sweep that launched it agree).
    Part of every run key: results copied from another machine are not reused as this one's."""
    return {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "gpus": list(_nvidia_smi_names())}


def host_environment() -> dict[str, object]:
    """Facts about the host that shape timings; the run adds its framework versions and device."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "executable": sys.executable,
    }


BACKEND_PACKAGES = {"tensorflow": {}, "jax": {"jax": ("jax",), "jaxlib": ("jaxlib",)}, "torch": {"torch": ("torch",)}}
"""Beyond harness, Keras and TensorFlow (always recorded, as before backends could be chosen): the packages
of each Keras backend whose versions shape a run's timings."""


def software_versions(backend: str = "tensorflow") -> dict[str, str | None]:
    """Versions of the packages that shape results, read from package metadata (nothing is imported):
    harness, Keras and TensorFlow, and the packages of ``backend`` (``BACKEND_PACKAGES``: JAX and jaxlib,
    or PyTorch), so that upgrading JAX makes a ``backend=jax`` result another one."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    packages = {"harness": ("harness",), "keras": ("keras",), "tensorflow": ("tensorflow", "tensorflow-cpu"),
                **BACKEND_PACKAGES.get(backend, {})}
    for name, candidates in packages.items():
        found[name] = None
        for candidate in candidates:
            try:
                found[name] = version(candidate)
                break
            except PackageNotFoundError:
                continue
    return found



def process_memory_and_cpus() -> dict[str, int]:
    """This process's peak resident memory so far (``peak_rss_bytes``: the kernel's high-water mark, read
    once, no sampling) and the CPUs it may run on (``cpus_available``: its affinity, which a Slurm
    allocation or a cpuset narrows; the machine's count where affinity is unknown)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"peak_rss_bytes": peak if sys.platform == "darwin" else peak * 1024, "cpus_available": cpus}


def visible_gpu_index() -> int | None:
    """The NVML index of this process's first GPU: NVML counts every GPU of the machine, whatever
    ``CUDA_VISIBLE_DEVICES`` hides (``None`` where it names GPUs by UUID)."""
    first = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0].strip()
    return int(first) if first.isdigit() else None


POWERCAP = Path("/sys/class/powercap")
"""Where Linux exposes RAPL energy counters (Intel and AMD CPUs), one ``intel-rapl:N`` folder per package."""


class EnergyCounters:
    """The machine's cumulative energy counters, read at a window's two ends (no sampling): each CPU
    package's RAPL ``energy_uj`` under ``POWERCAP`` and, for ``gpu_index``, the NVIDIA GPU's total energy
    (NVML, where nvidia-ml-py is installed). ``unmeasured`` says why a side has no counter.

    Args:
        powercap: the RAPL folder (``POWERCAP``; another only in tests, as no VM here has one).
        gpu_index: the run's GPU for NVML, or ``None`` (a CPU run).
    """

    def __init__(self, powercap: Path = POWERCAP, gpu_index: int | None = None) -> None:
        self.packages = sorted(powercap.glob("intel-rapl:[0-9]*")) if powercap.is_dir() else []
        self.packages = [p for p in self.packages if os.access(p / "energy_uj", os.R_OK)]
        self.unmeasured: list[str] = []
        if not self.packages:
            self.unmeasured.append(f"CPU: no readable RAPL counter ({powercap} is "
                                   f"{'not readable' if powercap.is_dir() else 'absent'} here, as in most VMs)")
        self.gpu = None
        if gpu_index is not None:
            try:
                import pynvml

                pynvml.nvmlInit()
                self.gpu = pynvml.nvmlDeviceGetHandleByIndex(gpu_index)
                pynvml.nvmlDeviceGetTotalEnergyConsumption(self.gpu)
            except Exception as err:  # not installed, no driver, a GPU older than Volta: not measured, said why
                self.gpu = None
                self.unmeasured.append(f"GPU: no NVML energy counter ({type(err).__name__}; "
                                       "pip install nvidia-ml-py on a Volta or newer GPU)")

    def read(self) -> tuple[list[int], int | None]:
        """The counters now: µJ per CPU package, mJ for the GPU."""
        cpu = [int((p / "energy_uj").read_text()) for p in self.packages]
        if self.gpu is None:
            return cpu, None
        import pynvml

        return cpu, pynvml.nvmlDeviceGetTotalEnergyConsumption(self.gpu)

    def joules(self, start: tuple[list[int], int | None], end: tuple[list[int], int | None]) -> dict[str, float | None]:
        """``cpu_energy_joules`` and ``gpu_energy_joules`` between two ``read`` s (a RAPL counter that wrapped
        around adds its range, ``max_energy_range_uj``); ``None`` where there is no counter."""
        cpu = None
        if self.packages:
            cpu = 0.0
            for package, before, after in zip(self.packages, start[0], end[0], strict=True):
                if after < before:
                    after += int((package / "max_energy_range_uj").read_text())
                cpu += (after - before) / 1e6
        gpu = (end[1] - start[1]) / 1e3 if self.gpu is not None else None
        return {"cpu_energy_joules": cpu, "gpu_energy_joules": gpu}
