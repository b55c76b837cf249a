"""Is the machine steady enough for these timings? Pure statistics over the runs table.

pyperf warns "the benchmark result may be unstable"; the report does the same, with numbers:

- ``repeat_spread``: per cell, the coefficient of variation of the steady epoch time over its repeats.
- ``speed_drift``: the steady epoch time of each run relative to its cell's median, against the time
  the run started: a least-squares slope with a seeded bootstrap CI. Cells run in shuffled order by
  default, so drift spreads over every level, but a drift still widens every interval.
- ``median_step_seconds``: the median training step; under a few milliseconds, framework overhead
  dominates and the workload says little about devices.
- ``overlapping_runs``: runs whose processes were busy at the same time on the same host, seen from
  their start and end times, whatever the engine declared (``parallel_jobs``).

Each function states the columns it needs; none imports training code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.report.stats import by_cell, cell_groups

STEADY = "median_epoch_seconds"
CV_WARNING = 0.10
"""Warn when steady epoch times of a cell's repeats vary by more than this (coefficient of variation)."""
TINY_STEP_SECONDS = 0.005
"""Warn when the median training step is shorter than this: overhead, not compute, is being timed."""


def repeat_spread(runs: pd.DataFrame, metric: str = STEADY, *, cells: Sequence[str]) -> pd.DataFrame:
    """Per cell with at least two ok repeats: ``repeats``, the ``mean`` of ``metric`` and its coefficient
    of variation ``cv`` (sample standard deviation / mean), largest first.

    Needs columns ``status``, ``metric`` and ``cells``. Example: repeats of 1.0 s and 1.2 s give
    mean 1.1 and cv 0.1414 / 1.1 = 0.1286.
    """
    ok = runs[(runs["status"] == "ok") & runs[metric].notna()]
    rows = []
    for levels, group in cell_groups(ok, cells):
        values = group[metric].to_numpy(dtype=float)
        if len(values) >= 2 and values.mean() > 0:
            rows.append({**levels, "repeats": len(values), "mean": float(values.mean()),
                         "cv": float(values.std(ddof=1) / values.mean())})
    table = pd.DataFrame(rows, columns=[*cells, "repeats", "mean", "cv"])
    return table.sort_values("cv", ascending=False, ignore_index=True)


def bootstrap_slope(x: np.ndarray, y: np.ndarray, confidence: float = 0.95, resamples: int = 2000,
                    seed: int = 0) -> tuple[float, float, float]:
    """Least-squares slope of ``y`` on ``x`` (1-D, same length) and its percentile bootstrap CI over
    resampled (x, y) pairs, drawn by a generator seeded with ``seed``. Resamples whose x values are all
    equal have no slope and are dropped. Returns ``(slope, low, high)``; NaNs with fewer than 3 points
    or no spread in ``x``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    nan = float("nan")
    if len(x) < 3 or np.ptp(x) == 0:
        return (nan, nan, nan)

    def slopes(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        dx = xs - xs.mean(axis=-1, keepdims=True)
        dy = ys - ys.mean(axis=-1, keepdims=True)
        spread = (dx * dx).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(spread > 0, (dx * dy).sum(axis=-1) / spread, np.nan)

    index = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    resampled = slopes(x[index], y[index])
    resampled = resampled[np.isfinite(resampled)]
    alpha = (1 - confidence) / 2
    return (float(slopes(x, y)), float(np.quantile(resampled, alpha)), float(np.quantile(resampled, 1 - alpha)))


@dataclass(frozen=True)
class Drift:
    """How the steady epoch time moved while the sweep ran: ``change`` is the fitted relative change
    over the whole ``span_minutes`` (0.1 = 10 % slower at the end than at the start), with its CI."""

    change: float
    low: float
    high: float
    span_minutes: float
    runs: int

    @property
    def distinguishable(self) -> bool:
        """The CI excludes no change."""
        return bool(np.isfinite(self.low) and (self.low > 0 or self.high < 0))


def speed_drift(runs: pd.DataFrame, metric: str = STEADY, *, cells: Sequence[str],
                seed: int = 0) -> Drift | None:
    """The drift of ``metric`` over the sweep (``Drift``), or ``None`` with fewer than 3 timed runs in
    cells with repeats.

    Each ok run's ``metric`` is divided by its cell's median (so cells of different speeds compare)
    and regressed on its ``started_at`` (seconds; Unix time); the slope times the time span is the
    change over the sweep. Needs columns ``status``, ``metric``, ``started_at`` and ``cells``.
    """
    ok = runs[(runs["status"] == "ok") & runs[metric].notna() & runs["started_at"].notna()]
    ok = ok[by_cell(ok, cells, dropna=False)[metric].transform("size") >= 2]  # a lone run drifts from nothing
    if len(ok) < 3:
        return None
    medians = by_cell(ok, cells, dropna=False)[metric].transform("median").to_numpy(dtype=float)
    relative = ok[metric].to_numpy(dtype=float) / medians
    started = ok["started_at"].to_numpy(dtype=float)
    span = float(np.ptp(started))
    slope, low, high = bootstrap_slope(started, relative, seed=seed)
    return Drift(change=slope * span, low=low * span, high=high * span, span_minutes=span / 60, runs=len(ok))


def median_step_seconds(runs: pd.DataFrame) -> float | None:
    """The median over ok runs of each run's median training step (``median_step_seconds``), or ``None``
    where no run recorded one (results from before the harness did)."""
    ok = runs.loc[runs["status"] == "ok", "median_step_seconds"].dropna()
    return float(ok.median()) if len(ok) else None


def overlapping_runs(runs: pd.DataFrame) -> pd.Series:
    """Per run, whether another run of the table was busy on the same ``hostname`` while it was: its
    process's ``[started_at, ended_at]`` meets another's. Runs reused from earlier sweeps (``reused``) and
    runs without both times are never counted: their times are not this sweep's."""
    overlapping = pd.Series(False, index=runs.index)
    if not {"started_at", "ended_at", "hostname"} <= set(runs.columns):
        return overlapping  # results from before they recorded their end
    timed = runs.dropna(subset=["started_at", "ended_at"])
    if "reused" in timed:
        timed = timed[~timed["reused"].fillna(False).astype(bool)]
    for _, host in timed.groupby(timed["hostname"].astype(object).fillna(""), sort=False):
        ordered = host.sort_values("started_at")
        latest_end, latest_index = -np.inf, None
        for index, row in ordered.iterrows():
            if row["started_at"] < latest_end:  # it starts before an earlier run has ended
                overlapping[index] = overlapping[latest_index] = True
            if row["ended_at"] > latest_end:
                latest_end, latest_index = row["ended_at"], index
    return overlapping
