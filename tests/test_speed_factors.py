"""The modern ways to train faster, as settings that sweep like any factor: ``precision``,
``steps_per_execution``, ``backend`` (and ``jit_compile``). Each trains for real on the CPU here; what
cannot be measured meaningfully on a CPU (float16) is skipped with its reason."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from harness.config.schema import BACKENDS
from harness.run_key import run_key
from tests.conftest import FAST, REPO, compose_config, harness_env, report_of, results_under, run_harness


def test_precision_and_steps_per_execution_train_for_real_and_float16_on_a_cpu_is_skipped(tmp_path):
    done = run_harness(["-m", *FAST, "precision=float32,mixed_bfloat16,mixed_float16", "steps_per_execution=1,4",
                        "order=grid", "report=false"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = results_under(tmp_path / "multirun")
    runs = {(r["config"]["precision"], r["config"]["steps_per_execution"]): r for r in results}
    for steps in (1, 4):
        skipped = runs["mixed_float16", steps]
        assert skipped["status"] == "skipped" and skipped["reason"].startswith("mixed_float16 needs a GPU")
        for precision in ("float32", "mixed_bfloat16"):
            run = runs[precision, steps]
            assert run["status"] == "ok" and run["environment"]["precision"] == precision
            assert run["environment"]["steps_per_execution"] == steps
    # bfloat16 computes differently; more batches per call into the backend computes the same thing
    assert runs["mixed_bfloat16", 1]["test_loss"] != runs["float32", 1]["test_loss"]
    assert runs["float32", 4]["test_loss"] == runs["float32", 1]["test_loss"]
    assert "precision" in done.stdout and "steps_per_execution" in done.stdout  # swept: in each cell's line


def test_jax_backend_trains_without_importing_tensorflow_and_the_report_compares_backends(tmp_path):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed here (pip install -e '.[jax]')")
    modules = tmp_path / "modules.json"
    env = harness_env(tmp_path, PYTHONPATH=str(REPO), HARNESS_MODULES_FILE=str(modules))
    done = run_harness(["-m", *FAST, "backend=jax", "tracking=offline", "callbacks=[tests.hang:RecordModules]",
                        "report=false"], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(modules.read_text()) == ["jax"]  # as on a machine without TensorFlow
    (jax_run,) = results_under(tmp_path / "multirun")
    assert jax_run["status"] == "ok" and jax_run["environment"]["backend"] == "jax"
    assert Path(jax_run["comet"]["archive"]).is_file()

    both = run_harness(["-m", *FAST, "backend=tensorflow,jax", "callbacks=[tests.hang:RecordModules]",
                        "report=false"], cwd=tmp_path, env=env)
    assert both.returncode == 0, both.stderr
    assert "reused" in both.stdout  # the jax cell, from the first sweep
    runs = pd.read_csv(report_of(both.stdout, tmp_path) / "runs.csv")
    assert sorted(runs["backend"]) == ["jax", "tensorflow"]


def test_an_uninstalled_or_unknown_backend_and_an_unknown_precision_get_one_line_before_training(tmp_path):
    missing = [name for name, module in BACKENDS.items() if importlib.util.find_spec(module) is None]
    cases = [("precision=fp8", "precision=fp8 is unknown; valid: float32, mixed_bfloat16, mixed_float16"),
             ("backend=mxnet", "backend=mxnet is unknown; valid: tensorflow, jax, torch"),
             ("steps_per_execution=0", "steps_per_execution=0 is invalid: it must be an integer >= 1")]
    if missing:
        cases.append((f"backend={missing[0]}", f"backend={missing[0]} is not installed here; install it with: "
                                                f"pip install -e '.[{missing[0]}]'"))
    for setting, said in cases:
        done = run_harness(["-m", *FAST, setting], cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_the_new_settings_at_their_defaults_keep_earlier_run_keys():
    cfg = compose_config([])
    earlier = {k: v for k, v in cfg.resolved.items() if k not in ("precision", "steps_per_execution", "backend")}
    assert run_key(cfg.resolved) == run_key(earlier)  # results stored before these settings existed are reused
    assert run_key({**cfg.resolved, "precision": "mixed_bfloat16"}) != run_key(cfg.resolved)
    assert run_key({**cfg.resolved, "backend": "jax"}) != run_key(cfg.resolved)


def test_xla_trains_for_real_and_is_recorded(tmp_path):
    seen = tmp_path / "jit.jsonl"
    env = harness_env(tmp_path, PYTHONPATH=str(REPO), HARNESS_JIT_FILE=str(seen))
    done = run_harness(["-m", *FAST, "jit_compile=false,true", "callbacks=[tests.hang:RecordJit]", "report=false"],
                       cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    runs = results_under(tmp_path / "multirun")
    assert sorted(run["environment"]["jit_compile"] for run in runs) == [False, True]
    assert all(run["status"] == "ok" for run in runs)
    # observed inside fit: the model Keras trained compiled with XLA in one run and without in the other
    observed = [json.loads(line)["jit_compile"] for line in seen.read_text().splitlines()]
    assert sorted(observed) == [False, True]


def test_torch_backend_trains_where_torch_is_installed(tmp_path):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed here (pip install -e '.[torch]'); its uninstalled error is tested")
    done = run_harness([*FAST, "backend=torch", "threads=1"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run,) = results_under(tmp_path / "outputs")
    assert run["status"] == "ok" and run["environment"]["backend"] == "torch"
    assert run["environment"]["threads_applied"] == "torch.set_num_threads(1)"
