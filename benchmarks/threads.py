"""Benchmark (not a test): does ``threads`` change how many cores a run keeps busy, as its ``cores_used`` says?

    python benchmarks/threads.py [--seeds N] [--out DIR]

One real sweep through the harness, ``threads=1,2`` × ``--seeds`` seeds (shuffled: each seed's two runs
back to back, so the machine's drift hits both levels alike), on a workload TensorFlow can spread over
cores: a wide MLP (512 → 2048 → 2048 → 10) on random data, 512 examples per step. Each run records
``cores_used`` (CPU seconds of its process during ``fit`` / fit's wall seconds, read from counters at fit's
two ends, no sampling). Prints each run, the median per level and the paired ratio threads=2 / threads=1
with its exact 95 % interval (the report's statistics), into ``--out``/output.txt and threads.json.

Load-dependent by nature (another busy process takes cores from the run), so this is a benchmark whose
numbers go in the docs with the machine, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from transcript import add_out_option, transcript

from harness.report.stats import effect_of
from harness.report.verdicts import format_effect

MODELS = '''
import keras


def wide_mlp(input_shape, num_classes, units=2048, pretrained=False):
    layers = [keras.Input(shape=input_shape), keras.layers.Dense(units, activation="relu"),
              keras.layers.Dense(units, activation="relu"), keras.layers.Dense(num_classes, activation="softmax")]
    return keras.Sequential(layers)
'''
DATA = '''
import numpy as np


def random_classes(examples=6000, features=512, classes=10):
    rng = np.random.default_rng(0)
    return rng.standard_normal((examples, features), dtype="float32"), rng.integers(0, classes, examples)
'''


def sweep_args(seeds: int, sweep_dir: Path) -> list[str]:
    """The sweep: the wide MLP on random data, ``threads=1,2`` for each seed."""
    return ["-m", "model=custom", "model._target_=wide.models.wide_mlp", "dataset=custom",
            "dataset._target_=wide.data.random_classes", "threads=1,2", f"seed={','.join(map(str, range(seeds)))}",
            "epochs=3", "batch_size=512", "early_stopping=off", "tracking=disabled", f"hydra.sweep.dir={sweep_dir}"]


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--seeds", type=int, default=6, help="pairs of runs (default 6: an interval needs 6)")
    add_out_option(options, "threads")
    args = options.parse_args(argv)
    with transcript(args.out):
        return measure(args)


def measure(args: argparse.Namespace) -> int:
    """Run the sweep, print each run and the ratio, and write threads.json beside the transcript."""
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        (work / "wide").mkdir()
        (work / "wide" / "__init__.py").write_text("")
        (work / "wide" / "models.py").write_text(MODELS)
        (work / "wide" / "data.py").write_text(DATA)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
        env.update(PYTHONPATH=str(work), HARNESS_CACHE_DIR=str(work / "cache"))
        done = subprocess.run([sys.executable, "-m", "harness", *sweep_args(args.seeds, work / "sweep")], cwd=work,
                              env=env, text=True, capture_output=True)
        if done.returncode != 0:
            print(done.stdout + done.stderr, file=sys.stderr)
            return 1
        runs = [json.loads(path.read_text()) for path in (work / "sweep").rglob("result.json")]
    by_seed: dict[int, dict[int, float]] = {}
    for run in sorted(runs, key=lambda r: r["sweep_position"]):
        threads, cores = run["environment"]["threads"], run["cores_used"]
        by_seed.setdefault(run["seed"], {})[threads] = cores
        print(f"seed {run['seed']} threads={threads}: cores used {cores:.2f} "
              f"(fit {run['fit_seconds']:.1f} s, {run['cpus_available']} CPUs available)")
    medians = {t: statistics.median(seed[t] for seed in by_seed.values()) for t in (1, 2)}
    ratio = effect_of([seed[2] / seed[1] for seed in by_seed.values()], "ratio")
    print(f"median cores used: threads=1 {medians[1]:.2f}, threads=2 {medians[2]:.2f}; "
          f"threads=2 / threads=1: {format_effect(ratio)}")
    (args.out / "threads.json").write_text(json.dumps({
        "command": "python -m harness " + " ".join(sweep_args(args.seeds, Path("SWEEP"))),
        "runs": by_seed, "median_cores_used": medians,
        "ratio": {"estimate": ratio.estimate, "low": ratio.low, "high": ratio.high, "pairs": ratio.pairs},
    }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
