"""``hydra/launcher=ray`` on a real local Ray (started by the sweep, as a user's first try would): resources
per cell, parallelism recorded as it is, one whole line per cell (its faults: ``test_ray_faults.py``)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FAST, gpu_cell_status, meeting, overlapping, report_of, results_under, run_harness

pytest.importorskip("ray", reason="pip install -e '.[ray]'")

RAY = ["hydra/launcher=ray"]
CELL_LINE = re.compile(r"^\[\d/\d\] optimizer=\S+ transfer=off early_stopping=off device=(cpu|gpu) seed=0 … "
                       r"(ok|skipped|failed).* · (Ray node \S+|Ray|not submitted)$")


def sweeps_own_report(done: subprocess.CompletedProcess) -> Path:
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
    by_device = {(r["factors"]["optimizer"], r["factors"]["device"]): r for r in results}
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
    assert "ran in parallel" not in sweeps_own_report(done).with_name("report.md").read_text()


def test_cells_sharing_a_node_record_it_and_the_report_warns(tmp_path):
    # two runs at once where the machine has 2 CPUs (Ray's count may be smaller, from cgroup limits: then
    # the runs meet no one and go on alone after MeetAtStart's wait, and overlap is not checked)
    env, meet = meeting(tmp_path, 2)
    env["HARNESS_MEET_GIVE_UP_S"] = "300" if (os.cpu_count() or 1) >= 2 else "0"
    done = run_harness(["-m", *FAST, *meet, *RAY, "optimizer=adam,sgd", "hydra.launcher.cpus_per_cell=1",
                        "report=false"], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    results = results_under(tmp_path / "multirun")
    assert [r["status"] for r in results] == ["ok", "ok"]
    cpus, at_once = submitted(done)
    assert cpus == 1 and {r["environment"]["parallel_jobs"] for r in results} == {at_once}
    assert {r["environment"]["threads"] for r in results} == {1}
    report = report_of(done.stdout, tmp_path)
    if at_once == 2:  # a node with 2 CPUs or more
        assert overlapping(results)
        assert "Warning: 2 runs ran in parallel (up to 2 at once)" in (report / "report.md").read_text()
    runs = pd.read_csv(report / "runs.csv")
    assert sorted(runs["parallel_jobs"]) == sorted(r["environment"]["parallel_jobs"] for r in results)


def test_more_cpus_per_cell_than_any_node_has_is_one_line_before_training(tmp_path):
    done = run_harness(["-m", *FAST, *RAY, "optimizer=adam,sgd", "hydra.launcher.cpus_per_cell=4096"], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        "harness: error: hydra.launcher.cpus_per_cell=4096 is invalid: no Ray node has that many CPUs; valid: 1 to ")
    assert not (tmp_path / "results").exists()


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
