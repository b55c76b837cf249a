"""The Slurm path against a real Slurm: a single-node cluster started on this machine by
``scripts/single-node-slurm`` (Debian's slurm-wlm and munge), never a stand-in. Where none can be started
(not root, no apt-get), these tests skip and say why.

The cluster has no GPUs and no accounting database, as many small clusters: GPU cells must be recorded
``skipped`` without sinking the sweep, and job states must come from squeue without warnings on every poll.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FAST, REPO, harness_env, report_of, results_under, run_harness, wait_for

SCRIPT = REPO / "scripts" / "single-node-slurm"


def slurm_answers() -> bool:
    return shutil.which("sinfo") is not None and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def slurm_cluster():
    """A Slurm that answers: one already running here, or a single-node one started (and stopped) here."""
    if slurm_answers():
        yield
        return
    if os.geteuid() != 0:
        pytest.skip("no Slurm answers here, and starting one needs root (see scripts/single-node-slurm)")
    installed = subprocess.run([SCRIPT, "install"], capture_output=True, text=True)
    if installed.returncode != 0:
        pytest.skip(f"cannot install Slurm here: {installed.stderr.strip()}")
    started = subprocess.run([SCRIPT, "start"], capture_output=True, text=True)
    try:  # a start that failed half-way (the node never turned idle) leaves daemons too: stop them either way
        assert started.returncode == 0, started.stderr  # installed and root: failing to start is a real failure
        yield
    finally:
        subprocess.run([SCRIPT, "stop"], check=True)
        assert not subprocess.run(["pgrep", "-x", "slurmctld|slurmd"], capture_output=True).stdout, \
            "Slurm's daemons outlived the tests"


def newest_sweep(tmp_path: Path) -> Path:
    return max((tmp_path / "multirun").iterdir(), key=lambda p: p.stat().st_mtime)


def test_a_sweep_on_real_slurm_skips_gpu_cells_records_a_cancelled_job_and_a_rerun_retrains_it(
        slurm_cluster, tmp_path):
    # tests.hang.HangOnce makes the first run that starts training hang until the test cancels its
    # Slurm job (with scancel, as a user would); the rerun's runs find its file and train normally.
    hang_file = tmp_path / "hang-once"
    env = harness_env(tmp_path, PYTHONPATH=str(REPO), HARNESS_HANG_ONCE_FILE=str(hang_file))
    args = ["-m", *FAST, "optimizer=adam,sgd", "device=cpu,gpu", "callbacks=[tests.hang:HangOnce]",
            "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "report=false"]
    sweep = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: hang_file.exists() and hang_file.read_text().count("_") == 1
             and hang_file.read_text()[-1].isdigit() or sweep.poll() is not None)
    assert sweep.poll() is None, sweep.communicate()
    cancelled_job = hang_file.read_text()
    subprocess.run(["scancel", cancelled_job], check=True)
    stdout, stderr = sweep.communicate(timeout=1800)  # a guard against a hang, not a speed limit

    assert sweep.returncode == 1, stderr  # the sweep finished, but one cell did not
    first = {(r["factors"]["optimizer"], r["factors"]["device"]): r for r in results_under(newest_sweep(tmp_path))}
    assert len(first) == 4
    assert {first["adam", "gpu"]["status"], first["sgd", "gpu"]["status"]} == {"skipped"}
    assert first["adam", "gpu"]["reason"] == "no GPU on this Slurm cluster: sinfo lists no gpu GRES"
    failed = [cell for cell, r in first.items() if r["status"] == "failed"]
    assert len(failed) == 1 and first[failed[0]]["reason"].startswith(f"Slurm job {cancelled_job} ended CANCELLED")
    trained = [cell for cell, r in first.items() if r["status"] == "ok"]
    assert len(trained) == 1 and trained[0][1] == "cpu" and first[trained[0]]["epochs_run"] == 2
    assert "sacct" not in stdout + stderr and "WARNING" not in stdout + stderr  # no per-poll spam
    ended = [line for line in stdout.splitlines() if " · Slurm job " in line]
    assert len(ended) == 2 and any(f"Slurm job {cancelled_job} on " in line and "failed" in line for line in ended)
    assert sum(" · not submitted" in line for line in stdout.splitlines()) == 2
    runs = pd.read_csv(report_of(stdout, tmp_path) / "runs.csv")
    assert sorted(runs["status"]) == ["failed", "ok", "skipped", "skipped"]

    again = run_harness(args, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    second = {(r["factors"]["optimizer"], r["factors"]["device"]): r for r in results_under(newest_sweep(tmp_path))}
    assert second[trained[0]]["status"] == "ok" and second[trained[0]]["reused"]
    assert second[failed[0]]["status"] == "ok" and not second[failed[0]].get("reused")  # retrained
    assert second[failed[0]]["environment"]["threads"] == 1  # the job's allocation, not the node's cores
    assert "4 runs: 2 ok, 2 skipped" in again.stdout


def test_kill_9_of_the_submitting_process_then_a_rerun_finishes_the_grid(slurm_cluster, tmp_path):
    # The submitting process dies while one job hangs (tests.hang.HangOnce) and the other runs: Slurm keeps
    # both. The rerun says that jobs of an earlier submission are still running, reuses what they stored,
    # and leaves one result per cell.
    hang_file = tmp_path / "hang-once"
    env = harness_env(tmp_path, PYTHONPATH=str(REPO), HARNESS_HANG_ONCE_FILE=str(hang_file))
    args = ["-m", *FAST, "optimizer=adam,sgd", "callbacks=[tests.hang:HangOnce]", "hydra/launcher=slurm",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "report=false"]
    sweep = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: hang_file.exists() and hang_file.read_text()[-1:].isdigit())
    hung_job = hang_file.read_text()
    sweep.kill()
    sweep.communicate()
    try:
        again = run_harness(args, cwd=tmp_path, env=env)
    finally:
        subprocess.run(["scancel", hung_job], check=True)
    assert again.returncode == 0, again.stderr
    assert "from an earlier submission still queued or running" in again.stdout and hung_job in again.stdout
    results = results_under(newest_sweep(tmp_path))
    assert sorted(r["factors"]["optimizer"] for r in results) == ["adam", "sgd"]
    assert all(r["status"] == "ok" for r in results)


def test_ctrl_c_cancels_the_sweeps_slurm_jobs_and_keeps_the_finished_run(slurm_cluster, tmp_path):
    # As on every engine: Ctrl-C cancels what is queued or training and keeps what finished. One job trains
    # and stores its result; the other hangs in training (tests.hang.HangOnce lets one run through).
    from tests.conftest import start_sweep  # SIGINT as a terminal's Ctrl-C, even where tests ignore it

    hang_file = tmp_path / "hang-once"
    env = harness_env(tmp_path, PYTHONPATH=str(REPO), HARNESS_HANG_ONCE_FILE=str(hang_file), HARNESS_HANG_SKIP="1")
    args = [*FAST, "optimizer=adam,sgd", "callbacks=[tests.hang:HangOnce]", "hydra/launcher=slurm",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "report=false"]
    sweep = start_sweep(args, tmp_path, env)
    stored = lambda: len(list((tmp_path / "results").glob("*.json")))  # noqa: E731
    wait_for(lambda: hang_file.exists() and hang_file.read_text()[-1:].isdigit() and stored() == 1)
    sweep.send_signal(signal.SIGINT)
    stdout, stderr = sweep.communicate(timeout=1800)
    assert sweep.returncode == 130, stdout + stderr
    assert f"Finished runs are kept in {tmp_path / 'results'}" in stderr
    hung_job = hang_file.read_text().split("_")[0]
    wait_for(lambda: subprocess.run(["squeue", "-h", "-j", hung_job], capture_output=True, text=True).stdout.strip()
             == "")  # cancelled by the sweep: nothing of it left on the cluster
    assert stored() == 1


@pytest.mark.parametrize(("setting", "said"), [
    ("hydra.launcher.partition=no_such_partition", "sbatch refused the jobs: Batch job submission failed"),
    (f"hydra.launcher.cpus_per_task={(os.cpu_count() or 1) + 1}", "Slurm will never start job"),
])
def test_a_request_the_cluster_cannot_serve_stops_the_sweep_with_one_line(slurm_cluster, tmp_path, setting, said):
    done = run_harness(["-m", *FAST, "optimizer=adam,sgd", "hydra/launcher=slurm", "hydra.launcher.mem_gb=1", setting],
                       cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr.splitlines()[-1] and "against `sinfo`" in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr
    queued = subprocess.run(["squeue", "-h", "--me", "-n", "harness"], capture_output=True, text=True)
    assert queued.stdout.strip() == ""  # nothing left waiting on the cluster
    assert not results_under(tmp_path / "multirun")
