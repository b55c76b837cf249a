"""The ``keras.applications`` backbones (``harness.keras_cache.APPLICATIONS``): building one as a
feature extractor, where its weights come from, and unfreezing its top layers for fine-tuning.

Kept apart from ``models`` (the classifier, the small CNN, transfer learning), which uses them.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import keras

from harness import keras_cache
from harness.config.schema import ApplicationConfig
from harness.keras_cache import APPLICATIONS

FEATURE_EXTRACTOR = "feature_extractor"


def image_size(cfg: ApplicationConfig) -> int:
    """The input size of application model ``cfg``: its ``image_size``, or the application's native one."""
    return cfg.image_size or APPLICATIONS[cfg.name].native_size


def build_application(input_shape: tuple[int, ...], cfg: ApplicationConfig, weights: str | None,
                      pixel_max: float = 1.0) -> keras.Model:
    """A ``keras.applications`` backbone without its top (``harness.keras_cache.APPLICATIONS``), as
    Keras' transfer-learning guide uses it: the images resized to ``image_size`` (in the model, batch
    by batch: the data stays small in memory), grey made RGB, scaled to [0, 255] and passed through
    the application's own ``preprocess_input``; its feature maps pooled (``avg``, ``max``) or
    flattened (``flatten``). ``weights`` goes to Keras as is: ``"imagenet"``, a weights file of the
    application, or ``None``."""
    application = APPLICATIONS[cfg.name]
    size = image_size(cfg)
    inputs = keras.Input(shape=input_shape)
    x = inputs
    if tuple(input_shape[:2]) != (size, size):
        x = keras.layers.Resizing(size, size, name="resize")(x)
    if input_shape[-1] == 1:
        x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    x = keras.layers.Rescaling(255.0 / pixel_max, name="to_0_255")(x)
    preprocess = getattr(keras.applications, application.module).preprocess_input
    x = keras.layers.Lambda(preprocess, name="preprocess_input")(x)
    options = {"alpha": cfg.alpha} if hasattr(cfg, "alpha") else {}
    pooling = None if cfg.pooling == "flatten" else cfg.pooling
    try:
        base = getattr(keras.applications, application.keras_name)(
            input_shape=(size, size, 3), include_top=False, weights=weights, pooling=pooling, **options)
    except ValueError as err:  # Keras' own words, on the first line, after what was asked
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"weights {weights} do not fit model={cfg.name} at image_size {size}: {first}") from err
    features = base(x)
    if pooling is None:
        features = keras.layers.Flatten(name="flatten")(features)
    return keras.Model(inputs, features, name=FEATURE_EXTRACTOR)


def backbone_layers(extractor: keras.Model) -> list[keras.layers.Layer]:
    """The layers of an extractor's backbone (the application model inside it, or the extractor itself)
    that have weights, bottom to top: what fine-tuning unfreezes from the top."""
    inner = [layer for layer in extractor.layers if isinstance(layer, keras.Model)]
    layers = inner[0].layers if inner else extractor.layers
    return [layer for layer in layers if layer.weights]


def unfreeze_top(extractor: keras.Model, count: int) -> list[str]:
    """Make the top ``count`` layers with weights of ``extractor`` trainable, every other layer and
    every BatchNormalization layer frozen (Keras' fine-tuning guide: updating their statistics on a
    small dataset would wreck what they learned). Returns the names of the layers now trainable."""
    extractor.trainable = True
    layers = backbone_layers(extractor)
    top = {id(layer) for layer in layers[-count:]}
    for layer in layers:
        layer.trainable = id(layer) in top and not isinstance(layer, keras.layers.BatchNormalization)
    return [layer.name for layer in layers if layer.trainable]


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Trainable and frozen (non-trainable, BatchNorm statistics included) parameters of ``model``."""
    def count(weights: list) -> int:
        return int(sum(math.prod(w.shape) for w in weights))

    return {"trainable_params": count(model.trainable_weights), "frozen_params": count(model.non_trainable_weights)}


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks: what identifies the weights a run started from."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(cfg: ApplicationConfig, weights: str) -> str:
    """What to pass Keras for ``weights``: ``imagenet`` becomes the file in Keras' cache where it is
    there already (Keras would check it against the hash of its download and fetch it again on any
    difference; the run records the file's SHA-256 instead), else stays ``imagenet`` (Keras downloads)."""
    if weights != "imagenet":
        return weights
    cached = keras_cache.imagenet_weights_file(cfg.name, getattr(cfg, "alpha", None), image_size(cfg))
    return str(cached) if cached.is_file() else weights
