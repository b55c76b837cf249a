"""Runs forked from a run server (``run_process=fork``, the default) against fresh processes
(``run_process=fresh``): the same results for the same seed, a crash costs one run and not the server,
and a killed sweep leaves no server or run behind. The suite's other sweeps fork from a warm server
(``HARNESS_RUN_SERVER``, tests/conftest.py); the sweep's own server is tested here (``warm_server=False``),
and the warm one's life across sweeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import (
    FAST,
    REPO,
    doc_block,
    harness_env,
    results_under,
    run_harness,
    shell,
    start_warm_run_server,
    wait_for,
)

COMPARED = ("test_accuracy", "test_loss", "best_val_accuracy", "epochs_run", "train_examples")


def test_forked_and_fresh_runs_give_identical_results_for_the_same_seed(tmp_path, monkeypatch):
    # In fork mode adam runs first, so sgd's process comes from a server that already forked a run (the
    # test worker's warm server: it may have forked other tests' runs too): nothing of them may reach it.
    # A fresh process for sgd alone: the forked sgd run, the one that could carry something over, is compared.
    # As in a test worker that has imported Keras (JAX, which Keras imports, sets this): the warm server must
    # still serve the sweep (tests/conftest.py: SET_BY_IMPORTING_KERAS).
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    args = ["-m", *FAST, "epochs=3", "order=grid", "rerun=true", "report=false"]
    forked = run_harness([*args, "optimizer=adam,sgd", "run_process=fork"], cwd=tmp_path)
    assert forked.returncode == 0, forked.stderr
    *_, summary, said = forked.stdout.splitlines()  # report=false: the summary, and how to build the report later
    assert summary.startswith("2 runs: 2 ok") and not (tmp_path / "reports").exists()
    # the suite's warm server forked both runs (were it to refuse them, every sweep of the suite would start its own)
    assert "harness: note" not in forked.stderr and "starting the run server" not in forked.stdout
    assert said.startswith("report: not built (report=false); build it with `python -m harness.report ")
    fresh = run_harness([*args, "optimizer=sgd", "run_process=fresh"], cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    sweeps = sorted((tmp_path / "multirun").iterdir(), key=lambda p: p.stat().st_mtime)
    by_mode = {}
    for sweep in sweeps:
        results = results_under(sweep)
        by_mode[results[0]["run_process"]] = {r["factors"]["optimizer"]: r for r in results}
    assert set(by_mode) == {"fork", "fresh"}
    fork_run, fresh_run = by_mode["fork"]["sgd"], by_mode["fresh"]["sgd"]
    assert fork_run["sweep_position"] > by_mode["fork"]["adam"]["sweep_position"]  # forked after adam's run
    assert {k: fork_run[k] for k in COMPARED} == {k: fresh_run[k] for k in COMPARED}
    assert [e["val_accuracy"] for e in fork_run["history"]] == [e["val_accuracy"] for e in fresh_run["history"]]
    assert fork_run["environment"]["threads"] == fresh_run["environment"]["threads"]


def test_a_forked_run_that_crashes_costs_that_run_only(tmp_path):
    env = harness_env(tmp_path, PYTHONPATH=str(REPO))
    done = run_harness(["-m", *FAST, "order=grid", "callbacks=['tests.hang:CrashHard'],[]", "report=false"],
                       cwd=tmp_path, env=env)
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


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_sweep_killed_with_sigkill_leaves_no_server_and_no_run_behind(tmp_path):
    sweep = subprocess.Popen([sys.executable, "-m", "harness", "-m", "epochs=400", "tracking=disabled",
                              "optimizer=sgd,adam"], cwd=tmp_path, env=harness_env(tmp_path, warm_server=False),
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
                              "optimizer=adam,sgd"], cwd=tmp_path, env=harness_env(tmp_path, warm_server=False),
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
    from harness.comet_summary import comet_summary as summary

    written = tmp_path / "a.zip"
    written.write_bytes(b"PK")
    comet = {"mode": "offline", "offline_dir": str(tmp_path), "fallback": None}
    results = [{"comet": {**comet, "archive": str(written)}}, {"comet": {**comet, "archive": str(tmp_path / "b.zip")}}]
    text = summary(results)
    assert f"1 Comet offline archive in {tmp_path}" in text
    assert "1 run has no Comet archive (b.zip): its run process ended before Comet wrote it" in text


def test_a_run_server_that_dies_costs_its_run_only_and_the_next_run_gets_a_new_server(tmp_path):
    sweep = subprocess.Popen([sys.executable, "-m", "harness", "-m", "tracking=disabled", "order=grid",
                              "epochs=400,2", "report=false"],
                             cwd=tmp_path, env=harness_env(tmp_path, warm_server=False),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any("epoch 2/" in p.read_text() for p in tmp_path.glob("multirun/*/0/train.log")))
    servers = [pid for pid in processes_in(tmp_path)  # the sweep's child (its runs are the server's children)
               if parent_of(pid) == sweep.pid]
    assert len(servers) == 1 and b"harness.run.server" in Path(f"/proc/{servers[0]}/cmdline").read_bytes()
    os.kill(servers[0], signal.SIGKILL)  # as the OOM killer would
    stdout, stderr = sweep.communicate(timeout=1800)  # a guard against a hang, not a speed limit
    assert sweep.returncode == 1, stderr
    first, second = results_under(tmp_path / "multirun")
    assert first["status"] == "failed" and first["reason"].startswith("the run server exited (-9)")
    assert second["status"] == "ok" and second["run_process"] == "fork"
    wait_for(lambda: not processes_in(tmp_path))  # the killed server's run did not outlive it


def test_a_warm_run_server_outlives_a_killed_sweep_and_takes_its_training_run_down(tmp_path):
    socket_path = tmp_path / "warm.sock"
    warm = start_warm_run_server(socket_path)
    try:
        env = harness_env(tmp_path, warm_server=False, HARNESS_RUN_SERVER=str(socket_path))
        killed = tmp_path / "killed"
        killed.mkdir()
        sweep = subprocess.Popen([sys.executable, "-m", "harness", "-m", "epochs=400", "tracking=disabled"],
                                 cwd=killed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: any("epoch 2/" in p.read_text() for p in killed.glob("multirun/*/0/train.log")))
        [run] = [pid for pid in processes_in(killed) if pid != sweep.pid]  # the warm server's, not the sweep's
        assert parent_of(run) == warm.pid
        sweep.kill()  # the server sees the sweep's connection end and takes its training run down
        sweep.wait()
        wait_for(lambda: not processes_in(killed))
        assert warm.poll() is None  # it serves on
    finally:
        warm.terminate()  # a warm server stops on SIGTERM (or Ctrl-C) and removes its socket
        warm.wait()
    assert warm.returncode == 0 and not socket_path.exists()


def test_a_sweep_uses_a_warm_server_only_where_its_runs_would_start_the_same(tmp_path, capsys):
    from harness.startup import code_fingerprint, startup_env
    from harness.sweep.run_process import disagreement, shared_server

    env = {"KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu"}
    greeting = {"started": 1, "startup": [list(pair) for pair in startup_env(env)], "code": code_fingerprint()}
    assert disagreement(greeting, env) is None
    assert disagreement(greeting, {**env, "KERAS_BACKEND": "jax"}) == (  # the sweep's own server, then
        "it serves runs started with KERAS_BACKEND=tensorflow; these runs need KERAS_BACKEND=jax")
    assert "restart it" in disagreement({**greeting, "code": "0" * 64}, env)  # it imported other code
    nothing = tmp_path / "none.sock"
    assert shared_server({**env, "HARNESS_RUN_SERVER": str(nothing)}) is None
    assert f"HARNESS_RUN_SERVER={nothing}: no run server answers there" in capsys.readouterr().err
    assert shared_server(env) is None and not capsys.readouterr().err  # not asked for: nothing said


def test_a_warm_server_started_plainly_serves_default_cpu_sweeps():
    # `python -m harness.run.server --listen SOCKET` (the README's command, no options) sets what a default
    # sweep's runs get before their backend starts; were they to differ, every sweep would start its own.
    import os

    from harness.startup import startup_env, startup_settings
    from harness.sweep.cell import run_env
    from tests.conftest import compose_config

    served = startup_settings(dict(os.environ), backend="tensorflow", device="cpu", quiet=True, threads=0)
    assert startup_env(run_env(compose_config([]), online=False, threads=0)) == startup_env(served)


def test_the_readmes_warm_server_commands_as_printed(tmp_path):
    command = doc_block("python -m harness.run.server --listen").strip()
    done = shell(command, tmp_path, HOME=str(tmp_path))  # its socket under this test's ~/.cache
    assert done.returncode == 0, done.stdout + done.stderr
    socket_path = tmp_path / ".cache" / "harness" / "run-server.sock"
    assert f"listening on {socket_path}" in done.stdout and done.stdout.rstrip().endswith("stopped")
    assert "starting the run server" not in done.stdout and "harness: note" not in done.stderr  # it was used
    runs = results_under(tmp_path / "multirun")
    assert [(r["factors"]["optimizer"], r["status"], r["run_process"]) for r in runs] == [("adam", "ok", "fork"),
                                                                             ("sgd", "ok", "fork")]
    assert not socket_path.exists()


def test_a_run_server_preloads_without_comet_ml_installed(tmp_path):
    # A machine without comet_ml (tracking=disabled runs need none) must still fork its runs: were the server's
    # preload to import harness.run.comet, it would die and every run would pay a fresh process's imports.
    # comet_ml is made unimportable the way Python's import system documents: a None entry in sys.modules.
    code = ("import sys; sys.modules['comet_ml'] = None\n"
            "from harness.run.server import preload; preload()\n"
            "assert 'harness.run.train' in sys.modules and 'harness.run.comet' not in sys.modules\n"
            "print('preloaded')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=harness_env(tmp_path, warm_server=False), check=False)
    assert done.returncode == 0 and "preloaded" in done.stdout, done.stderr[-2000:]
