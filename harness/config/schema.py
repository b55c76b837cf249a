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

# --- optimizer -------------------------------------------------------------------------------------


@dataclass
class OptimizerConfig:
    """Knobs every Keras optimizer takes (``keras.optimizers.Optimizer``); ``None`` means Keras' default."""

    name: str = MISSING
    """The option's label in the grid (`momentum`)."""
    keras_class: str = MISSING
    """The `keras.optimizers` class built."""
    learning_rate: float = 0.001
    """The learning rate before `lr_scale`."""
    lr_scale: float = 1.0
    """Multiplies `learning_rate`: a grid around each optimizer's own default (`optimizer.lr_scale=0.1,1,10`) gives
    every optimizer the same tuning budget.
    """
    weight_decay: float | None = None
    """Keras' decoupled weight decay (null: none)."""
    clipnorm: float | None = None
    """Clip each gradient to this norm (null: no clipping)."""
    clipvalue: float | None = None
    """Clip each gradient element to this value (null: no clipping)."""
    global_clipnorm: float | None = None
    """Clip all gradients together to this norm (null: no clipping)."""
    use_ema: bool = False
    """Keep an exponential moving average of the weights."""
    ema_momentum: float = 0.99
    """The moving average's momentum, with `use_ema`."""
    ema_overwrite_frequency: int | None = None
    """Every how many steps the averaged weights overwrite the model's (null: at the end)."""
    loss_scale_factor: float | None = None
    """Multiplies the loss before computing gradients (null: none)."""
    gradient_accumulation_steps: int | None = None
    """Accumulate gradients over this many steps before an update (null: every step)."""


@dataclass
class SGDConfig(OptimizerConfig):
    keras_class: str = "SGD"
    """The `keras.optimizers` class built."""
    learning_rate: float = 0.01
    """The learning rate before `lr_scale`."""
    momentum: float = 0.0
    """Heavy-ball momentum (`momentum` and `nag` set 0.9)."""
    nesterov: bool = False
    """Nesterov momentum (`nag`)."""


@dataclass
class AdagradConfig(OptimizerConfig):
    keras_class: str = "Adagrad"
    """The `keras.optimizers` class built."""
    learning_rate: float = 0.01
    """The learning rate before `lr_scale`."""
    initial_accumulator_value: float = 0.1
    """The accumulators' starting value."""
    epsilon: float = 1e-7
    """Added to the denominator for numerical stability."""


@dataclass
class RMSpropConfig(OptimizerConfig):
    keras_class: str = "RMSprop"
    """The `keras.optimizers` class built."""
    learning_rate: float = 0.001
    """The learning rate before `lr_scale`."""
    rho: float = 0.9
    """The discount of the squared-gradient average."""
    momentum: float = 0.0
    """Momentum."""
    epsilon: float = 1e-7
    """Added to the denominator for numerical stability."""
    centered: bool = False
    """Normalise by the gradient's estimated variance."""


@dataclass
class AdamConfig(OptimizerConfig):
    keras_class: str = "Adam"
    """The `keras.optimizers` class built."""
    learning_rate: float = 0.001
    """The learning rate before `lr_scale`."""
    beta_1: float = 0.9
    """The decay of the first-moment estimate."""
    beta_2: float = 0.999
    """The decay of the second-moment estimate."""
    epsilon: float = 1e-7
    """Added to the denominator for numerical stability."""
    amsgrad: bool = False
    """Use AMSGrad's maximum of past second moments."""


# --- the other factors -----------------------------------------------------------------------------


@dataclass
class TransferConfig:
    """Transfer learning: a pretrained feature extractor, frozen (or fine-tuned), plus a new head; ``off``: the same
    architecture from scratch."""

    name: str = MISSING
    """The option's label (`on`, `off`)."""
    enabled: bool = False
    """Whether the run starts from pretrained weights and freezes them."""
    weights: str = "source_task"
    """Where the pretrained weights come from: `source_task` (pretrained here on the dataset's source classes, cached),
    `imagenet` (Keras' ImageNet weights), or a weights file. `transfer=on` takes the model's `pretrained_weights`.
    """
    pretrain_epochs: int = 10
    """Epochs of the source-task pretraining."""
    pretrain_seed: int = 0
    """The source-task pretraining's seed."""
    pretrain_learning_rate: float = 0.001
    """The source-task pretraining's learning rate (Adam)."""
    fine_tune_layers: int = 0
    """After the head's epochs, unfreeze the top N layers with weights (BatchNormalization stays frozen); 0: frozen
    throughout.
    """
    head_epochs: int = 5
    """With fine-tuning: epochs the head trains alone first."""
    fine_tune_learning_rate: float = 1e-5
    """With fine-tuning: the learning rate after the recompilation."""


@dataclass
class EarlyStoppingConfig:
    """The arguments of ``keras.callbacks.EarlyStopping``, used when ``enabled``."""

    name: str = MISSING
    """The option's label (`on`, `off`)."""
    enabled: bool = False
    """Whether `keras.callbacks.EarlyStopping` is used."""
    monitor: str = "val_loss"
    """The metric watched; `target` follows `target.metric`."""
    patience: int = 3
    """Epochs without improvement before stopping."""
    min_delta: float = 0.0
    """The smallest change that counts as an improvement."""
    mode: str = "auto"
    """`auto`, `min` or `max`, as Keras takes it."""
    baseline: float | None = None
    """Stop if the metric does not beat this (null: no baseline)."""
    restore_best_weights: bool = True
    """Restore the best epoch's weights when stopping."""
    start_from_epoch: int = 0
    """Epochs to wait before watching."""


@dataclass
class DeviceConfig:
    """Where a run trains, and what an hour of it costs."""

    name: str = MISSING
    """Where a run trains: `cpu` (GPUs hidden) or `gpu` (the first GPU; the cell is skipped where none is visible)."""
    price_per_hour: float | None = None
    """USD per hour, for cost in the report (`gpu`: 0.35; null: unpriced). Not part of the run key: `python -m
    harness.report SWEEP --price gpu=2.0` re-costs a finished sweep.
    """


@dataclass
class DatasetConfig:
    """A built-in dataset, split into train/validation/test by a fixed, seeded, stratified split, the same for
    every run so that runs compare like with like. ``digits`` ships inside scikit-learn; ``mnist``,
    ``fashion_mnist`` and ``cifar10`` are read from Keras' cache; ``folder`` and ``npz`` are your files."""

    name: str = MISSING
    """The option's label (`digits`, `folder`, ...)."""
    path: str | None = None
    """The `.npz` file (`npz`) or the folder with one sub-folder of images per class (`folder`)."""
    url: str | None = None
    """Where an `npz` dataset is downloaded from, once, into the cache."""
    sha256: str | None = None
    """The downloaded file's SHA-256, checked."""
    source_classes: list[int] = field(default_factory=list)
    """Classes held out for the source-task pretraining of `transfer=on` (digits: 0-4)."""
    target_classes: list[int] = field(default_factory=list)
    """The classes the runs learn (empty: all but the source classes)."""
    train_size: int | None = None
    """Caps the training examples (null: all)."""
    limit: int | None = None
    """A stratified cap on the whole dataset before splitting, for quick trials (null: all)."""
    image_size: int | None = None
    """`folder`: every image resized to this square size (null: the size most images have, at most 256)."""
    class_folders: list[str] = field(default_factory=list)
    """`folder`: the class folders to use, in order (empty: all)."""
    load: str = "auto"
    """`folder`: `memory` holds the decoded images in memory; `stream` reads batches from the decoded copy on disk;
    `auto` streams where they would take over half the memory.
    """
    skip_unreadable: bool = False
    """`folder`: train without images that cannot be read (listed in the result) instead of refusing the folder."""
    val_fraction: float = 0.2
    """The validation split's share."""
    test_fraction: float = 0.2
    """The test split's share."""
    split_seed: int = 0
    """Seeds the stratified split, the same for every run."""


@dataclass
class ModelConfig:
    """A feature extractor (the part transfer learning pretrains and freezes) plus a head: a dense layer of
    ``dense_units``, ``dropout`` and a softmax layer."""

    name: str = MISSING
    """The option's label (`small_cnn`, `vgg16`, ...)."""
    dense_units: int = 64
    """The head's dense ReLU layer (0: none)."""
    dropout: float = 0.0
    """Dropout before the head's output layer."""
    pretrained_weights: str = "source_task"
    """What `transfer=on` starts from: `source_task`, `imagenet` or a weights file."""


@dataclass
class SmallCNNConfig(ModelConfig):
    """The default model: a few conv layers as the feature extractor."""

    conv_filters: list[int] = field(default_factory=lambda: [16, 32])
    """Filters of each 3x3 conv layer (2x2 max-pooling after all but the first)."""


@dataclass
class ApplicationConfig(ModelConfig):
    """A ``keras.applications`` backbone (``vgg16``, ``resnet50``, ``mobilenet_v2``, ``efficientnet_b0``) without its
    top, on RGB images passed through the application's own ``preprocess_input``."""

    dense_units: int = 0
    """The head's dense ReLU layer (0: none)."""
    dropout: float = 0.2
    """Dropout before the head's output layer."""
    pretrained_weights: str = "imagenet"
    """What `transfer=on` starts from (`imagenet`: Keras' ImageNet weights)."""
    image_size: int | None = None
    """The backbone's input size; images are resized inside the model (null: the application's native 224)."""
    pooling: str = "avg"
    """How feature maps become the head's input: `flatten` (the article's VGG16 head), `avg` or `max`."""


@dataclass
class MobileNetV2Config(ApplicationConfig):
    """MobileNetV2, with its width."""

    alpha: float = 1.0
    """The width multiplier (ImageNet weights exist for 0.35, 0.5, 0.75, 1.0, 1.3, 1.4)."""


@dataclass
class CustomModelConfig:
    """Your own model (``model=custom``); settings added with ``+model.NAME=VALUE`` are its function's keywords."""

    name: str = MISSING
    """`custom`."""
    _target_: str | None = None
    """Your function, `package.module.function`, returning an uncompiled `keras.Model`."""
    frozen_layer: str = "feature_extractor"
    """With `transfer=on`: the layer frozen before compiling."""
    pretrained_weights: str = "own"
    """`own`: your function loads its pretrained part itself."""


@dataclass
class CustomDatasetConfig:
    """Your own data (``dataset=custom``); settings added with ``+dataset.NAME=VALUE`` are its function's keywords."""

    name: str = MISSING
    """`custom`."""
    _target_: str | None = None
    """Your function, `package.module.function`, returning `(x, y)` or already-split data."""
    limit: int | None = None
    """A stratified cap on the data before splitting (null: all)."""
    train_size: int | None = None
    """Caps the training examples (null: all)."""
    val_fraction: float = 0.2
    """The validation split's share (when the function returns `(x, y)`)."""
    test_fraction: float = 0.2
    """The test split's share (when the function returns `(x, y)`)."""
    split_seed: int = 0
    """Seeds the split, the same for every run."""


@dataclass
class TargetConfig:
    """What "time to target" means: the training seconds until the epoch ``metric`` first reaches ``value``."""

    metric: str = "val_accuracy"
    """The validation metric that defines time to target (`val_accuracy`, `val_mae`, ...)."""
    value: float = II("target_accuracy")
    """The value that counts as reached (follows `target_accuracy` unless set)."""
    mode: str = "auto"
    """`max` (at least `value`), `min` (at most), `auto` (`min` for losses and errors)."""


@dataclass
class TrackingConfig:
    """Comet experiment tracking. The API key is never a config value: Comet reads it from ``COMET_API_KEY``
    or its own config file."""

    name: str = MISSING
    """The option's label."""
    mode: str = "auto"
    """`auto` (online with a Comet API key, else offline), `online`, `offline` or `disabled`. The key is never a
    setting: Comet reads `COMET_API_KEY`.
    """
    project_name: str | None = None
    """Comet's project (null: Comet's default)."""
    workspace: str | None = None
    """Comet's workspace (null: Comet's default)."""
    offline_dir: str = "comet"
    """Where offline archives go, inside the sweep's folder."""
    connect_timeout_s: float = 5.0
    """How long the sweep's one check of Comet's server may take before going offline."""
    system_metrics: bool = False
    """Comet's own system metrics (CPU, GPU, memory, network and disk, sampled by threads inside the run's process
    while it trains): off, since they cost CPU inside the timed epochs; the run records its resource facts from
    counters at its boundaries instead. true: Comet samples too, and the run is keyed apart."""


# --- the whole run ---------------------------------------------------------------------------------


@dataclass
class Config:
    """One training run (one cell of the grid)."""

    optimizer: Any = MISSING
    """The optimizer: a factor of the article's grid."""
    transfer: Any = MISSING
    """Transfer learning on or off: a factor of the article's grid."""
    early_stopping: Any = MISSING
    """Early stopping on or off: a factor of the article's grid."""
    device: Any = MISSING
    """CPU or GPU: a factor of the article's grid."""
    dataset: Any = MISSING
    """The data."""
    model: Any = MISSING
    """The model."""
    tracking: Any = MISSING
    """Comet tracking."""

    epochs: int = 50
    """The budget; early stopping may end a run sooner."""
    batch_size: int = 32
    """Examples per training step."""
    seed: int = 0
    """Seeds Python, NumPy and the backend; repeat a cell with `seed=0,1,2`."""
    factors: list[str] = field(default_factory=lambda: ["optimizer", "transfer", "early_stopping", "device"])
    """What labels every cell and what the report judges, swept or not (the article's four): config groups or dotted
    settings (`factors=[model,optimizer.learning_rate]`). Every other setting that differs between a sweep's cells is
    a factor too.
    """
    target_accuracy: float = 0.9
    """The validation accuracy that defines time to target (`target.value` of the default metric); a dataset may bring
    its own (`conf/dataset_target/`).
    """
    target: TargetConfig = field(default_factory=TargetConfig)
    """What time to target means."""
    loss: str = "sparse_categorical_crossentropy"
    """The loss the model is compiled with (`mse` for a regression)."""
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])
    """The metrics the model is compiled with (`[mae]` for a regression)."""
    jit_compile: bool = False
    """XLA; off everywhere by default so that CPU and GPU cells compare like with like."""
    precision: str = "float32"
    """The Keras dtype policy; `mixed_float16` on a CPU is skipped (a CPU only emulates it)."""
    steps_per_execution: int = 1
    """Batches per call into the backend."""
    backend: str = "${oc.env:KERAS_BACKEND,tensorflow}"  # KERAS_BACKEND, as Keras itself reads it
    """The Keras backend of each run (`$KERAS_BACKEND`, else `tensorflow`)."""
    threads: int = 0
    """Backend threads per run (0: the backend's default; parallel launchers set cores // jobs)."""
    run_timeout_s: float = 3600.0
    """A run still training after this is killed and recorded as failed."""
    sweep_name: str = "${now:%Y-%m-%d_%H-%M-%S_%f}"
    """One name for a whole sweep: its folder, its report's folder, its Comet tag (default: the start time)."""
    cache_dir: str | None = None
    """Pretrained weights, downloads and decoded folders (null: `$HARNESS_CACHE_DIR` or `~/.cache/harness`)."""
    reports_dir: str = "reports"
    """A sweep's report goes to `<reports_dir>/<sweep_name>/`."""
    results_dir: str = "results"
    """The results store that makes sweeps resumable: every ok result, by run key."""
    rerun: bool = False
    """Train again even where an ok result is stored."""
    plan: bool = False
    """Check every cell and print what the sweep would do with each (train, reuse a stored result, or skip, and
    why), then stop before anything is trained."""
    report: bool = True
    """Build the sweep's report when it ends. false: only the summary lines, for a sweep whose report is built
    later (`python -m harness.report SWEEP_DIR`), e.g. one of many parts, or a resumed sweep's first try."""
    quiet_tensorflow: bool = True
    """Silence TensorFlow's C++ logs in each run's `train.log`."""
    order: str = "shuffled"
    """The order of a sweep's cells: `shuffled` (seeded, one seed's block at a time) or `grid` (Hydra's)."""
    run_process: str = "fork"
    """How a run's process starts: `fork` (from a run server that imported Keras once) or `fresh`."""
    input_check: str = "auto"  # time the training input alone after training (INPUT_CHECKS)
    """After training, time one epoch of the training input alone: `auto` (streamed data or your own pipeline), `on`,
    `off`.
    """
    python: str | None = None  # the interpreter runs use (harness.interpreters); None: the sweep's own
    """The interpreter each run uses (a path, or a command on PATH; null: the sweep's own); sweep it to compare two
    environments.
    """
    optimized_metric: str | None = None
    """What a run returns to a search sweeper (`hparams_search=optuna` sets it)."""
    callbacks: list[str] = field(default_factory=list)
    """Extra Keras callbacks for every run, as import paths `package.module:Class`."""


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


LATER_SETTINGS = {
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


LATER_SETTING_DEFAULTS: dict[str, Any] = {
    (f"{group}.{name}" if group else name): _RESOLVED.get(name, _default(_DEFAULT_OWNERS[group], name))
    for group, names in LATER_SETTINGS.items() for name in names
}
"""``setting -> default`` of ``LATER_SETTINGS``, read from the dataclasses above (every
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
"""How each run's process starts (``run_process``; ``harness.sweep.run_process``)."""
INPUT_CHECKS = ("auto", "on", "off")
"""``input_check``: time one epoch of the training input alone after training: ``auto`` where the data is
streamed from disk or a user's pipeline (``tf.data``, ``PyDataset``), ``on`` always, ``off`` never."""

DATASET_LOADS = ("auto", "memory", "stream")
"""How a ``folder`` dataset's decoded images reach training (``dataset.load``; see ``DatasetConfig``)."""

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
"""Keras dtype policies a run can train under (``precision``)."""

BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
"""Keras backends (``backend``) and the module each needs."""

TRACKING_MODES = ("auto", "online", "offline", "disabled")
"""Comet's modes (``tracking.mode``)."""

MOBILENET_V2_IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
"""The MobileNetV2 widths Keras has ImageNet weights for (``model.alpha`` with ``transfer.weights=imagenet``)."""

POOLINGS = ("avg", "max", "flatten")
"""How a backbone's feature maps become the head's input (``model.pooling``)."""

OPTIMIZED_METRICS = ("time_to_target_seconds", "best_val_accuracy", "train_seconds", "median_epoch_seconds")
"""What a search may optimise (``optimized_metric``): validation and timing figures of a run, never test accuracy."""

CHOICES: dict[str, tuple[str, ...]] = {
    "order": ORDERS,
    "run_process": RUN_PROCESS_MODES,
    "input_check": INPUT_CHECKS,
    "precision": PRECISIONS,
    "backend": tuple(BACKENDS),
    "optimized_metric": OPTIMIZED_METRICS,
    "target.mode": TARGET_MODES,
    "early_stopping.mode": TARGET_MODES,
    "tracking.mode": TRACKING_MODES,
    "dataset.load": DATASET_LOADS,
    "model.pooling": POOLINGS,
}
"""The settings whose values form a fixed set, with that set: checked before any training
(``harness.config.validate``) and listed in the settings reference."""


def register_configs() -> None:
    """Register the root schema and every group's schema in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore  # here: the run key reads the schema's defaults without Hydra

    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)
    _share_config_store()


def _share_config_store() -> None:
    """Let every composition read the one ConfigStore rather than a copy of it.

    Hydra deep-copies its config repository once per composition (``CachingConfigRepository``), and with it
    the process-wide ConfigStore and every schema stored there: about 50 ms each time, a fifth of a cell's
    composition and most of ``--help``. Composing only reads the store (``ConfigStore.load`` hands out copies
    of its nodes), so a copy of the singleton may be the singleton itself. Idempotent."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.__deepcopy__ = lambda self, memo: self  # type: ignore[method-assign]
