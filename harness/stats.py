"""Statistics over the runs table: small pure functions, one row per run in, a table or number out.

Every function states the columns it needs. None of them imports the training code.
"""

from __future__ import annotations

import pandas as pd

from harness.schema import FACTORS

SUMMARY_METRICS = ("train_seconds", "time_to_target_seconds", "test_accuracy")


def status_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs per ``status`` and ``reason``. Needs columns ``status``, ``reason``.

    Returns columns ``status``, ``reason`` (empty for ``ok``), ``runs``; failures first.
    """
    order = {"failed": 0, "interrupted": 1, "skipped": 2, "ok": 3}
    table = runs.assign(reason=runs["reason"].fillna("")).groupby(["status", "reason"], dropna=False).size()
    table = table.rename("runs").reset_index()
    return table.sort_values(["status", "reason"], key=lambda col: col.map(order) if col.name == "status" else col,
                             ignore_index=True)


def factor_summary(runs: pd.DataFrame, factor: str) -> pd.DataFrame:
    """Per level of ``factor``: ok runs, median train seconds, median time to target, how many runs
    reached the target, and median test accuracy, over the ``ok`` runs.

    Needs columns ``factor``, ``status`` and those of ``SUMMARY_METRICS``. Levels without an ok run
    are listed with 0 runs.
    """
    ok = runs[runs["status"] == "ok"]
    levels = sorted(runs[factor].dropna().unique())
    grouped = ok.groupby(factor)
    table = pd.DataFrame(index=pd.Index(levels, name=factor))
    table["ok_runs"] = grouped.size().reindex(levels, fill_value=0)
    table["median_train_seconds"] = grouped["train_seconds"].median().reindex(levels)
    table["median_time_to_target_seconds"] = grouped["time_to_target_seconds"].median().reindex(levels)
    table["reached_target"] = grouped["time_to_target_seconds"].count().reindex(levels, fill_value=0)
    table["median_test_accuracy"] = grouped["test_accuracy"].median().reindex(levels)
    return table.reset_index()


def grid(runs: pd.DataFrame) -> dict[str, list]:
    """The levels each factor took in the sweep. Needs the ``FACTORS`` columns and ``seed``."""
    return {col: sorted(runs[col].dropna().unique().tolist()) for col in (*FACTORS, "seed")}
