"""Result files: one ``result.json`` per run, the only interface between running and reporting.

A result is a plain JSON object. Top-level scalars become DataFrame columns; ``history`` (one dict per
epoch), ``config`` (the resolved run config) and ``environment`` are nested. Files are written
atomically (temp file, fsync, rename), so a crash never leaves a half-written result behind, and
readers skip (and report) any file that does not parse.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from harness.cells import FACTORS, NON_SEMANTIC_KEYS, cell_factors
from harness.config.schema import KEYED_ONLY_OFF_DEFAULT
from harness.hardware import machine_fingerprint, software_versions
from harness.outcomes import STATUSES, Status
from harness.user_code import code_hashes

if TYPE_CHECKING:
    import pandas as pd

RESULT_FILE = "result.json"
SPEC_FILE = "run_spec.json"
PROGRESS_FILE = "progress.json"
LOG_FILE = "train.log"
"""A run's output (stdout and stderr), beside its result."""
"""Written by the run between its phases and after every epoch (phase, epoch, epochs, stage,
val_accuracy, epoch_seconds, at; ``harness.run.train.write_progress``): what the sweep shows while a
long run works. Replaced whole each time; never read by the report."""

TIMING_VERSION = 1
"""The version of the timing rules (``harness.run.timing``, the README's timing methodology): bump it with
any change to what a timing means, and stored results timed by the old rules are no longer reused (from 2
on it is part of every run key; at 1 it leaves the keys of results stored before it existed alone)."""



class Result(TypedDict, total=False):
    """One run's ``result.json``: the contract between the run process (which writes it), the sweep
    (which writes it for runs that could not: skipped, killed, timed out) and the report (which reads
    nothing else). Every result has the identity fields (``base_record``), ``status``, ``reason`` and
    ``epochs_run``; an ``ok`` one has the timings (``harness.run.timing``) and accuracies too."""

    run_key: str  # hash of what determines the result (``run_key``): the results store's key
    sweep_name: str
    optimizer: str  # the article's four factors, as columns
    transfer: str
    early_stopping: str
    device: str
    factors: dict[str, Any]  # every factor of the sweep, key -> level (``harness.cells``)
    factor_baselines: dict[str, Any]  # the baseline level of each factor beyond the article's four
    seed: int
    dataset: str
    model: str
    target_accuracy: float | None  # the target when it is a validation accuracy (else None: see target_metric)
    target_metric: str  # what time to target watches: val_accuracy, or the user's target.metric (val_mae, ...)
    target_value: float  # the value of target_metric that counts as reached
    target_mode: str  # max: reached at target_value or above; min: at or below
    best_target_metric: float  # the best epoch value of target_metric
    test_metrics: dict[str, float]  # every metric on the test split, the loss included
    user_code: dict[str, str]  # the user's _target_ functions -> SHA-256 of their module files (part of the run key)
    config: dict[str, Any]  # the resolved run config
    status: Status
    reason: str | None  # why it is not ok (None when ok)
    rerun_command: str  # the shell command that runs this cell again, alone, as it ran (``harness.cells``)
    log_file: str  # the run's train.log: its output, a failure's traceback included
    epochs_run: int
    history: list[dict[str, Any]]  # one dict per epoch: metrics, seconds and its ``stage`` (head, fine_tune, all)
    train_seconds: float
    median_epoch_seconds: float | None
    median_step_seconds: float | None
    time_to_target_seconds: float | None
    test_accuracy: float | None  # None: a model without accuracy (a regression: see test_metrics)
    started_at: float  # Unix time the run process started
    ended_at: float  # Unix time the run process wrote its result (its training is over)
    sweep_position: int | None  # the cell's place in the sweep's order
    environment: dict[str, Any]  # versions, hardware, threads, parallel runs
    reused: bool  # taken from the results store, not trained in this sweep
    reused_from: str
    comet: dict[str, Any]  # where the run's Comet experiment lives (never the API key)
    backbone: str  # the model's feature extractor (small_cnn, vgg16, ...)
    transfer_mode: str  # frozen, fine-tuned or from scratch
    trainable_params: int  # as compiled for the first (or only) stage
    frozen_params: int  # non-trainable, BatchNorm statistics included
    image_shape: list[int]  # the dataset's images as stored (H, W, C)
    image_size: int  # the backbone's input size (application models)
    pretrained_weights: str  # source_task's cache file, imagenet, or the file given
    weights_file: str  # the file the weights were loaded from (imagenet: Keras' cache)
    weights_sha256: str | None
    data_seconds: float  # loading and decoding the data: never training time
    data_cache_hit: bool  # a folder's decoded images read from the cache (absent for other datasets)
    data_streamed: bool  # a folder's images read from disk batch by batch, inside the timed epochs
    skipped_images: list[str]  # a folder's images that could not be read, left out (dataset.skip_unreadable)
    # what the run measured (``harness.run.timing``) and how it ended
    fit_seconds: float  # the whole fit call(s), validation and fine-tuning's recompilation included
    validation_seconds: float  # the validation passes
    first_epoch_seconds: float | None  # includes tracing / compilation
    samples_per_second: float | None  # training examples per steady epoch second
    epochs_to_target: int | None
    steps_per_epoch: int | None  # training batches per epoch
    train_examples: int
    learning_rate: float  # the rate the optimizer trained with (learning_rate x lr_scale)
    best_val_accuracy: float | None
    test_loss: float
    early_stopped: bool
    stopped_epoch: int | None  # the epoch EarlyStopping stopped after (1-based), if it did
    device_used: str | None  # cpu, or gpu:<the backend's device>
    phase_seconds: dict[str, float]  # start-up, imports, backend, Comet, data, model, fit, evaluate
    wall_seconds: float  # from launch to the result, seen from the sweep
    run_process: str  # fork or fresh
    fine_tuned_layers: list[str]  # the extractor's layers fine-tuning unfroze
    fine_tune_params: int  # trainable parameters in the fine-tuning stage
    pretrain_cache_hit: bool | None  # the source-task pretraining reused from the cache (None: not pretrained here)
    pretrain_seconds: float  # what the pretraining it used cost (paid once)
    pretrain_source_val_accuracy: float
    pretrain_key: str


class RunSpec(TypedDict, total=False):
    """``run_spec.json``: what the sweep asks of one run process (``harness.sweep.cell.run_spec`` writes it,
    ``harness.run.train.run`` reads it): the second contract, between launching and running."""

    config: dict[str, Any]  # the resolved run config
    factors: dict[str, Any]  # the cell's factors in its sweep (``harness.cells``)
    factor_baselines: dict[str, Any]
    results_dir: str | None  # the results store an ok result goes to first (None: none)
    sweep_position: int | None  # the cell's place in the sweep's order
    cache_dir: str  # pretrained weights and decoded folders
    tracking: dict[str, Any]  # Comet's mode as the sweep decided it (``harness.sweep.comet_mode.resolve``)
    threads: int  # backend threads (0: its default)
    parallel_jobs: int  # runs sharing this machine at once
    rerun_command: str  # the shell command that runs this cell again (``harness.cells.rerun_command``)
    launched_at: float  # Unix time the sweep launched the run: its start-up is measured from here


REQUIRED = ("run_key", "sweep_name", "optimizer", "transfer", "early_stopping", "device", "seed", "dataset", "model",
            "config", "status", "reason", "epochs_run")
"""Keys every result has, whatever happened to its run (``placeholder_result``)."""
REQUIRED_WHEN_OK = ("history", "train_seconds", "time_to_target_seconds", "test_loss", "started_at", "environment")
"""Keys every ``ok`` result has besides: what the report's verdicts are made of."""


def _fits(value: Any, annotation: Any) -> bool:
    """Whether a JSON value fits a ``Result`` annotation (ints count as floats, as JSON has one number)."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, option) for option in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or annotation)


def result_problems(record: dict[str, Any]) -> list[str]:
    """What is wrong with ``record`` as a ``Result``: keys the contract does not know, required keys it
    lacks (``REQUIRED``, and ``REQUIRED_WHEN_OK`` for an ok run), values of the wrong type. Empty: valid."""
    import typing

    hints = typing.get_type_hints(Result)
    problems = [f"unknown key {key!r}" for key in record if key not in hints]
    required = REQUIRED + (REQUIRED_WHEN_OK if record.get("status") == "ok" else ())
    problems += [f"missing required key {key!r}" for key in required if key not in record]
    problems += [f"{key}={record[key]!r} is not {hints[key]}" for key in record
                 if key in hints and not _fits(record[key], hints[key])]
    return problems


COLUMNS = (
    "run_key", "sweep_name", *FACTORS, "seed", "dataset", "model", "transfer_mode", "image_size",
    "trainable_params", "frozen_params", "status", "reason", "rerun_command", "log_file", "epochs_run",
    "early_stopped", "stopped_epoch", "train_seconds", "fit_seconds", "validation_seconds",
    "first_epoch_seconds", "median_epoch_seconds", "samples_per_second", "time_to_target_seconds",
    "epochs_to_target", "target_accuracy", "target_metric", "target_value", "learning_rate", "best_val_accuracy",
    "test_accuracy", "test_loss",
    "pretrain_cache_hit", "pretrain_seconds", "pretrained_weights", "weights_sha256", "data_seconds",
    "data_cache_hit", "data_streamed", "skipped_images", "device_used",
    "wall_seconds", "reused", "steps_per_epoch",
    "median_step_seconds", "started_at", "sweep_position",
)
"""Columns of the runs table, in order (absent values are empty)."""

ENVIRONMENT_COLUMNS = (
    "cpu_model", "cpu_count", "gpu_names", "hostname", "backend", "keras", "tensorflow", "python", "threads",
    "parallel_jobs", "jit_compile",
)
"""Facts from a result's ``environment`` that become columns too (conditions that shape timings)."""


def history_frame(results: list[Result]) -> pd.DataFrame:
    """One row per epoch of every ok run: ``run_key``, the factors, ``seed``, ``epoch``,
    ``elapsed_train_seconds`` (training seconds so far, the x axis of learning curves), the epoch's
    ``val_accuracy``, and its value of the run's target metric (``target_metric``, e.g. ``val_mae`` for a
    regression; ``val_accuracy`` by default) as ``target_metric_value``."""
    import pandas as pd

    rows = []
    for result in results:
        if result.get("status") != "ok":
            continue
        identity = {"run_key": result["run_key"], **{f: result.get(f) for f in FACTORS}, "seed": result.get("seed")}
        metric = result.get("target_metric") or "val_accuracy"
        elapsed = 0.0
        for epoch, record in enumerate(result.get("history") or [], start=1):
            elapsed += record.get("train_seconds", 0.0)
            rows.append({**identity, "epoch": epoch, "elapsed_train_seconds": elapsed,
                         "val_accuracy": record.get("val_accuracy"), "target_metric": metric,
                         "target_metric_value": record.get(metric)})
    return pd.DataFrame(rows, columns=["run_key", *FACTORS, "seed", "epoch", "elapsed_train_seconds", "val_accuracy",
                                       "target_metric", "target_metric_value"])


def run_key(cfg: dict[str, Any]) -> str:
    """A short, stable hash of what determines a run's result: its config minus non-semantic keys, the
    contents of the user's own modules that ``_target_`` names (``user_code.code_hashes``), the versions
    of harness, Keras, TensorFlow and the run's backend (``hardware.software_versions``), the timing
    rules' version (``TIMING_VERSION``), and the machine (CPU model and count, GPUs): a result from other
    code, other software or another machine is not reused as this one's."""
    semantic = {k: v for k, v in cfg.items() if k not in NON_SEMANTIC_KEYS}
    for dotted, default in KEYED_ONLY_OFF_DEFAULT.items():
        *group, key = dotted.split(".")
        if not group:
            if key in semantic and semantic[key] == default:
                del semantic[key]
        elif isinstance(sub := semantic.get(group[0]), dict) and key in sub and sub[key] == default:
            semantic[group[0]] = {k: v for k, v in sub.items() if k != key}  # a copy: the caller's stays
    target = semantic.get("target")
    if isinstance(target, dict) and target["metric"] == "val_accuracy" and target["mode"] in ("auto", "max"):
        semantic["target_accuracy"] = target["value"]  # time to an accuracy: keyed as before `target` existed
        del semantic["target"]
    code = code_hashes(cfg)
    if code:  # the user's own model or data: editing their module retrains
        semantic["code"] = code
    semantic["software"] = software_versions(str(cfg.get("backend", "tensorflow")))
    if TIMING_VERSION > 1:  # from the first change of the timing rules on: results timed by older rules retrain
        semantic["timing_version"] = TIMING_VERSION
    semantic["machine"] = machine_fingerprint()
    blob = json.dumps(semantic, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def base_record(cfg: dict[str, Any], factors: dict[str, Any] | None = None,
                baselines: dict[str, Any] | None = None) -> Result:
    """The fields every result has, whatever happened to the run: its identity (the article's factors
    as columns; ``factors``: every factor of its sweep, ``harness.cells``) and its config."""
    return {
        "run_key": run_key(cfg),
        "sweep_name": cfg["sweep_name"],
        **{factor: cfg[factor]["name"] for factor in FACTORS},
        "factors": factors if factors is not None else cell_factors(cfg),
        "factor_baselines": baselines or {},
        "seed": cfg["seed"],
        "dataset": cfg["dataset"]["name"],
        "model": cfg["model"]["name"],
        "target_accuracy": cfg["target"]["value"] if cfg["target"]["metric"] == "val_accuracy" else None,
        "target_metric": cfg["target"]["metric"],
        "target_value": cfg["target"]["value"],
        **({"user_code": code} if (code := code_hashes(cfg)) else {}),
        "config": cfg,
    }


def placeholder_result(cfg: dict[str, Any], status: Status, reason: str, factors: dict[str, Any] | None = None,
                       baselines: dict[str, Any] | None = None, **extra: Any) -> Result:
    """The result of a run that has not (or never) produced one of its own: skipped, failed before it
    wrote anything, interrupted, or still running (the run process starts from this). The one place
    such a record is built."""
    return {**base_record(cfg, factors, baselines), "status": status, "reason": reason, "epochs_run": 0,
            **extra}  # type: ignore[typeddict-item]


def write_json_atomic(path: Path, data: dict[str, Any] | Result) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one. An
    ``OSError`` names ``path`` (a full disk fails inside ``write``, whose error names no file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, default=str, allow_nan=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None:
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_result(path: Path) -> Result:
    """Read one result file; raises ``ValueError`` if it is not a result: no valid ``status``, or a
    required key missing (``REQUIRED``), so that a reader fails loudly instead of showing an empty column."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        raise ValueError(f"{path}: not a result (no valid 'status')")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ValueError(f"{path}: not a result (missing {', '.join(missing)})")
    return data


def load_stored(results_dir: Path, key: str) -> Result | None:
    """The ``ok`` result stored under ``key`` in the results store, or ``None`` (absent, unreadable,
    or not ok: failed and interrupted runs are retried, skipped ones re-checked)."""
    try:
        result = read_result(Path(results_dir) / f"{key}.json")
    except (OSError, ValueError):
        return None
    return result if result["status"] == "ok" else None


def store_result(results_dir: Path, result: Result) -> None:
    """Keep an ``ok`` result in the store (``<results_dir>/<run_key>.json``) for later sweeps."""
    write_json_atomic(Path(results_dir) / f"{result['run_key']}.json", result)


def collect_results(folder: Path) -> tuple[list[Result], list[str]]:
    """All results under ``folder`` (searched recursively) and a list of problems with unreadable ones."""
    results, problems = [], []
    for path in sorted(Path(folder).rglob(RESULT_FILE)):
        try:
            results.append(read_result(path))
        except (OSError, ValueError) as err:
            problems.append(f"{path}: unreadable result ({err})")
    return results, problems


PREFERENCE = {"ok": 0, "skipped": 1, "failed": 2, "interrupted": 3}


def one_per_cell(results: list[Result]) -> tuple[list[Result], int]:
    """Keep one result per run key (an ``ok`` one if any; among equals the last given), so that a
    folder holding a killed sweep and its resumed re-run counts each cell once. Returns the kept
    results, in their first order, and how many were dropped."""
    best: dict[str, tuple[int, int]] = {}
    for index, result in enumerate(results):
        key = result.get("run_key") or f"#{index}"
        rank = PREFERENCE.get(result.get("status"), 9)
        if key not in best or rank <= best[key][0]:
            best[key] = (rank, index)
    keep = sorted(index for _, index in best.values())
    return [results[i] for i in keep], len(results) - len(keep)


def factor_columns(results: list[Result]) -> list[str]:
    """The factors of a set of results: the article's four, then every other factor a result names in
    its ``factors`` mapping (``harness.cells``), in first-seen order. Results written before results
    carried ``factors`` have the article's four only."""
    found = list(FACTORS)
    for result in results:
        found += [key for key in result.get("factors") or {} if key not in found]
    return found


def factor_baselines(results: list[Result]) -> dict[str, Any]:
    """The baseline level of each factor beyond the article's four, as the results record it."""
    found: dict[str, Any] = {}
    for result in results:
        for key, level in (result.get("factor_baselines") or {}).items():
            found.setdefault(key, level)
    return found


def results_frame(results: list[Result]) -> pd.DataFrame:
    """One row per run: ``COLUMNS`` (with every factor beyond the article's four after them, from each
    result's ``factors``), the device's ``price_per_hour``, then ``ENVIRONMENT_COLUMNS``."""
    import pandas as pd  # here, not at the top: the training process writes results without pandas

    extra = [key for key in factor_columns(results) if key not in COLUMNS]
    at = COLUMNS.index(FACTORS[-1]) + 1
    columns = [*COLUMNS[:at], *extra, *COLUMNS[at:]]
    environment_columns = [col for col in ENVIRONMENT_COLUMNS if col not in columns]  # a swept backend: a factor
    rows = []
    for result in results:
        row = {col: result.get(col) for col in COLUMNS}
        row.update({key: (result.get("factors") or {}).get(key) for key in extra})
        row["price_per_hour"] = ((result.get("config") or {}).get("device") or {}).get("price_per_hour")
        environment = result.get("environment") or {}
        for col in environment_columns:
            value = environment.get(col)
            row[col] = ", ".join(value) if isinstance(value, list) else value
        rows.append(row)
    return pd.DataFrame(rows, columns=[*columns, "price_per_hour", *environment_columns])


def comet_summary(results: list[dict[str, Any]]) -> str | None:
    """Where the sweep's Comet experiments are, with the upload command for offline archives."""
    comets = [r["comet"] for r in results if r.get("comet")]
    if not comets:
        return None
    parts = []
    online = [c for c in comets if c.get("mode") == "online"]
    if online:
        parts.append(f"{len(online)} run{'s' if len(online) != 1 else ''} logged online to Comet")
    offline = [c for c in comets if c.get("mode") == "offline" and c.get("archive")]
    archives = [c["archive"] for c in offline if Path(c["archive"]).is_file()]
    missing = [c for c in offline if not Path(c["archive"]).is_file()]
    if archives:
        folders = sorted({str(Path(a).parent) for a in archives})
        parts.append(f"{len(archives)} Comet offline archive{'s' if len(archives) != 1 else ''} in "
                     f"{', '.join(folders)}; upload with: "
                     f"comet upload {' '.join(f'{folder}/*.zip' for folder in folders)}")
    if missing:  # the run process was killed while Comet wrote it, or Comet failed (its error is in the result)
        why = "; ".join(sorted({c.get("error") or "its run process ended before Comet wrote it" for c in missing}))
        parts.append(f"{len(missing)} run{'s have' if len(missing) != 1 else ' has'} no Comet archive "
                     f"({', '.join(Path(c['archive']).name for c in missing)}): {why}")
    fallbacks = sorted({c["fallback"] for c in comets if c.get("fallback")})
    if fallbacks:
        parts.append(f"offline instead of online because: {'; '.join(fallbacks)}")
    return ". ".join(parts)
