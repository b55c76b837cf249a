"""The user's own model and data, in the run process: the functions that ``model._target_`` and
``dataset._target_`` name (``model=custom``, ``dataset=custom``), called as lightning-hydra-template's
``hydra.utils.instantiate`` would, with what the harness knows passed only where the function accepts it.

A model function gets ``input_shape``, ``num_classes`` (``None`` for a regression) and ``pretrained``
(transfer on or off) where its signature has them, and every other ``model.*`` setting as a keyword; it
returns an uncompiled ``keras.Model``, which the harness compiles with the optimizer under test. With
transfer on, the layer named ``model.frozen_layer`` (``feature_extractor`` by default: the name the
built-in models give their pretrained part) is frozen before compiling.

A data function gets every ``dataset.*`` setting that is not the harness's own (``user_code.HARNESS_SETTINGS``)
as a keyword and returns either ``(x, y)`` arrays, which the harness splits as it splits every dataset
(seeded by ``split_seed``; stratified for integer labels; ``limit`` and ``train_size`` apply), or a
mapping with ``train``, ``val`` and optionally ``test``, each ``(x, y)``, a ``tf.data.Dataset`` or a
``keras.utils.PyDataset`` of ``(x, y)`` batches, used as given (sizes then come from the data).
Integer labels make a classification, other numbers a regression.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.config.run_config import UserDatasetConfig, UserModelConfig
from harness.run.data import Split, Task, limit_examples, make_task
from harness.user_code import refused_keyword


def _function(target: str) -> Any:
    from hydra.utils import get_method

    return get_method(target)


class KeywordError(TypeError):
    """A ``model.*``/``dataset.*`` setting that the user's function does not take."""


def _call(group: str, target: str, offered: dict[str, Any], settings: dict[str, Any]) -> Any:
    """``target(**settings, **the offered arguments its signature accepts)``; ``TypeError`` naming the
    function and its parameters where it takes no keyword of ``settings`` (``+model.units=64``)."""
    function = _function(target)
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    refused = refused_keyword(group, target, list(settings), None if takes_any or not parameters else tuple(parameters))
    if refused:
        raise KeywordError(refused)
    given = {name: value for name, value in offered.items() if takes_any or name in parameters}
    return function(**settings, **given)


def accepts(target: str, argument: str) -> bool:
    """Whether the function ``target`` takes ``argument`` (by name, or through ``**kwargs``)."""
    parameters = inspect.signature(_function(target)).parameters
    return argument in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def build_model(cfg: UserModelConfig, task: Task, pretrained: bool) -> Any:
    """The user's model for ``task``, its ``frozen_layer`` frozen where ``pretrained`` (transfer on);
    ``TypeError``/``ValueError`` naming the function where it is not a usable ``keras.Model``."""
    import keras

    target = str(cfg._target_)
    if pretrained and not accepts(target, "pretrained"):
        raise ValueError(f"transfer=on with model._target_={target}: the function takes no 'pretrained' argument, "
                         "so it cannot give a pretrained model; add pretrained=False to its signature")
    num_classes = task.num_classes or None
    try:
        model = _call("model", target, {"input_shape": task.input_shape, "num_classes": num_classes,
                                        "pretrained": pretrained}, cfg.keywords)
    except KeywordError:
        raise
    except (TypeError, ValueError) as err:
        if num_classes is None and accepts(target, "num_classes"):
            said = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"model._target_={target} failed with num_classes=None, which a regression passes (the "
                             "targets are numbers, not integer classes): give it an output for that case, e.g. "
                             f"Dense(1); it said: {said}") from err
        raise
    if not isinstance(model, keras.Model):
        raise TypeError(f"model._target_={target} returned {type(model).__name__}, not a keras.Model")
    if pretrained:
        names = [layer.name for layer in model.layers]
        if cfg.frozen_layer not in names:
            raise ValueError(f"transfer=on with model._target_={target}: the model has no layer named "
                             f"{cfg.frozen_layer!r} to freeze (model.frozen_layer); its layers: {', '.join(names)}")
        model.get_layer(cfg.frozen_layer).trainable = False
    return model


def load_task(cfg: UserDatasetConfig) -> Task:
    """The user's data as the ``Task`` every run trains on (``limit`` and ``train_size`` apply to arrays)."""
    target = str(cfg._target_)
    data = _call("dataset", target, {}, cfg.keywords)
    if isinstance(data, Mapping):
        missing = [part for part in ("train", "val") if part not in data]
        if missing:
            raise ValueError(f"dataset._target_={target} returned a mapping without {', '.join(missing)}; it needs "
                             "train and val (and may have test)")
        splits = {part: _split(data[part], f"{target}()[{part!r}]")
                  for part in ("train", "val", "test") if part in data}
        return _given_task(splits)
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(f"dataset._target_={target} returned {type(data).__name__}; valid: (x, y) arrays, or a mapping "
                        "with train, val (and test), each (x, y), a tf.data.Dataset or a keras.utils.PyDataset")
    x, y = (np.asarray(part) for part in data)
    if len(x) != len(y):
        raise ValueError(f"dataset._target_={target}: x has {len(x)} examples but y has {len(y)}")
    y = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 and y.shape[1] == 1 else y
    if _is_classes(y):
        y = y.astype("int64")
        x, y = limit_examples(x, y, cfg.limit, cfg.split_seed)
        return make_task(x, y, sorted(int(c) for c in np.unique(y)), cfg, cfg.train_size)
    return _regression_task(x.astype("float32") if x.dtype == np.float64 else x, y.astype("float32"), cfg)


def _is_classes(y: np.ndarray) -> bool:
    return y.ndim == 1 and np.issubdtype(y.dtype, np.integer)


def _regression_task(x: np.ndarray, y: np.ndarray, cfg: UserDatasetConfig) -> Task:
    """A regression's seeded split (no strata: the targets are numbers)."""
    from sklearn.model_selection import train_test_split

    seed, held_out = cfg.split_seed, cfg.val_fraction + cfg.test_fraction
    index = np.arange(len(y))
    if cfg.limit is not None and cfg.limit < len(y):
        index, _ = train_test_split(index, train_size=cfg.limit, random_state=seed)
    train, rest = train_test_split(index, test_size=held_out, random_state=seed)
    val, test = train_test_split(rest, test_size=cfg.test_fraction / held_out, random_state=seed)
    if cfg.train_size is not None and cfg.train_size < len(train):
        train = train[:cfg.train_size]
    return Task(*(Split(x[part], y[part]) for part in (train, val, test)), classes=())


def _split(part: Any, what: str) -> Split:
    """One given split: ``(x, y)`` arrays, or a dataset of batches (``Split.y`` is then ``None``)."""
    if isinstance(part, tuple | list) and len(part) == 2:
        x, y = (np.asarray(a) for a in part)
        return Split(x.astype("float32") if x.dtype == np.float64 else x, y)
    is_batches = hasattr(part, "element_spec") or (hasattr(part, "__getitem__") and hasattr(part, "__len__"))
    if is_batches and not isinstance(part, np.ndarray | str | bytes):  # a tf.data.Dataset or a PyDataset
        return Split(part, None)
    raise TypeError(f"{what} is {type(part).__name__}; valid: (x, y) arrays, a tf.data.Dataset or a "
                    "keras.utils.PyDataset")


def batches_of(split: Split) -> Any:
    """The ``(x, y)`` batches of a split given as a dataset (a ``tf.data.Dataset`` or a ``PyDataset``)."""
    if hasattr(split.x, "element_spec"):
        return split.x.as_numpy_iterator()
    return (split.x[i] for i in range(len(split.x)))


def _given_task(splits: dict[str, Split]) -> Task:
    """A task from already-split data: classes (or a regression) and sizes read from the training split
    (one pass over its batches where it is a dataset); without ``test``, the validation split tests."""
    train = splits["train"]
    if train.y is not None:
        labels, examples, shape = train.y, len(train.y), tuple(np.asarray(train.x).shape[1:])
    else:
        seen, examples, shape = [], 0, None
        for x, y in batches_of(train):
            seen.append(np.asarray(y).reshape(len(y), -1)[:, 0] if np.ndim(y) > 1 else np.asarray(y))
            examples += len(y)
            shape = shape or tuple(np.asarray(x).shape[1:])
        labels = np.concatenate(seen) if seen else np.zeros(0)
    classes = tuple(sorted(int(c) for c in np.unique(labels))) if _is_classes(np.asarray(labels)) else ()
    if classes and classes != tuple(range(len(classes))):
        classes = tuple(range(max(classes) + 1))  # given data keeps its labels: 0 .. the largest
    return Task(train, splits["val"], splits.get("test", splits["val"]), classes=classes,
                given_shape=shape, given_examples=examples)


def steps_per_epoch(task: Task, batch_size: int) -> int | None:
    """Training batches per epoch: the dataset's own where the user gave one (``None`` where a
    ``tf.data.Dataset`` does not know its length), else ``ceil(examples / batch_size)``."""
    split = task.train
    if split.y is None:
        length = len(split.x) if hasattr(split.x, "__len__") else int(split.x.cardinality())
        return length if length > 0 else None
    return math.ceil(len(split.y) / batch_size)
