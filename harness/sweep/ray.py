"""The sweep on Ray: one Ray task per cell, as seen from the process that launches them.

``hydra/launcher=ray`` (``hydra_plugins/harness_ray``) hands its batch of cells to ``launch_jobs``, which
does what a sweep needs of a Ray cluster beyond running functions on it:

- **Resources per cell.** Each cell's task asks for ``cpus_per_cell`` CPUs (by default a whole node's, the
  smallest node's where they differ: one run per node at a time), and the run uses that many threads; a
  ``device=gpu`` cell asks for ``gpus_per_cell`` GPUs too. Where no node offers a GPU, the GPU cells are
  recorded ``skipped`` with that reason rather than queued forever; a cell asking for more CPUs than any
  node has stops the sweep with one line before anything runs.
- **Honest timings.** Each run records in ``parallel_jobs`` how many runs its node can hold at once with
  these requests (node CPUs // cell CPUs, and node GPUs // cell GPUs for a GPU cell; at most the batch),
  so the report warns about shared timings exactly when runs could share a node.
- **Quiet, whole lines.** A local Ray starts without its dashboard, and without the warning that Ray 2.60
  prints on every start about turning token authentication on (it stays on); workers' output stays in Ray's
  log files (each run's own output is in its ``train.log``). One line per cell as it ends, with its node.
- **Faults.** A task whose worker dies (killed, out of memory, its node lost) is recorded ``failed`` with
  Ray's reason, and not retried behind the sweep's back (``max_retries: 0`` unless ``ray.remote`` says
  otherwise): a rerun trains it. Ctrl-C cancels the cells still queued or training and keeps finished ones.

Everything a cell computes still happens inside its task, in ``harness.sweep.cell.run_cell``: the task
trains in a fresh run process, writes ``result.json`` into the cell's folder and its ``ok`` result into
the results store, both on the filesystem every node shares.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from harness.result_files import read_result
from harness.results import RESULT_FILE, Result
from harness.sweep import run_process
from harness.sweep.jobs import Job, compose_jobs, job_return, launch, write_placeholder

POLL_S = 1.0  # how long the launching process waits for a task before it looks again (so Ctrl-C is seen)
LOCAL_OBJECT_STORE_BYTES = 78_643_200  # Ray's minimum: tasks pass only configs; /dev/shm is small in containers


@dataclass
class TaskOutcome:
    """What a cell's task hands back: Hydra's ``JobReturn`` (``None`` if the job exited), the node it ran on,
    and, for a job that exited (``SystemExit``: an invalid config, a full disk), its exit code and what it
    wrote to stderr, which the launching process repeats (workers' output does not reach it)."""

    job_return: Any
    node: str
    exit_code: int | str | None = None
    stderr: str = ""


def node_resources() -> list[dict[str, float]]:
    """The resources (``CPU``, ``GPU``, ...) of each live node of the connected Ray cluster."""
    import ray

    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def start_ray(init: dict[str, Any]) -> str:
    """Connect to the Ray cluster at ``init["address"]``, or start a local one (``None``), quietly; ``init``
    holds the arguments of ``ray.init`` (``None`` values are left out). Returns what it connected to."""
    import ray

    settings = {key: value for key, value in init.items() if value is not None}
    local = settings.get("address") is None
    if local:
        # Ray 2.60 turns token authentication on for a new local Ray, and warns that it did on every start
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        settings.setdefault("include_dashboard", False)
        settings.setdefault("object_store_memory", LOCAL_OBJECT_STORE_BYTES)
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # what Ray does print here (a dead worker's note): no colours
    settings.setdefault("log_to_driver", False)  # workers' output stays in Ray's logs: one line per cell here
    settings.setdefault("logging_level", logging.WARNING)
    if not ray.is_initialized():
        ray.init(**settings)
    return "a local Ray" if local else f"the Ray cluster at {settings['address']}"


def cell_cpus(requested: int | None, nodes: list[dict[str, float]]) -> int:
    """The CPUs each cell asks for: ``requested``, or a whole node's (the smallest node with CPUs, so that a
    cell fits on every node). Raises ``ValueError`` with one line when no node could ever run it."""
    cpus = sorted(int(node.get("CPU", 0)) for node in nodes if node.get("CPU", 0) >= 1)
    if not cpus:
        raise ValueError("the Ray cluster offers no CPUs (ray.nodes() lists no node with a CPU resource)")
    if requested is None:
        return cpus[0]
    if not 1 <= requested <= cpus[-1]:
        raise ValueError(f"hydra.launcher.cpus_per_cell={requested} is invalid: no Ray node has that many CPUs; "
                         f"valid: 1 to {cpus[-1]}, or null for a whole node")
    return requested


def runs_at_once(node: dict[str, float], cpus: float, gpus: float, batch: int) -> int:
    """How many runs asking for ``cpus`` CPUs (and ``gpus`` GPUs) a node with resources ``node`` holds at
    once, at most ``batch`` (the runs there are to place)."""
    fits = int(node.get("CPU", 0) // cpus) if cpus else batch
    if gpus:
        fits = min(fits, int(node.get("GPU", 0) // gpus))
    return max(1, min(fits, batch))


def run_job_on_ray(hydra_context: Any, sweep_config: DictConfig, task_function: Any, singleton_state: Any,
                   batch: int) -> TaskOutcome:
    """The body of a cell's Ray task, on whichever node Ray chose: Hydra's ``run_job`` for the job, with
    the launcher's view of this node written into ``hydra.launcher`` (``runs_at_once``, ``cpus_per_run``)
    where ``run_cell`` reads it. Runs in the launch folder (``hydra.runtime.cwd``), as every other launcher
    does, which must exist on every node (a shared filesystem)."""
    import ray
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import run_job, setup_globals

    context = ray.get_runtime_context()
    assigned = context.get_assigned_resources()
    node = next((n["Resources"] for n in ray.nodes() if n["NodeID"] == context.get_node_id()), {})
    cpus, gpus = assigned.get("CPU", 0.0), assigned.get("GPU", 0.0)
    with open_dict(sweep_config.hydra.launcher):
        sweep_config.hydra.launcher.runs_at_once = runs_at_once(node, cpus, gpus, batch)
        sweep_config.hydra.launcher.cpus_per_run = int(cpus) or None
    cwd = str(sweep_config.hydra.runtime.cwd)
    if not Path(cwd).is_dir():
        raise FileNotFoundError(f"the launch folder {cwd} does not exist on node {platform.node()}: the sweep "
                                "folder and results_dir must be on a filesystem every Ray node shares")
    os.chdir(cwd)
    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(sweep_config)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            returned = run_job(hydra_context=hydra_context, task_function=task_function, config=sweep_config,
                               job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    except SystemExit as exit_:
        return TaskOutcome(None, platform.node(), exit_.code, stderr.getvalue())
    finally:
        sys.stderr.write(stderr.getvalue())  # into the worker's log too
        run_process.finish_runs()  # the worker outlives its task: the run's Comet archive is there before the summary
    return TaskOutcome(returned, platform.node())


def task_failure(err: BaseException) -> str:
    """One line saying why Ray could not finish a cell's task (its worker died, its node was lost, it was
    cancelled, or the task raised)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    cause = getattr(err, "cause", None)
    if cause is not None and not isinstance(cause, type(err)):  # a RayTaskError: what the task raised
        return f"the cell's Ray task failed: {type(cause).__name__}: {cause}"[:500]
    return f"Ray: {type(err).__name__}: {lines[0] if lines else ''}"[:500]


def finished(job: Job, ref: Any, sweep_dir: Path) -> tuple[Any, Result, str | None]:
    """The ``JobReturn``, result and node (``None``: unknown) of a task that has ended. A task that ended
    without a result (its worker died, it raised) is recorded ``failed`` with the reason; a job that exited
    stops the sweep as it would have without Ray (its error line is repeated here)."""
    import ray
    from hydra.core.utils import JobStatus
    from ray.exceptions import RayError

    try:
        outcome: TaskOutcome = ray.get(ref)
    except RayError as err:
        result = write_placeholder(job, "failed", task_failure(err), sweep_dir)
        return job_return(job, result), result, None
    if outcome.job_return is None:
        sys.stderr.write(outcome.stderr)
        raise SystemExit(outcome.exit_code)
    returned = outcome.job_return
    if returned.status == JobStatus.FAILED:  # the task function raised: the job wrote no result
        error = returned._return_value
        result = write_placeholder(job, "failed", f"{type(error).__name__}: {error}"[:500], sweep_dir)
        return job_return(job, result), result, outcome.node
    try:
        return returned, read_result(job.folder / RESULT_FILE), outcome.node
    except (OSError, ValueError) as err:
        result = write_placeholder(job, "failed", f"the cell's task wrote no result: {err}"[:500], sweep_dir)
        return job_return(job, result), result, outcome.node


def counted(n: int, word: str) -> str:
    """``1 cell``, ``2 cells``."""
    return f"{n} {word}{'s' if n != 1 else ''}"


def cancel(refs: Any) -> None:
    """Cancel cells' tasks still queued or training: on a cluster they would otherwise train on without the
    sweep (a local Ray ends with the sweep anyway)."""
    import ray

    for ref in refs:
        ray.cancel(ref, force=True)


@dataclass
class RayEngine:
    """The Ray parts of ``jobs.launch``: GPU cells skipped where no node offers a GPU, one task per cell
    asking for ``cpus`` CPUs, ``ray.wait``, ``ray.cancel``."""

    launcher: Any  # the Hydra launcher: cpus_per_cell, gpus_per_cell, and the task function
    sweep_dir: Path
    nodes: list[dict[str, float]]
    where: str  # what it connected to: a local Ray, or the Ray cluster at ADDRESS
    cpus: int
    remote: dict[str, Any]  # ray.remote options

    def skip_reason(self, job: Job) -> str | None:
        if job.run.device.name != "gpu" or any(node.get("GPU", 0) >= 1 for node in self.nodes):
            return None
        return f"no GPU in {self.where}: no Ray node offers a GPU resource"

    def submit(self, jobs: list[Job]) -> dict[int, Any]:
        handles = {job.num: ref for ref, job in submit(self.launcher, jobs, self.cpus, self.remote).items()}
        if handles:
            most = max(runs_at_once(node, self.cpus, 0, len(handles)) for node in self.nodes)
            print(f"submitted {counted(len(handles), 'cell')} to {self.where} ({counted(len(self.nodes), 'node')}, "
                  f"{counted(self.cpus, 'CPU')} per cell: at most {counted(most, 'run')} at once per node)", flush=True)
        return handles

    def check(self, waiting: dict[int, Any]) -> None:
        """Ray queues a task until a node can hold it; ``cell_cpus`` made sure one can."""

    def ended(self, waiting: dict[int, Any], timeout: float) -> list[int]:
        import ray

        ready, _ = ray.wait(list(waiting.values()), num_returns=1, timeout=timeout)
        return [num for num, ref in waiting.items() if ref in ready]

    def finished(self, job: Job, handle: Any) -> tuple[Any, Result, str]:
        returned, result, node = finished(job, handle, self.sweep_dir)
        return returned, result, f"Ray node {node}" if node else "Ray"

    def cancel(self, handles: Any) -> None:
        cancel(handles)


def launch_jobs(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
    """Run a batch of cells as Ray tasks (``jobs.launch`` over a ``RayEngine``); their ``JobReturn``s in the
    batch's order."""
    config = launcher.config
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    ray_conf = launcher.ray if isinstance(launcher.ray, dict) else OmegaConf.to_container(launcher.ray, resolve=True)
    where = start_ray(ray_conf.get("init") or {})
    nodes = node_resources()
    try:
        cpus = cell_cpus(launcher.cpus_per_cell, nodes)
    except ValueError as err:
        print(f"harness: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    jobs = compose_jobs(launcher.hydra_context, config, job_overrides, initial_job_idx)
    engine = RayEngine(launcher, sweep_dir, nodes, where, cpus, ray_conf.get("remote") or {})
    return launch(engine, config, jobs, sweep_dir, POLL_S)


def submit(launcher: Any, jobs: list[Job], cpus: int, remote: dict[str, Any]) -> dict[Any, Job]:
    """Submit each job as a Ray task asking for ``cpus`` CPUs (and ``gpus_per_cell`` GPUs for a GPU cell),
    with the ``remote`` options (not retried unless they say so); the jobs by their task's reference."""
    import ray
    from hydra.core.singleton import Singleton

    task = ray.remote(run_job_on_ray)
    options = {"max_retries": 0, **remote, "num_cpus": cpus}
    pending = {}
    for job in jobs:
        gpus = launcher.gpus_per_cell if job.run.device.name == "gpu" else 0
        ref = task.options(**options, num_gpus=gpus).remote(launcher.hydra_context, job.composed,
                                                             launcher.task_function, Singleton.get_state(), len(jobs))
        pending[ref] = job
    return pending
