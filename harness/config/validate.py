"""Range checks for a composed run config, done before any training (types are Hydra's job).

Each check gives one line naming the bad value and what is valid, so that a typo in a 48-cell sweep
is caught in the first second instead of at cell 31. Works on the typed run config
(``harness.config.run_config``); never imports TensorFlow.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

from harness import keras_cache, user_code
from harness.cells import NOT_FACTORS
from harness.config.files import CONF_DIR
from harness.config.run_config import RunConfig, UserDatasetConfig, UserModelConfig
from harness.config.schema import (
    BACKENDS,
    CHOICES,
    MOBILENET_V2_IMAGENET_ALPHAS,
    ApplicationConfig,
    DatasetConfig,
    ModelConfig,
    OptimizerConfig,
)
from harness.interpreters import InterpreterError, interpreter_versions

MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")
TRANSFER_WEIGHTS = ("source_task", "imagenet")
CHOICE_NOTES = {"optimized_metric": " (never test accuracy: the test split is never used to choose)"}
"""Why a value users reach for is not among a setting's choices."""


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


def scaffold_settings(arguments: list[str], experiments: list[str]) -> list[str]:
    """``arguments`` with ``group.key=value`` turned into ``++group.key=value`` where Hydra would refuse to
    set a key that the group's composed option lacks:

    - ``group`` is swept (``model=vgg16,resnet50 model.image_size=96``) and ``key`` is not a setting of the
      option the sweep's first composition picks (the group's default, ``small_cnn``). Hydra composes that
      primary config from the defaults before it sweeps, and refuses such a key there
      (facebookresearch/hydra#283, #2888); ``++`` sets the key in every swept option, which has it
      (``check_setting_names``, run first, made sure), and adds it to the primary config, which no run uses.
    - the option is ``custom`` and ``key`` is a keyword of the user's function (``model.units=64``).

    Everything else is left as it is."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.types import OverrideType

    parsed = _parse(arguments)
    groups = group_options(experiments)
    swept = {o.key_or_group for o in parsed if o.key_or_group in groups and o.is_sweep_override()}
    settings = {o.input_line: o.key_or_group.split(".") for o in parsed if o.type == OverrideType.CHANGE}
    settings = {line: path for line, path in settings.items() if len(path) == 2 and path[0] in groups}
    if not settings:
        return arguments
    fixed = [o.input_line for o in parsed if o.key_or_group in groups and not o.is_sweep_override()]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        primary = compose("config", overrides=fixed)
    absent = {line for line, (group, key) in settings.items() if key not in primary.get(group, {})
              and (group in swept or _is_custom(primary, group))}
    return [f"++{argument}" if argument in absent else argument for argument in arguments]


def _is_custom(cfg: Any, group: str) -> bool:
    """Whether ``group`` of ``cfg`` is the user's own function (``model=custom``), whose keys are its keywords."""
    return group in user_code.CUSTOM_GROUPS and cfg[group].get("name") == "custom"


def _type_error(cfg: Any, setting: str) -> str | None:
    """Why Hydra refuses ``setting`` on the composed ``cfg`` (the first line of its message), or ``None``: the
    override applied to a copy as Hydra's composition applies it, without composing the config again."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        ConfigLoaderImpl._apply_overrides_to_config(OverridesParser.create().parse_overrides([setting]),
                                                    copy.deepcopy(cfg))
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
    composed: dict[tuple[str, ...], Any] = {}  # each option's config composed once, whatever number of settings
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for override in parsed:
            path = override.key_or_group.split(".")
            if path[0] == "hydra" or "/" in path[0] or (path[0] in groups and len(path) < 2):
                continue  # Hydra's own settings, and group choices (checked above)
            group = path[0] if path[0] in groups else None
            for option in chosen.get(group, [None]) if group else [None]:
                picked = base + ([f"{group}={option}"] if option else [])
                if tuple(picked) not in composed:
                    composed[tuple(picked)] = compose("config", overrides=picked)
                cfg = composed[tuple(picked)]
                node, where = (cfg[group], f"{group}={cfg[group].name}") if group else (cfg, "the config")
                key = path[1] if group else path[0]
                if group and key not in node and _is_custom(cfg, group):
                    continue  # a keyword of the user's function: checked against its signature (check_user_code)
                valid = ", ".join(k for k in node if k not in ("name", "keras_class", *groups))
                _check(key in node, f"{'.'.join(path[:2])} is not a setting of {where}; valid: {valid}")
                for value in _values(override):
                    reason = _type_error(cfg, f"{override.key_or_group}={value}")
                    _check(reason is None, f"{override.key_or_group}={value} is invalid: {reason}")


def check_grammar(arguments: list[str]) -> None:
    """Raise ``ConfigError`` if an override is not Hydra's ``key=value`` grammar (Hydra says so over several
    lines, naming the parser's exception), with the fix where it is a common one: a ``~`` path, which the
    shell does not expand after ``=``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for argument in (a for a in arguments if not a.startswith("-") and "=" in a):
        try:
            parser.parse_overrides([argument])
        except OverrideParseException as err:
            key, _, value = argument.partition("=")
            _check("~" not in value, f"{argument}: the shell does not expand ~ inside key=value; write "
                   f"{key}=$HOME{value.removeprefix('~')} or quote it: '{key}=\"{value}\"'")
            said = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"{argument} is not a valid override ({said}); valid: key=value, key=a,b to sweep "
                              "with -m, +key=value to add, ~key to delete; quote values with spaces or "
                              "special characters") from None


def check_sweeps_have_multirun(arguments: list[str]) -> None:
    """Raise ``ConfigError`` if an override sweeps (``optimizer=adam,sgd``) without ``-m``: Hydra then reads
    the comma-separated values as one and says "Ambiguous value" over several lines."""
    if "-m" in arguments or "--multirun" in arguments:
        return
    for override in _parse(arguments):
        if override.is_sweep_override() and not override.key_or_group.startswith("hydra."):
            raise ConfigError(f"{override.input_line} sweeps several values but -m is missing: add -m to sweep "
                              f"(python -m harness -m {override.input_line} ...)")


def check_arguments(arguments: list[str], experiments: list[str]) -> None:
    """Checks of the command line before Hydra composes anything: the configs are where they should be
    (``harness.config.files``), the grammar holds, a sweep has ``-m``, every group option exists, every
    key too."""
    _check(CONF_DIR.is_dir(), f"no configs at {CONF_DIR}: the installed package is incomplete; reinstall it")
    check_grammar(arguments)
    check_sweeps_have_multirun(arguments)
    check_group_choices(arguments, experiments)
    check_plugins(arguments)
    check_setting_names(arguments, experiments)


PLUGINS = {("hparams_search", "optuna"): ("hydra_plugins.hydra_optuna_sweeper", "pip install -e '.[tuning]'"),
           ("hydra/launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher",
                                                  "pip install -e '.[launchers]'"),
           ("hydra/launcher", "parallel"): ("hydra_plugins.hydra_joblib_launcher", "pip install -e '.[launchers]'"),
           ("hydra/launcher", "slurm"): ("hydra_plugins.hydra_submitit_launcher", "pip install -e '.[launchers]'"),
           ("hydra/launcher", "ray"): ("ray", "pip install -e '.[ray]'")}
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


def check_optimizer(opt: OptimizerConfig) -> None:
    """Raise ``ConfigError`` for an invalid value of the ``optimizer`` config."""
    lr = opt.learning_rate
    _check(lr > 0, f"optimizer.learning_rate={lr} is invalid: it must be > 0 (e.g. 0.001)")
    _check(opt.lr_scale > 0, f"optimizer.lr_scale={opt.lr_scale} is invalid: it must be > 0 (e.g. 0.3)")
    if hasattr(opt, "momentum"):
        m = opt.momentum
        _check(0 <= m < 1, f"optimizer.momentum={m} is invalid: it must be in [0, 1) (e.g. 0.9)")
    for key in ("beta_1", "beta_2", "rho"):
        if hasattr(opt, key):
            value = getattr(opt, key)
            _check(0 <= value < 1, f"optimizer.{key}={value} is invalid: it must be in [0, 1)")
    if hasattr(opt, "epsilon"):
        _check(opt.epsilon > 0, f"optimizer.epsilon={opt.epsilon} is invalid: it must be > 0")


def check_choices(cfg: RunConfig) -> None:
    """Raise ``ConfigError`` for a setting outside its fixed set of values (``CHOICES``); a setting the config
    lacks (``model.pooling`` of ``small_cnn``) or leaves unset (``optimized_metric: null``) has none to check."""
    for setting, valid in CHOICES.items():
        node: Any = cfg
        for part in setting.split("."):
            node = getattr(node, part, None)
        _check(node is None or node in valid,
               f"{setting}={node} is unknown; valid: {', '.join(valid)}{CHOICE_NOTES.get(setting, '')}")


def validate(cfg: RunConfig) -> None:
    """Raise ``ConfigError`` for the first invalid value in ``cfg``."""
    check_optimizer(cfg.optimizer)
    for key, value in (("epochs", cfg.epochs), ("batch_size", cfg.batch_size)):
        _check(value >= 1, f"{key}={value} is invalid: it must be an integer >= 1")
    t = cfg.target_accuracy
    _check(0 < t <= 1, f"target_accuracy={t} is invalid: it must be in (0, 1], e.g. 0.9")
    reported = reported_metrics(cfg.metrics)
    target = cfg.target
    _check(target.metric in reported, f"target.metric={target.metric} is not a metric the model reports; valid: "
           f"{', '.join(reported)} (metrics={list(cfg.metrics)})")
    _check(cfg.threads >= 0, f"threads={cfg.threads} is invalid: 0 (TensorFlow's default) or more")

    es = cfg.early_stopping
    _check(es.patience >= 0, f"early_stopping.patience={es.patience} is invalid: it must be >= 0")
    monitors = list(dict.fromkeys([*MONITORS, *reported, "target"]))  # target: follow target.metric
    _check(es.monitor in monitors,
           f"early_stopping.monitor={es.monitor} is unknown; valid: {', '.join(monitors)}")
    _check(es.start_from_epoch >= 0, f"early_stopping.start_from_epoch={es.start_from_epoch} must be >= 0")

    check_model(cfg.model)
    check_transfer(cfg)
    check_dataset(cfg.dataset)

    check_choices(cfg)
    check_factors(cfg)
    _check(cfg.steps_per_execution >= 1,
           f"steps_per_execution={cfg.steps_per_execution} is invalid: it must be an integer >= 1")
    backend = cfg.backend
    if cfg.python is None:
        _check(importlib.util.find_spec(BACKENDS[backend]) is not None,
               f"backend={backend} is not installed here; install it with: pip install -e '.[{backend}]' "
               "(or choose an installed backend, e.g. backend=tensorflow)")
    else:
        check_interpreter(cfg.python, backend)
    for path in cfg.callbacks:
        check_callback_path(path)


def check_factors(cfg: RunConfig) -> None:
    """Raise ``ConfigError`` for an entry of ``factors`` that names no setting of this run (a typo would
    otherwise label every cell with an empty level) or one that is never a factor (``seed``, ``sweep_name``)."""
    groups = [name for name, value in cfg.resolved.items() if isinstance(value, dict) and "name" in value
              and name not in NOT_FACTORS]
    for key in cfg.factors:
        node: Any = cfg.resolved
        for part in key.split("."):
            node = node.get(part, dataclasses.MISSING) if isinstance(node, dict) else dataclasses.MISSING
        _check(node is not dataclasses.MISSING and key.split(".")[0] not in NOT_FACTORS,
               f"factors: {key} is not a setting that can be a factor; valid: a config group "
               f"({', '.join(groups)}) or a setting's dotted key (optimizer.learning_rate, epochs)")


def check_interpreter(python: str, backend: str) -> None:
    """``python=`` names an interpreter that runs the harness, with Keras and ``backend`` installed."""
    try:
        versions = interpreter_versions(python, backend)
    except InterpreterError as err:
        raise ConfigError(str(err)) from None
    package = BACKENDS[backend]
    for name in ("keras", package):
        _check(versions.get(name) is not None, f"python={python} has no {name} installed; install it there "
               f"({python} -m pip install -e '.[{backend}]'), or choose another interpreter")


def reported_metrics(metrics: list[str]) -> list[str]:
    """What a model compiled with ``metrics`` reports per epoch: the loss and each metric, on the
    validation split (``val_``) and on the training batches."""
    names = ["loss", *(str(m) for m in metrics)]
    return [f"val_{name}" for name in names] + names


def check_user_code(group: UserModelConfig | UserDatasetConfig, setting: str) -> None:
    """``model=custom`` / ``dataset=custom``: a ``_target_`` is given, its module and function exist, and
    the function takes every keyword the group sets (read, not imported: ``harness.user_code``)."""
    target = group._target_
    _check(bool(target), f"{setting}=custom needs {setting}._target_=package.module.function (your function; e.g. "
           f"{setting}._target_=mylab.{'models.mlp' if setting == 'model' else 'data.load'})")
    try:
        user_code.check(str(target), f"{setting}._target_")
    except user_code.UserCodeError as err:
        raise ConfigError(str(err)) from None
    given = list(group.keywords)
    refused = user_code.refused_keyword(setting, str(target), given, user_code.parameters(str(target)))
    _check(refused is None, str(refused))


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


def check_model(model: ModelConfig | UserModelConfig) -> None:
    """The head's and the backbone's settings, or the user's own model function."""
    if model.name == "custom":
        check_user_code(model, "model")
        return
    units = model.dense_units
    _check(units >= 0, f"model.dense_units={units} is invalid: 0 (no hidden layer) or more")
    _check(0 <= model.dropout < 1, f"model.dropout={model.dropout} is invalid: it must be in [0, 1)")
    if model.name in keras_cache.APPLICATIONS:
        size = model.image_size
        _check(size is None or size >= 32, f"model.image_size={size} is invalid: keras.applications backbones need "
               f">= 32 (null: the native {keras_cache.APPLICATIONS[model.name].native_size})")


def imagenet_source(model: ApplicationConfig) -> tuple[Path, str]:
    """Where Keras caches the ImageNet weights of application ``model``, and where it downloads them from."""
    size = model.image_size or keras_cache.APPLICATIONS[model.name].native_size
    alpha = getattr(model, "alpha", None)  # the width of the models that have one (MobileNetV2); None for the others
    return (keras_cache.imagenet_weights_file(model.name, alpha, size),
            keras_cache.imagenet_weights_url(model.name, alpha, size))


def check_transfer(cfg: RunConfig) -> None:
    """Where ``transfer=on`` gets its weights from, and that it can get them: ImageNet weights cached or
    downloadable (checked here, in a second, rather than failing every cell), a readable weights file,
    or source classes to pretrain on."""
    tr, model = cfg.transfer, cfg.model
    if not tr.enabled or model.name == "custom":  # a custom model gives its own pretrained part
        return
    _check(tr.pretrain_epochs >= 1, f"transfer.pretrain_epochs={tr.pretrain_epochs} must be >= 1")
    _check(tr.fine_tune_layers >= 0, f"transfer.fine_tune_layers={tr.fine_tune_layers} is invalid: 0 (frozen) "
           "or the number of top layers to fine-tune")
    _check(tr.head_epochs >= 1, f"transfer.head_epochs={tr.head_epochs} is invalid: it must be >= 1")
    _check(tr.fine_tune_learning_rate > 0,
           f"transfer.fine_tune_learning_rate={tr.fine_tune_learning_rate} is invalid: it must be > 0 (e.g. 1e-5)")
    weights = tr.weights
    _check(weights in TRANSFER_WEIGHTS or Path(weights).is_file(),
           f"transfer.weights={weights} is invalid; valid: source_task, imagenet, or an existing weights file")
    applications = ", ".join(keras_cache.APPLICATIONS)
    if weights == "imagenet":
        _check(model.name in keras_cache.APPLICATIONS,
               f"transfer.weights=imagenet needs a keras.applications model; valid: model={applications}")
        alpha = getattr(model, "alpha", None)
        _check(model.name != "mobilenet_v2" or alpha in MOBILENET_V2_IMAGENET_ALPHAS,
               f"model.alpha={alpha} has no ImageNet weights; valid: "
               f"{', '.join(map(str, MOBILENET_V2_IMAGENET_ALPHAS))}")
        cached, url = imagenet_source(model)
        _check(cached.is_file() or keras_cache.reachable(url),
               f"transfer.weights=imagenet: model={model.name} needs Keras' ImageNet weights {cached.name}, which "
               f"are not in Keras' cache ({cached.parent}) and cannot be downloaded here (no network); put the file "
               f"there (from {url}) or pass a local weights file: transfer.weights=FILE")
    elif weights != "source_task":
        _check(not weights.endswith((".h5", ".hdf5")) or _is_hdf5(weights),
               f"transfer.weights={weights} is not an HDF5 weights file (expected what model.save_weights writes)")
    else:
        source = list(getattr(cfg.dataset, "source_classes", []))
        _check(cfg.dataset.name != "custom", "transfer=on with dataset=custom and a built-in model needs "
               "transfer.weights=imagenet or a weights file (your data has no source classes to pretrain on), or "
               "model=custom with its own pretrained part")
        _check(len(source) >= 2, "transfer=on needs dataset.source_classes (at least 2 classes to pretrain on), got "
               f"{source}")


def _is_hdf5(path: str) -> bool:
    import h5py

    return bool(h5py.is_hdf5(path))


def check_dataset(ds: DatasetConfig | UserDatasetConfig) -> None:
    """The dataset's settings, and that its files are there (or, for Keras' datasets, can be fetched), or
    the user's own data function."""
    if ds.name == "custom":
        check_user_code(ds, "dataset")
        check_split(ds)
        return
    _check(ds.name != "npz" or bool(ds.path or ds.url),
           "dataset=npz needs dataset.path=<a .npz file with arrays x and y> (or dataset.url=<where to download it>)")
    _check(ds.name != "folder" or bool(ds.path),
           "dataset=folder needs dataset.path=<a folder with one sub-folder of images per class>")
    _check(ds.load != "stream" or ds.name == "folder",
           f"dataset.load=stream applies to dataset=folder only (dataset={ds.name} is held in memory); valid "
           "here: auto, memory")
    if ds.name == "folder":
        check_image_folder(ds)
    elif ds.path is not None:
        _check(Path(ds.path).is_file(), f"dataset.path={ds.path!r} does not exist (expected an .npz file)")
    check_split(ds)
    if ds.image_size is not None:
        _check(ds.image_size >= 1, f"dataset.image_size={ds.image_size} is invalid: >= 1 or null")
    overlap = set(ds.source_classes) & set(ds.target_classes)
    _check(not overlap, f"dataset: classes {sorted(overlap)} are both source and target classes")
    if ds.name in keras_cache.KERAS_DATASETS:
        missing = [path for path in keras_cache.dataset_files(ds.name) if not path.is_file()]
        url = keras_cache.KERAS_DATASETS[ds.name][0][1]
        _check(not missing or keras_cache.reachable(url),
               f"dataset={ds.name}: {missing[0] if missing else ''} is not in Keras' cache "
               f"({keras_cache.keras_home() / 'datasets'}) and cannot be downloaded here (no network); put Keras' "
               f"files there (from {url}) or set KERAS_HOME to a folder that has them")


def check_split(ds: DatasetConfig | UserDatasetConfig) -> None:
    """How a dataset is split and capped: fractions that leave data to train on, sizes >= 1."""
    for key in ("val_fraction", "test_fraction"):
        fraction = getattr(ds, key)
        _check(0 < fraction < 1, f"dataset.{key}={fraction} is invalid: it must be in (0, 1)")
    _check(
        ds.val_fraction + ds.test_fraction < 1,
        "dataset.val_fraction + dataset.test_fraction must leave data to train on (sum < 1)",
    )
    for key in ("train_size", "limit"):
        size = getattr(ds, key)
        if size is not None:
            _check(size >= 1, f"dataset.{key}={size} is invalid: >= 1 or null")


def check_image_folder(ds: DatasetConfig) -> None:
    """A ``folder`` dataset: the folder exists, has at least two class folders, each with images (the
    images themselves are read in the run, which names any file it cannot decode)."""
    from harness.config.folders import IMAGE_SUFFIXES, class_folders, image_files

    root = Path(ds.path).expanduser()
    _check(root.is_dir(), f"dataset.path={ds.path} is not a folder (expected one sub-folder of images per class)")
    folders = class_folders(ds)
    for folder in folders:
        _check(folder.is_dir(), f"dataset.class_folders: {folder.name} is not a folder in {root}; valid: "
               f"{', '.join(p.name for p in class_folders(dataclasses.replace(ds, class_folders=[])))}")
        _check(bool(image_files(folder)), f"dataset.path: class folder {folder} has no images "
               f"({', '.join(IMAGE_SUFFIXES)})")
    _check(len(folders) >= 2, f"dataset.path={ds.path} has {len(folders)} class folder(s) "
           f"{[p.name for p in folders]}; a classification needs at least 2 (one sub-folder of images per class)")
