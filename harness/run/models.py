"""Models: a feature extractor (a small CNN or an ImageNet backbone) and a new head; transfer learning.

Transfer ``on`` = the feature extractor comes pretrained (Keras' ImageNet weights, a weights file, or,
for ``small_cnn``, pretrained here on the dataset's source classes and cached on disk), is frozen
(``trainable = False``) and is called with ``training=False`` (BatchNormalization in inference mode);
only a new head trains, and optionally the top layers afterwards (``unfreeze_top``). Transfer ``off``
= the same architecture from scratch. This follows Keras' transfer-learning guide. Models:
``small_cnn`` (default) and the ``keras.applications`` backbones of ``harness.keras_cache.APPLICATIONS``
(``vgg16``, ``resnet50``, ``mobilenet_v2``, ``efficientnet_b0``).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import keras

from harness import keras_cache
from harness.config.schema import KEYED_ONLY_OFF_DEFAULT
from harness.keras_cache import APPLICATIONS
from harness.results import write_json_atomic
from harness.run.data import Task

FEATURE_EXTRACTOR = "feature_extractor"
_UNSET = object()


def build_small_cnn(input_shape: tuple[int, ...], cfg: dict[str, Any], weights: str | None,
                    pixel_max: float = 1.0) -> keras.Model:
    """Conv layers (3x3, ReLU, same padding; a 2x2 max-pool after each but the first), flattened, on
    images scaled to [0, 1] (``pixel_max``: the value of a white pixel in the data).
    ``weights``: a feature-extractor weights file to load, or ``None``."""
    layers: list[keras.layers.Layer] = [keras.Input(shape=input_shape)]
    if pixel_max != 1.0:
        layers.append(keras.layers.Rescaling(1.0 / pixel_max))
    for i, filters in enumerate(cfg["conv_filters"]):
        layers.append(keras.layers.Conv2D(filters, 3, padding="same", activation="relu"))
        if i > 0:
            layers.append(keras.layers.MaxPooling2D(2))
    layers.append(keras.layers.Flatten())
    extractor = keras.Sequential(layers, name=FEATURE_EXTRACTOR)
    if weights:
        extractor.load_weights(weights)
    return extractor


def image_size(cfg: dict[str, Any]) -> int:
    """The input size of application model ``cfg``: its ``image_size``, or the application's native one."""
    return cfg["image_size"] or APPLICATIONS[cfg["name"]].native_size


def build_application(input_shape: tuple[int, ...], cfg: dict[str, Any], weights: str | None,
                      pixel_max: float = 1.0) -> keras.Model:
    """A ``keras.applications`` backbone without its top (``harness.keras_cache.APPLICATIONS``), as
    Keras' transfer-learning guide uses it: the images resized to ``image_size`` (in the model, batch
    by batch: the data stays small in memory), grey made RGB, scaled to [0, 255] and passed through
    the application's own ``preprocess_input``; its feature maps pooled (``avg``, ``max``) or
    flattened (``flatten``). ``weights`` goes to Keras as is: ``"imagenet"``, a weights file of the
    application, or ``None``."""
    application = APPLICATIONS[cfg["name"]]
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
    options = {"alpha": cfg["alpha"]} if "alpha" in cfg else {}
    pooling = None if cfg["pooling"] == "flatten" else cfg["pooling"]
    try:
        base = getattr(keras.applications, application.keras_name)(
            input_shape=(size, size, 3), include_top=False, weights=weights, pooling=pooling, **options)
    except ValueError as err:  # Keras' own words, on the first line, after what was asked
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"weights {weights} do not fit model={cfg['name']} at image_size {size}: {first}") from err
    features = base(x)
    if pooling is None:
        features = keras.layers.Flatten(name="flatten")(features)
    return keras.Model(inputs, features, name=FEATURE_EXTRACTOR)


def build_feature_extractor(input_shape: tuple[int, ...], cfg: dict[str, Any], weights: str | None = None,
                            pixel_max: float = 1.0) -> keras.Model:
    """The feature extractor of model ``cfg["name"]`` (``small_cnn`` or an application), randomly
    initialised or loaded from ``weights``, for images of ``input_shape`` whose white is ``pixel_max``."""
    build = build_application if cfg["name"] in APPLICATIONS else build_small_cnn
    return build(input_shape, cfg, weights, pixel_max)


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


def resolve_weights(cfg: dict[str, Any], weights: str) -> str:
    """What to pass Keras for ``weights``: ``imagenet`` becomes the file in Keras' cache where it is
    there already (Keras would check it against the hash of its download and fetch it again on any
    difference; the run records the file's SHA-256 instead), else stays ``imagenet`` (Keras downloads)."""
    if weights != "imagenet":
        return weights
    cached = keras_cache.imagenet_weights_file(cfg["name"], cfg.get("alpha", 1.0), image_size(cfg))
    return str(cached) if cached.is_file() else weights


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


def build_classifier(extractor: keras.Model, num_classes: int, cfg: dict[str, Any], frozen: bool) -> keras.Model:
    """``extractor`` plus a new head (a dense ReLU layer of ``dense_units`` unless 0, dropout, softmax).

    A ``frozen`` extractor is not trainable and runs in inference mode (``training=False``).
    """
    extractor.trainable = not frozen
    inputs = keras.Input(shape=extractor.input_shape[1:])
    x = extractor(inputs, training=False) if frozen else extractor(inputs)
    if cfg["dense_units"]:
        x = keras.layers.Dense(cfg["dense_units"], activation="relu", name="head_dense")(x)
    if cfg["dropout"]:
        x = keras.layers.Dropout(cfg["dropout"], name="head_dropout")(x)
    # float32 whatever the dtype policy: softmax in float16 or bfloat16 loses the small probabilities
    # (Keras' mixed-precision guide)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="head_output", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="classifier")


def pretrain_key(cfg: dict[str, Any]) -> str:
    """Hash of everything that determines pretrained weights (not the target task, not the run seed)."""
    dataset = {k: v for k, v in cfg["dataset"].items() if k not in ("target_classes", "train_size")
               and KEYED_ONLY_OFF_DEFAULT.get(f"dataset.{k}", _UNSET) != v}  # keys cached before they existed
    if dataset.get("path"):
        stat = Path(dataset["path"]).stat()
        dataset["file"] = [stat.st_size, stat.st_mtime_ns]
    transfer = {k: cfg["transfer"][k] for k in ("pretrain_epochs", "pretrain_seed", "pretrain_learning_rate")}
    model = {k: v for k, v in cfg["model"].items() if k != "pretrained_weights"}  # where transfer=on starts
    basis = {
        "dataset": dataset, "model": model, "transfer": transfer, "batch_size": cfg["batch_size"],
        "keras": keras.__version__, "backend": keras.backend.backend(),
    }
    if cfg["precision"] != "float32":  # only then: pretrained weights cached before this setting keep their key
        basis["precision"] = cfg["precision"]
    return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pretrained_extractor(cfg: dict[str, Any], source: Task, cache_dir: Path) -> tuple[keras.Model, dict]:
    """The feature extractor for transfer ``on`` and facts about where it came from.

    With ``transfer.weights=source_task`` it is trained on ``source`` once and cached under
    ``cache_dir/pretrained/<key>.weights.h5``; later runs load it (``pretrain_cache_hit``). With
    ``imagenet`` or a weights file, the model loads those (``source`` is then the target task, for
    its input shape). Returns ``(extractor, info)``; ``info`` holds ``pretrain_cache_hit``,
    ``pretrain_seconds`` (what pretraining cost when it ran) and where the weights came from.
    """
    weights = cfg["transfer"]["weights"]
    if weights != "source_task":  # ImageNet or a file: loaded by the model's own loading code
        given = resolve_weights(cfg["model"], weights)
        extractor = build_feature_extractor(source.input_shape, cfg["model"], given, source.pixel_max)
        if given == "imagenet":  # downloaded just now into Keras' cache
            given = str(keras_cache.imagenet_weights_file(cfg["model"]["name"], cfg["model"].get("alpha", 1.0),
                                                          image_size(cfg["model"])))
        return extractor, {"pretrain_cache_hit": None, "pretrain_seconds": 0.0, "pretrained_weights": weights,
                           "weights_file": given, "weights_sha256": sha256_of(given) if Path(given).is_file() else None}
    key = pretrain_key(cfg)
    folder = Path(cache_dir) / "pretrained"
    weights_path, meta_path = folder / f"{key}.weights.h5", folder / f"{key}.json"
    extractor = build_feature_extractor(source.input_shape, cfg["model"], pixel_max=source.pixel_max)
    if weights_path.is_file() and meta_path.is_file():
        extractor.load_weights(weights_path)
        meta = json.loads(meta_path.read_text())
        return extractor, {**meta, "pretrain_cache_hit": True, "pretrained_weights": str(weights_path)}

    seed_everything(cfg["transfer"]["pretrain_seed"])
    model = build_classifier(extractor, source.num_classes, cfg["model"], frozen=False)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg["transfer"]["pretrain_learning_rate"]),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=cfg["jit_compile"],
    )
    started = time.perf_counter()
    model.fit(source.train.x, source.train.y, epochs=cfg["transfer"]["pretrain_epochs"],
              batch_size=cfg["batch_size"], verbose=0)
    seconds = time.perf_counter() - started
    _, accuracy = model.evaluate(source.val.x, source.val.y, verbose=0)
    meta = {"pretrain_seconds": seconds, "pretrain_source_val_accuracy": float(accuracy), "pretrain_key": key}
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{key}.{time.time_ns()}.weights.h5"  # written whole, then renamed into place
    extractor.save_weights(partial)
    partial.replace(weights_path)
    write_json_atomic(meta_path, meta)
    return extractor, {**meta, "pretrain_cache_hit": False, "pretrained_weights": str(weights_path)}
