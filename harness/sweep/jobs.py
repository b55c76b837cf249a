"""The engine loop for launchers that submit cells elsewhere (Slurm, Ray): ``launch`` composes nothing and
decides nothing of its own engine; it skips what the ``Engine`` cannot place, submits, polls, prints one line
per job as it ends and cancels on Ctrl-C or exit, written once (``harness.sweep.slurm.SlurmEngine`` and
``harness.sweep.ray.RayEngine`` supply their parts). Also: each job composed as it will run, the results
recorded for a job that did not write its own (skipped, or ended without one), and its line.

A *job* here is one launch of a cell (``harness.cells`` says what a cell is: one combination of the
sweep's factors, seed included); ``harness.sweep.cell`` is what the job runs.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol

from omegaconf import DictConfig, open_dict

from harness.cells import cell_factors, describe, rerun_command
from harness.config.run_config import RunConfig, run_config
from harness.result_files import write_result
from harness.results import LOG_FILE, RESULT_FILE, Result, placeholder_result
from harness.sweep import progress
from harness.sweep.callbacks import without_hydra


def stop_on_ctrl_c(config: DictConfig, jobs: list[Job], cancel: Callable[[], None]) -> NoReturn:
    """What Ctrl-C does on an engine that runs cells elsewhere (Slurm, Ray), as on the local launchers:
    ``cancel`` the cells still queued or training, say that finished runs are kept, exit 130."""
    cancel()
    results_dir = Path(str(config.hydra.runtime.cwd)) / str(jobs[0].run.results_dir) if jobs else None
    print(progress.interrupted(results_dir), file=sys.stderr)
    raise SystemExit(130) from None


@dataclass
class Job:
    """One job of the batch (one launch of a cell): its overrides, its number in the sweep, its run config and
    its folder."""

    overrides: list[str]
    num: int
    composed: DictConfig  # the composed job config, Hydra's part included (for its JobReturn)
    run: RunConfig  # the run config, as the run sees it
    folder: Path


def compose_jobs(hydra_context: Any, config: DictConfig, job_overrides: Sequence[Sequence[str]],
                  initial_job_idx: int) -> list[Job]:
    """Compose every job of the batch, as each job will compose itself where it runs, to learn its device and its
    folder."""
    jobs = []
    for num, overrides in enumerate(job_overrides, start=initial_job_idx):
        job_cfg = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(job_cfg.hydra.job):
            job_cfg.hydra.job.num = num
        folder = Path(str(job_cfg.hydra.sweep.dir)) / str(job_cfg.hydra.sweep.subdir)
        run = run_config(without_hydra(job_cfg), progress.sweep_name(folder.parent))  # the sweep's one name
        jobs.append(Job(list(overrides), num, job_cfg, run, folder))
    return jobs


def job_return(job: Job, result: Result) -> Any:
    """A completed Hydra ``JobReturn`` for a job recorded here rather than by itself (skipped, or a job
    that ended without a result): the sweep goes on, and a search sweeper sees NaN, a failed trial."""
    from hydra.core.utils import JobReturn, JobStatus

    from harness.sweep.cell import objective

    value = objective(result, job.run.optimized_metric)
    return JobReturn(overrides=job.overrides, cfg=job.composed, hydra_cfg=job.composed, working_dir=str(job.folder),
                     task_name=str(job.composed.hydra.job.name), status=JobStatus.COMPLETED,
                     _return_value=math.nan if value is None and result["status"] != "ok" else value)


def write_placeholder(job: Job, status: str, reason: str, sweep_dir: Path) -> Result:
    """Write the ``result.json`` of a job that did not write its own."""
    factors, baselines = progress.factors(sweep_dir, job.run.factors)
    result = placeholder_result(job.run, status, reason, cell_factors(job.run.resolved, factors), baselines,
                                rerun_command=rerun_command(job.run.resolved, job.overrides),
                                log_file=str(job.folder / LOG_FILE))
    job.folder.mkdir(parents=True, exist_ok=True)
    write_result(job.folder / RESULT_FILE, result)
    return result


def job_line(job: Job, result: Result, sweep_dir: Path, where: str) -> str:
    """``[2/4] adam, cpu, seed 0 … ok 6.1 s, test acc 0.95 · Slurm job 12_1 on node7``."""
    factors, _ = progress.factors(sweep_dir, job.run.factors)
    heading = progress.position(sweep_dir, job.num) + describe(cell_factors(job.run.resolved, factors), job.run.seed)
    outcome = progress.outcome(result, float(result.get("wall_seconds") or 0.0), sweep_dir, None)
    return f"{heading} … {outcome} · {where}"


class Engine(Protocol):
    """What an engine that runs cells elsewhere (Slurm, Ray) supplies to ``launch``: its own parts only.
    A *handle* is the engine's view of a submitted job (a submitit job, a Ray task's reference)."""

    def skip_reason(self, job: Job) -> str | None:
        """Why ``job`` cannot be placed on this engine (recorded ``skipped``, not submitted), or ``None``."""

    def submit(self, jobs: list[Job]) -> dict[int, Any]:
        """Submit ``jobs``, print one line saying where; their handles by job number."""

    def check(self, waiting: dict[int, Any]) -> None:
        """Look for jobs that will never start; raise ``SystemExit`` (after one line) if so."""

    def ended(self, waiting: dict[int, Any], timeout: float) -> list[int]:
        """The numbers of ``waiting`` jobs that have ended, waiting at most ``timeout`` seconds for one."""

    def finished(self, job: Job, handle: Any) -> tuple[Any, Result, str]:
        """The ``JobReturn`` and result of an ended job (recorded ``failed`` where it ended without one),
        and where it ran, for its line."""

    def cancel(self, handles: Any) -> None:
        """Cancel jobs still queued or running."""


def launch(engine: Engine, config: DictConfig, jobs: list[Job], sweep_dir: Path, poll_s: float) -> list[Any]:
    """Run a batch of composed ``jobs`` on ``engine``: record the ones it cannot place ``skipped``, submit
    the rest, print one line per job as it ends, and on Ctrl-C or on exit cancel the jobs still queued or
    running. Returns the ``JobReturn``s in the batch's order. One body for every such engine."""
    returns: dict[int, Any] = {}
    for job in jobs:
        if reason := engine.skip_reason(job):
            returns[job.num] = job_return(job, result := write_placeholder(job, "skipped", reason, sweep_dir))
            print(job_line(job, result, sweep_dir, "not submitted"), flush=True)
    by_num = {job.num: job for job in jobs}
    waiting = engine.submit([job for job in jobs if job.num not in returns])
    try:
        while waiting:
            engine.check(waiting)
            for num in engine.ended(waiting, poll_s):
                returns[num], result, where = engine.finished(by_num[num], waiting.pop(num))
                print(job_line(by_num[num], result, sweep_dir, where), flush=True)
    except KeyboardInterrupt:
        stop_on_ctrl_c(config, jobs, lambda: engine.cancel(waiting.values()))
    except SystemExit:
        engine.cancel(waiting.values())
        raise
    return [returns[job.num] for job in jobs]
