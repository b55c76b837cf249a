"""Benchmark helper (not a test): the GPU's side of each run of a sweep, read from NVML outside the runs.

    python benchmarks/gpu_monitor.py sample SAMPLES.csv [--index 0] [--interval 0.1]   # until SIGTERM
    python benchmarks/gpu_monitor.py summary SAMPLES.csv SWEEP_DIR [SWEEP_DIR ...]

``sample`` runs as a process of its own beside the sweep (never inside a timed run) and appends one line
per interval: Unix time, GPU utilisation (%, the share of the driver's sample period in which a kernel
ran: not how much of the GPU it used), memory in use (bytes, the whole device's), and the cumulative energy
counter (mJ, Volta and newer). ``summary`` reads the sweep folders' ``result.json`` files and gives, per GPU
run, over its process's lifetime (``started_at`` to ``ended_at``: start-up, compilation, training and
evaluation): mean utilisation, peak memory in use and energy (the counter's difference). Runs of one sweep
run one at a time here, so the windows do not overlap; memory in use is the device's, so with JAX it is
only the run's need where preallocation is off (``XLA_PYTHON_CLIENT_PREALLOCATE=false``).
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import signal
import sys
import time
from pathlib import Path


def sample(path: Path, index: int, interval: float) -> None:
    """Append NVML readings of GPU ``index`` to ``path`` every ``interval`` seconds until SIGTERM."""
    import pynvml  # nvidia-ml-py

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["time", "utilization", "memory_used", "energy_mj"])
        while not stop:
            writer.writerow([f"{time.time():.3f}", pynvml.nvmlDeviceGetUtilizationRates(handle).gpu,
                             pynvml.nvmlDeviceGetMemoryInfo(handle).used,
                             pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)])
            out.flush()
            time.sleep(interval)


def read_samples(path: Path) -> list[tuple[float, float, float, float]]:
    with path.open() as lines:
        return [(float(r["time"]), float(r["utilization"]), float(r["memory_used"]), float(r["energy_mj"]))
                for r in csv.DictReader(lines)]


def window(samples: list[tuple[float, float, float, float]], start: float, end: float) -> dict[str, float] | None:
    """Mean utilisation, peak memory (GiB) and energy (J) of the samples in [start, end] (None: none there)."""
    times = [s[0] for s in samples]
    inside = samples[bisect.bisect_left(times, start):bisect.bisect_right(times, end)]
    if len(inside) < 2:
        return None
    return {"utilization_pct": sum(s[1] for s in inside) / len(inside),
            "peak_memory_gib": max(s[2] for s in inside) / 2**30,
            "energy_j": (inside[-1][3] - inside[0][3]) / 1000, "seconds": inside[-1][0] - inside[0][0]}


def summary(samples_path: Path, sweep_dirs: list[Path]) -> None:
    """Print one line per ok GPU run of the sweeps: its cell, training seconds and its GPU window."""
    samples = read_samples(samples_path)
    print("sweep | cell | seed | train s | GPU util % (mean) | peak GPU memory GiB | energy J (run) | window s")
    for sweep in sweep_dirs:
        for path in sorted(sweep.glob("*/result.json")):
            result = json.loads(path.read_text())
            if result.get("status") != "ok" or result.get("device") != "gpu":
                continue
            found = window(samples, result["started_at"], result["ended_at"])
            cell = " ".join(f"{k}={v}" for k, v in sorted((result.get("factors") or {}).items()) if k != "device")
            if found is None:
                print(f"{sweep.name} | {cell} | {result['seed']} | {result['train_seconds']:.1f} | no samples")
                continue
            print(f"{sweep.name} | {cell} | {result['seed']} | {result['train_seconds']:.1f} | "
                  f"{found['utilization_pct']:.0f} | {found['peak_memory_gib']:.2f} | {found['energy_j']:.0f} | "
                  f"{found['seconds']:.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    sampler = verbs.add_parser("sample")
    sampler.add_argument("samples", type=Path)
    sampler.add_argument("--index", type=int, default=0)
    sampler.add_argument("--interval", type=float, default=0.1)
    summarizer = verbs.add_parser("summary")
    summarizer.add_argument("samples", type=Path)
    summarizer.add_argument("sweeps", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.verb == "sample":
        sample(args.samples, args.index, args.interval)
    else:
        summary(args.samples, args.sweeps)


if __name__ == "__main__":
    sys.exit(main())
