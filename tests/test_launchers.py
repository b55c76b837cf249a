"""Other Hydra launchers run the same code path: submitit's local executor (the code path of Slurm) and
joblib. Parallel runs get cores // jobs threads each and say so in their results."""

from __future__ import annotations

import os

import pandas as pd

from tests.conftest import FAST, meeting, overlapping, report_of, results_under, run_harness


def test_submitit_local_runs_a_batch_of_two_cells_at_once(tmp_path):
    env, meet = meeting(tmp_path, 2)
    done = run_harness(["-m", *FAST, *meet, "hydra/launcher=submitit_local", "hydra.sweeper.max_batch_size=2",
                        "optimizer=adam,sgd", "report=false"], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    results = results_under(tmp_path / "multirun")
    assert sorted(r["factors"]["optimizer"] for r in results) == ["adam", "sgd"]
    assert all(r["status"] == "ok" and r["epochs_run"] == 2 for r in results)
    cores = os.cpu_count() or 1
    assert all(r["environment"]["parallel_jobs"] == 2 for r in results)
    assert all(r["environment"]["threads"] == max(1, cores // 2) for r in results)
    assert overlapping(results)  # observed, not only declared: runs of one batch were alive at the same time
    runs = pd.read_csv(report_of(done.stdout, tmp_path) / "runs.csv")
    assert len(runs) == 2 and set(runs["parallel_jobs"]) == {2}
    assert sorted(runs["test_accuracy"]) == sorted(r["test_accuracy"] for r in results)


def test_joblib_launcher_preset_runs_cells_in_parallel(tmp_path):
    env, meet = meeting(tmp_path, 2)
    done = run_harness(["-m", *FAST, *meet, "hydra/launcher=parallel", "optimizer=adam,sgd", "report=false"],
                       cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    results = results_under(tmp_path / "multirun")
    assert [r["status"] for r in results] == ["ok", "ok"]
    assert {r["environment"]["parallel_jobs"] for r in results} == {2}
    assert overlapping(results)
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 2 and all(" … ok " in line for line in lines)  # whole lines, not interleaved halves


def test_parallel_jobs_reads_each_launcher():
    from harness.sweep.cell import parallel_jobs

    cores = os.cpu_count() or 1
    basic = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    local = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert parallel_jobs(basic, {}, 48) == 1
    assert parallel_jobs({"_target_": joblib, "n_jobs": 3}, {}, 48) == 3
    assert parallel_jobs({"_target_": joblib, "n_jobs": -1}, {}, 48) == cores
    assert parallel_jobs({"_target_": local}, {"max_batch_size": 2}, 48) == 2
    assert parallel_jobs({"_target_": local}, {"max_batch_size": None}, 4) == 4
    assert parallel_jobs({"_target_": local}, {"n_jobs": 2}, 8) == 2  # an Optuna search of 8 trials, 2 at a time
    assert parallel_jobs({"_target_": slurm}, {"max_batch_size": None}, 48) == 1
    ray = "hydra_plugins.harness_ray.harness_ray.HarnessRayLauncher"  # its task writes what the node holds
    assert parallel_jobs({"_target_": ray, "runs_at_once": 3, "cpus_per_run": 2}, {}, 48) == 3
