"""Range checks for a composed run config, done before any training (types are Hydra's job).

Each check gives one line naming the bad value and what is valid, so that a typo in a 48-cell sweep
is caught in the first second instead of at cell 31. Works on the plain dict of a resolved config;
never imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")
MODES = ("auto", "min", "max")
TRACKING_MODES = ("auto", "online", "offline", "disabled")
TRANSFER_WEIGHTS = ("source_task",)


class ConfigError(ValueError):
    """A config value is out of range; the message is one line meant for the user."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for the first invalid value in ``cfg`` (a resolved run config)."""
    opt = cfg["optimizer"]
    lr = opt["learning_rate"]
    _check(lr > 0, f"optimizer.learning_rate={lr} is invalid: it must be > 0 (e.g. 0.001)")
    if "momentum" in opt:
        m = opt["momentum"]
        _check(0 <= m < 1, f"optimizer.momentum={m} is invalid: it must be in [0, 1) (e.g. 0.9)")
    for key in ("beta_1", "beta_2", "rho"):
        if key in opt:
            _check(0 <= opt[key] < 1, f"optimizer.{key}={opt[key]} is invalid: it must be in [0, 1)")
    if "epsilon" in opt:
        _check(opt["epsilon"] > 0, f"optimizer.epsilon={opt['epsilon']} is invalid: it must be > 0")

    for key in ("epochs", "batch_size"):
        _check(cfg[key] >= 1, f"{key}={cfg[key]} is invalid: it must be an integer >= 1")
    t = cfg["target_accuracy"]
    _check(0 < t <= 1, f"target_accuracy={t} is invalid: it must be in (0, 1], e.g. 0.9")
    _check(cfg["threads"] >= 0, f"threads={cfg['threads']} is invalid: 0 (TensorFlow's default) or more")

    es = cfg["early_stopping"]
    if es["enabled"]:
        _check(es["patience"] >= 0, f"early_stopping.patience={es['patience']} is invalid: it must be >= 0")
        _check(
            es["monitor"] in MONITORS,
            f"early_stopping.monitor={es['monitor']!r} is unknown; valid: {', '.join(MONITORS)}",
        )
        _check(es["mode"] in MODES, f"early_stopping.mode={es['mode']!r} is unknown; valid: {', '.join(MODES)}")

    tr = cfg["transfer"]
    if tr["enabled"]:
        _check(tr["pretrain_epochs"] >= 1, f"transfer.pretrain_epochs={tr['pretrain_epochs']} must be >= 1")
        weights = tr["weights"]
        _check(
            weights in TRANSFER_WEIGHTS or Path(weights).is_file(),
            f"transfer.weights={weights!r} is neither 'source_task' nor an existing weights file",
        )
        if weights == "source_task":
            _check(
                len(cfg["dataset"]["source_classes"]) >= 2,
                "transfer=on needs dataset.source_classes (at least 2 classes to pretrain on), got "
                f"{list(cfg['dataset']['source_classes'])}",
            )

    ds = cfg["dataset"]
    if ds["path"] is not None:
        _check(Path(ds["path"]).is_file(), f"dataset.path={ds['path']!r} does not exist (expected an .npz file)")
    for key in ("val_fraction", "test_fraction"):
        _check(0 < ds[key] < 1, f"dataset.{key}={ds[key]} is invalid: it must be in (0, 1)")
    _check(
        ds["val_fraction"] + ds["test_fraction"] < 1,
        "dataset.val_fraction + dataset.test_fraction must leave data to train on (sum < 1)",
    )
    if ds["train_size"] is not None:
        _check(ds["train_size"] >= 1, f"dataset.train_size={ds['train_size']} is invalid: >= 1 or null")
    overlap = set(ds["source_classes"]) & set(ds["target_classes"])
    _check(not overlap, f"dataset: classes {sorted(overlap)} are both source and target classes")

    mode = cfg["tracking"]["mode"]
    _check(mode in TRACKING_MODES, f"tracking.mode={mode!r} is unknown; valid: {', '.join(TRACKING_MODES)}")
