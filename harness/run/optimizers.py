"""Build the Keras optimizer that an ``optimizer`` config names (see ``harness.config.schema``)."""

from __future__ import annotations

import keras

from harness.config.run_config import settings_of
from harness.config.schema import OptimizerConfig

LABEL_KEYS = ("name", "keras_class", "lr_scale")
"""Config keys that describe the option rather than set a Keras argument."""


def effective_learning_rate(cfg: OptimizerConfig) -> float:
    """The learning rate the optimizer gets: ``learning_rate`` times ``lr_scale``."""
    return cfg.learning_rate * cfg.lr_scale


def build_optimizer(cfg: OptimizerConfig) -> keras.optimizers.Optimizer:
    """``keras.optimizers.<keras_class>`` with every other key of ``cfg`` as a keyword argument, and the
    learning rate scaled by ``lr_scale``."""
    cls = getattr(keras.optimizers, cfg.keras_class)
    kwargs = settings_of(cfg, leaving_out=LABEL_KEYS)
    kwargs["learning_rate"] = effective_learning_rate(cfg)
    return cls(**kwargs)
