"""What Keras is given to train and evaluate on: a split's arrays, or, for a streamed folder (its
images left on disk, ``harness.run.data.DiskRows``), a ``keras.utils.PyDataset`` that reads each batch
from disk when Keras asks for it. Backend-neutral: the same under TensorFlow, JAX and PyTorch.

Timing: a streamed batch is read inside the timed epoch (reading the data is then part of training on
it, as it is for any data that does not fit in memory); the result says ``data_streamed``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import keras
import numpy as np

from harness.run.data import DiskRows, Split


class DiskBatches(keras.utils.PyDataset):
    """The batches of a streamed ``split``, read from disk one at a time.

    Args:
        split: a split whose ``x`` is ``DiskRows``.
        batch_size: examples per batch (the last may be smaller).
        seed: with a seed, the examples are shuffled, anew each epoch (as Keras shuffles arrays);
            ``None`` keeps their order (validation, test).
    """

    def __init__(self, split: Split, batch_size: int, seed: int | None = None) -> None:
        super().__init__()
        self.split, self.batch_size = split, batch_size
        self.rng = np.random.default_rng(seed) if seed is not None else None
        self.order = self._order()

    def _order(self) -> np.ndarray:
        count = len(self.split.y)
        return self.rng.permutation(count) if self.rng is not None else np.arange(count)

    def __len__(self) -> int:
        return math.ceil(len(self.split.y) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        # in file order within the batch: one pass over the disk (a batch's order does not change its gradient)
        which = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        return self.split.x.rows(which), self.split.y[which]  # type: ignore[union-attr]

    def on_epoch_end(self) -> None:
        self.order = self._order()


def inputs(split: Split, batch_size: int, seed: int | None = None) -> dict[str, Any]:
    """``fit``/``evaluate`` keyword arguments for ``split``: its arrays and ``batch_size``, or, streamed,
    its ``DiskBatches`` (shuffled each epoch with a ``seed``), or the user's own dataset of batches as given
    (a ``tf.data.Dataset`` or ``keras.utils.PyDataset``: ``y`` is ``None``)."""
    if split.y is None:
        return {"x": split.x}
    if isinstance(split.x, DiskRows):
        return {"x": DiskBatches(split, batch_size, seed)}
    return {"x": split.x, "y": split.y, "batch_size": batch_size}


INPUT_BOUND_SHARE = 0.5
"""A run is input-bound where its training input alone takes at least this share of a steady epoch: most of
it. (TensorFlow's profiler calls a step moderately / highly input-bound at 5 % / 20 % of its time spent
waiting for input; this measures the input alone, which prefetching may hide behind the computation up to
the whole epoch, so only a majority says the model is waiting on its data.)"""


def input_epoch_seconds(given: dict[str, Any], steps: int) -> float:
    """Seconds to produce ``steps`` training batches of ``given`` (``inputs``' arguments) alone, with no
    model, as ``tfds.benchmark`` times a pipeline: a ``PyDataset``'s batches by index (one at a time: a
    dataset fed by several workers during ``fit`` is timed slower than it is fed), a ``tf.data.Dataset``
    iterated, arrays sliced."""
    x = given["x"]
    started = time.perf_counter()
    if isinstance(x, keras.utils.PyDataset):
        for index in range(steps):
            x[index]
    elif "y" not in given:  # a tf.data.Dataset of batches
        for _ in x.take(steps):
            pass
    else:
        size = given["batch_size"]
        for index in range(steps):
            x[index * size:(index + 1) * size], given["y"][index * size:(index + 1) * size]
    return time.perf_counter() - started


def validation_data(split: Split, batch_size: int) -> Any:
    """``fit``'s ``validation_data`` for ``split``: ``(x, y)``, or its ``DiskBatches`` (Keras then batches
    validation as the streamed batches are)."""
    given = inputs(split, batch_size)
    return (given["x"], given["y"]) if "y" in given else given["x"]
