"""Your own model, data, loss and target (#22): a user's package outside the repository, on PYTHONPATH and
not installed, named by ``_target_``; real Keras training in real multiruns; the shipped presets too."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (
    compose_config,
    doc_block,
    harness_env,
    read_archive,
    report_of,
    results_under,
    run_harness,
    shell,
    write_doc_lab,
)

MODELS = '''
import keras


def mlp(input_shape, num_classes, units=32, pretrained=False, weights=None):
    base = keras.Sequential([keras.Input(shape=input_shape), keras.layers.Dense(units, activation="relu")],
                            name="feature_extractor")
    if pretrained:
        base.load_weights(weights)
    inputs = keras.Input(shape=input_shape)
    features = base(inputs, training=False) if pretrained else base(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(features)
    return keras.Model(inputs, outputs)


def not_a_model(input_shape, num_classes):
    return "a string"
'''

DATA = '''
from sklearn.datasets import load_wine


def load():
    x, y = load_wine(return_X_y=True)
    return ((x - x.mean(axis=0)) / x.std(axis=0)).astype("float32"), y


BALLAST = []


def load_holding_300_mib():
    import numpy as np

    BALLAST.append(np.ones(300 * 2**20, dtype="uint8"))  # every page written: resident until the run ends
    return load()
'''


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """A folder outside the repository holding the user's package ``mylab`` (models and data)."""
    root = tmp_path_factory.mktemp("user")
    (root / "mylab").mkdir()
    (root / "mylab" / "__init__.py").write_text("")
    (root / "mylab" / "models.py").write_text(MODELS)
    (root / "mylab" / "data.py").write_text(DATA)
    return root


def users_env(root: Path) -> dict[str, str]:
    return harness_env(root, PYTHONPATH=str(root))


MINE = ["model=custom", "model._target_=mylab.models.mlp", "dataset=custom", "dataset._target_=mylab.data.load",
        "tracking=disabled", "epochs=15", "target_accuracy=0.8"]


@pytest.fixture(scope="module")
def readme_lab(tmp_path_factory) -> Path:
    """The docs' own ``mylab`` package, its code taken from the page as printed."""
    return write_doc_lab(tmp_path_factory.mktemp("readme"))


def test_your_own_model_and_data_sweep_like_the_built_in_ones_and_your_code_is_in_the_run_key(readme_lab):
    # the README's command, exactly as printed, on the README's code
    command = doc_block("PYTHONPATH=. python -m harness -m model=custom").strip()
    done = shell(command, readme_lab)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = results_under(readme_lab / "multirun")
    assert len(runs) == 4 and all(r["status"] == "ok" for r in runs), [r["reason"] for r in runs]
    assert {r["backbone"] for r in runs} == {"mylab.models.mlp"} and runs[0]["train_examples"] == 106  # 60 % of 178
    assert {r["trainable_params"] for r in runs} == {13 * 64 + 64 + 64 * 3 + 3}  # +model.units=64 reached mlp
    assert set(runs[0]["user_code"]) == {"mylab.models.mlp", "mylab.data.load"}
    page = Path(done.stdout.splitlines()[-1].removeprefix("report: ")).with_name("report.md").read_text()
    assert "- Optimizers to 0.9 validation accuracy: none told apart from Adam yet" in page  # 1 seed: too few
    assert "- Early stopping (on vs off) " in page

    recorded = runs[0]["sweep_name"]
    again = shell(f"{command} report=false", readme_lab)  # its report is the one read above
    assert again.stdout.count(f"reused from sweep {recorded}") == 4, again.stdout  # unchanged: nothing retrained
    models = readme_lab / "mylab" / "models.py"
    models.write_text(models.read_text() + "\n# an edit\n")
    # one cell, tracked, in a sweep folder of the user's choosing (#24: one name for the whole sweep)
    one_cell = ["-m", "model=custom", "model._target_=mylab.models.mlp", "+model.units=64", "dataset=custom",
                "dataset._target_=mylab.data.load", "optimizer=adam", "early_stopping=off", "tracking=offline",
                f"hydra.sweep.dir={readme_lab / 'edited'}"]
    edited = run_harness(one_cell, cwd=readme_lab, env=users_env(readme_lab))
    assert edited.returncode == 0 and "reused" not in edited.stdout and " ok " in edited.stdout, edited.stdout
    (result,) = results_under(readme_lab / "edited")
    assert result["sweep_name"] == json.loads((readme_lab / "edited" / "sweep.json").read_text())["name"]
    assert result["user_code"]["mylab.models.mlp"] != runs[0]["user_code"]["mylab.models.mlp"]  # the edit
    others = read_archive(Path(result["comet"]["archive"]))["others"]  # Comet's own reader
    assert {key: others[f"user_code.{key}"] for key in result["user_code"]} == result["user_code"]


def test_a_run_that_holds_a_large_array_shows_it_in_its_peak_memory_and_every_run_its_cores_used(lab):
    # Observed, not echoed: the same cell with the user's data holding 300 MiB more during fit
    done = run_harness(["-m", *MINE, "dataset._target_=mylab.data.load,mylab.data.load_holding_300_mib",
                        f"hydra.sweep.dir={lab / 'memory'}", "report=false"], cwd=lab, env=users_env(lab))
    assert done.returncode == 0, done.stdout + done.stderr
    runs = {r["config"]["dataset"]["_target_"]: r for r in results_under(lab / "memory")}
    plain, holding = runs["mylab.data.load"], runs["mylab.data.load_holding_300_mib"]
    assert holding["peak_rss_bytes"] - plain["peak_rss_bytes"] >= 0.95 * 300 * 2**20
    assert plain["peak_rss_bytes"] > 50 * 2**20  # a process that has Keras and its backend loaded
    for run in (plain, holding):
        assert run["fit_cpu_seconds"] > 0 and run["cores_used"] == run["fit_cpu_seconds"] / run["fit_seconds"]
        assert 0 < run["cores_used"] <= run["cpus_available"] + 0.5  # busy cores cannot outnumber usable ones
    report = report_of(done.stdout, lab)
    page = (report / "report.md").read_text()
    assert "Resources per run: peak memory of its process median " in page
    for run in (plain, holding):  # energy: measured where RAPL is readable, else said why, never estimated
        assert (run["cpu_energy_joules"] or 0) > 0 or run["energy_unmeasured"][0].startswith("CPU: no readable RAPL")
    assert "energy during fit: CPU packages median" in page or "energy not measured: CPU: no readable RAPL" in page
    assert "input_share" not in plain and "input_share" not in holding  # input_check=auto: arrays are not timed
    assert plain["device_peak_memory_bytes"] is None  # a CPU run: no GPU memory to count
    # the report's resources section judges the swept setting on memory (one pair: too few to tell, but said)
    assert "## Resources" in page and "dataset._target_=mylab.data.load_holding_300_mib vs mylab.data.load: peak " \
        "memory ×" in page
    assert (report / "figures" / "resources.png").is_file()


def test_a_keyword_your_function_does_not_take_is_one_line_before_training(lab):
    for setting, said in (("+model.unit=64", "model.unit is not a parameter of mylab.models.mlp; its parameters: "
                                             "input_shape, num_classes, units, pretrained, weights (the harness's "
                                             "own model settings: _target_, frozen_layer, pretrained_weights)"),
                          ("dataset.scale=2", "dataset.scale is not a parameter of mylab.data.load; its parameters: "
                                              "none")):
        done = run_harness([*MINE, setting], cwd=lab, env=users_env(lab))
        assert done.returncode == 2, done.stdout + done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith(f"harness: error: {said}"), line


def test_bad_user_code_is_one_line_before_training_or_the_runs_reason(lab):
    for target, said in (("nowhere.models.mlp", "model._target_=nowhere.models.mlp: no module 'nowhere.models' on "
                                                "the Python path"),
                         ("mylab.models.cnn", "model._target_=mylab.models.cnn: "),
                         ("mlp", "model._target_=mlp is not a function's import path")):
        done = run_harness([*MINE, f"model._target_={target}"], cwd=lab, env=users_env(lab))
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("harness: error: ") and said in line, line
    assert line.startswith("harness: error: model._target_=mlp")
    assert "defines no 'cnn'; valid: mlp, not_a_model" in _missing_function_line(lab)
    done = run_harness([*MINE, "model._target_=mylab.models.not_a_model"], cwd=lab, env=users_env(lab))
    assert done.returncode == 1
    (result,) = results_under(lab / "outputs")
    assert result["reason"] == "TypeError: model._target_=mylab.models.not_a_model returned str, not a keras.Model"
    assert f"(its output and traceback: {result['log_file']})" in done.stdout
    assert "Traceback" in Path(result["log_file"]).read_text()
    # its re-run command, pasted into a shell elsewhere (no PYTHONPATH there), runs the same cell again
    assert result["rerun_command"].startswith(f"cd {lab} && PYTHONPATH={lab} python -m harness model=custom ")
    again = shell(result["rerun_command"], lab.parent)
    assert again.returncode == 1, again.stdout + again.stderr
    rerun = next(r for r in results_under(lab / "outputs") if r["log_file"] != result["log_file"])
    assert (rerun["run_key"], rerun["reason"]) == (result["run_key"], result["reason"])


def test_a_model_for_classes_on_a_regression_says_num_classes_is_none(lab, tmp_path, monkeypatch):
    from tests.conftest import run_in_process

    monkeypatch.syspath_prepend(str(lab))
    result = run_in_process(tmp_path, [*MINE, "dataset._target_=harness.examples.tabular.diabetes", "loss=mse",
                                       "metrics=[mae]", "target.metric=val_mae", "target.value=0.65", "epochs=1"])
    assert result["status"] == "failed"
    assert result["reason"].startswith("ValueError: model._target_=mylab.models.mlp failed with num_classes=None, "
                                       "which a regression passes"), result["reason"]
    assert "units" in result["reason"]  # what Keras said, after the harness's explanation


def _missing_function_line(lab: Path) -> str:
    """What the harness says of a function the user's module does not define (read, not imported)."""
    from harness.config.validate import ConfigError, validate

    cfg = compose_config([*MINE, "model._target_=mylab.models.cnn"])

    sys.path.insert(0, str(lab))
    try:
        validate(cfg)
    except ConfigError as err:
        return str(err)
    finally:
        sys.path.remove(str(lab))
    return ""


def test_transfer_on_your_own_model_freezes_its_pretrained_part(lab, tmp_path, monkeypatch):
    import keras

    from tests.conftest import WeightSnapshots, run_in_process

    monkeypatch.syspath_prepend(str(lab))
    base = keras.Sequential([keras.Input(shape=(13,)), keras.layers.Dense(32, activation="relu")],
                            name="feature_extractor")
    weights = tmp_path / "base.weights.h5"
    base.save_weights(weights)
    WeightSnapshots.taken.clear()
    result = run_in_process(tmp_path, [*MINE, "transfer=on", f"+model.weights={weights}", "epochs=2",
                                       "callbacks=[tests.conftest:WeightSnapshots]"])
    assert result["status"] == "ok", result["reason"]
    begin, end = WeightSnapshots.taken
    moved = {path for path, value in begin["weights"].items() if not np.array_equal(value, end["weights"][path])}
    saved = [np.array(w) for w in base.weights]  # what the user's function loaded, found by value in the model
    pretrained = {path for path, value in begin["weights"].items()
                  if any(value.shape == s.shape and np.array_equal(value, s) for s in saved)}
    assert len(pretrained) == 2  # the base's kernel and bias, loaded from the file
    assert moved and not moved & pretrained  # the head trains; the pretrained base does not
    assert result["frozen_params"] == 13 * 32 + 32 and result["trainable_params"] == 32 * 3 + 3
    # the same through the real command line, where every setting is checked first
    done = run_harness([*MINE, "transfer=on", f"+model.weights={weights}", "epochs=1"], cwd=tmp_path,
                       env=users_env(lab))
    assert done.returncode == 0, done.stdout + done.stderr
    (cli,) = results_under(tmp_path / "outputs")
    assert cli["status"] == "ok" and (cli["frozen_params"], cli["trainable_params"]) == (13 * 32 + 32, 32 * 3 + 3)


def test_already_split_data_as_tf_data_and_pydataset_train_through_a_real_sweep_and_a_slow_one_is_input_bound(lab):
    (lab / "mylab" / "split.py").write_text(textwrap.dedent('''
        import time

        from harness.examples.tabular import wine_pydataset, wine_tf_data  # noqa: F401  (the shipped examples)


        def slow_wine_pydataset():
            """The PyDataset, its training batches slow on purpose: 0.5 s each, far more than a step and an
                epoch's own overhead, even on a loaded machine (the sleep costs no CPU)."""
            splits = wine_pydataset()

            class SlowBatches(type(splits["train"])):
                def __getitem__(self, index):
                    time.sleep(0.5)
                    return super().__getitem__(index)

            splits["train"] = SlowBatches(splits["train"].x, splits["train"].y)
            return splits
    '''))
    targets = "mylab.split.wine_tf_data,mylab.split.wine_pydataset,mylab.split.slow_wine_pydataset,mylab.data.load"
    done = run_harness(["-m", *MINE, f"dataset._target_={targets}", "epochs=3", "input_check=on",
                        f"hydra.sweep.dir={lab / 'split'}", "report=false"], cwd=lab, env=users_env(lab))
    assert done.returncode == 0, done.stdout + done.stderr
    runs = {r["config"]["dataset"]["_target_"].rsplit(".", 1)[1]: r for r in results_under(lab / "split")}
    assert sorted(runs) == ["load", "slow_wine_pydataset", "wine_pydataset", "wine_tf_data"]
    for name in ("wine_pydataset", "wine_tf_data", "slow_wine_pydataset"):
        run = runs[name]
        assert run["status"] == "ok", run["reason"]
        assert run["train_examples"] == 106 and run["steps_per_epoch"] == 4  # sizes from the data: 106 in 32s
        assert run["epochs_run"] == 3 and 0 <= run["test_accuracy"] <= 1
        assert run["input_share"] == run["input_epoch_seconds"] / run["median_epoch_seconds"]
    slow = runs["slow_wine_pydataset"]
    assert slow["input_bound"] and slow["input_epoch_seconds"] >= 2.0, \
        (slow["input_epoch_seconds"], slow["median_epoch_seconds"], slow["input_share"])
    assert runs["load"]["input_bound"] is False  # in-memory arrays: slicing is nothing beside a step
    page = (report_of(done.stdout, lab) / "report.md").read_text()
    assert "runs whose input was timed were input-bound" in page and "slow_wine_pydataset" in page


def test_the_shipped_regression_preset_times_val_mae_and_says_so(tmp_path):
    from harness.results import result_problems

    done = run_harness(["-m", "experiment=tabular_regression", "optimizer=adam,rmsprop", "seed=0", "epochs=12",
                        "early_stopping=on", "early_stopping.monitor=target", "tracking=disabled", "report=false"],
                       cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = results_under(tmp_path / "multirun")
    assert len(runs) == 2 and all(r["status"] == "ok" for r in runs)
    for run in runs:
        assert (run["target_metric"], run["target_mode"], run["target_value"]) == ("val_mae", "min", 0.65)
        assert run["test_accuracy"] is None and set(run["test_metrics"]) == {"loss", "mae"}
        assert run["config"]["early_stopping"]["monitor"] == "target"
        assert result_problems(run) == []  # a regression's result keeps the one contract too
        reached = [e for e in run["history"] if e["val_mae"] <= 0.65]
        assert (run["time_to_target_seconds"] is None) == (not reached)
    logs = " ".join(path.read_text() for path in tmp_path.glob("multirun/*/*/train.log"))
    assert logs and "not available" not in logs  # Keras found the metric it watched (val_mae), every epoch
    assert " test mae " in done.stdout
    report = report_of(done.stdout, tmp_path)
    page = (report / "report.md").read_text()
    assert ("- Optimizers to val_mae <= 0.65: none told apart from Adam yet" in page  # 1 seed: too few to tell
            or "none reached the target (val_mae <= 0.65)" in page)
    assert (report / "figures" / "learning_curves.png").is_file()  # val_mae's curves: no accuracy here


def test_the_default_target_keeps_the_run_keys_of_results_stored_before_it_existed():
    from harness.run_key import run_key

    cfg = compose_config([])
    before = {k: v for k, v in cfg.resolved.items() if k not in ("target", "loss", "metrics")}
    assert run_key(cfg.resolved) == run_key(before)  # stored results are reused
    assert run_key(compose_config(["target.metric=val_loss"]).resolved) != run_key(cfg.resolved)
    by_value, by_alias = compose_config(["target.value=0.8"]), compose_config(["target_accuracy=0.8"])
    assert run_key(by_value.resolved) == run_key(by_alias.resolved)
    assert json.dumps(compose_config(["target_accuracy=0.8"]).resolved["target"]) == \
        '{"metric": "val_accuracy", "value": 0.8, "mode": "auto"}'
