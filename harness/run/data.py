"""Datasets: load images and labels, pick the source or target classes, split train/validation/test.

The split is stratified and seeded by ``dataset.split_seed`` alone, so every run of a sweep (every
optimizer, every seed) trains and is tested on the same examples: differences between cells come from
the factors, not from the data they happened to draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Split:
    """Images ``x`` (N, H, W, C) as float32 in [0, 1] and labels ``y`` (N,) as int32 in [0, classes)."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Task:
    """A classification task: its splits and the original labels its classes stand for."""

    train: Split
    val: Split
    test: Split
    classes: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: 1,797 8x8 grey images with 17 levels (0-16), no download."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images / 16.0, digits.target


def load_npz_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A ``.npz`` file with ``x`` (N, H, W[, C]) and ``y`` (N,), or Keras' layout ``x_train``,
    ``y_train``, ``x_test``, ``y_test`` (joined: the harness makes its own splits); integer images
    are scaled by 1/255."""
    try:
        archive = np.load(path)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from err
    with archive as data:
        if {"x_train", "y_train", "x_test", "y_test"} <= set(data.files):
            x = np.concatenate([data["x_train"], data["x_test"]])
            y = np.concatenate([data["y_train"], data["y_test"]])
        elif {"x", "y"} <= set(data.files):
            x, y = data["x"], data["y"]
        else:
            raise ValueError(f"{path}: need arrays x and y (or x_train, y_train, x_test, y_test); found {data.files}")
    if np.issubdtype(x.dtype, np.integer):
        x = x / 255.0
    if len(x) != len(y):
        raise ValueError(f"{path}: x has {len(x)} examples but y has {len(y)}")
    return x, y


def download(url: str, sha256: str | None, cache_dir: Path) -> Path:
    """The file at ``url``, downloaded once into ``cache_dir/datasets`` by Keras' ``get_file``, which
    checks ``sha256`` and downloads again when the cached copy does not match. Any scheme urllib
    reads works (``https://``, ``file://``)."""
    import keras

    name = Path(url.split("?")[0]).name or "dataset.npz"
    cache_dir.mkdir(parents=True, exist_ok=True)
    return Path(keras.utils.get_file(fname=name, origin=url, file_hash=sha256, cache_dir=str(cache_dir),
                                     cache_subdir="datasets"))


def load_arrays(cfg: dict[str, Any], cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """All images (N, H, W, C) float32 and labels (N,) int of the dataset that ``cfg`` names: the
    bundled digits, a local ``path``, or a ``url`` downloaded into ``cache_dir``."""
    if cfg["name"] == "digits":
        x, y = load_digits_arrays()
    elif cfg["path"]:
        x, y = load_npz_arrays(cfg["path"])
    elif cfg["url"]:
        x, y = load_npz_arrays(download(cfg["url"], cfg["sha256"], Path(cache_dir)))
    else:
        raise ValueError(f"dataset {cfg['name']!r} has neither a path nor a url")
    x = np.asarray(x, dtype="float32")
    if x.ndim == 3:
        x = x[..., None]
    return x, np.asarray(y).astype("int64")


def make_task(x: np.ndarray, y: np.ndarray, classes: list[int], cfg: dict[str, Any], train_size: int | None) -> Task:
    """The task of telling ``classes`` apart, split by ``cfg``'s fractions and ``split_seed``."""
    keep = np.isin(y, classes)
    if not keep.any():
        raise ValueError(f"dataset {cfg['name']!r} has no examples of classes {classes}")
    x, labels = x[keep], np.searchsorted(np.asarray(sorted(classes)), y[keep]).astype("int32")
    seed = cfg["split_seed"]
    held_out = cfg["val_fraction"] + cfg["test_fraction"]
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, labels, test_size=held_out, stratify=labels, random_state=seed
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=cfg["test_fraction"] / held_out, stratify=y_rest, random_state=seed
    )
    if train_size is not None and train_size < len(x_train):
        x_train, _, y_train, _ = train_test_split(
            x_train, y_train, train_size=train_size, stratify=y_train, random_state=seed
        )
    return Task(Split(x_train, y_train), Split(x_val, y_val), Split(x_test, y_test), tuple(sorted(classes)))


def target_classes(cfg: dict[str, Any], y: np.ndarray) -> list[int]:
    """The classes runs learn: ``target_classes``, or every label not used as a source class."""
    if cfg["target_classes"]:
        return list(cfg["target_classes"])
    return sorted(set(np.unique(y).tolist()) - set(cfg["source_classes"]))


def load_tasks(cfg: dict[str, Any], cache_dir: Path) -> tuple[Task, Task | None]:
    """The target task every run trains on (``train_size`` caps its training examples) and the source
    task the transfer feature extractor is pretrained on (``source_classes``, all their examples;
    ``None`` without source classes). The data is read once for both."""
    x, y = load_arrays(cfg, cache_dir)
    target = make_task(x, y, target_classes(cfg, y), cfg, cfg["train_size"])
    source = make_task(x, y, list(cfg["source_classes"]), cfg, None) if cfg["source_classes"] else None
    return target, source
