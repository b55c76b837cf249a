"""The report's tables of results: one row per run (``results_frame``) and one per epoch
(``history_frame``), built from result files alone."""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any

import pandas as pd

from harness.cells import read_back
from harness.results import Result, result_fields


def _is_nested(annotation: Any) -> bool:
    """A mapping, or a list of mappings (``history``): nested in a result, not a column."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    return origin is dict or (origin is list and bool(args) and typing.get_origin(args[0]) is dict)


COLUMNS = tuple(name for name, annotation in result_fields().items() if not _is_nested(annotation))
"""Columns of the runs table, in order: every field of the contract (``Result``) in its order but the nested
ones (config, environment, history, factors, ...); absent values are empty."""

ENVIRONMENT_COLUMNS = (
    "cpu_model", "cpu_count", "gpu_names", "hostname", "backend", "keras", "tensorflow", "python", "threads",
    "parallel_jobs", "jit_compile", "packages",
)
"""Facts from a result's ``environment`` that become columns too (conditions that shape timings)."""


def history_frame(results: list[Result]) -> pd.DataFrame:
    """One row per epoch of every ok run: ``run_key``, the factors (``factor_columns``), ``seed``, ``epoch``,
    ``elapsed_train_seconds`` (training seconds so far, the x axis of learning curves), the epoch's
    ``val_accuracy``, and its value of the run's target metric (``target_metric``, e.g. ``val_mae`` for a
    regression; ``val_accuracy`` by default) as ``target_metric_value``."""
    factors = factor_columns(results)
    rows = []
    for result in results:
        if result.get("status") != "ok":
            continue
        levels = result.get("factors") or {}
        identity = {"run_key": result["run_key"], **{f: levels.get(f) for f in factors}, "seed": result.get("seed")}
        metric = result.get("target_metric") or "val_accuracy"
        elapsed = 0.0
        for number, epoch in enumerate(result.get("history") or [], start=1):
            elapsed += epoch.get("train_seconds", 0.0)
            rows.append({**identity, "epoch": number, "elapsed_train_seconds": elapsed,
                         "val_accuracy": epoch.get("val_accuracy"), "target_metric": metric,
                         "target_metric_value": epoch.get(metric)})
    return pd.DataFrame(rows, columns=["run_key", *factors, "seed", "epoch", "elapsed_train_seconds", "val_accuracy",
                                       "target_metric", "target_metric_value"])


def factor_columns(results: list[Result]) -> list[str]:
    """The factors of a set of results: every factor a result names in its ``factors`` mapping
    (``harness.cells``), in first-seen order."""
    found: list[str] = []
    for result in results:
        found += [key for key in result.get("factors") or {} if key not in found]
    return found


def factor_baselines(results: list[Result]) -> dict[str, Any]:
    """The baseline level of each factor, as the results record it."""
    found: dict[str, Any] = {}
    for result in results:
        for key, level in (result.get("factor_baselines") or {}).items():
            found.setdefault(key, level)
    return found


def results_frame(results: list[Result]) -> pd.DataFrame:
    """One row per run: ``COLUMNS`` with each factor (``factor_columns``, from each result's ``factors``)
    after ``sweep_name``, the ``device`` the run trained on (where it is not a factor) and its ``price_per_hour``
    (what the cost verdicts need in every sweep), then ``ENVIRONMENT_COLUMNS``."""
    swept = factor_columns(results)
    extra = [key for key in swept if key not in COLUMNS]
    at = COLUMNS.index("sweep_name") + 1
    columns = [*COLUMNS[:at], *extra, *COLUMNS[at:]]
    environment_columns = [col for col in ENVIRONMENT_COLUMNS if col not in columns]  # a swept backend: a factor
    device_column = [] if "device" in columns else ["device"]
    rows = []
    for result in results:
        row = {col: result.get(col) for col in COLUMNS}
        levels = result.get("factors") or {}
        row.update({key: levels.get(key) for key in extra})
        row.update({key: levels[key] for key in swept if key in levels})  # its cell's level, even where a field of
        # the same name says otherwise (target_accuracy, re-targeted after the fact)
        device = (result.get("config") or {}).get("device") or {}
        row.update({col: device.get("name") for col in device_column})
        row["price_per_hour"] = device.get("price_per_hour")
        environment = result.get("environment") or {}
        for col in environment_columns:
            value = environment.get(col)
            if isinstance(value, dict):  # packages: "keras 3.5.0, numpy 2.1.0"
                value = [f"{name} {version}" for name, version in value.items() if version is not None]
            row[col] = ", ".join(value) if isinstance(value, list) else value
        rows.append(row)
    return pd.DataFrame(rows, columns=[*columns, *device_column, "price_per_hour", *environment_columns])


def table_factors(columns: list[str]) -> list[str]:
    """The factor columns of a runs table (``runs.csv``) read back: ``results_frame`` puts them between
    ``sweep_name`` and ``seed``."""
    return columns[columns.index("sweep_name") + 1:columns.index("seed")]


def cell_name(row: pd.Series | dict, factors: Sequence[str]) -> str:
    """A cell in words, from its factor columns: ``optimizer=adam transfer=off ...`` (a setting the cell lacks,
    empty in the table, left out); a sweep without factors has one cell, ``the only cell``."""
    levels = {factor: read_back(row[factor]) for factor in factors}
    return " ".join(f"{factor}={level}" for factor, level in levels.items() if level is not None) or "the only cell"

