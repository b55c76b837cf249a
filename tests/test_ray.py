"""``hydra/launcher=ray`` on a real local Ray (started by the sweep, as a user's first try would): resources
per cell, parallelism recorded as it is, one whole line per cell, and faults (a killed worker, Ctrl-C)
that lose no finished run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FAST, REPO, gpu_cell_status, harness_env, results_under, run_harness, wait_for
from tests.test_launchers import overlapping
from tests.test_resilience import start_sweep  # SIGINT as a terminal's Ctrl-C, even where tests ignore it

pytest.importorskip("ray", reason="pip install -e '.[ray]'")

RAY = ["hydra/launcher=ray"]
CELL_LINE = re.compile(r"^\[\d/\d\] \S+ transfer=off early_stopping=off (cpu|gpu) seed=0 … (ok|skipped|failed).* · "
                       r"(Ray node \S+|Ray|not submitted)$")


def report_of(done: subprocess.CompletedProcess) -> Path:
    return Path(done.stdout.splitlines()[-1].removeprefix("report: "))


def submitted(done: subprocess.CompletedProcess) -> tuple[int, int]:
    """The CPUs per cell and the runs at once per node that the sweep said it asked Ray for (Ray counts a
    node's CPUs itself, from cgroup limits where there are some, so the test reads them rather than guess)."""
    said = re.search(r"(\d+) CPUs? per cell: at most (\d+) runs? at once per node", done.stdout)
    assert said, done.stdout
    return int(said[1]), int(said[2])


@pytest.fixture(scope="module")
def default_sweep(tmp_path_factory):
    """The issue's command: CPU and GPU cells, Ray's defaults (a whole node per cell)."""
    cwd = tmp_path_factory.mktemp("ray_default")
    done = run_harness(["-m", *FAST, *RAY, "optimizer=adam,sgd", "device=cpu,gpu"], cwd=cwd)
    return done, results_under(cwd / "multirun")


def test_cpu_cells_train_and_gpu_cells_are_skipped_where_no_node_has_a_gpu(default_sweep):
    done, results = default_sweep
    assert done.returncode == 0, done.stderr
    by_device = {(r["optimizer"], r["device"]): r for r in results}
    assert sorted(by_device) == [("adam", "cpu"), ("adam", "gpu"), ("sgd", "cpu"), ("sgd", "gpu")]
    assert all(by_device[cell]["status"] == "ok" for cell in by_device if cell[1] == "cpu")
    gpu = [by_device[cell] for cell in by_device if cell[1] == "gpu"]
    assert all(r["status"] == gpu_cell_status() for r in gpu)
    if gpu_cell_status() == "skipped":
        assert all(r["reason"] == "no GPU in a local Ray: no Ray node offers a GPU resource" for r in gpu)


def test_one_whole_line_per_cell_and_no_ray_chatter(default_sweep):
    done, _ = default_sweep
    lines = done.stdout.splitlines()
    cell_lines = [line for line in lines if line.startswith("[")]
    assert len(cell_lines) == 4 and all(CELL_LINE.match(line) for line in cell_lines), cell_lines
    assert sum(" · Ray node " in line for line in cell_lines) == 2 + (gpu_cell_status() == "ok") * 2
    assert lines[-2].startswith("4 runs: ") and lines[-1].startswith("report: ")
    # nothing else: no "Started a local Ray instance", no token warning, no "(run_job_on_ray pid=...)" prefixes
    assert [line for line in lines if line not in cell_lines][:-2] == [
        next(line for line in lines if line.startswith("submitted "))], done.stdout
    assert "Token authentication" not in done.stderr and "pid=" not in done.stdout + done.stderr


def test_a_whole_node_per_cell_runs_one_at_a_time_and_records_so(default_sweep):
    done, results = default_sweep
    trained = [r for r in results if r["status"] == "ok"]
    cpus, at_once = submitted(done)
    assert at_once == 1 and {r["environment"]["parallel_jobs"] for r in trained} == {1}
    assert {r["environment"]["threads"] for r in trained} == {cpus}  # the whole node's CPUs, as Ray gave them
    assert not overlapping(trained)  # observed, not only declared
    assert "ran in parallel" not in report_of(done).with_name("report.md").read_text()


def test_cells_sharing_a_node_record_it_and_the_report_warns(tmp_path):
    done = run_harness(["-m", *FAST, *RAY, "optimizer=adam,sgd", "hydra.launcher.cpus_per_cell=1"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = results_under(tmp_path / "multirun")
    assert [r["status"] for r in results] == ["ok", "ok"]
    cpus, at_once = submitted(done)
    assert cpus == 1 and {r["environment"]["parallel_jobs"] for r in results} == {at_once}
    assert {r["environment"]["threads"] for r in results} == {1}
    if at_once == 2:  # a node with 2 CPUs or more
        assert overlapping(results)
        assert "Warning: 2 runs ran in parallel (up to 2 at once)" in report_of(done).with_name("report.md").read_text()
    runs = pd.read_csv(report_of(done).with_name("runs.csv"))
    assert sorted(runs["parallel_jobs"]) == sorted(r["environment"]["parallel_jobs"] for r in results)


def test_more_cpus_per_cell_than_any_node_has_is_one_line_before_training(tmp_path):
    done = run_harness(["-m", *FAST, *RAY, "optimizer=adam,sgd", "hydra.launcher.cpus_per_cell=4096"], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        "harness: error: hydra.launcher.cpus_per_cell=4096 is invalid: no Ray node has that many CPUs; valid: 1 to ")
    assert not (tmp_path / "results").exists()


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
    args = [*FAST, *RAY, *HANG, "optimizer=adam,sgd,rmsprop"]
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
    retrained = next(line for line in lines if f" {killed['optimizer']} " in line)
    assert retrained.split(" … ")[1].startswith("ok ") and "reused" not in retrained


def test_ctrl_c_keeps_finished_cells_and_a_rerun_trains_only_the_rest(tmp_path):
    args = [*FAST, *RAY, *HANG, "optimizer=adam,sgd"]
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


def test_cells_ask_for_a_whole_node_by_default_and_runs_at_once_follow_the_requests():
    from harness.sweep.ray import cell_cpus, runs_at_once

    head_without_cpus, small, big = {"CPU": 0.0}, {"CPU": 8.0, "GPU": 2.0}, {"CPU": 32.0}
    assert cell_cpus(None, [head_without_cpus, small, big]) == 8  # the smallest node that has CPUs: fits anywhere
    assert cell_cpus(4, [small, big]) == 4 and cell_cpus(32, [small, big]) == 32
    for bad in (0, 33):
        with pytest.raises(ValueError, match=f"cpus_per_cell={bad} is invalid: .* valid: 1 to 32, or null"):
            cell_cpus(bad, [small, big])
    with pytest.raises(ValueError, match="offers no CPUs"):
        cell_cpus(None, [head_without_cpus])
    assert runs_at_once(big, 8, 0, 48) == 4 and runs_at_once(small, 8, 0, 48) == 1
    assert runs_at_once(big, 1, 0, 3) == 3  # at most the runs there are
    assert runs_at_once(small, 2, 1, 48) == 2  # two GPUs: two GPU runs, though the CPUs would hold four
    assert runs_at_once(small, 3, 0, 48) == 2  # 8 // 3
