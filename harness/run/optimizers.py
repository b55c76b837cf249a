"""Build the Keras optimizer that an ``optimizer`` config names (see ``harness.config.schema``)."""

from __future__ import annotations

from typing import Any

import keras

LABEL_KEYS = ("name", "keras_class")
"""Config keys that describe the option rather than set a Keras argument."""


def build_optimizer(cfg: dict[str, Any]) -> keras.optimizers.Optimizer:
    """``keras.optimizers.<keras_class>`` with every other key of ``cfg`` as a keyword argument."""
    cls = getattr(keras.optimizers, cfg["keras_class"])
    kwargs = {k: v for k, v in cfg.items() if k not in LABEL_KEYS}
    return cls(**kwargs)
