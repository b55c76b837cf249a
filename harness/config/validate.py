"""Range checks for a composed run config, done before any training (types are Hydra's job).

Each check gives one line naming the bad value and what is valid, so that a typo in a 48-cell sweep
is caught in the first second instead of at cell 31. Works on the plain dict of a resolved config;
never imports TensorFlow.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from harness.config.files import CONF_DIR
from harness.config.schema import BACKENDS, PRECISIONS
from harness.sweep.order import ORDERS
from harness.sweep.run_process import MODES as RUN_PROCESS_MODES

MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")
MODES = ("auto", "min", "max")
TRACKING_MODES = ("auto", "online", "offline", "disabled")
TRANSFER_WEIGHTS = ("source_task", "imagenet")
APPLICATION_MODELS = ("mobilenet_v2",)
"""Models built from ``keras.applications``, which have ImageNet weights."""
OPTIMIZED_METRICS = ("time_to_target_seconds", "best_val_accuracy", "train_seconds", "median_epoch_seconds")
"""What a search may optimise: validation and timing figures of a run."""


class ConfigError(ValueError):
    """A config value is out of range; the message is one line meant for the user."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def group_options(experiments: list[str]) -> dict[str, list[str]]:
    """Each config group of ``conf/`` (and ``experiment``) with its options."""
    groups = {p.name: sorted(f.stem for f in p.glob("*.yaml")) for p in CONF_DIR.iterdir()
              if p.is_dir() and p.name != "hydra"}
    groups["experiment"] = sorted(experiments)
    return groups


def _parse(arguments: list[str]) -> list[Any]:
    """The command line's plain overrides, parsed by Hydra (``-m``, ``--cfg`` and the like left out;
    empty on a syntax error, which Hydra itself explains)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides([a for a in arguments if not a.startswith("-") and "=" in a])
    except OverrideParseException:
        return []


def _values(override: Any) -> list[str]:
    """The values an override sets: several for a sweep (``a,b``), none for ranges and deletions."""
    if override.is_delete() or (override.is_sweep_override() and not override.is_discrete_sweep()):
        return []
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]


def check_group_choices(arguments: list[str], experiments: list[str]) -> None:
    """Raise ``ConfigError`` if a command-line override picks an option that its group lacks.

    Hydra reports this too, over several lines; this says it in one, for sweeps too
    (``optimizer=adam,adamw``).
    """
    groups = group_options(experiments)
    for override in _parse(arguments):
        options = groups.get(override.key_or_group)
        for value in _values(override) if options is not None else []:
            _check(value in options, f"{override.key_or_group}={value} is unknown; valid: {', '.join(options)}")


def _type_error(compose: Any, overrides: list[str], setting: str) -> str | None:
    """Why Hydra refuses ``setting`` on top of ``overrides`` (the first line of its message), or ``None``."""
    try:
        compose("config", overrides=[*overrides, setting])
    except Exception as err:  # Hydra wraps OmegaConf's ValidationError; its first line says it all
        cause = err.__cause__ or err
        return str(cause).strip().splitlines()[0]
    return None


def check_setting_names(arguments: list[str], experiments: list[str]) -> None:
    """Raise ``ConfigError`` if an override sets a key that the config lacks (``optimizer.lr=0.1``,
    ``epoch=5``, ``+epoch=5``), naming the valid keys, or a value of the wrong type (``epochs=abc``),
    for every option a sweep picks in that group and every value it sweeps. Hydra says these over
    several lines (and would let ``+key=`` add a setting that nothing reads). Composes the config with
    Hydra's compose API; needs the schema and experiments registered."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.types import OverrideType

    parsed = [o for o in _parse(arguments) if o.type != OverrideType.DEL]
    groups = group_options(experiments)
    chosen = {o.key_or_group: _values(o) for o in parsed if o.key_or_group in groups}
    base = [f"experiment={chosen['experiment'][0]}"] if chosen.get("experiment") else []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for override in parsed:
            path = override.key_or_group.split(".")
            if path[0] == "hydra" or "/" in path[0] or (path[0] in groups and len(path) < 2):
                continue  # Hydra's own settings, and group choices (checked above)
            group = path[0] if path[0] in groups else None
            for option in chosen.get(group, [None]) if group else [None]:
                picked = base + ([f"{group}={option}"] if option else [])
                cfg = compose("config", overrides=picked)
                node, where = (cfg[group], f"{group}={cfg[group].name}") if group else (cfg, "the config")
                key = path[1] if group else path[0]
                valid = ", ".join(k for k in node if k not in ("name", "keras_class", *groups))
                _check(key in node, f"{'.'.join(path[:2])} is not a setting of {where}; valid: {valid}")
                for value in _values(override):
                    reason = _type_error(compose, picked, f"{override.key_or_group}={value}")
                    _check(reason is None, f"{override.key_or_group}={value} is invalid: {reason}")


def check_arguments(arguments: list[str], experiments: list[str]) -> None:
    """Checks of the command line before Hydra composes anything: the configs are where they should be
    (``harness.config.files``), every group option exists, every key too."""
    _check(CONF_DIR.is_dir(), f"no configs at {CONF_DIR}: the installed package is incomplete; reinstall it")
    check_group_choices(arguments, experiments)
    check_plugins(arguments)
    check_setting_names(arguments, experiments)


PLUGINS = {("hparams_search", "optuna"): ("hydra_plugins.hydra_optuna_sweeper", "pip install -e '.[tuning]'"),
           ("hydra/launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher",
                                                  "pip install -e '.[launchers]'"),
           ("hydra/launcher", "parallel"): ("hydra_plugins.hydra_joblib_launcher", "pip install -e '.[launchers]'"),
           ("hydra/launcher", "slurm"): ("hydra_plugins.hydra_submitit_launcher", "pip install -e '.[launchers]'")}
"""Choices that need an optional Hydra plugin: the module it provides and how to install it."""


def check_plugins(arguments: list[str]) -> None:
    """Raise ``ConfigError`` if a choice needs a Hydra plugin that is not installed, saying how to get it
    (Hydra would say only that it cannot find the option)."""
    for override in _parse(arguments):
        for value in _values(override):
            module, install = PLUGINS.get((override.key_or_group, value), (None, None))
            if module is not None:
                try:
                    found = importlib.util.find_spec(module) is not None
                except ImportError:
                    found = False
                _check(found, f"{override.key_or_group}={value} needs a Hydra plugin that is not installed: {install}")


def validate(cfg: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for the first invalid value in ``cfg`` (a resolved run config)."""
    opt = cfg["optimizer"]
    lr = opt["learning_rate"]
    _check(lr > 0, f"optimizer.learning_rate={lr} is invalid: it must be > 0 (e.g. 0.001)")
    _check(opt["lr_scale"] > 0, f"optimizer.lr_scale={opt['lr_scale']} is invalid: it must be > 0 (e.g. 0.3)")
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
    _check(es["patience"] >= 0, f"early_stopping.patience={es['patience']} is invalid: it must be >= 0")
    monitors = ", ".join(MONITORS)
    _check(es["monitor"] in MONITORS, f"early_stopping.monitor={es['monitor']} is unknown; valid: {monitors}")
    _check(es["mode"] in MODES, f"early_stopping.mode={es['mode']} is unknown; valid: {', '.join(MODES)}")
    _check(es["start_from_epoch"] >= 0, f"early_stopping.start_from_epoch={es['start_from_epoch']} must be >= 0")

    tr = cfg["transfer"]
    if tr["enabled"]:
        _check(tr["pretrain_epochs"] >= 1, f"transfer.pretrain_epochs={tr['pretrain_epochs']} must be >= 1")
        weights = tr["weights"]
        _check(weights in TRANSFER_WEIGHTS or Path(weights).is_file(),
               f"transfer.weights={weights} is invalid; valid: source_task, imagenet, or an existing weights file")
        applications = ", ".join(APPLICATION_MODELS)
        _check(weights != "imagenet" or cfg["model"]["name"] in APPLICATION_MODELS,
               f"transfer.weights=imagenet needs a keras.applications model; valid: model={applications}")
        if weights == "source_task":
            _check(
                len(cfg["dataset"]["source_classes"]) >= 2,
                "transfer=on needs dataset.source_classes (at least 2 classes to pretrain on), got "
                f"{list(cfg['dataset']['source_classes'])}",
            )

    ds = cfg["dataset"]
    _check(ds["name"] != "npz" or bool(ds["path"]), "dataset=npz needs dataset.path=<a .npz file with arrays x and y>")
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
    _check(cfg["order"] in ORDERS, f"order={cfg['order']} is unknown; valid: {', '.join(ORDERS)}")
    _check(cfg["precision"] in PRECISIONS, f"precision={cfg['precision']} is unknown; valid: {', '.join(PRECISIONS)}")
    _check(cfg["steps_per_execution"] >= 1,
           f"steps_per_execution={cfg['steps_per_execution']} is invalid: it must be an integer >= 1")
    backend = cfg["backend"]
    _check(backend in BACKENDS, f"backend={backend} is unknown; valid: {', '.join(BACKENDS)}")
    _check(importlib.util.find_spec(BACKENDS[backend]) is not None,
           f"backend={backend} is not installed here; install it with: pip install -e '.[{backend}]' "
           "(or choose an installed backend, e.g. backend=tensorflow)")
    _check(cfg["run_process"] in RUN_PROCESS_MODES,
           f"run_process={cfg['run_process']} is unknown; valid: {', '.join(RUN_PROCESS_MODES)}")
    metric = cfg["optimized_metric"]
    _check(metric is None or metric in OPTIMIZED_METRICS, f"optimized_metric={metric} is invalid; valid: "
           f"{', '.join(OPTIMIZED_METRICS)} (never test accuracy: the test split is never used to choose)")
    for path in cfg["callbacks"]:
        check_callback_path(path)


def check_callback_path(path: str) -> None:
    """Raise ``ConfigError`` unless ``path`` reads ``package.module:Class`` and the module can be found
    (found, not imported: a callback module may import Keras, which this process never does)."""
    module, _, name = str(path).partition(":")
    _check(bool(module) and name.isidentifier(),
           f"callbacks: {path!r} is invalid; valid: an import path package.module:Class")
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    _check(found, f"callbacks: module {module!r} of {path!r} cannot be found (is it on PYTHONPATH?)")
