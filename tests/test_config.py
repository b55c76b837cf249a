"""Every option of every config group composes, passes validation and builds its Keras object."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from harness.config.run_config import settings_of
from harness.config.validate import validate
from tests.conftest import CONF, compose_config, gpu_cell_status, results_under, run_harness

GROUP_OPTIONS = {
    group: sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    for group in ("optimizer", "transfer", "early_stopping", "device", "dataset", "model", "tracking")
}


def test_groups_have_the_agreed_options():
    assert GROUP_OPTIONS["optimizer"] == ["adagrad", "adam", "momentum", "nag", "rmsprop", "sgd"]
    assert GROUP_OPTIONS["transfer"] == ["off", "on"]
    assert GROUP_OPTIONS["early_stopping"] == ["off", "on"]
    assert GROUP_OPTIONS["device"] == ["cpu", "gpu"]


def test_compositions_share_hydra_config_store_and_leave_it_as_registered():
    import copy

    from hydra.core.config_store import ConfigStore

    before = compose_config(["optimizer=sgd"])
    changed = compose_config(["optimizer=sgd", "optimizer.learning_rate=0.5", "experiment=seed_grid"])
    after = compose_config(["optimizer=sgd"])
    assert changed.optimizer.learning_rate == 0.5 != after.optimizer.learning_rate
    assert after.optimizer == before.optimizer and after.factors == before.factors
    assert copy.deepcopy(ConfigStore.instance()) is ConfigStore.instance()  # not copied once per composition


@pytest.mark.parametrize(("group", "option"), [(g, o) for g, opts in GROUP_OPTIONS.items() for o in opts])
def test_every_option_composes_and_validates(group, option, request, tmp_path, monkeypatch):
    from harness.keras_cache import KERAS_DATASETS
    from tests.conftest import write_image_folder, write_keras_cache

    extra = [f"dataset.path={request.getfixturevalue('digits_npz')}"] if option == "npz" else []
    if option == "folder":
        extra = [f"dataset.path={write_image_folder(tmp_path / 'images')}"]
    if option in KERAS_DATASETS:  # cached as Keras leaves them (no network here)
        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
        write_keras_cache(tmp_path / "keras")
    if option == "custom":  # the user's function: the shipped examples stand in for it
        extra = [f"{group}._target_=harness.examples.tabular.{'mlp' if group == 'model' else 'wine'}"]
    cfg = compose_config([f"{group}={option}", *extra])
    assert getattr(cfg, group).name == option
    validate(cfg)


@pytest.mark.parametrize("option", GROUP_OPTIONS["optimizer"])
def test_every_optimizer_builds_its_keras_optimizer(option):
    import keras

    from harness.run.optimizers import build_optimizer

    cfg = compose_config([f"optimizer={option}"]).optimizer
    optimizer = build_optimizer(cfg)
    expected = {"sgd": "SGD", "momentum": "SGD", "nag": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop",
                "adam": "Adam"}[option]
    assert type(optimizer) is getattr(keras.optimizers, expected)
    assert float(optimizer.learning_rate) == pytest.approx(cfg.learning_rate)
    if option in ("momentum", "nag"):
        assert optimizer.momentum == 0.9
        assert optimizer.nesterov is (option == "nag")


def test_every_adam_knob_reaches_keras():
    from harness.run.optimizers import build_optimizer

    cfg = compose_config(["optimizer=adam", "optimizer.amsgrad=true", "optimizer.beta_1=0.8",
                          "optimizer.beta_2=0.99", "optimizer.epsilon=1e-6", "optimizer.learning_rate=0.003",
                          "optimizer.weight_decay=0.0001", "optimizer.clipnorm=1.0"])
    optimizer = build_optimizer(cfg.optimizer)
    assert optimizer.amsgrad is True
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.8, 0.99, 1e-6)
    assert optimizer.weight_decay == 0.0001 and optimizer.clipnorm == 1.0
    assert float(optimizer.learning_rate) == pytest.approx(0.003)


def test_early_stopping_on_builds_keras_callback():
    import keras

    cfg = compose_config(["early_stopping=on", "early_stopping.patience=5", "early_stopping.monitor=val_accuracy"])
    es = settings_of(cfg.early_stopping, leaving_out=("name", "enabled"))
    callback = keras.callbacks.EarlyStopping(**es)
    assert callback.patience == 5 and callback.monitor == "val_accuracy"


def test_models_build_for_both_transfer_options():
    from harness.run.data import load_tasks
    from harness.run.models import build_classifier, build_feature_extractor

    cfg = compose_config([])
    task = load_tasks(cfg.dataset, CONF)[0]  # digits: bundled, the cache folder is not used
    for frozen in (True, False):
        model = build_classifier(build_feature_extractor(task.input_shape, cfg.model), task.num_classes,
                                 cfg.model, frozen=frozen)
        assert model.output_shape == (None, 5)
        assert model.get_layer("feature_extractor").trainable is (not frozen)


def test_seed_grid_preset_is_the_article_grid():
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF

    cfg = compose_config(["experiment=seed_grid"])
    assert cfg.sweep_name.startswith("seed_grid")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        composed = compose(config_name="config", overrides=["experiment=seed_grid"], return_hydra_config=True)
    params = composed.hydra.sweeper.params
    grid = {factor: str(levels).split(",") for factor, levels in params.items()}
    assert grid == {"optimizer": ["sgd", "momentum", "nag", "adagrad", "rmsprop", "adam"], "transfer": ["on", "off"],
                    "early_stopping": ["on", "off"], "device": ["cpu", "gpu"]}  # 6 x 2 x 2 x 2 = 48 cells


def test_help_lists_groups_and_cfg_job_prints_config(tmp_path):
    done = run_harness(["--help"], cwd=tmp_path)
    assert done.returncode == 0
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    experiments = sorted(p.stem for p in (CONF.parent / "experiments").glob("*.yaml"))
    for group, options in {**GROUP_OPTIONS, "experiment": experiments}.items():
        for option in options:  # the curated help names every option that exists on disk
            assert re.search(rf"\b{option}\b", lines[group]), (group, option)
    done = run_harness(["--cfg", "job", "optimizer=nag"], cwd=tmp_path)
    assert done.returncode == 0
    assert "nesterov: true" in done.stdout


def test_each_default_lives_in_one_place():
    # The schema's dataclasses own the defaults; a YAML option names itself and sets only what differs
    # for it. A YAML value equal to the schema's default is a second copy that can silently drift.
    import dataclasses

    import yaml

    from harness.config.schema import SCHEMAS

    for group, schemas in SCHEMAS.items():
        for path in sorted((CONF / group).glob("*.yaml")):
            option = yaml.safe_load(path.read_text())
            schema = schemas[option["defaults"][0].split("/")[-1].split("@")[0]]
            defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                        for f in dataclasses.fields(schema)
                        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
            repeated = [key for key, value in option.items() if key in defaults and defaults[key] == value]
            assert not repeated, f"{path.relative_to(CONF)} repeats {schema.__name__}'s defaults: {repeated}"


def test_a_setting_of_every_swept_backbone_works_although_the_default_model_lacks_it(tmp_path):
    """Hydra composes a sweep's first config with the default model (small_cnn, which has no image_size)
    and would refuse ``model.image_size``; the harness sets it with ``++`` where every swept option has it."""
    from harness.config.presets import register_experiments
    from harness.config.schema import register_configs
    from harness.config.validate import scaffold_settings

    register_configs()
    experiments = register_experiments()
    line = ["-m", "model=vgg16,resnet50", "model.image_size=32,48", "model.pooling=max", "epochs=2", "seed=0,1"]
    assert scaffold_settings(line, experiments) == [
        "-m", "model=vgg16,resnet50", "++model.image_size=32,48", "++model.pooling=max", "epochs=2", "seed=0,1"]
    unswept = ["-m", "model=vgg16", "model.image_size=32", "seed=0,1"]  # the first composition has vgg16
    assert scaffold_settings(unswept, experiments) == unswept
    # a custom model's keys are its function's keywords, which Hydra's struct config would refuse unadded
    custom = ["model=custom", "model._target_=mylab.models.mlp", "model.units=64", "+model.weights=w.h5"]
    assert scaffold_settings(custom, experiments) == [*custom[:2], "++model.units=64", "+model.weights=w.h5"]
    # for real: the GPU cells are skipped (no GPU here), after Hydra has composed every one of them; where a
    # GPU is visible they train (small), and a CPU-only TensorFlow fails them: the cells are the point here
    done = run_harness(["-m", "model=vgg16,resnet50", "model.image_size=32,48", "device=gpu", "tracking=disabled",
                        "epochs=1", "dataset.train_size=16"], cwd=tmp_path)
    assert done.returncode == 0 or gpu_cell_status() == "ok", done.stderr
    assert "harness: error" not in done.stderr, done.stderr
    cells = {(r["config"]["model"]["name"], r["config"]["model"]["image_size"]) for r in results_under(tmp_path)}
    assert cells == {("vgg16", 32), ("vgg16", 48), ("resnet50", 32), ("resnet50", 48)}


def test_the_run_config_is_each_options_own_schema_and_keeps_what_it_was_built_from():
    from harness.config import schema
    from harness.config.run_config import UserModelConfig, run_config
    from harness.user_code import HARNESS_SETTINGS

    cases = {"optimizer=nag": ("optimizer", schema.SGDConfig),
             "optimizer=rmsprop": ("optimizer", schema.RMSpropConfig),
             "model=mobilenet_v2": ("model", schema.MobileNetV2Config),
             "model=vgg16": ("model", schema.ApplicationConfig),
             "dataset=folder": ("dataset", schema.DatasetConfig),
             "transfer=on": ("transfer", schema.TransferConfig)}
    for override, (group, option) in cases.items():
        cfg = compose_config([override])
        assert type(getattr(cfg, group)) is option, override
        assert run_config(cfg.resolved) == cfg and cfg.resolved[group]["name"] == getattr(cfg, group).name
    assert compose_config(["optimizer=nag"]).optimizer.nesterov is True

    mine = compose_config(["model=custom", "model._target_=harness.examples.tabular.mlp", "+model.units=8"])
    assert type(mine.model) is UserModelConfig
    assert mine.model.keywords == {"units": 8} and mine.model.frozen_layer == "feature_extractor"
    for group, option in (("model", schema.CustomModelConfig), ("dataset", schema.CustomDatasetConfig)):
        assert set(HARNESS_SETTINGS[group]) == {f.name for f in fields(option)}  # the rest: the function's keywords

    named = run_config(mine.resolved, "sweep_of_the_day")
    assert named.sweep_name == named.resolved["sweep_name"] == "sweep_of_the_day"
    assert run_config(mine.resolved, None).sweep_name == mine.sweep_name

    stray = {**compose_config([]).resolved, "optimizer": {"name": "adam", "learning_rate": 0.1, "no_such": 1}}
    with pytest.raises(ValueError, match=r"optimizer settings .* match none of its options \(sgd, adagrad"):
        run_config(stray)
