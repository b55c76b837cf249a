"""The configuration schema: one dataclass per config group option, registered in Hydra's ConfigStore.

Hydra checks types against these dataclasses when it composes a config (``epochs=abc`` fails there).
Range checks that types cannot express (a learning rate must be positive, ...) live in
``harness.config.validate``. This module never imports TensorFlow or Keras: the Hydra process stays light.

Each YAML option in ``conf/<group>/`` starts from its schema with
``defaults: [/schema/<group>/<schema>@_here_, _self_]``.
"""

from __future__ import annotations

from dataclasses import MISSING as MISSING_FIELD
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import II, MISSING

from harness.cells import FACTORS, NON_SEMANTIC_KEYS  # noqa: F401  (the schema's users read them here too)

# --- optimizer -------------------------------------------------------------------------------------


@dataclass
class OptimizerConfig:
    """Knobs every Keras optimizer takes (``keras.optimizers.Optimizer``); ``None`` means Keras' default.

    ``name`` is the option's label in the grid (``momentum``); ``keras_class`` the Keras class built.
    ``lr_scale`` multiplies ``learning_rate``: a grid around each optimizer's own default
    (``optimizer.lr_scale=0.1,0.3,1,3,10``) gives every optimizer the same tuning budget.
    """

    name: str = MISSING
    keras_class: str = MISSING
    learning_rate: float = 0.001
    lr_scale: float = 1.0
    weight_decay: float | None = None
    clipnorm: float | None = None
    clipvalue: float | None = None
    global_clipnorm: float | None = None
    use_ema: bool = False
    ema_momentum: float = 0.99
    ema_overwrite_frequency: int | None = None
    loss_scale_factor: float | None = None
    gradient_accumulation_steps: int | None = None


@dataclass
class SGDConfig(OptimizerConfig):
    keras_class: str = "SGD"
    learning_rate: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False


@dataclass
class AdagradConfig(OptimizerConfig):
    keras_class: str = "Adagrad"
    learning_rate: float = 0.01
    initial_accumulator_value: float = 0.1
    epsilon: float = 1e-7


@dataclass
class RMSpropConfig(OptimizerConfig):
    keras_class: str = "RMSprop"
    learning_rate: float = 0.001
    rho: float = 0.9
    momentum: float = 0.0
    epsilon: float = 1e-7
    centered: bool = False


@dataclass
class AdamConfig(OptimizerConfig):
    keras_class: str = "Adam"
    learning_rate: float = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    amsgrad: bool = False


# --- the other factors -----------------------------------------------------------------------------


@dataclass
class TransferConfig:
    """``on``: a feature extractor pretrained on the dataset's source classes, frozen, plus a new head.

    ``off``: the same architecture trained from scratch. ``weights`` says where the pretrained weights
    come from: ``source_task`` (pretrained here on the dataset's source classes, cached on disk keyed
    by everything that determines them: dataset, model, pretraining settings, library versions);
    ``imagenet`` (Keras' ImageNet weights of a ``keras.applications`` model; downloads once); or a
    weights file (for an application model, what Keras' ``weights=`` takes; for ``small_cnn``, a
    feature-extractor file such as one from the cache). ``transfer=on`` takes the model's
    ``pretrained_weights`` (``imagenet`` for the ``keras.applications`` backbones).

    Fine-tuning (``fine_tune_layers`` > 0): the head trains alone for ``head_epochs``, then the top
    ``fine_tune_layers`` layers with weights of the extractor are unfrozen (BatchNormalization layers
    stay frozen, and the extractor keeps running in inference mode), the model is recompiled with the
    same optimizer at ``fine_tune_learning_rate``, and training goes on up to ``epochs``.
    """

    name: str = MISSING
    enabled: bool = False
    weights: str = "source_task"
    pretrain_epochs: int = 10
    pretrain_seed: int = 0
    pretrain_learning_rate: float = 0.001
    fine_tune_layers: int = 0
    head_epochs: int = 5
    fine_tune_learning_rate: float = 1e-5


@dataclass
class EarlyStoppingConfig:
    """Arguments of ``keras.callbacks.EarlyStopping``, used when ``enabled``; ``monitor=target`` follows the
    metric that defines time to target (``target.metric``: ``val_mae`` for a regression, say)."""

    name: str = MISSING
    enabled: bool = False
    monitor: str = "val_loss"
    patience: int = 3
    min_delta: float = 0.0
    mode: str = "auto"
    baseline: float | None = None
    restore_best_weights: bool = True
    start_from_epoch: int = 0


@dataclass
class DeviceConfig:
    """Where a run trains. ``price_per_hour`` (USD, optional) turns time into cost in the report."""

    name: str = MISSING
    price_per_hour: float | None = None


@dataclass
class DatasetConfig:
    """An image classification dataset, split into train/validation/test with a fixed, seeded,
    stratified split (``split_seed``), the same for every run so that runs compare like with like.

    The runs learn ``target_classes``; ``source_classes`` are held out for pretraining the feature
    extractor when transfer is on. ``train_size`` caps the target training examples (``None``: all).
    ``limit`` is a stratified cap on the whole dataset (before splitting), for quick trials on large data.
    ``path`` is the file of a file-based dataset (``npz``) or the folder of ``folder`` (one sub-folder
    of images per class; ``class_folders`` picks and orders them; ``image_size``: every image resized
    to it, or, when ``None``, to the size most of them have, at most 256 on its longer side; ``load``:
    ``memory`` holds its decoded images in memory, ``stream`` reads their batches from the decoded copy
    on disk, ``auto`` streams only where they would take more than half the memory available;
    ``skip_unreadable``: train without the images that cannot be read, listed in the result, instead of
    refusing the folder with their names); ``url``
    (with its ``sha256``) that of a downloaded ``.npz``, fetched once into the cache. ``mnist``,
    ``fashion_mnist`` and ``cifar10`` are Keras' datasets, read from Keras' cache (downloaded there
    once); ``digits`` ships inside scikit-learn.
    """

    name: str = MISSING
    path: str | None = None
    url: str | None = None
    sha256: str | None = None
    source_classes: list[int] = field(default_factory=list)
    target_classes: list[int] = field(default_factory=list)
    train_size: int | None = None
    limit: int | None = None
    image_size: int | None = None
    class_folders: list[str] = field(default_factory=list)
    load: str = "auto"
    skip_unreadable: bool = False
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0


@dataclass
class ModelConfig:
    """A feature extractor (the part transfer learning pretrains and freezes) plus a head: a dense
    layer of ``dense_units``, ``dropout`` and a softmax layer."""

    name: str = MISSING
    dense_units: int = 64
    dropout: float = 0.0
    pretrained_weights: str = "source_task"


@dataclass
class SmallCNNConfig(ModelConfig):
    """Feature extractor: ``conv_filters`` 3x3 conv layers (ReLU; 2x2 max-pool after all but the first).
    ``pretrained_weights``: what ``transfer=on`` starts from (pretrained here on the source classes)."""

    conv_filters: list[int] = field(default_factory=lambda: [16, 32])


@dataclass
class ApplicationConfig(ModelConfig):
    """Feature extractor: a ``keras.applications`` backbone (``vgg16``, ``resnet50``, ``mobilenet_v2``,
    ``efficientnet_b0``) without its top, on images resized to ``image_size`` (``None``: the
    application's native 224), made RGB and passed through the application's own ``preprocess_input``.
    ``pooling`` turns its feature maps into the head's input: ``flatten`` (the article's VGG16 head),
    ``avg`` or ``max``. The head: a dense ReLU layer of ``dense_units`` (0: none), ``dropout``, softmax.
    ``pretrained_weights``: what ``transfer=on`` starts from (``imagenet``: Keras' ImageNet weights)."""

    dense_units: int = 0
    dropout: float = 0.2
    pretrained_weights: str = "imagenet"
    image_size: int | None = None
    pooling: str = "avg"


@dataclass
class MobileNetV2Config(ApplicationConfig):
    """MobileNetV2 of width ``alpha`` (ImageNet weights exist for 0.35, 0.5, 0.75, 1.0, 1.3, 1.4)."""

    alpha: float = 1.0


@dataclass
class CustomModelConfig:
    """Your own model (``model=custom``): the function ``_target_`` (``package.module.function``) returns an
    uncompiled ``keras.Model``; it gets ``input_shape``, ``num_classes`` and ``pretrained`` where its
    signature has them, and every setting added with ``+model.NAME=VALUE`` as a keyword. With transfer on,
    its layer ``frozen_layer`` is frozen (``harness.run.custom``); its pretrained weights are its own
    (``pretrained_weights``: ``own``, what ``transfer.weights`` follows)."""

    name: str = MISSING
    _target_: str | None = None
    frozen_layer: str = "feature_extractor"
    pretrained_weights: str = "own"


@dataclass
class CustomDatasetConfig:
    """Your own data (``dataset=custom``): the function ``_target_`` returns ``(x, y)`` arrays, split here
    as every dataset is (``val_fraction``, ``test_fraction``, ``split_seed``; ``limit``, ``train_size``),
    or a mapping with ``train``, ``val`` (and ``test``) used as given (``harness.run.custom``). Settings
    added with ``+dataset.NAME=VALUE`` are its keywords."""

    name: str = MISSING
    _target_: str | None = None
    limit: int | None = None
    train_size: int | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0


@dataclass
class TargetConfig:
    """What "time to target" means: the training seconds until the epoch ``metric`` (a validation metric
    the model reports: ``val_accuracy``, ``val_loss``, ``val_mae``, ...) first reaches ``value``; ``mode``
    ``max`` (at least ``value``), ``min`` (at most), or ``auto``: ``min`` for losses and errors, else ``max``.
    ``value`` follows ``target_accuracy`` unless set."""

    metric: str = "val_accuracy"
    value: float = II("target_accuracy")
    mode: str = "auto"


@dataclass
class TrackingConfig:
    """Comet experiment tracking. ``mode``: ``auto`` (online when an API key is configured, else
    offline), ``online``, ``offline`` or ``disabled``. The API key is never a config value: Comet reads
    it from ``COMET_API_KEY`` or its own config file."""

    name: str = MISSING
    mode: str = "auto"
    project_name: str | None = None
    workspace: str | None = None
    offline_dir: str = "comet"
    connect_timeout_s: float = 5.0


# --- the whole run ---------------------------------------------------------------------------------


@dataclass
class Config:
    """One training run (one cell of the grid)."""

    optimizer: Any = MISSING
    transfer: Any = MISSING
    early_stopping: Any = MISSING
    device: Any = MISSING
    dataset: Any = MISSING
    model: Any = MISSING
    tracking: Any = MISSING

    epochs: int = 50
    batch_size: int = 32
    seed: int = 0
    target_accuracy: float = 0.9
    target: TargetConfig = field(default_factory=TargetConfig)
    loss: str = "sparse_categorical_crossentropy"
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])
    jit_compile: bool = False
    precision: str = "float32"
    steps_per_execution: int = 1
    backend: str = "${oc.env:KERAS_BACKEND,tensorflow}"  # KERAS_BACKEND, as Keras itself reads it
    threads: int = 0
    run_timeout_s: float = 3600.0
    sweep_name: str = "sweep"
    cache_dir: str | None = None
    reports_dir: str = "reports"
    results_dir: str = "results"
    rerun: bool = False
    quiet_tensorflow: bool = True
    order: str = "shuffled"
    run_process: str = "fork"
    input_check: str = "auto"  # time the training input alone after training (INPUT_CHECKS)
    python: str | None = None  # the interpreter runs use (harness.interpreters); None: the sweep's own
    optimized_metric: str | None = None
    callbacks: list[str] = field(default_factory=list)


SCHEMAS: dict[str, dict[str, type]] = {
    "optimizer": {"sgd": SGDConfig, "adagrad": AdagradConfig, "rmsprop": RMSpropConfig, "adam": AdamConfig},
    "transfer": {"transfer": TransferConfig},
    "early_stopping": {"early_stopping": EarlyStoppingConfig},
    "device": {"device": DeviceConfig},
    "dataset": {"dataset": DatasetConfig, "custom": CustomDatasetConfig},
    "model": {"small_cnn": SmallCNNConfig, "application": ApplicationConfig, "mobilenet_v2": MobileNetV2Config,
              "custom": CustomModelConfig},
    "tracking": {"tracking": TrackingConfig},
}


KEYED_ONLY_OFF_DEFAULT_SETTINGS = {
    "": ("precision", "steps_per_execution", "backend", "loss", "metrics", "python", "input_check"),
    "dataset": ("limit", "image_size", "class_folders", "load", "skip_unreadable"),
    "transfer": ("fine_tune_layers", "head_epochs", "fine_tune_learning_rate"),
    "model": ("pretrained_weights",),
}
"""Settings added after results were stored, by group (``""``: the top level): part of a run's key only
where they differ from their defaults, so that the results stored before they existed keep their keys
(and are reused)."""
_DEFAULT_OWNERS = {"": Config, "dataset": DatasetConfig, "transfer": TransferConfig, "model": ModelConfig}
"""Whose default each group's settings have (the model's: the base every model derives from)."""
_RESOLVED = {"backend": "tensorflow"}
"""Defaults that are interpolations in the schema, as they resolve where nothing overrides them."""


def _default(owner: type, name: str) -> Any:
    found = next(f for f in fields(owner) if f.name == name)
    return found.default_factory() if found.default is MISSING_FIELD else found.default


KEYED_ONLY_OFF_DEFAULT: dict[str, Any] = {
    (f"{group}.{name}" if group else name): _RESOLVED.get(name, _default(_DEFAULT_OWNERS[group], name))
    for group, names in KEYED_ONLY_OFF_DEFAULT_SETTINGS.items() for name in names
}
"""``setting -> default`` of ``KEYED_ONLY_OFF_DEFAULT_SETTINGS``, read from the dataclasses above (every
default is written once, there)."""

KEYED_PRICE_PER_HOUR: dict[str, float | None] = {"cpu": None, "gpu": 0.35}
"""The ``device.price_per_hour`` every run key holds for its device, whatever the price set: a price changes
the report, never the run. These are conf/device's defaults, the prices keys held when they held the
price, so that results stored then keep their keys."""

TARGET_MODES = ("auto", "max", "min")
"""How ``target.value`` is reached (``TargetConfig``)."""
MINIMISED = ("loss", "mae", "mse", "rmse", "mape", "msle", "error", "crossentropy", "hinge", "divergence")
"""Metric names that end like these are minimised: ``target.mode=auto`` means ``min`` for them."""


def target_mode(metric: str, mode: str = "auto") -> str:
    """``max`` or ``min``: ``mode`` unless ``auto``, then by the metric's name (``MINIMISED``)."""
    if mode != "auto":
        return mode
    name = metric.lower().removeprefix("val_")
    return "min" if any(name.endswith(ending) for ending in MINIMISED) else "max"


ORDERS = ("shuffled", "grid")
"""The orders a sweep's cells can run in (``order``; ``harness.sweep.order``)."""

RUN_PROCESS_MODES = ("fork", "fresh")
INPUT_CHECKS = ("auto", "on", "off")
"""``input_check``: time one epoch of the training input alone after training: ``auto`` where the data is
streamed from disk or a user's pipeline (``tf.data``, ``PyDataset``), ``on`` always, ``off`` never."""
"""How each run's process starts (``run_process``; ``harness.sweep.run_process``)."""

DATASET_LOADS = ("auto", "memory", "stream")
"""How a ``folder`` dataset's decoded images reach training (``dataset.load``; see ``DatasetConfig``)."""

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
"""Keras dtype policies a run can train under (``precision``)."""

BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
"""Keras backends (``backend``) and the module each needs."""


def register_configs() -> None:
    """Register the root schema and every group's schema in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore  # here: the run key reads the schema's defaults without Hydra

    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)
