"""Models: a feature extractor (a small CNN or an ImageNet backbone) and a new head; transfer learning.

Transfer ``on`` = the feature extractor comes pretrained (Keras' ImageNet weights, a weights file, or,
for ``small_cnn``, pretrained here on the dataset's source classes and cached on disk), is frozen
(``trainable = False``) and is called with ``training=False`` (BatchNormalization in inference mode);
only a new head trains, and optionally the top layers afterwards (``unfreeze_top``). Transfer ``off``
= the same architecture from scratch. This follows Keras' transfer-learning guide. Models:
``small_cnn`` (default, here) and the ``keras.applications`` backbones (``vgg16``, ``resnet50``,
``mobilenet_v2``, ``efficientnet_b0``: ``harness.run.backbones``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import keras

from harness import keras_cache
from harness.config.run_config import RunConfig, settings_of
from harness.config.schema import LATER_SETTING_DEFAULTS, ModelConfig
from harness.result_files import write_json_atomic
from harness.run import streaming
from harness.run.backbones import (
    APPLICATIONS,
    FEATURE_EXTRACTOR,
    build_application,
    image_size,
    resolve_weights,
    sha256_of,
)
from harness.run.data import Task
from harness.run_key import content_key
from harness.stage_records import Pretraining

_UNSET = object()


def build_small_cnn(input_shape: tuple[int, ...], cfg: ModelConfig, weights: str | None,
                    pixel_max: float = 1.0) -> keras.Model:
    """Conv layers (3x3, ReLU, same padding; a 2x2 max-pool after each but the first), flattened, on
    images scaled to [0, 1] (``pixel_max``: the value of a white pixel in the data).
    ``weights``: a feature-extractor weights file to load, or ``None``."""
    layers: list[keras.layers.Layer] = [keras.Input(shape=input_shape)]
    if pixel_max != 1.0:
        layers.append(keras.layers.Rescaling(1.0 / pixel_max))
    for i, filters in enumerate(cfg.conv_filters):
        layers.append(keras.layers.Conv2D(filters, 3, padding="same", activation="relu"))
        if i > 0:
            layers.append(keras.layers.MaxPooling2D(2))
    layers.append(keras.layers.Flatten())
    extractor = keras.Sequential(layers, name=FEATURE_EXTRACTOR)
    if weights:
        extractor.load_weights(weights)
    return extractor


def build_feature_extractor(input_shape: tuple[int, ...], cfg: ModelConfig, weights: str | None = None,
                            pixel_max: float = 1.0) -> keras.Model:
    """The feature extractor of model ``cfg.name`` (``small_cnn`` or an application), randomly
    initialised or loaded from ``weights``, for images of ``input_shape`` whose white is ``pixel_max``."""
    build = build_application if cfg.name in APPLICATIONS else build_small_cnn
    return build(input_shape, cfg, weights, pixel_max)


def seed_everything(seed: int) -> None:
    """``keras.utils.set_random_seed`` (Python, NumPy and the backend), without importing TensorFlow
    under another backend: Keras seeds TensorFlow too wherever it is installed (for ``tf.data``
    pipelines, which the harness does not use), and importing it would make a JAX or PyTorch run
    depend on TensorFlow and pay its import. So under those backends TensorFlow is hidden for the call,
    as on a machine without it (Keras then remembers it as unavailable)."""
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    sys.modules["tensorflow"] = None  # type: ignore[assignment]  # `import tensorflow` now raises ImportError
    try:
        keras.utils.set_random_seed(seed)
    finally:
        del sys.modules["tensorflow"]


def build_classifier(extractor: keras.Model, num_classes: int, cfg: ModelConfig, frozen: bool) -> keras.Model:
    """``extractor`` plus a new head (a dense ReLU layer of ``dense_units`` unless 0, dropout, softmax).

    A ``frozen`` extractor is not trainable and runs in inference mode (``training=False``).
    """
    extractor.trainable = not frozen
    inputs = keras.Input(shape=extractor.input_shape[1:])
    x = extractor(inputs, training=False) if frozen else extractor(inputs)
    if cfg.dense_units:
        x = keras.layers.Dense(cfg.dense_units, activation="relu", name="head_dense")(x)
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    # float32 whatever the dtype policy: softmax in float16 or bfloat16 loses the small probabilities
    # (Keras' mixed-precision guide)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="head_output", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="classifier")


def pretrain_key(cfg: RunConfig) -> str:
    """Hash of everything that determines pretrained weights (not the target task, not the run seed)."""
    dataset = {k: v for k, v in settings_of(cfg.dataset).items() if k not in ("target_classes", "train_size")
               and LATER_SETTING_DEFAULTS.get(f"dataset.{k}", _UNSET) != v}  # keys cached before they existed
    if dataset.get("path"):
        stat = Path(dataset["path"]).stat()
        dataset["file"] = [stat.st_size, stat.st_mtime_ns]
    transfer = {"pretrain_epochs": cfg.transfer.pretrain_epochs, "pretrain_seed": cfg.transfer.pretrain_seed,
                "pretrain_learning_rate": cfg.transfer.pretrain_learning_rate}
    model = settings_of(cfg.model, leaving_out=("pretrained_weights",))  # where transfer=on starts
    basis = {
        "dataset": dataset, "model": model, "transfer": transfer, "batch_size": cfg.batch_size,
        "keras": keras.__version__, "backend": keras.backend.backend(),
    }
    if cfg.precision != LATER_SETTING_DEFAULTS["precision"]:  # only then: weights cached before it keep their key
        basis["precision"] = cfg.precision
    return content_key(basis, compact=False)


def pretrained_extractor(cfg: RunConfig, source: Task, cache_dir: Path) -> tuple[keras.Model, Pretraining]:
    """The feature extractor for transfer ``on`` and facts about where it came from.

    With ``transfer.weights=source_task`` it is trained on ``source`` once and cached under
    ``cache_dir/pretrained/<key>.weights.h5``; later runs load it (``pretrain_cache_hit``). With
    ``imagenet`` or a weights file, the model loads those (``source`` is then the target task, for
    its input shape). Returns the extractor and its ``Pretraining`` record: ``pretrain_cache_hit``,
    ``pretrain_seconds`` (what pretraining cost when it ran) and where the weights came from.
    """
    weights = cfg.transfer.weights
    if weights != "source_task":  # ImageNet or a file: loaded by the model's own loading code
        given = resolve_weights(cfg.model, weights)
        extractor = build_feature_extractor(source.input_shape, cfg.model, given, source.pixel_max)
        if given == "imagenet":  # downloaded just now into Keras' cache
            given = str(keras_cache.imagenet_weights_file(cfg.model.name, getattr(cfg.model, "alpha", None),
                                                          image_size(cfg.model)))
        return extractor, Pretraining(weights, pretrain_cache_hit=None, pretrain_seconds=0.0, weights_file=given,
                                      weights_sha256=sha256_of(given) if Path(given).is_file() else None)
    key = pretrain_key(cfg)
    folder = Path(cache_dir) / "pretrained"
    weights_path, meta_path = folder / f"{key}.weights.h5", folder / f"{key}.json"
    extractor = build_feature_extractor(source.input_shape, cfg.model, pixel_max=source.pixel_max)
    if weights_path.is_file() and meta_path.is_file():
        extractor.load_weights(weights_path)
        meta = json.loads(meta_path.read_text())
        return extractor, Pretraining(str(weights_path), pretrain_cache_hit=True, **meta)

    seed_everything(cfg.transfer.pretrain_seed)
    model = build_classifier(extractor, source.num_classes, cfg.model, frozen=False)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.transfer.pretrain_learning_rate),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=cfg.jit_compile,
    )
    started = time.perf_counter()
    model.fit(**streaming.inputs(source.train, cfg.batch_size, seed=cfg.transfer.pretrain_seed),
              epochs=cfg.transfer.pretrain_epochs, verbose=0)
    seconds = time.perf_counter() - started
    _, accuracy = model.evaluate(**streaming.inputs(source.val, 32), verbose=0)  # Keras' default batch size
    meta = {"pretrain_seconds": seconds, "pretrain_source_val_accuracy": float(accuracy), "pretrain_key": key}
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{key}.{time.time_ns()}.weights.h5"  # written whole, then renamed into place
    extractor.save_weights(partial)
    partial.replace(weights_path)
    write_json_atomic(meta_path, meta)
    return extractor, Pretraining(str(weights_path), pretrain_cache_hit=False, **meta)
