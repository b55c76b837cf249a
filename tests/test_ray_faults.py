"""Faults under ``hydra/launcher=ray`` on a real local Ray (started by the sweep): a worker killed with
SIGKILL mid-training, and Ctrl-C, neither losing a finished run. Apart from ``test_ray.py`` so that the two
files' sweeps run on two test workers at once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.conftest import FAST, REPO, harness_env, results_under, run_harness, start_sweep, wait_for

pytest.importorskip("ray", reason="pip install -e '.[ray]'")

RAY = ["hydra/launcher=ray"]


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (a local Ray's raylet and workers are the sweep's children and grandchildren)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def task_worker(sweep_pid: int) -> int | None:
    """The Ray worker of the sweep that is running a cell's task (Ray names it after the task)."""
    for pid in descendants(sweep_pid):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::run_job_on_ray"):
                return pid
        except OSError:
            continue
    return None


def stored(cwd: Path) -> int:
    return len(list((cwd / "results").glob("*.json")))


def hanging(tmp_path: Path, skip: int = 0) -> tuple[dict[str, str], Path]:
    """An environment in which the sweep's runs train normally but one (``tests.hang.HangOnce``, after
    ``skip`` that train), which hangs in training until the test acts: nothing depends on speed."""
    hang_file = tmp_path / "hang-once"
    return harness_env(tmp_path, PYTHONPATH=str(REPO), HARNESS_HANG_ONCE_FILE=str(hang_file),
                       HARNESS_HANG_SKIP=str(skip)), hang_file


HANG = ["callbacks=[tests.hang:HangOnce]"]


def test_a_killed_worker_is_recorded_failed_and_a_rerun_retrains_only_that_cell(tmp_path):
    args = [*FAST, *RAY, *HANG, "optimizer=adam,sgd,rmsprop", "report=false"]
    env, hang_file = hanging(tmp_path)
    sweep = start_sweep(args, tmp_path, env)
    wait_for(lambda: hang_file.exists() and task_worker(sweep.pid) is not None)  # a cell hangs in training
    os.kill(task_worker(sweep.pid), signal.SIGKILL)
    out, err = sweep.communicate(timeout=1800)
    assert sweep.returncode == 1, out + err  # the sweep finished, but not every cell did
    results = results_under(tmp_path / "multirun")
    assert sorted(r["status"] for r in results) == ["failed", "ok", "ok"]
    killed = next(r for r in results if r["status"] == "failed")
    assert killed["reason"].startswith("Ray: WorkerCrashedError: The worker died unexpectedly"), killed["reason"]
    assert "3 runs: 1 failed, 2 ok" in out

    again = run_harness(["-m", *args], cwd=tmp_path, env=env)  # the hang is spent: the cell trains
    assert again.returncode == 0, again.stderr
    lines = [line for line in again.stdout.splitlines() if line.startswith("[")]
    assert sum("reused from sweep" in line for line in lines) == 2
    retrained = next(line for line in lines if f"optimizer={killed['factors']['optimizer']} " in line)
    assert retrained.split(" … ")[1].startswith("ok ") and "reused" not in retrained


def test_ctrl_c_keeps_finished_cells_and_a_rerun_trains_only_the_rest(tmp_path):
    args = [*FAST, *RAY, *HANG, "optimizer=adam,sgd", "report=false"]
    env, hang_file = hanging(tmp_path, skip=1)  # the first cell finishes; the second hangs until Ctrl-C
    sweep = start_sweep(args, tmp_path, env)
    wait_for(lambda: stored(tmp_path) == 1 and hang_file.exists())
    sweep.send_signal(signal.SIGINT)  # to the sweep alone: Ray's own processes are not in its terminal's group
    out, err = sweep.communicate(timeout=1800)
    assert sweep.returncode == 130, out + err
    assert f"Finished runs are kept in {tmp_path / 'results'}" in err
    assert stored(tmp_path) == 1

    again = run_harness(["-m", *args], cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    lines = [line for line in again.stdout.splitlines() if line.startswith("[")]
    assert sorted(" … ok, reused from sweep" in line for line in lines) == [False, True]
    assert stored(tmp_path) == 2
