"""Runs forked from a run server (``run_process=fork``, the default) against fresh processes
(``run_process=fresh``): the same results for the same seed, a crash costs one run and not the server,
and a killed sweep leaves no server or run behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import FAST, REPO, harness_env, results_under, run_harness, wait_for

COMPARED = ("test_accuracy", "test_loss", "best_val_accuracy", "epochs_run", "train_examples")


def test_forked_and_fresh_runs_give_identical_results_for_the_same_seed(tmp_path):
    # In fork mode adam runs first, so sgd's process comes from a server that already forked a run:
    # nothing of that run may reach it.
    args = ["-m", *FAST, "epochs=3", "optimizer=adam,sgd", "order=grid", "rerun=true"]
    forked = run_harness([*args, "run_process=fork"], cwd=tmp_path)
    assert forked.returncode == 0, forked.stderr
    fresh = run_harness([*args, "run_process=fresh"], cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    sweeps = sorted((tmp_path / "multirun").iterdir(), key=lambda p: p.stat().st_mtime)
    by_mode = {}
    for sweep in sweeps:
        results = results_under(sweep)
        by_mode[results[0]["run_process"]] = {r["optimizer"]: r for r in results}
    assert set(by_mode) == {"fork", "fresh"}
    for optimizer in ("adam", "sgd"):
        fork_run, fresh_run = by_mode["fork"][optimizer], by_mode["fresh"][optimizer]
        assert {k: fork_run[k] for k in COMPARED} == {k: fresh_run[k] for k in COMPARED}
        assert [e["val_accuracy"] for e in fork_run["history"]] == [e["val_accuracy"] for e in fresh_run["history"]]
        assert fork_run["environment"]["threads"] == fresh_run["environment"]["threads"]


def test_a_forked_run_that_crashes_costs_that_run_only(tmp_path):
    env = harness_env(tmp_path, PYTHONPATH=str(REPO))
    done = run_harness(["-m", *FAST, "order=grid", "callbacks=['tests.hang:CrashHard'],[]"], cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stderr
    crashed, fine = results_under(tmp_path / "multirun")
    assert (crashed["status"], crashed["reason"]) == ("failed", "run process killed by SIGSEGV")
    assert fine["status"] == "ok" and fine["run_process"] == "fork"  # the server survived the crash


def processes_in(folder: Path) -> list[int]:
    """PIDs of this user's processes whose working directory is ``folder`` (the sweep, its server, its runs)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")) == folder:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_sweep_killed_with_sigkill_leaves_no_server_and_no_run_behind(tmp_path):
    sweep = subprocess.Popen([sys.executable, "-m", "harness", "-m", "epochs=400", "tracking=disabled",
                              "optimizer=sgd,adam"], cwd=tmp_path, env=harness_env(tmp_path),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: any("epoch 2/" in p.read_text() for p in tmp_path.glob("multirun/*/0/train.log")))
    assert len(processes_in(tmp_path)) >= 3  # the sweep, its run server and the run it forked
    sweep.kill()  # the sweep's process only: the server must notice and take its training run down
    sweep.wait()
    wait_for(lambda: not processes_in(tmp_path))
    spec = json.loads(next(tmp_path.glob("multirun/*/0/run_spec.json")).read_text())
    assert spec["config"]["run_process"] == "fork"


def test_a_sweep_killed_right_after_a_run_leaves_that_runs_comet_archive(tmp_path):
    # A run's result is written before its Comet experiment ends (off the sweep's critical path). If the
    # sweep dies right then, the run server lets that run finish its archive, then exits.
    sweep = subprocess.Popen([sys.executable, "-m", "harness", "-m", "epochs=2", "tracking=offline", "order=grid",
                              "optimizer=adam,sgd"], cwd=tmp_path, env=harness_env(tmp_path),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: any(tmp_path.glob("multirun/*/0/result.json")))
    sweep.kill()
    sweep.wait()
    result = json.loads(next(tmp_path.glob("multirun/*/0/result.json")).read_text())
    assert result["status"] == "ok" and result["comet"]["mode"] == "offline"
    wait_for(lambda: not processes_in(tmp_path))
    assert Path(result["comet"]["archive"]).is_file()
    assert json.loads(next((tmp_path / "results").glob("*.json")).read_text())["status"] == "ok"


def test_the_sweep_summary_names_runs_whose_comet_archive_is_missing(tmp_path):
    from harness.results import comet_summary as summary

    written = tmp_path / "a.zip"
    written.write_bytes(b"PK")
    comet = {"mode": "offline", "offline_dir": str(tmp_path), "fallback": None}
    results = [{"comet": {**comet, "archive": str(written)}}, {"comet": {**comet, "archive": str(tmp_path / "b.zip")}}]
    text = summary(results)
    assert f"1 Comet offline archive in {tmp_path}" in text
    assert "1 run has no Comet archive (b.zip): its run process ended before Comet wrote it" in text


def test_a_run_server_that_dies_costs_its_run_only_and_the_next_run_gets_a_new_server(tmp_path):
    sweep = subprocess.Popen([sys.executable, "-m", "harness", "-m", "tracking=disabled", "order=grid",
                              "epochs=400,2"], cwd=tmp_path, env=harness_env(tmp_path),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any("epoch 2/" in p.read_text() for p in tmp_path.glob("multirun/*/0/train.log")))
    servers = [pid for pid in processes_in(tmp_path)  # the sweep's child (its runs are the server's children)
               if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(sweep.pid)]
    assert len(servers) == 1 and b"harness.run.server" in Path(f"/proc/{servers[0]}/cmdline").read_bytes()
    os.kill(servers[0], signal.SIGKILL)  # as the OOM killer would
    stdout, stderr = sweep.communicate(timeout=1800)  # a guard against a hang, not a speed limit
    assert sweep.returncode == 1, stderr
    first, second = results_under(tmp_path / "multirun")
    assert first["status"] == "failed" and first["reason"].startswith("the run server exited (-9)")
    assert second["status"] == "ok" and second["run_process"] == "fork"
    wait_for(lambda: not processes_in(tmp_path))  # the killed server's run did not outlive it
