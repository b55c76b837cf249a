"""What a careless user types gets one clear line naming the bad value and what is valid, exit code 2,
within seconds and before any training (no run folder gets a result)."""

from __future__ import annotations

import itertools

import pytest

from tests.conftest import compose_config, run_harness

CASES = [
    (["optimizer=adamw"], "optimizer=adamw is unknown; valid: adagrad, adam, momentum, nag, rmsprop, sgd"),
    (["-m", "optimizer=adam,adamw"], "optimizer=adamw is unknown; valid:"),
    (["transfer=yes"], "transfer=yes is unknown; valid: off, on"),
    (["device=tpu"], "device=tpu is unknown; valid: cpu, gpu"),
    (["factors=[optimiser]"], "factors: optimiser is not a setting that can be a factor; valid: a config group ("),
    (["factors=[seed]"], "factors: seed is not a setting that can be a factor"),
    (["experiment=full_grid"], "experiment=full_grid is unknown; valid: "),
    (["optimizer.learning_rate=-0.01"], "optimizer.learning_rate=-0.01 is invalid: it must be > 0"),
    (["optimizer.learning_rate=0"], "optimizer.learning_rate=0.0 is invalid: it must be > 0"),
    (["-m", "optimizer.learning_rate=0.1,-1"], "optimizer.learning_rate=-1.0 is invalid"),
    (["optimizer=momentum", "optimizer.momentum=1.0"], "optimizer.momentum=1.0 is invalid: it must be in [0, 1)"),
    (["optimizer=nag", "optimizer.momentum=-0.5"], "optimizer.momentum=-0.5 is invalid: it must be in [0, 1)"),
    (["epochs=0"], "epochs=0 is invalid: it must be an integer >= 1"),
    (["batch_size=-8"], "batch_size=-8 is invalid: it must be an integer >= 1"),
    (["early_stopping=on", "early_stopping.patience=-1"], "early_stopping.patience=-1 is invalid: it must be >= 0"),
    (["target_accuracy=95"], "target_accuracy=95.0 is invalid: it must be in (0, 1]"),
    (["target_accuracy=0"], "target_accuracy=0.0 is invalid: it must be in (0, 1]"),
    (["early_stopping=on", "early_stopping.monitor=val_acc"],
     "early_stopping.monitor=val_acc is unknown; valid: val_loss, val_accuracy, loss, accuracy"),
    (["dataset=npz", "dataset.path=/no/such/file.npz"], "dataset.path='/no/such/file.npz' does not exist"),
    (["dataset=npz"], "dataset=npz needs dataset.path="),
    (["device=gpu"], "device=gpu but no GPU is visible here"),
    (["transfer=on", "transfer.weights=imagenet"],
     "transfer.weights=imagenet needs a keras.applications model; valid: model=vgg16, resnet50, mobilenet_v2, "
     "efficientnet_b0"),
    (["transfer=on", "transfer.weights=/no/weights.h5"], "transfer.weights=/no/weights.h5 is invalid; valid:"),
    (["model=resnet"], "model=resnet is unknown; valid: custom, efficientnet_b0, mobilenet_v2, resnet50, small_cnn, "
     "vgg16"),
    (["model=vgg16", "model.image_size=16"], "model.image_size=16 is invalid: keras.applications backbones need >= 32"),
    (["model=resnet50", "model.pooling=mean"], "model.pooling=mean is unknown; valid: avg, max, flatten"),
    (["transfer=on", "transfer.fine_tune_layers=-1"], "transfer.fine_tune_layers=-1 is invalid"),
    (["dataset=folder"], "dataset=folder needs dataset.path=<a folder with one sub-folder of images per class>"),
    (["dataset=folder", "dataset.path=/no/such/folder"], "dataset.path=/no/such/folder is not a folder"),
    (["dataset=cifar10", "dataset.limit=0"], "dataset.limit=0 is invalid: >= 1 or null"),
    (["optimizer.lr=0.1"], "optimizer.lr is not a setting of optimizer=adam; valid: learning_rate, "),
    (["-m", "optimizer=sgd,adam", "optimizer.beta_1=0.8"], "optimizer.beta_1 is not a setting of optimizer=sgd"),
    (["epoch=5"], "epoch is not a setting of the config; valid: epochs, batch_size, seed"),
    (["dataset.trainsize=5"], "dataset.trainsize is not a setting of dataset=digits; valid: path, url"),
    (["epochs=abc"], "epochs=abc is invalid: Value 'abc' of type 'str' could not be converted to Integer"),
    (["-m", "epochs=2,abc"], "epochs=abc is invalid: Value 'abc' of type 'str' could not be converted to Integer"),
    (["-m", "optimizer=sgd,adam", "optimizer.learning_rate=fast"],
     "optimizer.learning_rate=fast is invalid: Value 'fast' of type 'str' could not be converted to Float"),
    (["+epoch=5"], "epoch is not a setting of the config; valid: epochs, batch_size, seed"),
    (["+optimizer.lr=0.1"], "optimizer.lr is not a setting of optimizer=adam; valid: learning_rate, "),
    (["order=random"], "order=random is unknown; valid: shuffled, grid"),
    (["-m", "hparams_search=optuna", "optimized_metric=test_accuracy"], "optimized_metric=test_accuracy is unknown; "
     "valid: time_to_target_seconds, best_val_accuracy, train_seconds, median_epoch_seconds (never test accuracy"),
    (["callbacks=[nowhere.to.be.found:Callback]"], "callbacks: module 'nowhere.to.be.found' of "),
    (["optimizer=adam,sgd"], "optimizer=adam,sgd sweeps several values but -m is missing: add -m to sweep"),
    (["dataset=folder", "dataset.path=~/data/flowers3"], "dataset.path=~/data/flowers3: the shell does not expand ~ "
     "inside key=value; write dataset.path=$HOME/data/flowers3 or quote it: 'dataset.path=\"~/data/flowers3\"'"),
    (["epochs=[1"], "epochs=[1 is not a valid override (no viable alternative at input '[1'); valid: key=value"),
]


THROUGH_THE_CLI = {
    ("optimizer=adamw",), ("-m", "optimizer=adam,adamw"), ("optimizer.learning_rate=-0.01",),
    ("-m", "optimizer.learning_rate=0.1,-1"), ("device=gpu",), ("epochs=abc",), ("optimizer=adam,sgd",),
    ("dataset=folder", "dataset.path=~/data/flowers3"), ("callbacks=[nowhere.to.be.found:Callback]",),
    ("optimizer.lr=0.1",), ("dataset=folder",),
}
"""One case of each kind of check, and of each place it is made (the command line, a single run, a
sweep's cells), through the real command line; the others run the same checks in this process."""


def first_error(args: list[str]) -> str | None:
    """What the command line's checks say of ``args``, in this process: ``check_arguments`` (as the entry
    runs it), then ``validate`` on every cell the overrides sweep (as the sweep checks its cells)."""
    from harness.config.presets import register_experiments
    from harness.config.schema import register_configs
    from harness.config.validate import ConfigError, _parse, _values, check_arguments, validate
    from hydra_plugins.harness_sweeper import harness_sweeper

    register_configs()  # as the entry does before its checks
    harness_sweeper.register()
    try:
        check_arguments(args, register_experiments())
        swept = [[f"{o.key_or_group}={v}" for v in _values(o)] or [o.input_line] for o in _parse(args)]
        for cell in itertools.product(*swept):
            validate(compose_config(list(cell)))
    except ConfigError as err:
        return str(err)
    return None


@pytest.mark.parametrize(("args", "message"), [c for c in CASES if tuple(c[0]) not in THROUGH_THE_CLI],
                         ids=[" ".join(a) for a, _ in CASES if tuple(a) not in THROUGH_THE_CLI])
def test_bad_input_is_named_with_what_is_valid(args, message):
    said = first_error(args)
    assert said is not None and message in said and "\n" not in said, said


@pytest.mark.parametrize(("args", "message"), [c for c in CASES if tuple(c[0]) in THROUGH_THE_CLI],
                         ids=[" ".join(a) for a, _ in CASES if tuple(a) in THROUGH_THE_CLI])
def test_bad_input_is_one_clear_line_before_any_training(tmp_path, args, message):
    done = run_harness([*args, "tracking=disabled"], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("harness: error: ") and message in lines[0]
    assert not list(tmp_path.rglob("result.json")) and not list(tmp_path.rglob("train.log"))
