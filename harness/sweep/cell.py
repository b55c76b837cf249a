"""One cell of the grid, as seen from the Hydra process: validate, launch, record, report progress.

Every run trains in a process of its own (forked from a run server, or a fresh ``python -m
harness.run.train RUN_DIR``: ``harness.sweep.run_process``) whose device is fixed before the backend
starts, so that a CPU cell never shares a process with a GPU set-up and a crash (an exception, a
segfault, the OOM killer) costs one cell, not the sweep. This module never imports TensorFlow; it
writes the run's spec, waits for the run and makes sure exactly one ``result.json`` exists afterwards,
whatever happened."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from harness import hardware
from harness.cells import cell_factors, describe, rerun_command
from harness.comet_summary import comet_summary
from harness.config.run_config import RunConfig, run_config
from harness.config.validate import ConfigError, validate
from harness.interpreters import interpreter_path
from harness.result_files import load_stored, read_result, store_result, write_json_atomic, write_result
from harness.results import LOG_FILE, RESULT_FILE, SPEC_FILE, Result, RunSpec, Status, placeholder_result
from harness.run_key import run_key
from harness.stage_records import Reuse, Supervision, assemble
from harness.startup import startup_settings
from harness.sweep import comet_mode, progress, run_process
from harness.sweep.faults import SweepPlaces, stop_when_disk_full

INTERRUPT_GRACE_S = 10.0
LIVE_POLL_S = 1.0  # how often a waiting sweep looks at its run's progress file (a stat and a small read)


def default_cache_dir() -> Path:
    """Where pretrained weights are cached: ``$HARNESS_CACHE_DIR`` or ``~/.cache/harness``."""
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "harness")


def run_cell(cfg: DictConfig) -> float | None:
    """Run (or reuse) the cell that Hydra composed in ``cfg``; return its ``optimized_metric`` for a
    search sweeper (``objective``; ``None`` when none is set).

    Exits 2 on invalid input (before any training), 130 on Ctrl-C, and, for a single run, 1 if the run
    failed. In a multirun a failed cell is recorded and the sweep goes on.
    """
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    config = checked_config(cfg, hydra_cfg, multirun)
    if config.plan:  # a single run's plan (a sweep's is printed before its first cell: callbacks.print_plan)
        described = describe(cell_factors(config.resolved, config.factors), config.seed)
        print(f"{described} … {planned(config)}. Nothing ran (plan=true).")
        return None
    run_dir = Path(hydra_cfg.runtime.output_dir)
    launch = sweep_launch(config, hydra_cfg, multirun)
    job_num, parallel, results_dir = launch.sweep_position, launch.parallel, launch.results_dir
    heading = (progress.position(launch.sweep_dir, job_num) if job_num is not None else "") + \
        describe(launch.factors or {}, config.seed)
    live = None
    if parallel == 1:  # in parallel, lines would interleave: each run prints one whole line when it ends
        print(f"{heading} …", end=" ", flush=True)
        live = progress.LiveLine(run_dir)  # a long run's epochs, after the heading
    started = time.perf_counter()
    places = SweepPlaces(launch.sweep_dir, results_dir, Path(to_absolute_path(config.reports_dir)),  # type: ignore[arg-type]
                         config.sweep_name)
    try:
        with stop_when_disk_full(places, line_open=parallel == 1):
            result = obtain_result(config, run_dir, launch, live)
    except KeyboardInterrupt:
        print(progress.interrupted(results_dir), file=sys.stderr)
        raise SystemExit(130) from None
    if parallel > 1:  # this launcher's worker processes, not the sweep's, hold the run servers: let the run
        run_process.finish_runs()  # end its Comet experiment before the sweep's summary can look for it
    startup = run_process.take_startup_wait()
    outcome = progress.outcome(result, time.perf_counter() - started - startup, launch.sweep_dir,
                               job_num if parallel == 1 else None, startup_s=startup)
    if live is not None:
        live.close()
    print(outcome if live is not None and not live.printed_plain else f"{heading} … {outcome}", flush=True)
    if not multirun:
        finish_single_run(result, run_dir)
    return objective(result, config.optimized_metric)


def checked_config(cfg: DictConfig, hydra_cfg: Any, multirun: bool) -> RunConfig:
    """The run config of ``cfg``, with the sweep's one name; exits 2 with one line if a value is
    invalid (``validate``), or if a single ``device=gpu`` run has no GPU to run on."""
    resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    # in a multirun, one identity for the whole sweep, as it was fixed when the sweep started
    config = run_config(resolved, progress.sweep_name(Path(hydra_cfg.sweep.dir)) if multirun else None)
    try:
        validate(config)
        if not multirun and config.device.name == "gpu" and not hardware.gpu_names():
            raise ConfigError("device=gpu but no GPU is visible here (nvidia-smi finds none); valid: device=cpu")
    except ConfigError as err:
        print(f"harness: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    return config


def sweep_launch(config: RunConfig, hydra_cfg: Any, multirun: bool) -> Launch:
    """How this job's run is launched: its sweep, results store, parallelism (``parallel_jobs``), the CPUs a
    launcher allocated to it, its place in the sweep and the sweep's view of its factors."""
    results_dir = Path(to_absolute_path(config.results_dir))
    if not multirun:
        run_dir = Path(hydra_cfg.runtime.output_dir)
        return Launch(run_dir, results_dir, 1, None, cell_factors(config.resolved, config.factors), {},
                      rerun=rerun_command(config.resolved, hydra_cfg.overrides.task))
    sweep_dir = Path(hydra_cfg.sweep.dir)
    parallel = parallel_jobs(hydra_cfg.launcher, hydra_cfg.sweeper, progress.total(sweep_dir))
    factor_names, baselines = progress.factors(sweep_dir, config.factors)
    factors = cell_factors(config.resolved, factor_names)
    return Launch(sweep_dir, results_dir, parallel, hydra_cfg.job.num, factors, baselines,
                  hydra_cfg.launcher.get("cpus_per_run"),  # cpus: a launcher's allocation (Ray)
                  rerun_command(config.resolved, hydra_cfg.overrides.task))


def finish_single_run(result: Result, run_dir: Path) -> None:
    """After a single run (not a multirun): its Comet summary and result file named; exit 1 if it failed."""
    run_process.finish_runs()  # its Comet experiment ends off the critical path: wait for its archive
    comet = comet_summary([result])
    if comet:
        print(comet)
    print(f"result: {run_dir / RESULT_FILE}")
    if result["status"] == "failed":
        raise SystemExit(1)


def objective(result: Result, metric: str | None) -> float | None:
    """What a run returns to a search sweeper: its ``metric`` (``None`` when none is asked for);
    infinity where it is a time to target that was never reached; NaN for a run that is not ``ok``,
    which Optuna records as a failed trial."""
    if metric is None:
        return None
    if result["status"] != "ok":
        return math.nan
    value = result.get(metric)
    return math.inf if value is None else float(value)


@dataclass(frozen=True)
class Launch:
    """How the sweep launches one run of a cell: what the run belongs to and what it shares.

    Args:
        sweep_dir: the sweep's folder (a single run's own folder outside a multirun).
        results_dir: the results store an ``ok`` result goes into (``None``: none).
        parallel: how many runs share this machine at once (the result's ``parallel_jobs``).
        sweep_position: the job's number in the sweep's order (``None``: a single run).
        factors: the sweep's view of the cell (``harness.cells``; ``None``: the run's own ``factors``).
        baselines: the level each factor is compared against.
        cpus: the CPUs a launcher allocated to the run (Ray's; Slurm's come as ``SLURM_CPUS_PER_TASK``):
            its threads with ``threads=0``. ``None``: none allocated.
        rerun: the shell command that runs the cell again, alone (``harness.cells.rerun_command``).
    """

    sweep_dir: Path
    results_dir: Path | None = None
    parallel: int = 1
    sweep_position: int | None = None
    factors: dict[str, Any] | None = None
    baselines: dict[str, Any] | None = None
    cpus: int | None = None
    rerun: str = ""


def with_cell_factors(launch: Launch, cfg: RunConfig) -> Launch:
    """``launch`` with the cell's ``factors`` and ``baselines`` where the sweep gave none (a single run, or a
    run started on its own): the config's own factors (``harness.cells.cell_factors``), no baselines."""
    return replace(launch, factors=launch.factors or cell_factors(cfg.resolved, cfg.factors),
                   baselines=launch.baselines or {})


def obtain_result(cfg: RunConfig, run_dir: Path, launch: Launch, live: progress.LiveLine | None = None) -> Result:
    """The cell's result: reused from the results store if it finished ``ok`` before (unless
    ``rerun=true``), else skipped (a GPU cell without a GPU) or trained now. Writes it to the run's
    folder; an ``ok`` result is in the store before its ``result.json`` appears (the run process puts
    it there), so no kill can lose a finished run. ``launch.factors``/``baselines`` (this sweep's view of
    the cell) are also given to a reused result, whose earlier sweep may have varied other settings.
    ``live``: where a trained run shows its epochs while it trains."""
    launch = with_cell_factors(launch, cfg)
    factors, baselines = launch.factors, launch.baselines
    results_dir = launch.results_dir
    assert results_dir is not None, "a cell's result is obtained with a results store"
    earlier = None if cfg.rerun else load_stored(results_dir, run_key(cfg.resolved))
    if earlier is not None:
        result = assemble(earlier, Reuse(sweep_name=cfg.sweep_name, reused_from=earlier["sweep_name"],
                                         factors=factors, factor_baselines=baselines))
        write_result(run_dir / RESULT_FILE, result)
        return result
    reason = skip_reason(cfg)
    if reason:
        result = placeholder_result(cfg, "skipped", reason, factors, baselines, rerun_command=launch.rerun)
        write_result(run_dir / RESULT_FILE, result)
        return result
    result = launch_run(cfg, run_dir, launch, live)
    if result["status"] == "ok":
        store_result(results_dir, result)  # again, now with the wall time seen from here
    return result


def planned(cfg: RunConfig, placed_here: bool = True) -> str:
    """What ``obtain_result`` will do with the cell ``cfg``, as ``plan=true`` prints it: ``would train``,
    ``would reuse the result of sweep NAME`` (an ``ok`` result in the store, unless ``rerun=true``) or
    ``would be skipped: REASON``. ``placed_here``: whether the cell runs on this machine; where a launcher
    places it on a cluster (Slurm, Ray), whether a GPU is there is the cluster's to say, not this machine's."""
    results_dir = Path(to_absolute_path(cfg.results_dir))
    earlier = None if cfg.rerun else load_stored(results_dir, run_key(cfg.resolved))
    if earlier is not None:
        return f"would reuse the result of sweep {earlier['sweep_name']}"
    reason = skip_reason(cfg)
    if reason == NO_GPU and not placed_here:
        return "would train where the launcher finds a GPU (skipped if the cluster has none)"
    return f"would be skipped: {reason}" if reason else "would train"


NO_GPU = "no GPU visible"
"""Why a GPU cell is skipped on a machine without a GPU (``skip_reason``)."""


def will_train(cfg: RunConfig) -> bool:
    """Whether ``obtain_result`` will train the cell ``cfg``: neither reused from the results store nor
    skipped."""
    return planned(cfg) == "would train"


def skip_reason(cfg: RunConfig) -> str | None:
    """Why the cell ``cfg`` cannot give a meaningful measurement here (it is then ``skipped``, not run):
    a GPU cell without a GPU; float16 on a CPU, which has no float16 units and would only show a slow
    emulation as if it were a result."""
    if cfg.device.name == "gpu" and not hardware.gpu_names():
        return NO_GPU
    if cfg.precision == "mixed_float16" and cfg.device.name == "cpu":
        return "mixed_float16 needs a GPU (a CPU emulates float16 slowly); use mixed_bfloat16 or device=gpu"
    return None


def parallel_jobs(launcher: Any, sweeper: Any, total: int | None) -> int:
    """How many cells the Hydra launcher runs at once on this machine (1: Hydra's basic launcher).

    joblib: ``n_jobs`` (negative counts back from the number of cores, as joblib does);
    submitit's local executor: a whole sweeper batch (``hydra.sweeper.max_batch_size``, or a search
    sweeper's ``n_jobs``) at once.
    A Slurm job has its own allocation, so it counts as 1. A launcher that places runs on nodes itself
    (Ray: ``harness.sweep.ray``) says how many runs the node holds at once in ``runs_at_once``.
    """
    if launcher.get("runs_at_once"):
        return int(launcher.get("runs_at_once"))
    target = str(launcher.get("_target_", ""))
    cores = os.cpu_count() or 1
    if "JoblibLauncher" in target:
        n_jobs = launcher.get("n_jobs") or 1
        return max(1, n_jobs if n_jobs > 0 else cores + 1 + n_jobs)
    if "LocalLauncher" in target and "submitit" in target:
        batch = sweeper.get("max_batch_size") or sweeper.get("n_jobs") or total or 1  # n_jobs: a search's batch
        return max(1, min(batch, total or batch))
    return 1


def run_spec(cfg: RunConfig, launch: Launch) -> RunSpec:
    """What the run process is asked to do (``run_spec.json``, ``harness.results.RunSpec``): the config
    plus what the sweep decided for it (``launch``): the pretrained-weights cache, Comet's mode, threads,
    how many runs share the machine, the results store to put an ``ok`` result in (``None``: none), the
    cell's place in the sweep's order and its ``factors`` and ``factor_baselines`` (``harness.cells``)."""
    launch = with_cell_factors(launch, cfg)
    return {
        "factors": launch.factors,
        "factor_baselines": launch.baselines,
        "results_dir": str(launch.results_dir) if launch.results_dir is not None else None,
        "sweep_position": launch.sweep_position,
        "config": cfg.resolved,
        "cache_dir": str(Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()),
        "tracking": comet_mode.resolve(cfg.tracking, launch.sweep_dir),
        "threads": cfg.threads or default_threads(launch.parallel, launch.cpus),
        "parallel_jobs": launch.parallel,
        "rerun_command": launch.rerun,
    }


def default_threads(parallel: int, cpus: int | None = None) -> int:
    """Threads for a run with ``threads=0``: the CPUs a launcher allocated to it (``cpus``: Ray's), or a Slurm
    job's own allocation (``SLURM_CPUS_PER_TASK``): the node may have many more cores than the run was
    given; ``cores // parallel`` where runs share this machine; else 0, the backend's default."""
    allocated = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if cpus:
        return cpus
    if allocated.isdigit() and int(allocated) > 0:
        return int(allocated)
    return max(1, (os.cpu_count() or 1) // parallel) if parallel > 1 else 0


def run_env(cfg: RunConfig, online: bool, threads: int) -> dict[str, str]:
    """The environment of the run of ``cfg``: this process's, with its start-up settings
    (``harness.startup.startup_settings``: backend, device, logs, JAX's ``threads``) and the Comet key only
    for a run that goes ``online``."""
    env = startup_settings(dict(os.environ), backend=cfg.backend, device=cfg.device.name,
                           quiet=cfg.quiet_tensorflow, threads=threads)
    if not online:
        env.pop("COMET_API_KEY", None)  # a run that does not go online has no use for the key
    return env


def launch_run(cfg: RunConfig, run_dir: Path, launch: Launch, live: progress.LiveLine | None = None) -> Result:
    """Train ``cfg`` in a fresh process; return its result, recorded as ``failed`` if it crashed.
    ``live`` (optional) is updated while the run trains.

    With ``launch.parallel`` runs at once and ``threads=0``, each run gets ``cores // parallel`` threads
    so that parallel runs don't oversubscribe the cores (``run_spec``).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    result_path = run_dir / RESULT_FILE
    result_path.unlink(missing_ok=True)
    spec = run_spec(cfg, launch)
    spec["launched_at"] = time.time()  # the run measures its start-up (process and imports, or fork) from here
    write_json_atomic(run_dir / SPEC_FILE, spec)

    env = run_env(cfg, online=spec["tracking"]["mode"] == "online", threads=spec["threads"])
    started = time.perf_counter()
    reason = None
    run = run_process.start_run(cfg.run_process, run_dir, env, interpreter_path(cfg.python))
    try:
        code = wait_showing(run, time.monotonic() + cfg.run_timeout_s, live)
    except subprocess.TimeoutExpired:
        run.signal(signal.SIGKILL)
        run.wait()
        code, reason = None, f"timed out after {cfg.run_timeout_s:g} s"
    except KeyboardInterrupt:
        run_process.stop_run(run, INTERRUPT_GRACE_S)
        _ensure_result(result_path, spec, "interrupted", "interrupted by the user (Ctrl-C)")
        raise
    if reason is None and code != 0:
        reason = run.failure or exit_reason(code)
    result = assemble(_ensure_result(result_path, spec, "failed", reason),
                      Supervision(wall_seconds=time.perf_counter() - started,
                                  run_process="fork" if isinstance(run, run_process.ForkedRun) else "fresh"))
    write_result(result_path, result)
    return result


def wait_showing(run: run_process.FreshRun | run_process.ForkedRun, deadline: float,
                 live: progress.LiveLine | None) -> int:
    """``run.wait()`` until the monotonic ``deadline`` (then ``subprocess.TimeoutExpired``), updating
    ``live`` every ``LIVE_POLL_S`` meanwhile."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired("run", 0)
        try:
            return run.wait(timeout=min(left, LIVE_POLL_S) if live is not None else left)
        except subprocess.TimeoutExpired:
            if live is None or time.monotonic() >= deadline:
                raise
            live.update()


def exit_reason(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"run process killed by {name}{hint}"
    return f"run process exited with code {code} (see train.log)"


def _ensure_result(path: Path, spec: RunSpec, status: Status, reason: str | None) -> Result:
    """The run's own result if it wrote a valid one, else a ``status`` result with ``reason``."""
    try:
        return read_result(path)
    except (OSError, ValueError):
        result = placeholder_result(run_config(spec["config"]), status, reason or "run wrote no result",
                                    spec["factors"], spec["factor_baselines"],
                                    rerun_command=spec.get("rerun_command", ""), log_file=str(path.with_name(LOG_FILE)))
        write_result(path, result)
        return result
