"""Your own model and data, the way a user writes them: plain functions named in config by ``_target_``.

Shipped with the harness (importable as ``harness.examples.tabular``) so that its presets run anywhere:

    python -m harness -m experiment=tabular                 # a wine classifier, optimizers x early stopping
    python -m harness -m experiment=tabular_regression      # diabetes, time to val_mae <= 0.65 (in std. devs)

Copy this file into your own package (say ``mylab/``) and point the config at it:

    python -m harness -m model=custom model._target_=mylab.models.mlp \
        dataset=custom dataset._target_=mylab.data.load optimizer=adam,sgd

A model function gets ``input_shape`` and ``num_classes`` (``None`` for a regression) where it accepts them,
``pretrained`` (transfer on/off) where it accepts that, and every further ``model.*`` setting as a keyword;
it returns an uncompiled ``keras.Model``. A data function returns ``(x, y)`` arrays (the harness splits
them) or a mapping with ``train``, ``val`` and optionally ``test``, each ``(x, y)``, a ``tf.data.Dataset``
or a ``keras.utils.PyDataset``. The data is real: scikit-learn ships both sets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def mlp(input_shape: tuple[int, ...], num_classes: int | None, units: int = 64, layers: int = 2,
        pretrained: bool = False, weights: str | None = None) -> object:
    """A multilayer perceptron: ``layers`` dense ReLU layers of ``units`` (the part named
    ``feature_extractor``, which the harness freezes when ``pretrained``), then a softmax over
    ``num_classes`` or, for a regression (``num_classes=None``), one linear output.

    ``pretrained``: load the feature extractor's weights from ``weights`` (a ``.weights.h5`` file saved
    from the same extractor, e.g. trained on related data)."""
    import keras

    base = keras.Sequential([keras.Input(shape=input_shape),
                             *(keras.layers.Dense(units, activation="relu") for _ in range(layers))],
                            name="feature_extractor")
    if pretrained:
        if not weights or not Path(weights).is_file():
            raise ValueError(f"pretrained=True needs model.weights=FILE (a saved feature extractor); got {weights!r}")
        base.load_weights(weights)
    inputs = keras.Input(shape=input_shape)
    features = base(inputs, training=False) if pretrained else base(inputs)
    outputs = (keras.layers.Dense(num_classes, activation="softmax")(features) if num_classes
               else keras.layers.Dense(1)(features))
    return keras.Model(inputs, outputs, name="mlp")


def _standardised(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)).astype("float32")


def wine() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's wine data: 178 wines, 13 chemical measurements, 3 cultivars (integer labels)."""
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    return _standardised(x), y.astype("int64")


def diabetes() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's diabetes data: 442 patients, 10 measurements, disease progression after a year
    (a number: a regression), in standard deviations from its mean (so that every optimizer's default
    learning rate suits it: in raw units, SGD's squared errors diverge)."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return _standardised(x), _standardised(y[:, None])[:, 0]


def wine_split(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The wine data already split (60 / 20 / 20 %, seeded): the harness trains on it as given."""
    x, y = wine()
    order = np.random.default_rng(seed).permutation(len(y))
    cut = [int(len(y) * 0.6), int(len(y) * 0.8)]
    parts = np.split(order, cut)
    return {name: (x[part], y[part]) for name, part in zip(("train", "val", "test"), parts, strict=True)}


def wine_tf_data(batch_size: int = 32) -> dict[str, object]:
    """The split wine data as batched ``tf.data.Dataset`` pipelines (the training one shuffled)."""
    import tensorflow as tf

    split = wine_split()
    return {name: tf.data.Dataset.from_tensor_slices(arrays).shuffle(256, seed=0).batch(batch_size)
            if name == "train" else tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size)
            for name, arrays in split.items()}


def wine_pydataset(batch_size: int = 32) -> dict[str, object]:
    """The split wine data as ``keras.utils.PyDataset`` sequences of batches."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
            super().__init__()
            self.x, self.y = x, y

        def __len__(self) -> int:
            return -(-len(self.y) // batch_size)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            part = slice(index * batch_size, (index + 1) * batch_size)
            return self.x[part], self.y[part]

    return {name: Batches(*arrays) for name, arrays in wine_split().items()}
