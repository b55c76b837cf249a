"""Benchmark (not a test): what the harness costs beside the training it measures.

    python benchmarks/overhead.py [--quick] [--repeats N] [--rss-runs N] [--sections LIST] [--out DIR]

Prints, on this machine:

1. **Start-up**: ``python -m harness --help``, ``python -m harness.report SWEEP`` on a finished sweep, and
   the imports a run needs (``keras`` with its backend, ``comet_ml``): paid once per sweep by a run server
   (``run_process=fork``), once per run by fresh processes (``run_process=fresh``).
2. **Sweeps**: ``experiment=seed_grid`` (24 trained runs) with fresh and forked run processes, one after the
   other (fresh first), and the 2-run newcomer sweep. Harness cost per run = (sweep wall − Σ train
   seconds) / trained runs, and where it goes: the run's own phases (``phase_seconds`` in each result),
   the hand-back to the sweep, Hydra per job, the sweep's start and its end (Comet archives, report).
3. **Equivalence**: the same cells forked and fresh, alternating, ``--repeats`` times: the ratio of
   median steady epoch times (fork / fresh) with its exact 95 % interval, and whether results are identical.
4. **Training-loop overhead**: the harness's timed ``fit`` (epoch timer, NaN guard, log line, Comet
   logger on an offline experiment) against a bare ``model.fit`` of the same model on the same data,
   alternating in one process: the ratio of median steady epoch times with its CI.
5. **Resource facts**: the same fit with the run's counters read at its two ends (CPU time, energy, peak
   memory) and without, alternating: steady epoch time and the whole fit, each as a ratio with its interval.
6. **Memory**: the run server's and the sweep process's RSS after ``--rss-runs`` short runs.

Timings on a shared machine drift (see the timing methodology, docs/explanation/timing.md): compare only numbers from
one invocation, and read the intervals. Everything printed also goes to ``--out``/output.txt, headed by the
machine, the date and the command: the README and docs/explanation/benchmarks.md quote those files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from transcript import add_out_option, transcript

from harness.config.run_config import RunConfig, run_config
from harness.hardware import cpu_model
from harness.report.stats import effect_of
from harness.report.verdicts import format_effect

PHASES = ("startup", "imports", "backend", "comet_start", "data", "model", "evaluate")

REPEATS = 8
"""A/B pairs by default: 6 is the fewest for a 95 % interval, 8 leaves room for a pair lost to a hiccup."""


def harness_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COMET_API_KEY"}  # offline archives, never online
    env["PYTHONUNBUFFERED"] = "1"
    return env


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=harness_env(), check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def results_of(sweep_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/result.json"))]


def specs_of(sweep_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/run_spec.json"))]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_sweep(args: list[str], cwd: Path, watch_memory: bool = False) -> dict[str, Any]:
    """Run ``python -m harness -m ARGS`` in ``cwd``; its wall time, results and timestamps (and, with
    ``watch_memory``, the RSS of the sweep process and its run server, sampled while it runs)."""
    name = f"bench-{time.time_ns()}"
    started_at = time.time()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "harness", "-m", *args, f"sweep_name={name}", "rerun=true"],
                               cwd=cwd, env=harness_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory: dict[str, list[tuple[int, float]]] = {"sweep": [], "server": []}  # (runs finished, MB)

    def sample() -> None:
        while process.poll() is None:
            done = len(list((cwd / "multirun" / name).glob("*/result.json")))
            memory["sweep"].append((done, rss_mb(process.pid) or 0.0))
            for child in children(process.pid):
                try:
                    if b"harness.run.server" in Path(f"/proc/{child}/cmdline").read_bytes():
                        memory["server"].append((done, rss_mb(child) or 0.0))
                except OSError:
                    continue
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    if watch_memory:
        sampler.start()
    output, _ = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"sweep {' '.join(args)} failed:\n{output[-2000:]}")
    sweep_dir = cwd / "multirun" / name
    return {"wall": wall, "started_at": started_at, "ended_at": started_at + wall, "results": results_of(sweep_dir),
            "specs": specs_of(sweep_dir), "memory": memory, "sweep_dir": sweep_dir}


def breakdown(sweep: dict[str, Any]) -> dict[str, float]:
    """Seconds per trained run in each part of the harness's cost (see the module docstring)."""
    trained = [r for r in sweep["results"] if r["status"] == "ok" and not r.get("reused")]
    n = len(trained)
    parts = {phase: sum(r["phase_seconds"].get(phase, 0.0) for r in trained) / n for phase in PHASES}
    parts["validation passes (Keras, each epoch)"] = sum(r["validation_seconds"] for r in trained) / n
    parts["fit outside its epochs"] = sum(r["fit_seconds"] - sum(e["epoch_seconds"] for e in r["history"])
                                          for r in trained) / n
    inside = {id(r): sum(r["phase_seconds"].values()) for r in trained}
    parts["result writing, hand-back"] = sum(r["wall_seconds"] - inside[id(r)] for r in trained) / n
    launched = [s["launched_at"] for s in sweep["specs"] if "launched_at" in s]
    ends = [r["started_at"] - r["phase_seconds"].get("startup", 0.0) + r["wall_seconds"]  # launched + wall
            for r in sweep["results"] if r.get("wall_seconds") and r.get("phase_seconds")]
    span = max(ends) - min(launched)
    walls = sum(r.get("wall_seconds") or 0.0 for r in sweep["results"])
    parts["Hydra per job (all cells)"] = (span - walls) / n
    parts["sweep start (once)"] = (min(launched) - sweep["started_at"]) / n
    parts["sweep end: Comet archives, report (once)"] = (sweep["ended_at"] - max(ends)) / n
    return parts


def cost_per_run(sweep: dict[str, Any]) -> tuple[float, float, int]:
    """(sweep wall − Σ train seconds) / trained runs, the same without the validation passes (Keras' own
    per-epoch evaluation, which the training asks for: time to target and early stopping need it), and
    the number of trained runs."""
    trained = [r for r in sweep["results"] if r["status"] == "ok" and not r.get("reused")]
    cost = (sweep["wall"] - sum(r["train_seconds"] for r in trained)) / len(trained)
    return cost, cost - sum(r["validation_seconds"] for r in trained) / len(trained), len(trained)


def ratio_ci(ratios: list[float]) -> str:
    """The median ratio with the report's exact interval, or "too few to tell" (``stats.effect_of``)."""
    return format_effect(effect_of(ratios, "ratio"), digits=3, more_seeds=f"--repeats {REPEATS}")


def startup_section(work: Path, finished_sweep: Path) -> None:
    print("\n## Start-up")
    help_s = timed([sys.executable, "-m", "harness", "--help"], work)
    report_s = timed([sys.executable, "-m", "harness.report", str(finished_sweep)], work)
    print(f"python -m harness --help            {help_s:5.2f} s")
    print(f"python -m harness.report SWEEP      {report_s:5.2f} s")
    imports = "import keras, comet_ml"
    print(f"python -c '{imports}'  {timed([sys.executable, '-c', imports], work):5.2f} s "
          "(once per sweep with run_process=fork; once per run with fresh)")


def sweep_section(work: Path, quick: bool) -> dict[str, Any]:
    print("\n## Sweeps")
    grid = ["epochs=3", "optimizer=adam,sgd"] if quick else ["experiment=seed_grid"]
    sweeps = {}
    for mode in ("fresh", "fork"):
        sweeps[mode] = run_sweep([*grid, f"run_process={mode}"], work)
        cost, own, n = cost_per_run(sweeps[mode])
        print(f"{' '.join(grid)} run_process={mode}: {sweeps[mode]['wall']:.1f} s wall, {n} trained runs, "
              f"harness cost {cost:.2f} s per run ({own:.2f} s without the validation passes)")
    print("\nper trained run (s)                             fresh    fork")
    parts = {mode: breakdown(sweep) for mode, sweep in sweeps.items()}
    for part in parts["fork"]:
        print(f"  {part:<44}{parts['fresh'][part]:6.2f}  {parts['fork'][part]:6.2f}")
    newcomer = run_sweep(["optimizer=adam,sgd"], work)
    fit = sum(r["fit_seconds"] for r in newcomer["results"])
    start = breakdown(newcomer)
    once = (start["sweep start (once)"] + start["sweep end: Comet archives, report (once)"]) * 2
    once += newcomer["results"][0]["phase_seconds"].get("startup", 0.0)  # the server's imports
    print(f"\nnewcomer sweep (optimizer=adam,sgd, 50 epochs): {newcomer['wall']:.1f} s wall, Σ fit {fit:.1f} s, "
          f"one-time start and end {once:.1f} s: (wall − one-time) / Σ fit = {(newcomer['wall'] - once) / fit:.2f}")
    return sweeps


def equivalence_section(work: Path, repeats: int) -> None:
    print("\n## Equivalence: forked vs fresh run processes (alternating)")
    cells = ["epochs=15", "optimizer=adam,sgd", "tracking=disabled", "order=grid"]
    ratios, identical = [], True
    for repeat in range(repeats):
        modes = ("fork", "fresh") if repeat % 2 == 0 else ("fresh", "fork")
        by_mode = {mode: {r["optimizer"]: r for r in run_sweep([*cells, f"run_process={mode}"], work)["results"]}
                   for mode in modes}
        for optimizer, fork_run in by_mode["fork"].items():
            fresh_run = by_mode["fresh"][optimizer]
            ratios.append(fork_run["median_epoch_seconds"] / fresh_run["median_epoch_seconds"])
            curves = [[e["val_accuracy"] for e in run["history"]] for run in (fork_run, fresh_run)]
            identical &= curves[0] == curves[1]
            identical &= fork_run["test_accuracy"] == fresh_run["test_accuracy"]
    print(f"steady epoch time, fork / fresh: {ratio_ci(ratios)}")
    print(f"identical histories and test accuracies for the same seed: {'yes' if identical else 'NO'}")


def composed_run(overrides: list[str]) -> RunConfig:
    """The run config that ``python -m harness OVERRIDES`` trains."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from harness.config.files import CONF_DIR
    from harness.config.presets import register_experiments
    from harness.config.schema import register_configs
    from hydra_plugins.harness_sweeper import harness_sweeper

    register_configs()
    register_experiments()
    harness_sweeper.register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return run_config(OmegaConf.to_container(compose(config_name="config", overrides=overrides), resolve=True))


def fresh_model(cfg: RunConfig, task: Any) -> Any:
    """The default run's model, compiled as a run compiles it, in a cleared Keras session with the run's seed."""
    import keras

    from harness.run import models, optimizers

    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)
    model = models.build_classifier(models.build_feature_extractor(task.input_shape, cfg.model),
                                    task.num_classes, cfg.model, frozen=False)
    model.compile(optimizer=optimizers.build_optimizer(cfg.optimizer), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=cfg.jit_compile)
    return model


def fit_overhead_section(repeats: int) -> None:
    print("\n## Training loop: the harness's timed fit vs a bare Keras fit (alternating, one process)")
    os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")
    os.environ.setdefault("COMET_LOGGING_CONSOLE", "WARNING")  # its offline experiments' INFO lines: not results
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from harness.run import data
    from harness.run.train import fit_callbacks

    cfg = composed_run(["epochs=15"])
    task, _ = data.load_tasks(cfg.dataset, Path(tempfile.mkdtemp()))

    class EpochClock(keras.callbacks.Callback):
        """The same clock on both sides, last in the list: an epoch runs from one ``on_epoch_begin`` to the
        next (to ``on_train_end`` for the last), so every callback's work at the epoch's end is inside it."""

        def __init__(self) -> None:
            super().__init__()
            self.marks: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.marks.append(time.perf_counter())

        def on_train_end(self, logs: dict | None = None) -> None:
            self.marks.append(time.perf_counter())

    def fit(harnessed: bool, offline_dir: str) -> float:
        model = fresh_model(cfg, task)
        experiment = None
        if harnessed:
            import comet_ml

            experiment = comet_ml.start(online=False, mode="create", experiment_config=comet_ml.ExperimentConfig(
                offline_directory=offline_dir, display_summary_level=0, log_code=False, log_env_details=False,
                name="overhead-fit"))
            callbacks, _, _ = fit_callbacks(cfg, experiment, Path(offline_dir))  # the progress file too
        else:
            callbacks = []
        clock = EpochClock()
        model.fit(task.train.x, task.train.y, validation_data=(task.val.x, task.val.y), epochs=cfg.epochs,
                  batch_size=cfg.batch_size, callbacks=[*callbacks, clock], verbose=0)
        if experiment is not None:
            experiment.end()
        return statistics.median(np.diff(clock.marks)[1:])  # steady epochs: the first one traces the graph

    ratios = []
    with tempfile.TemporaryDirectory() as offline_dir, open(os.devnull, "w") as quiet:
        stdout = sys.stdout
        for repeat in range(repeats):
            sys.stdout = quiet  # the harness's per-epoch log lines
            order = (True, False) if repeat % 2 == 0 else (False, True)
            seconds = {harnessed: fit(harnessed, offline_dir) for harnessed in order}
            sys.stdout = stdout
            ratios.append(seconds[True] / seconds[False])
    print(f"steady epoch time (validation and every callback included), harness / bare: {ratio_ci(ratios)}")


def facts_overhead_section(repeats: int) -> None:
    """The resource facts: the same fit with the counters read at its two ends (CPU time, RAPL/NVML energy,
    peak memory, the GPU's peak) and without, alternating: steady epoch time and the whole fit, as ratios."""
    print("\n## Resource facts: the same fit with the counters read at its ends vs without (alternating)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from harness import hardware
    from harness.run import data, device_memory

    cfg = composed_run(["epochs=15"])
    task, _ = data.load_tasks(cfg.dataset, Path(tempfile.mkdtemp()))

    def fit(facts: bool) -> tuple[float, float]:
        model = fresh_model(cfg, task)
        marks: list[float] = []
        clock = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: marks.append(time.perf_counter()),
                                               on_train_end=lambda logs: marks.append(time.perf_counter()))
        started = time.perf_counter()
        if facts:  # as harness.run.train.fit_model reads them
            counters = hardware.EnergyCounters(gpu_index=None)
            energy, cpu = counters.read(), time.process_time()
        model.fit(task.train.x, task.train.y, validation_data=(task.val.x, task.val.y), epochs=cfg.epochs,
                  batch_size=cfg.batch_size, callbacks=[clock], verbose=0)
        if facts:
            counters.joules(energy, counters.read())
            _ = time.process_time() - cpu, device_memory.peak_bytes(cfg.backend)
            hardware.process_memory_and_cpus()
        return statistics.median(np.diff(marks)[1:]), time.perf_counter() - started

    steady, whole = [], []
    for repeat in range(repeats):
        order = (True, False) if repeat % 2 == 0 else (False, True)
        seconds = {facts: fit(facts) for facts in order}
        steady.append(seconds[True][0] / seconds[False][0])
        whole.append(seconds[True][1] / seconds[False][1])
    print(f"steady epoch time, facts on / off: {ratio_ci(steady)}")
    print(f"the whole fit, facts on / off: {ratio_ci(whole)}")


def memory_section(work: Path, runs: int) -> None:
    print(f"\n## Memory over {runs} short runs (run_process=fork)")
    sweep = run_sweep([f"seed=range(0,{runs})", "epochs=1", "tracking=disabled"], work, watch_memory=True)
    for who in ("sweep", "server"):  # while runs go on: the report at the end imports pandas and seaborn
        samples = [(done, mb) for done, mb in sweep["memory"][who] if mb and 1 <= done < runs]
        if samples:
            middle = samples[len(samples) // 2]
            print(f"{who:>6} process RSS: {samples[0][1]:.0f} MB after {samples[0][0]} run(s), {middle[1]:.0f} MB "
                  f"after {middle[0]}, {samples[-1][1]:.0f} MB after {samples[-1][0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 2-run grid instead of seed_grid (a smoke test)")
    parser.add_argument("--repeats", type=int, default=REPEATS,
                        help=f"A/B pairs for the equivalence and fit checks (default {REPEATS})")
    parser.add_argument("--rss-runs", type=int, default=100, help="short runs for the memory check")
    parser.add_argument("--sections", default="sweeps,startup,equivalence,fit,facts,memory",
                        help="which parts to run, comma-separated (startup needs sweeps)")
    add_out_option(parser, "overhead")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    with transcript(args.out):
        run_sections(args, sections)


def run_sections(args: argparse.Namespace, sections: set[str]) -> None:
    print(f"# Harness overhead on {platform.node()}: {cpu_model()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if "sweeps" in sections:
            sweeps = sweep_section(work, args.quick)
            if "startup" in sections:
                startup_section(work, sweeps["fork"]["sweep_dir"])
        if "equivalence" in sections:
            equivalence_section(work, args.repeats)
        if "fit" in sections:
            fit_overhead_section(args.repeats)
        if "facts" in sections:
            facts_overhead_section(args.repeats)
        if "memory" in sections:
            memory_section(work, args.rss_runs)


if __name__ == "__main__":
    main()
