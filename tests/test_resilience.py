"""Sweeps that survive: kill -9 and resume, Ctrl-C, corrupt result files, same-second sweeps."""

from __future__ import annotations

import json
import os
import signal

import pandas as pd

from harness.report import write_report
from tests.conftest import REPO, harness_env, report_of, results_under, run_harness, start_sweep, wait_for


def test_sigkill_the_moment_a_result_appears_then_rerun_retrains_nothing_finished(tmp_path):
    args = ["epochs=3", "tracking=disabled", "optimizer=sgd,adam,rmsprop"]
    sweep = start_sweep(args, tmp_path)
    store = tmp_path / "results"
    # Kill the whole process group (sweep and its run process) as soon as the first result.json exists:
    # the run process may still be exiting and the sweep has not looked at it yet.
    wait_for(lambda: list(tmp_path.glob("multirun/*/*/result.json")), poll_s=0.005)
    os.killpg(sweep.pid, signal.SIGKILL)
    sweep.wait()
    [first_path] = tmp_path.glob("multirun/*/*/result.json")
    first_result = json.loads(first_path.read_text())
    assert first_result["status"] == "ok"
    assert [p.stem for p in store.glob("*.json")] == [first_result["run_key"]]  # kept before result.json

    done = run_harness(["-m", *args, "report=false"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    second_dir = max((tmp_path / "multirun").iterdir(), key=lambda p: p.stat().st_mtime)
    results = results_under(second_dir)
    assert sorted(r["factors"]["optimizer"] for r in results) == ["adam", "rmsprop", "sgd"]  # one per cell
    assert all(r["status"] == "ok" for r in results)
    reused = {r["factors"]["optimizer"]: bool(r.get("reused")) for r in results}
    first = first_result["factors"]["optimizer"]
    assert reused == {name: name == first for name in ("adam", "rmsprop", "sgd")}  # finished: not retrained
    again = next(r for r in results if r["factors"]["optimizer"] == first)
    assert again["train_seconds"] == first_result["train_seconds"]
    assert f"[1/3] optimizer={first}" in done.stdout and "reused" in done.stdout.splitlines()[0]  # same seeded order
    assert len(list(store.glob("*.json"))) == 3
    runs = pd.read_csv(report_of(done.stdout, tmp_path) / "runs.csv")
    assert len(runs) == 3

    # A report over both sweeps (the killed one and its re-run) still counts each cell once.
    both = write_report(tmp_path / "multirun", tmp_path / "both")
    assert sorted(pd.read_csv(both.with_name("runs.csv"))["optimizer"]) == ["adam", "rmsprop", "sgd"]

    forced = run_harness(["-m", *args[:2], "optimizer=sgd", "rerun=true", "report=false"], cwd=tmp_path)
    assert forced.returncode == 0 and "reused" not in forced.stdout


def test_ctrl_c_stops_promptly_and_marks_the_run_interrupted(tmp_path):
    sweep = start_sweep(["epochs=400", "tracking=disabled", "optimizer=sgd,adam"], tmp_path)
    wait_for(lambda: any("epoch 2/" in p.read_text() for p in tmp_path.glob("multirun/*/0/train.log")))
    os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, stderr = sweep.communicate(timeout=900)  # a guard against a hang, not a speed limit
    assert sweep.returncode == 130, stderr
    assert "interrupted" in stderr and "run the same command again" in stderr
    results = results_under(tmp_path / "multirun")
    assert [r["status"] for r in results] == ["interrupted"]
    assert not list((tmp_path / "results").glob("*.json"))  # nothing unfinished is reused later


def test_report_tolerates_corrupt_and_partial_result_files(tmp_path):
    from harness.report.synthetic import synthetic_results

    good = synthetic_results(1)[0]
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "result.json").write_text(json.dumps(good))
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "result.json").write_text(json.dumps(good)[:40])  # a half-written file
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "result.json").write_text(json.dumps({"no": "status"}))
    (tmp_path / "3").mkdir()  # a result without its run key: said, not shown as an empty row
    (tmp_path / "3" / "result.json").write_text(json.dumps({k: v for k, v in good.items() if k != "run_key"}))
    index = write_report(tmp_path, tmp_path / "report")
    assert len(pd.read_csv(index.with_name("runs.csv"))) == 1
    markdown = index.with_name("report.md").read_text()
    assert "Skipped result files" in markdown and "1/result.json" in markdown and "2/result.json" in markdown
    assert "3/result.json: unreadable result" in markdown and "(missing required key 'run_key')" in markdown


def test_two_sweeps_started_in_the_same_second_get_different_folders():
    # Hydra names a sweep's folder by the time it starts (hydra#2925: two sweeps started in the same
    # second share one). Ours carry microseconds: two compositions within one second (as two sweeps
    # started together make) get different names, and the name says so in its format.
    import re

    from tests.conftest import compose_config

    names = [compose_config([]).sweep_name for _ in range(2)]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6}", name) for name in names), names
    assert names[0] != names[1]
    preset = compose_config(["experiment=seed_grid"]).sweep_name
    assert re.fullmatch(r"seed_grid_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6}", preset), preset


def test_one_per_cell_prefers_ok_and_keeps_order():
    from harness.result_files import one_per_cell

    results = [{"run_key": "a", "status": "failed"}, {"run_key": "b", "status": "ok", "n": 1},
               {"run_key": "a", "status": "ok"}, {"run_key": "b", "status": "ok", "n": 2},
               {"run_key": "c", "status": "interrupted"}]
    kept, dropped = one_per_cell(results)
    assert dropped == 2
    assert kept == [{"run_key": "a", "status": "ok"}, {"run_key": "b", "status": "ok", "n": 2},
                    {"run_key": "c", "status": "interrupted"}]


def test_a_run_past_its_timeout_is_killed_and_recorded_and_the_sweep_goes_on_with_a_run_from_another_host(tmp_path):
    # The run that times out hangs on purpose (tests.hang.HangForever), so nothing depends on how fast
    # this machine is: no run has to finish within the 1 s timeout, because the sweep's other cell was
    # trained beforehand without one and is reused from the results store (the timeout is no part of
    # a run's key). The sweep must record the killed cell and go on to the next.
    env = harness_env(tmp_path, PYTHONPATH=str(REPO))
    trained = run_harness(["-m", "tracking=disabled", "epochs=2", "report=false"], cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr
    [stored] = (tmp_path / "results").glob("*.json")  # as if trained on a cluster node with the same hardware
    stored.write_text(json.dumps({**(record := json.loads(stored.read_text())),
                                  "environment": {**record["environment"], "hostname": "node-17"}}))
    done = run_harness(["-m", "tracking=disabled", "epochs=2", "order=grid", "run_timeout_s=1",
                        "callbacks=['tests.hang:HangForever'],[]", "report=false"], cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stderr
    second_dir = max((tmp_path / "multirun").iterdir(), key=lambda p: p.stat().st_mtime)
    hung, other = (json.loads((second_dir / str(n) / "result.json").read_text()) for n in (0, 1))
    assert hung["config"]["callbacks"] == ["tests.hang:HangForever"]
    assert (hung["status"], hung["reason"]) == ("failed", "timed out after 1 s")
    assert other["status"] == "ok" and other["reused"]
    assert "2 runs: 1 failed, 1 ok (timed out after 1 s: 1)" in done.stdout
    # the reused run says where it ran, on its line and in the report
    assert "reused from sweep" in done.stdout and "on host node-17" in done.stdout
    report = (report_of(done.stdout, tmp_path) / "report.md").read_text()
    assert "1 results were reused from earlier sweeps (resume), run on host(s) node-17" in report


def testexit_reasons_name_the_signal():
    from harness.sweep.cell import exit_reason

    assert exit_reason(-9) == "run process killed by SIGKILL (out of memory?)"
    assert exit_reason(-11) == "run process killed by SIGSEGV"
    assert exit_reason(3) == "run process exited with code 3 (see train.log)"


def test_run_keys_tell_machines_apart(monkeypatch):
    from harness import hardware
    from harness.run_key import run_key
    from tests.conftest import compose_config

    cfg = compose_config(["tracking=disabled"])
    here = run_key(cfg.resolved)
    monkeypatch.setattr(hardware, "cpu_model", lambda: "Another CPU")
    assert run_key(cfg.resolved) != here  # a results/ folder copied from another machine is not this one's
    monkeypatch.undo()
    monkeypatch.setattr(hardware, "_nvidia_smi_names", lambda: ("Some GPU",))
    assert run_key(cfg.resolved) != here
    monkeypatch.setattr(hardware.os, "cpu_count", lambda: 1024)
    assert run_key(cfg.resolved) != here


NOT_IN_THE_KEY = {"run_process": "fresh", "rerun": True, "plan": True, "report": False,
                  "tracking": {"name": "offline", "mode": "offline"},
                  "order": "grid", "results_dir": "/elsewhere/results", "reports_dir": "/elsewhere/reports",
                  "sweep_name": "another", "cache_dir": "/elsewhere/cache", "run_timeout_s": 7,
                  "quiet_tensorflow": False, "optimized_metric": "test_accuracy", "factors": ["model"]}
"""Settings that change where and how a run is kept, shown or launched, never what it computes."""


def _changed(value):
    """Another value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 0.5
    if isinstance(value, str):
        return value + "_other"
    if isinstance(value, list):
        return [*value, 99]
    return 1  # None


def _leaves(tree, prefix=()):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def test_the_run_key_holds_every_setting_that_changes_a_result_and_none_that_does_not():
    import copy

    from harness.run_key import run_key
    from tests.conftest import compose_config

    cfg = compose_config([]).resolved
    here = run_key(cfg)
    for key, value in NOT_IN_THE_KEY.items():
        assert run_key({**cfg, key: value}) == here, f"{key} changed the run key"  # a resumed sweep reuses
    # target_accuracy is an alias: it sets target.value by interpolation, and target.value is what counts
    # (in a resolved config, changing target_accuracy alone changes nothing: tests/test_custom.py)
    semantic = [(path, value) for path, value in _leaves(cfg)
                if path[0] not in NOT_IN_THE_KEY and path != ("target_accuracy",)]
    assert len(semantic) > 60  # every optimizer, transfer, dataset, model... setting, and the top level's
    for path, value in semantic:
        if path == ("python",):  # an interpreter's path: tests/test_environments.py sweeps a second one
            continue
        if path == ("device", "price_per_hour"):  # re-costs the same run: the next test
            continue
        other = copy.deepcopy(cfg)
        node = other
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = _changed(value)
        assert run_key(other) != here, f"{'.'.join(path)}={_changed(value)!r} left the run key unchanged"


def test_a_price_changes_the_report_never_the_run_and_stored_results_keep_their_keys():
    from harness.config.schema import KEYED_PRICE_PER_HOUR
    from harness.run_key import run_key
    from tests.conftest import compose_config

    for device in ("cpu", "gpu"):
        cfg = compose_config([f"device={device}"])
        assert cfg.device.price_per_hour == KEYED_PRICE_PER_HOUR[device]  # conf/device's default: keys as before
        priced = compose_config([f"device={device}", "device.price_per_hour=2.0"])
        assert run_key(priced.resolved) == run_key(cfg.resolved)
    assert run_key(compose_config(["device=gpu"]).resolved) != run_key(compose_config(["device=cpu"]).resolved)


def test_upgrading_a_backend_or_the_timing_rules_makes_its_results_retrain(monkeypatch):
    import importlib.metadata

    from harness import run_key as keys
    from harness.run_key import run_key
    from tests.conftest import compose_config

    jax, tensorflow = compose_config(["backend=jax"]), compose_config([])
    before = run_key(jax.resolved), run_key(tensorflow.resolved)
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "99.0" if name in ("jax", "jaxlib") else real(name))  # JAX upgraded
    assert run_key(jax.resolved) != before[0]  # a backend=jax rerun retrains, instead of reusing the old JAX's timings
    assert run_key(tensorflow.resolved) == before[1]  # TensorFlow runs are not JAX's business
    monkeypatch.undo()
    monkeypatch.setattr(keys, "TIMING_VERSION", 2)  # the timing rules changed
    assert run_key(tensorflow.resolved) != before[1] and run_key(jax.resolved) != before[0]


def test_comets_own_system_metrics_are_off_and_a_run_that_turns_them_on_is_keyed_apart():
    from harness.run_key import run_key
    from tests.conftest import compose_config

    cfg = compose_config([])
    assert cfg.tracking.system_metrics is False  # Comet's sampling threads stay out of the timed epochs
    on = compose_config(["tracking.system_metrics=true"])
    assert run_key(on.resolved) != run_key(cfg.resolved)  # its epochs shared the CPU with Comet's threads
    offline = compose_config(["tracking=offline"])
    assert run_key(offline.resolved) == run_key(cfg.resolved)  # where the data goes: the same run
