"""The sweep on a Slurm cluster: one Slurm job per cell through submitit, as seen from the submitting process.

``hydra/launcher=slurm`` (``hydra_plugins/harness_slurm``) hands its batch of cells to ``launch_cells``, which
differs from hydra-submitit-launcher's own ``launch`` where a real cluster needs it to:

- **Resources per cell.** A ``device=cpu`` cell asks for no GPU; a ``device=gpu`` cell asks for
  ``gpus_per_node``. On a cluster whose nodes offer no GPU (``sinfo`` lists no ``gpu`` GRES) the GPU cells are
  not submitted: each is recorded ``skipped`` with that reason (sbatch would refuse the whole array).
- **A job that ends without a result** (``scancel``, a node failure, Slurm's time limit) is recorded
  ``failed`` with Slurm's state, and the sweep goes on; a rerun trains that cell again.
- **Clusters without accounting.** submitit asks ``sacct`` for job states; where there is no accounting
  database (many small clusters) every poll fails with a warning and a cancelled job is never seen to end.
  There the states come from ``squeue`` instead (``QueueWatcher``), quietly.
- **One line per cell as it ends**: its place in the sweep, the cell, the outcome, the Slurm job and node.

Everything a cell computes still happens inside its Slurm job, in ``harness.sweep.cell.run_cell``: the job
trains in a fresh run process, writes ``result.json`` into the cell's folder and its ``ok`` result into the
results store, both on the filesystem the cluster shares.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from harness.result_files import read_result, write_result
from harness.results import RESULT_FILE, Result
from harness.stage_records import Outcome, assemble
from harness.sweep.jobs import Job, compose_jobs, job_return, launch, write_placeholder

POLL_S = 1.0  # how often the submitting process looks for finished jobs (a result file check: cheap)
QUEUE_REFRESH_S = 30  # the longest gap between two squeue calls (submitit's own default for sacct is 600)


def slurm_command(*args: str) -> subprocess.CompletedProcess:
    """Run a Slurm client command (``sinfo``, ``squeue``, ``sacct``); a missing command exits 127."""
    if shutil.which(args[0]) is None:
        return subprocess.CompletedProcess(args, 127, "", f"{args[0]}: command not found")
    return subprocess.run(list(args), capture_output=True, text=True)


def cluster_has_gpus(partition: str | None) -> bool:
    """Whether some node (of ``partition``, if given) offers a ``gpu`` generic resource (GRES)."""
    args = ["sinfo", "-h", "-o", "%G"] + (["-p", partition] if partition else [])
    done = slurm_command(*args)
    return done.returncode == 0 and "gpu" in done.stdout


def accounting_works() -> bool:
    """Whether ``sacct`` answers (it does not where the cluster has no accounting database)."""
    return slurm_command("sacct", "-n", "-X", "-o", "JobID", "-j", "1").returncode == 0


def still_queued(job_name: str | None) -> list[str]:
    """This user's Slurm jobs named ``job_name`` that are pending or running (from an earlier submission)."""
    if not job_name:
        return []
    done = slurm_command("squeue", "--me", "-h", "-r", "-n", job_name, "-o", "%i")
    return done.stdout.split() if done.returncode == 0 else []


UNRUNNABLE = ("PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints", "InvalidAccount",
              "InvalidQOS", "AccountNotAllowed", "QOSNotAllowed")
"""Reasons Slurm gives for a pending job that no wait will start (squeue's ``%r``)."""
UNRUNNABLE_CHECK_S = 10.0


def unrunnable(job_ids: list[str]) -> tuple[str, str] | None:
    """The first of ``job_ids`` that is pending for a reason that never clears, with that reason."""
    if not job_ids:
        return None
    arrays = ",".join(sorted({job_id.split("_")[0] for job_id in job_ids}))
    done = slurm_command("squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", arrays)
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        job_id, state, reason = (line.split("|") + ["", ""])[:3]
        if job_id in job_ids and state == "PENDING" and reason in UNRUNNABLE:
            return job_id, reason
    return None


def cancel(jobs: Any) -> None:
    """Cancel submitted jobs (a sweep that stops must not leave work queued on the cluster)."""
    ids = sorted({job.job_id.split("_")[0] for job in jobs})
    if ids:
        slurm_command("scancel", *ids)


def stop(problem: str) -> None:
    """Stop the sweep with one line: what Slurm said, and what to check."""
    print(f"harness: error: {problem}; check hydra.launcher.partition, cpus_per_task, mem_gb, gpus_per_node and "
          "timeout_min against `sinfo`", file=sys.stderr)
    raise SystemExit(2)


def queue_watcher() -> Any:
    """A submitit job-state watcher that reads ``squeue`` rather than ``sacct``, for clusters without
    accounting. ``squeue -t all`` lists running jobs and, for ``MinJobAge`` (300 s by default) after they
    end, their final state; a job it no longer lists has ended and was forgotten: ``GONE``."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    class QueueWatcher(SlurmInfoWatcher):
        def update(self) -> None:
            waiting = self._registered - self._finished
            if not waiting:
                return
            self._num_calls += 1
            done = slurm_command("squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%N|%r")
            if done.returncode == 0:
                listed = {}
                for line in done.stdout.splitlines():
                    job_id, state, node, reason = (line.split("|") + ["", "", ""])[:4]
                    listed[job_id] = {"JobID": job_id, "State": state, "NodeList": node, "Reason": reason}
                for job_id in waiting:
                    self._info_dict[job_id] = listed.get(job_id, {"JobID": job_id, "State": "GONE", "NodeList": ""})
            self._last_status_check = time.time()
            self._finished |= {job_id for job_id in waiting if self.is_done(job_id, mode="cache")}

    return QueueWatcher(delay_s=QUEUE_REFRESH_S)


def submit(slurm_launcher: Any, cells: list[Job], gpus: int) -> list[Any]:
    """Submit ``cells`` as one Slurm job array asking for ``gpus`` GPUs per job; the submitit jobs."""
    import submitit
    from hydra.core.singleton import Singleton
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = {**slurm_launcher.params, "gpus_per_node": gpus}
    executor = submitit.AutoExecutor(cluster="slurm", folder=params.pop("submitit_folder"),
                                     slurm_max_num_timeout=params.pop("max_num_timeout", 0))
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{key if key in shared else f"slurm_{key}": value for key, value in params.items()})
    arguments = [(cell.overrides, "hydra.sweep.dir", cell.num, f"job_id_for_{cell.num}", Singleton.get_state())
                 for cell in cells]
    return executor.map_array(slurm_launcher, *zip(*arguments, strict=True))


ENDED_BADLY = ("CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE")
"""Slurm job states that say why a run was cut short (``sacct`` writes ``CANCELLED by 0``: the first word)."""


STILL_ENDING = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "UNKNOWN")
"""States a job is still in for a moment after its code returned (Slurm is still ending its processes)."""
FINAL_STATE_WAIT_S = 60.0


def slurm_end(job: Any) -> str | None:
    """``Slurm job 12_1 ended CANCELLED`` if Slurm cut the job short, else ``None``. Waits (at most
    ``FINAL_STATE_WAIT_S``) for the final state: a cancelled job reads ``COMPLETING`` while Slurm ends it."""
    deadline = time.monotonic() + FINAL_STATE_WAIT_S
    while True:
        state = job.watcher.get_state(job.job_id, mode="force")
        word = state.split()[0] if state else ""
        if word not in STILL_ENDING or time.monotonic() > deadline:
            return f"Slurm job {job.job_id} ended {word}" if word in ENDED_BADLY else None
        time.sleep(POLL_S)


def finished(cell: Job, job: Any, sweep_dir: Path) -> tuple[Any, Result]:
    """The ``JobReturn`` and result of a job that has ended. A job that ended without a result (cancelled,
    killed, out of time) or whose code raised is recorded ``failed`` with Slurm's state or the error; a run
    that failed because Slurm cut its job short (its run process then dies of SIGTERM) says so too."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    try:
        returned = job.results()[0]
        result = read_result(cell.folder / RESULT_FILE)
    except (UncompletedJobError, FailedJobError, OSError, ValueError) as err:
        if isinstance(err, UncompletedJobError):
            reason = f"{slurm_end(job) or f'Slurm job {job.job_id} ended'} without a result"
        else:
            last = [line for line in str(err).strip().splitlines() if line.strip()]
            reason = f"Slurm job {job.job_id} failed: {last[-1] if last else type(err).__name__}"[:500]
        result = write_placeholder(cell, "failed", reason, sweep_dir)
        return job_return(cell, result), result
    if result["status"] == "failed" and (ended := slurm_end(job)):
        result = assemble(result, Outcome("failed", f"{ended}: {result.get('reason')}"))
        write_result(cell.folder / RESULT_FILE, result)
    return returned, result


def note_still_queued(job_name: str | None) -> None:
    """Say so where jobs named ``job_name`` from an earlier submission are still queued or running (e.g. those
    of a submitting process that was killed: Slurm keeps running them), and what that means for this one."""
    earlier = still_queued(job_name)
    if earlier:
        shown = ", ".join(earlier[:5]) + (", ..." if len(earlier) > 5 else "")
        print(f"note: {len(earlier)} Slurm job{'s' if len(earlier) != 1 else ''} named {job_name!r} from an "
              f"earlier submission still queued or running ({shown}): cells they finish before this sweep reaches "
              "them are reused, the others are trained twice; to avoid that, wait until "
              f"`squeue --me -n {job_name}` is empty, or scancel them", flush=True)


@dataclass
class SlurmEngine:
    """The Slurm parts of ``jobs.launch``: GPU cells skipped where the cluster has no GPU, one job array per
    resource shape, job states from submitit (or ``squeue``), ``scancel``."""

    launcher: Any  # the Hydra launcher: its params are the Slurm settings
    sweep_dir: Path
    has_gpus: bool
    next_queue_check: float = 0.0

    def skip_reason(self, job: Job) -> str | None:
        if job.run.device.name != "gpu" or self.has_gpus:
            return None
        partition = self.launcher.params.get("partition")
        return f"no GPU on {f'partition {partition}' if partition else 'this Slurm cluster'}: sinfo lists no gpu GRES"

    def submit(self, jobs: list[Job]) -> dict[int, Any]:
        from submitit.core.utils import FailedJobError

        params = self.launcher.params
        note_still_queued(params.get("name"))
        gpu_jobs = [job for job in jobs if job.run.device.name == "gpu"]
        cpu_jobs = [job for job in jobs if job not in gpu_jobs]
        handles: dict[int, Any] = {}
        for gpus, group in ((0, cpu_jobs), (params.get("gpus_per_node") or 1, gpu_jobs)):
            if not group:
                continue
            try:
                handles.update(zip((job.num for job in group), submit(self.launcher, group, gpus), strict=True))
            except FailedJobError as err:  # sbatch refused: an unknown partition, a bad account, ...
                refusal = [line.removeprefix("sbatch: error: ") for line in str(err).splitlines() if line.strip()]
                cancel(handles.values())
                stop(f"sbatch refused the jobs: {refusal[-1] if refusal else err}")
        if handles:
            ids = sorted({job.job_id.split("_")[0] for job in handles.values()})
            print(f"submitted {len(handles)} Slurm job{'s' if len(handles) != 1 else ''} (array {', '.join(ids)}); "
                  f"watch with `squeue -j {','.join(ids)}`", flush=True)
        return handles

    def check(self, waiting: dict[int, Any]) -> None:
        if time.monotonic() > self.next_queue_check:
            self.next_queue_check = time.monotonic() + UNRUNNABLE_CHECK_S
            if stuck := unrunnable([job.job_id for job in waiting.values()]):
                stop(f"Slurm will never start job {stuck[0]} (pending, reason {stuck[1]}: it asks for more than "
                     "the partition offers or allows); its jobs were cancelled")

    def ended(self, waiting: dict[int, Any], timeout: float) -> list[int]:
        done = [num for num, job in waiting.items() if job.done()]
        if not done:
            time.sleep(timeout)
        return done

    def finished(self, job: Job, handle: Any) -> tuple[Any, Result, str]:
        returned, result = finished(job, handle, self.sweep_dir)
        node = handle.watcher.get_info(handle.job_id, mode="cache").get("NodeList") or \
            (result.get("environment") or {}).get("hostname") or "?"
        return returned, result, f"Slurm job {handle.job_id} on {node}"

    def cancel(self, handles: Any) -> None:
        cancel(handles)


def launch_cells(slurm_launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
    """Run a batch of cells as Slurm jobs (``jobs.launch`` over a ``SlurmEngine``); their ``JobReturn``s in
    the batch's order."""
    from submitit.slurm.slurm import SlurmJob

    config = slurm_launcher.config
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if not accounting_works():
        SlurmJob.watcher = queue_watcher()  # this process only: it alone polls the jobs
    jobs = compose_jobs(slurm_launcher.hydra_context, config, job_overrides, initial_job_idx)
    wants_gpus = any(job.run.device.name == "gpu" for job in jobs)
    has_gpus = wants_gpus and cluster_has_gpus(slurm_launcher.params.get("partition"))
    return launch(SlurmEngine(slurm_launcher, sweep_dir, has_gpus), config, jobs, sweep_dir, POLL_S)
