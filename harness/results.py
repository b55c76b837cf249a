"""The result contract: one ``result.json`` per run, the only interface between running and reporting.

A result is a plain JSON object (``Result``). Top-level scalars become the runs table's columns
(``harness.report.tables``); ``history`` (one dict per epoch), ``config`` (the resolved run config) and
``environment`` are nested. ``harness.result_files`` reads and writes them.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import TYPE_CHECKING, Any, TypedDict

from harness.cells import cell_factors
from harness.outcomes import Status
from harness.run_key import run_key
from harness.user_code import code_hashes

if TYPE_CHECKING:
    from harness.config.run_config import RunConfig

RESULT_FILE = "result.json"
SPEC_FILE = "run_spec.json"
PROGRESS_FILE = "progress.json"
"""Written by the run between its phases and after every epoch (phase, epoch, epochs, stage,
val_accuracy, epoch_seconds, at; ``harness.run.train.write_progress``): what the sweep shows while a
long run works. Replaced whole each time; never read by the report."""
LOG_FILE = "train.log"
"""A run's output (stdout and stderr), beside its result."""


class Result(TypedDict, total=False):
    """One run's ``result.json``: the contract between the run process (which writes it), the sweep
    (which writes it for runs that could not: skipped, killed, timed out) and the report (which reads
    nothing else). Every result has the identity fields (``result_identity``), ``status``, ``reason`` and
    ``epochs_run``; an ``ok`` one has the timings (``harness.run.timing``) and accuracies too."""

    run_key: str  # hash of what determines the result (``run_key``): the results store's key
    sweep_name: str  # the sweep's one name (its folder, its report's folder, its Comet tag)
    factors: dict[str, Any]  # every factor of the sweep, key -> level (``harness.cells``): the runs table's columns
    factor_baselines: dict[str, Any]  # the level each factor is compared against
    seed: int  # the repeat: seeds Python, NumPy and the backend
    dataset: str  # the dataset option (digits, folder, custom, ...)
    model: str  # the model option (small_cnn, vgg16, custom, ...)
    target_accuracy: float | None  # the target when it is a validation accuracy (else None: see target_metric)
    target_metric: str  # what time to target watches: val_accuracy, or the user's target.metric (val_mae, ...)
    target_value: float  # the value of target_metric that counts as reached
    target_mode: str  # max: reached at target_value or above; min: at or below
    best_target_metric: float  # the best epoch value of target_metric
    test_metrics: dict[str, float]  # every metric on the test split, the loss included
    user_code: dict[str, str]  # the user's _target_ functions -> SHA-256 of their module files (part of the run key)
    config: dict[str, Any]  # the resolved run config
    status: Status  # ok, failed, skipped or interrupted
    reason: str | None  # why it is not ok (None when ok)
    rerun_command: str  # the shell command that runs this cell again, alone, as it ran (``harness.cells``)
    log_file: str  # the run's train.log: its output, a failure's traceback included
    epochs_run: int  # epochs trained (fewer than the budget where early stopping fired)
    history: list[dict[str, Any]]  # one dict per epoch: metrics, seconds and its ``stage`` (head, fine_tune, all)
    train_seconds: float  # what the report compares: the epochs' wall time minus their validation passes
    median_epoch_seconds: float | None  # median training seconds of the epochs after the first (None: one epoch only)
    median_step_seconds: float | None  # median_epoch_seconds / steps_per_epoch
    time_to_target_seconds: float | None  # training seconds up to the first epoch that reached the target (None: never)
    test_accuracy: float | None  # None: a model without accuracy (a regression: see test_metrics)
    started_at: float  # Unix time the run process started
    ended_at: float  # Unix time the run process wrote its result (its training is over)
    sweep_position: int | None  # the cell's place in the sweep's order
    environment: dict[str, Any]  # versions, hardware, threads, parallel runs
    reused: bool  # taken from the results store, not trained in this sweep
    reused_from: str  # the sweep that trained a reused result
    comet: dict[str, Any]  # where the run's Comet experiment lives (never the API key)
    backbone: str  # the model's feature extractor (small_cnn, vgg16, ...)
    transfer_mode: str  # frozen, fine-tuned or from scratch
    trainable_params: int  # as compiled for the first (or only) stage
    frozen_params: int  # non-trainable, BatchNorm statistics included
    image_shape: list[int]  # the dataset's images as stored (H, W, C)
    image_size: int  # the backbone's input size (application models)
    pretrained_weights: str  # source_task's cache file, imagenet, or the file given
    weights_file: str  # the file the weights were loaded from (imagenet: Keras' cache)
    weights_sha256: str | None  # the weights file's SHA-256
    data_seconds: float  # loading and decoding the data: never training time
    data_cache_hit: bool  # a folder's decoded images read from the cache (absent for other datasets)
    data_streamed: bool  # a folder's images read from disk batch by batch, inside the timed epochs
    skipped_images: list[str]  # a folder's images that could not be read, left out (dataset.skip_unreadable)
    # what the run measured (``harness.run.timing``) and how it ended
    fit_seconds: float  # the whole fit call(s), validation and fine-tuning's recompilation included
    fit_cpu_seconds: float  # CPU seconds (user + system, every thread) the run's process spent in fit
    cores_used: float  # fit_cpu_seconds / fit_seconds: the cores fit kept busy on average
    cpus_available: int  # the CPUs the run's process may run on (its affinity: a Slurm allocation, a cpuset)
    peak_rss_bytes: int  # the kernel's high-water mark of the run process's resident memory (ru_maxrss)
    device_peak_memory_bytes: int | None  # the GPU's peak allocated memory, as the backend counts it (None: no GPU)
    cpu_energy_joules: float | None  # the CPU packages' RAPL counters over fit (None: no readable counter)
    gpu_energy_joules: float | None  # the run's GPU's NVML energy counter over fit (None: a CPU run, or no counter)
    energy_unmeasured: list[str]  # why a side has no energy figure (no RAPL in a VM, no NVML): never an estimate
    input_epoch_seconds: float  # one epoch of the training input alone, no model, timed after training
    input_share: float | None  # input_epoch_seconds / median_epoch_seconds (None: one epoch only)
    input_bound: bool | None  # input_share >= INPUT_BOUND_SHARE: the input alone needs most of an epoch
    validation_seconds: float  # the validation passes
    first_epoch_seconds: float | None  # includes tracing / compilation
    samples_per_second: float | None  # training examples per steady epoch second
    epochs_to_target: int | None  # the first epoch that reached the target (None: never)
    steps_per_epoch: int | None  # training batches per epoch
    train_examples: int  # training examples per epoch
    learning_rate: float  # the rate the optimizer trained with (learning_rate x lr_scale)
    best_val_accuracy: float | None  # the best epoch's validation accuracy (None: no accuracy metric)
    test_loss: float  # the loss on the test split, evaluated once after training
    early_stopped: bool  # whether EarlyStopping ended the run before the budget
    stopped_epoch: int | None  # the epoch EarlyStopping stopped after (1-based), if it did
    device_used: str | None  # cpu, or gpu:<the backend's device>
    phase_seconds: dict[str, float]  # start-up, imports, backend, Comet, data, model, fit, evaluate
    wall_seconds: float  # from launch to the result, seen from the sweep
    run_process: str  # fork or fresh
    fine_tuned_layers: list[str]  # the extractor's layers fine-tuning unfroze
    fine_tune_params: int  # trainable parameters in the fine-tuning stage
    pretrain_cache_hit: bool | None  # the source-task pretraining reused from the cache (None: not pretrained here)
    pretrain_seconds: float  # what the pretraining it used cost (paid once)
    pretrain_source_val_accuracy: float  # the source-task pretraining's validation accuracy
    pretrain_key: str  # the pretraining cache's key


class RunSpec(TypedDict, total=False):
    """``run_spec.json``: what the sweep asks of one run process (``harness.sweep.cell.run_spec`` writes it,
    ``harness.run.train.run`` reads it): the second contract, between launching and running."""

    config: dict[str, Any]  # the resolved run config
    factors: dict[str, Any]  # the cell's factors in its sweep (``harness.cells``)
    factor_baselines: dict[str, Any]  # the baseline level of each factor
    results_dir: str | None  # the results store an ok result goes to first (None: none)
    sweep_position: int | None  # the cell's place in the sweep's order
    cache_dir: str  # pretrained weights and decoded folders
    tracking: dict[str, Any]  # Comet's mode as the sweep decided it (``harness.sweep.comet_mode.resolve``)
    threads: int  # backend threads (0: its default)
    parallel_jobs: int  # runs sharing this machine at once
    rerun_command: str  # the shell command that runs this cell again (``harness.cells.rerun_command``)
    launched_at: float  # Unix time the sweep launched the run: its start-up is measured from here


REQUIRED = ("run_key", "sweep_name", "factors", "seed", "dataset", "model", "config", "status", "reason", "epochs_run")
"""Keys every result has, whatever happened to its run (``placeholder_result``)."""
REQUIRED_WHEN_OK = ("history", "train_seconds", "time_to_target_seconds", "test_loss", "started_at", "environment")
"""Keys every ``ok`` result has besides: what the report's verdicts are made of."""


FORMER_FACTOR_KEYS = ("optimizer", "transfer", "early_stopping", "device")
"""Keys of their own that results of earlier versions gave the article's four factors."""


def upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """A result as the contract has it today, from one written by any earlier harness: the article's
    factors, once keys of their own (``FORMER_FACTOR_KEYS``), are levels in ``factors``, first, as the runs
    table had them. Results read back are upgraded before they are checked, so that stored results are reused."""
    former = {key: data[key] for key in FORMER_FACTOR_KEYS if key in data}
    if not former:
        return data
    rest = {key: value for key, value in data.items() if key not in former}
    return {**rest, "factors": {**former, **(data.get("factors") or {})}}


def fits(value: Any, annotation: Any) -> bool:
    """Whether a JSON value fits a ``Result`` annotation (ints count as floats, as JSON has one number)."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, option) for option in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or annotation)


@functools.cache
def result_fields() -> dict[str, Any]:
    """``Result``'s fields and their types, resolved once (every read and write checks against them)."""
    return typing.get_type_hints(Result)


def result_problems(result: dict[str, Any]) -> list[str]:
    """What is wrong with ``result`` as a ``Result``: keys the contract does not know, required keys it
    lacks (``REQUIRED``, and ``REQUIRED_WHEN_OK`` for an ok run), values of the wrong type. Empty: valid."""
    hints = result_fields()
    problems = [f"unknown key {key!r}" for key in result if key not in hints]
    required = REQUIRED + (REQUIRED_WHEN_OK if result.get("status") == "ok" else ())
    problems += [f"missing required key {key!r}" for key in required if key not in result]
    problems += [f"{key}={result[key]!r} is not {hints[key]}" for key in result
                 if key in hints and not fits(result[key], hints[key])]
    return problems


def result_identity(cfg: RunConfig, factors: dict[str, Any] | None = None,
                    baselines: dict[str, Any] | None = None) -> Result:
    """The fields every result has, whatever happened to the run: its identity (``factors``: its level of
    every factor of its sweep, ``harness.cells``; by default of the ones its ``factors`` setting names) and
    its config."""
    return {
        "run_key": run_key(cfg.resolved),
        "sweep_name": cfg.sweep_name,
        "factors": factors if factors is not None else cell_factors(cfg.resolved, cfg.factors),
        "factor_baselines": baselines or {},
        "seed": cfg.seed,
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "target_accuracy": cfg.target.value if cfg.target.metric == "val_accuracy" else None,
        "target_metric": cfg.target.metric,
        "target_value": cfg.target.value,
        **({"user_code": code} if (code := code_hashes(cfg.resolved)) else {}),
        "config": cfg.resolved,
    }


def placeholder_result(cfg: RunConfig, status: Status, reason: str | None, factors: dict[str, Any] | None = None,
                       baselines: dict[str, Any] | None = None, *, rerun_command: str = "",
                       log_file: str | None = None, started_at: float | None = None,
                       sweep_position: int | None = None) -> Result:
    """The result of a run that has not (or never) produced one of its own: skipped, failed before it
    wrote anything, interrupted, or still running (the run process starts from this). The one place
    such a result is built; the stages' records are laid over it (``harness.stage_records``).

    Args:
        cfg: the run's config: its identity (``result_identity``).
        status: ``failed``, ``skipped``, ``interrupted`` (or ``ok`` only in tests).
        reason: why it is not ok.
        factors: the cell's factors in its sweep; baselines: their baselines.
        rerun_command: the shell command that runs the cell again.
        log_file: the run's ``train.log``, where it has one.
        started_at: when the run process started, where it did.
        sweep_position: the cell's place in the sweep's order, where it has one.
    """
    where = {"log_file": log_file, "started_at": started_at, "sweep_position": sweep_position}
    return {**result_identity(cfg, factors, baselines), "status": status, "reason": reason, "epochs_run": 0,
            "rerun_command": rerun_command, **{key: value for key, value in where.items() if value is not None}}
