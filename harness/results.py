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
from typing import TYPE_CHECKING, Any

from harness.hardware import machine_fingerprint, software_versions
from harness.schema import FACTORS

if TYPE_CHECKING:
    import pandas as pd

RESULT_FILE = "result.json"
SPEC_FILE = "run_spec.json"
STATUSES = ("ok", "failed", "skipped", "interrupted")

NON_SEMANTIC_KEYS = (
    "sweep_name", "reports_dir", "results_dir", "cache_dir", "tracking", "run_timeout_s", "quiet_tensorflow", "rerun",
    "order",
)
"""Config keys that do not change what a run computes; left out of its key."""

COLUMNS = (
    "run_key", "sweep_name", *FACTORS, "seed", "dataset", "model", "status", "reason", "epochs_run",
    "early_stopped", "stopped_epoch", "train_seconds", "fit_seconds", "validation_seconds",
    "first_epoch_seconds", "median_epoch_seconds", "samples_per_second", "time_to_target_seconds",
    "epochs_to_target", "target_accuracy", "best_val_accuracy", "test_accuracy", "test_loss",
    "pretrain_cache_hit", "pretrain_seconds", "device_used", "wall_seconds", "reused", "steps_per_epoch",
    "median_step_seconds", "started_at", "sweep_position",
)
"""Columns of the runs table, in order (absent values are empty)."""

ENVIRONMENT_COLUMNS = (
    "cpu_model", "cpu_count", "gpu_names", "hostname", "backend", "keras", "tensorflow", "python", "threads",
    "parallel_jobs", "jit_compile",
)
"""Facts from a result's ``environment`` that become columns too (conditions that shape timings)."""


def history_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per epoch of every ok run: ``run_key``, the factors, ``seed``, ``epoch``,
    ``elapsed_train_seconds`` (training seconds so far, the x axis of learning curves) and the epoch's
    ``val_accuracy``."""
    import pandas as pd

    rows = []
    for result in results:
        if result.get("status") != "ok":
            continue
        identity = {"run_key": result["run_key"], **{f: result.get(f) for f in FACTORS}, "seed": result.get("seed")}
        elapsed = 0.0
        for epoch, record in enumerate(result.get("history") or [], start=1):
            elapsed += record.get("train_seconds", 0.0)
            rows.append({**identity, "epoch": epoch, "elapsed_train_seconds": elapsed,
                         "val_accuracy": record.get("val_accuracy")})
    return pd.DataFrame(rows, columns=["run_key", *FACTORS, "seed", "epoch", "elapsed_train_seconds", "val_accuracy"])


def run_key(cfg: dict[str, Any]) -> str:
    """A short, stable hash of what determines a run's result: its config minus non-semantic keys, the
    versions of harness, Keras and TensorFlow, and the machine (CPU model and count, GPUs): a result
    from other software or from another machine is not reused as this one's."""
    semantic = {k: v for k, v in cfg.items() if k not in NON_SEMANTIC_KEYS}
    semantic["software"] = software_versions()
    semantic["machine"] = machine_fingerprint()
    blob = json.dumps(semantic, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def base_record(cfg: dict[str, Any]) -> dict[str, Any]:
    """The fields every result has, whatever happened to the run: its identity and its config."""
    return {
        "run_key": run_key(cfg),
        "sweep_name": cfg["sweep_name"],
        **{factor: cfg[factor]["name"] for factor in FACTORS},
        "seed": cfg["seed"],
        "dataset": cfg["dataset"]["name"],
        "model": cfg["model"]["name"],
        "target_accuracy": cfg["target_accuracy"],
        "config": cfg,
    }


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, default=str, allow_nan=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_result(path: Path) -> dict[str, Any]:
    """Read one result file; raises ``ValueError`` if it is not a result."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        raise ValueError(f"{path}: not a result (no valid 'status')")
    return data


def load_stored(results_dir: Path, key: str) -> dict[str, Any] | None:
    """The ``ok`` result stored under ``key`` in the results store, or ``None`` (absent, unreadable,
    or not ok: failed and interrupted runs are retried, skipped ones re-checked)."""
    try:
        result = read_result(Path(results_dir) / f"{key}.json")
    except (OSError, ValueError):
        return None
    return result if result["status"] == "ok" else None


def store_result(results_dir: Path, result: dict[str, Any]) -> None:
    """Keep an ``ok`` result in the store (``<results_dir>/<run_key>.json``) for later sweeps."""
    write_json_atomic(Path(results_dir) / f"{result['run_key']}.json", result)


def collect_results(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All results under ``folder`` (searched recursively) and a list of problems with unreadable ones."""
    results, problems = [], []
    for path in sorted(Path(folder).rglob(RESULT_FILE)):
        try:
            results.append(read_result(path))
        except (OSError, ValueError) as err:
            problems.append(f"{path}: unreadable result ({err})")
    return results, problems


PREFERENCE = {"ok": 0, "skipped": 1, "failed": 2, "interrupted": 3}


def one_per_cell(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
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


def results_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: ``COLUMNS``, the device's ``price_per_hour``, then ``ENVIRONMENT_COLUMNS``."""
    import pandas as pd  # here, not at the top: the training process writes results without pandas

    rows = []
    for result in results:
        row = {col: result.get(col) for col in COLUMNS}
        row["price_per_hour"] = ((result.get("config") or {}).get("device") or {}).get("price_per_hour")
        environment = result.get("environment") or {}
        for col in ENVIRONMENT_COLUMNS:
            value = environment.get(col)
            row[col] = ", ".join(value) if isinstance(value, list) else value
        rows.append(row)
    return pd.DataFrame(rows, columns=[*COLUMNS, "price_per_hour", *ENVIRONMENT_COLUMNS])
