"""What each stage of a run returns: small typed records whose fields are ``Result`` keys.

A result is its identity (``harness.results.placeholder_result``) with the records of the stages that ran
laid over it (``assemble``), the only way a result gets keys: the run process's stages (data, model,
fit, epochs, evaluation, ...) and the sweep's (how it supervised or reused the run). A record's field
that is ``None`` where the contract (``Result``) does not allow ``None`` is left out of the result: a fact
that does not apply (``image_size`` of a model without one), not a null value.

Imports neither Keras nor Hydra nor pandas: the run process, the sweep and the report use it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

from harness.outcomes import Status
from harness.results import Result, fits, result_fields


@dataclass
class StageRecord:
    """The base of every record: its fields as result keys (``fields``)."""

    def fields(self) -> dict[str, Any]:
        """The record as result keys, less the ``None`` values the contract has no ``None`` for."""
        return {name: value for name, value in ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))
                if value is not None or _admits_none(name)}


@functools.cache
def _admits_none(name: str) -> bool:
    """Whether the contract lets the result key ``name`` be ``None``."""
    return fits(None, result_fields()[name])


def assemble(start: Result, *records: StageRecord) -> Result:
    """A new result: ``start`` with each record's ``fields`` laid over it, in order (a later record's
    value wins: an ``Outcome`` after an earlier one)."""
    result = dict(start)
    for record in records:
        result.update(record.fields())
    return result  # type: ignore[return-value]


@dataclass
class Outcome(StageRecord):
    """How the run ended: ``ok``, or why not."""

    status: Status
    reason: str | None


@dataclass
class Phases(StageRecord):
    """Seconds per phase of the run (start-up, imports, data, model, fit, ...); ``timing.PhaseClock`` fills
    the mapping as the run goes."""

    phase_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class RunEnvironment(StageRecord):
    """Versions, hardware and run conditions, and the device the run trained on (``None``: none usable)."""

    environment: dict[str, Any]
    device_used: str | None = None


@dataclass
class Tracking(StageRecord):
    """Where the run's Comet experiment lives (never the API key), and a Comet error if one occurred."""

    comet: dict[str, Any] = field(default_factory=dict)


@dataclass
class FolderFacts(StageRecord):
    """How an image folder was read: filled while loading, so that a run that fails on its data still says
    what was decoded (every field ``None``: not a folder)."""

    data_cache_hit: bool | None = None
    data_streamed: bool | None = None
    skipped_images: list[str] | None = None


@dataclass
class DataFacts(StageRecord):
    """The loaded data: what loading cost (never training time) and its shape."""

    data_seconds: float
    train_examples: int
    image_shape: list[int]


@dataclass
class Pretraining(StageRecord):
    """Where a transferred extractor's weights came from: a file (ImageNet's or the user's) or the source
    task's pretraining, cached (``pretrain_cache_hit``)."""

    pretrained_weights: str
    pretrain_cache_hit: bool | None
    pretrain_seconds: float
    weights_file: str | None = None
    weights_sha256: str | None = None
    pretrain_source_val_accuracy: float | None = None
    pretrain_key: str | None = None


@dataclass
class ModelFacts(StageRecord):
    """The compiled model: its backbone, rate and parameters (``image_size``: an application model's input)."""

    backbone: str
    learning_rate: float
    trainable_params: int
    frozen_params: int
    image_size: int | None = None


@dataclass
class FitFacts(StageRecord):
    """The timed ``fit`` call(s) as a whole: wall and CPU seconds, energy, memory, and fine-tuning's facts."""

    transfer_mode: str
    fit_seconds: float
    fit_cpu_seconds: float
    cores_used: float
    cpu_energy_joules: float | None
    gpu_energy_joules: float | None
    energy_unmeasured: list[str]
    device_peak_memory_bytes: int | None
    fine_tuned_layers: list[str] | None = None
    fine_tune_params: int | None = None


@dataclass
class TargetFacts(StageRecord):
    """What a history says about its target (``harness.targets.target_facts``)."""

    target_metric: str
    target_value: float
    target_mode: str
    target_accuracy: float | None
    time_to_target_seconds: float | None
    epochs_to_target: int | None
    best_target_metric: float | None = None  # None: no epoch recorded the metric


@dataclass
class EpochTimings(StageRecord):
    """The timing figures of a history (``harness.run.timing.summarize_epochs``); its time to target is
    ``TargetFacts``'."""

    train_seconds: float
    validation_seconds: float
    first_epoch_seconds: float | None
    median_epoch_seconds: float | None
    samples_per_second: float | None
    median_step_seconds: float | None


@dataclass
class EpochFacts(StageRecord):
    """The fit's per-epoch history and what it says beyond timing and the target."""

    history: list[dict[str, Any]]
    epochs_run: int
    steps_per_epoch: int | None
    best_val_accuracy: float | None
    early_stopped: bool
    stopped_epoch: int | None


@dataclass
class InputCheck(StageRecord):
    """One epoch of the training input alone, and its share of a steady epoch."""

    input_epoch_seconds: float
    input_share: float | None
    input_bound: bool | None


@dataclass
class Evaluation(StageRecord):
    """The one evaluation on the test split."""

    test_loss: float
    test_accuracy: float | None
    test_metrics: dict[str, float]


@dataclass
class ProcessFacts(StageRecord):
    """The run process at its end: when, its peak memory and the CPUs it could use."""

    ended_at: float
    peak_rss_bytes: int
    cpus_available: int


@dataclass
class Supervision(StageRecord):
    """How the sweep saw the run: its wall time from launch to result, and how its process started."""

    wall_seconds: float
    run_process: str


@dataclass
class Reuse(StageRecord):
    """A result taken from the results store into this sweep, with this sweep's view of its cell."""

    sweep_name: str
    reused_from: str
    factors: dict[str, Any]
    factor_baselines: dict[str, Any]
    reused: bool = True


def stage_records() -> list[type[StageRecord]]:
    """Every record type (the contract's tests check each field against ``Result``)."""
    return StageRecord.__subclasses__()
