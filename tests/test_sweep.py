"""Real multiruns through `python -m harness -m ...` (Hydra's basic launcher, one process per run)."""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FAST, REPO, compose_config, gpu_cell_status, harness_env, results_under, run_harness


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One real 4-cell sweep shared by the tests below: 2 optimizers x cpu/gpu."""
    cwd = tmp_path_factory.mktemp("sweep")
    done = run_harness(["-m", *FAST, "optimizer=adam,rmsprop", "device=cpu,gpu"], cwd=cwd)
    return cwd, done


def test_disabled_tracking_writes_no_archive(sweep):
    cwd, done = sweep  # FAST: tracking=disabled
    assert not list(cwd.rglob("*.zip")) and "Comet" not in done.stdout
    assert all("comet" not in r for r in results_under(cwd / "multirun"))


def test_sweep_prints_progress_and_the_report_path(sweep):
    cwd, done = sweep
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    ok = (r"\[[1-4]/4\] optimizer=(adam|rmsprop) transfer=off early_stopping=off device=cpu seed=0 … ok in [\d.]+ s "
          r"\(training [\d.]+ s(, \+[\d.]+ s starting the run server)?\), test acc")
    assert sum(bool(re.match(ok, line)) for line in lines) == 2, done.stdout
    startup = [i for i, line in enumerate(lines) if "starting the run server" in line]
    assert startup in ([], [0]), done.stdout  # the server starts once: only the first run can wait for it
    gpu = r"\[[1-4]/4\] .* device=gpu seed=0 … " + gpu_cell_status()
    assert sum(bool(re.match(gpu, line)) for line in lines) == 2, done.stdout
    assert lines[-1].startswith("report: ")
    assert Path(lines[-1].removeprefix("report: ")).is_file()
    assert "oneDNN" not in done.stdout  # TensorFlow's noise stays in each run's train.log
    assert list(cwd.glob("multirun/*/*/train.log"))
    assert not list(cwd.rglob("harness.log"))  # Hydra's per-job logs would be empty: there are none


def test_each_cell_writes_one_result_and_gpu_cells_are_skipped_without_a_gpu(sweep):
    """...and trained where there is one."""
    cwd, _ = sweep
    results = results_under(cwd / "multirun")
    assert len(results) == 4
    by_cell = {(r["factors"]["optimizer"], r["factors"]["device"]): r for r in results}
    for optimizer in ("adam", "rmsprop"):
        assert by_cell[(optimizer, "cpu")]["status"] == "ok"
        assert by_cell[(optimizer, "cpu")]["epochs_run"] == 2
        gpu = by_cell[(optimizer, "gpu")]
        assert gpu["status"] == gpu_cell_status()
        assert gpu["reason"] == ("no GPU visible" if gpu_cell_status() == "skipped" else None)
    # one at a time (Hydra's basic launcher): no two runs' intervals overlap
    ran = sorted((r["started_at"], r["ended_at"]) for r in results if r["status"] == "ok")
    assert len(ran) >= 2 and all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(ran))


def test_report_numbers_match_the_result_files(sweep):
    cwd, done = sweep
    report_dir = Path(done.stdout.splitlines()[-1].removeprefix("report: ")).parent
    assert report_dir.parent == cwd / "reports"
    runs = pd.read_csv(report_dir / "runs.csv")
    results = {r["run_key"]: r for r in results_under(cwd / "multirun")}
    assert set(runs["run_key"]) == set(results)
    for row in runs.itertuples():
        result = results[row.run_key]
        assert row.status == result["status"] and row.optimizer == result["factors"]["optimizer"]
        if result["status"] == "ok":
            assert row.train_seconds == pytest.approx(result["train_seconds"])
            assert row.test_accuracy == pytest.approx(result["test_accuracy"])
    markdown = (report_dir / "report.md").read_text()
    adam = results[next(k for k, r in results.items()
                        if r["factors"]["optimizer"] == "adam" and r["status"] == "ok")]
    assert f"{adam['test_accuracy']:.3g}" in markdown
    assert "| skipped | no GPU visible | 2 |" in markdown or gpu_cell_status() == "ok"
    assert (report_dir / "index.html").read_text().count("<table") >= 5


def test_report_rebuilds_on_its_own(sweep, tmp_path):
    cwd, _ = sweep
    sweep_dir = next((cwd / "multirun").iterdir())
    done = run_harness([str(sweep_dir), "--out", str(tmp_path / "again")], cwd=cwd, module="harness.report")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "again" / "runs.csv").read_text().count("\n") == 5


def test_raising_and_nan_cells_fail_alone_and_the_sweep_says_so(tmp_path, digits_npz):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"this is not a numpy file")
    done = run_harness(["-m", *FAST, "optimizer=sgd", "optimizer.learning_rate=0.01,1e12", "dataset=npz",
                        f"dataset.path={digits_npz},{corrupt}", "dataset.source_classes=[0,1,2,3,4]"], cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # the sweep finished, but not every cell did
    results = {(Path(r["config"]["dataset"]["path"]).name, r["config"]["optimizer"]["learning_rate"]): r
               for r in results_under(tmp_path / "multirun")}
    assert len(results) == 4
    assert results[("digits.npz", 0.01)]["status"] == "ok"
    assert results[("digits.npz", 1e12)]["status"] == "failed"
    assert results[("digits.npz", 1e12)]["reason"] == "nan loss"
    for lr in (0.01, 1e12):
        assert results[("corrupt.npz", lr)]["status"] == "failed"
        assert results[("corrupt.npz", lr)]["reason"].startswith(f"ValueError: {corrupt}: not a readable .npz file")
    assert "report: " in done.stdout.splitlines()[-1]
    markdown = Path(done.stdout.splitlines()[-1].removeprefix("report: ")).with_name("report.md").read_text()
    status_table = markdown.split("## Setup")[1].split("##")[0]
    assert status_table.index("| failed |") < status_table.index("| ok |")  # failures first
    assert "| failed | nan loss | 1 |" in status_table


def test_hydra_process_never_imports_tensorflow():
    import subprocess

    code = ("import sys; import harness.__main__, harness.sweep.cell, harness.sweep.callbacks, harness.report; "
            "bad = [m for m in ('tensorflow', 'keras', 'comet_ml') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_gpu_cell_fails_when_nvidia_smi_sees_a_gpu_but_the_backend_does_not(tmp_path):
    # No GPU can exist here, so a stand-in `nvidia-smi` claims one: the quick pre-check then passes
    # and the run process itself must find that TensorFlow sees no GPU. Its work would run on the CPU
    # (soft placement): that is a failed cell, never a GPU result.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "nvidia-smi").write_text("#!/bin/sh\necho 'Stand-in GPU, 81559 MiB, 560.35.03'\n")
    (fake_bin / "nvidia-smi").chmod(0o755)
    env = harness_env(tmp_path, PATH=f"{fake_bin}:{os.environ['PATH']}")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    done = run_harness(["-m", *FAST, "device=gpu", "report=false"], cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stderr
    [result] = results_under(tmp_path / "multirun")
    assert result["status"] == "failed"
    assert result["reason"] == ("nvidia-smi sees Stand-in GPU but the tensorflow backend sees no GPU "
                                "(a CPU-only build of tensorflow?)")
    assert result["environment"]["gpu_names"] == ["Stand-in GPU"]
    assert result["environment"]["gpus"] == [{"name": "Stand-in GPU", "memory": "81559 MiB", "driver": "560.35.03"}]
    assert result["environment"]["backend_devices"] == []


def test_a_cell_trains_unless_its_result_is_stored_or_it_is_skipped_and_its_plan_says_which(tmp_path):
    """What decides whether a sweep starts a run server ahead: a resume of a finished sweep starts none."""
    from harness.result_files import store_result
    from harness.results import placeholder_result, upgraded
    from harness.run_key import run_key
    from harness.sweep.cell import planned, will_train

    cfg = compose_config([f"results_dir={tmp_path / 'results'}", "sweep_name=earlier"])
    assert will_train(cfg) and planned(cfg) == "would train"  # what plan=true prints for it
    finished = upgraded(json.loads((REPO / "tests" / "data" / "results-2026-12-03" / "ok.json").read_text()))
    # a real ok run, written before the article's factors moved into ``factors``
    stored = {**finished, **placeholder_result(cfg, "ok", None), "run_key": run_key(cfg.resolved)}
    store_result(tmp_path / "results", stored)
    assert not will_train(cfg) and will_train(replace(cfg, rerun=True))
    assert planned(cfg) == "would reuse the result of sweep earlier"
    gpu = compose_config([f"results_dir={tmp_path / 'results'}", "device=gpu"])
    assert will_train(gpu) == (gpu_cell_status() == "ok")
    if gpu_cell_status() == "skipped":
        assert planned(gpu) == "would be skipped: no GPU visible"
        # on a cluster (Slurm, Ray) the cluster says whether a GPU is there (tests/test_slurm.py, test_ray.py)
        assert planned(gpu, placed_here=False).startswith("would train where the launcher finds a GPU")
