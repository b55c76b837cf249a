"""Statistics over the runs table: small pure functions, one row per run in, a table or number out.

Every function states the columns it needs. Effects compare two levels of one factor on *paired* runs:
runs that agree on every other factor and the seed, so that an effect is not confounded by the rest
of the grid. Ratios are ``metric(level) / metric(baseline)`` (below 1: the level is faster);
differences are ``metric(level) - metric(baseline)``. Confidence intervals are percentile bootstrap
intervals of the median over pairs (or over seeds, for a cell). None of this imports training code.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.cells import sorted_levels
from harness.config.schema import FACTORS

SUMMARY_METRICS = ("train_seconds", "time_to_target_seconds", "test_accuracy")
DEFAULT_RESAMPLES = 2000
STATUS_ORDER = {"failed": 0, "interrupted": 1, "skipped": 2, "ok": 3}


def bootstrap_ci(values: np.ndarray | list[float], confidence: float = 0.95, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the median of ``values`` (1-D, NaNs dropped).

    ``resamples`` resamples of the same size, drawn with replacement by a generator seeded with
    ``seed`` (so the interval is reproducible). Returns ``(nan, nan)`` for fewer than 2 values: no
    spread is known.
    """
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if len(data) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    medians = np.median(data[rng.integers(0, len(data), size=(resamples, len(data)))], axis=1)
    alpha = (1 - confidence) / 2
    return (float(np.quantile(medians, alpha)), float(np.quantile(medians, 1 - alpha)))


def status_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs per ``status`` and ``reason``. Needs columns ``status``, ``reason``.

    Returns columns ``status``, ``reason`` (empty for ``ok``), ``runs``; failures first.
    """
    table = runs.assign(reason=runs["reason"].fillna("")).groupby(["status", "reason"], dropna=False).size()
    table = table.rename("runs").reset_index()
    table["_order"] = table["status"].map(STATUS_ORDER)
    return table.sort_values(["_order", "reason"], ignore_index=True).drop(columns="_order")


def factor_summary(runs: pd.DataFrame, factor: str) -> pd.DataFrame:
    """Per level of ``factor``: ok runs, median train seconds, median time to target, how many runs
    reached the target, and median test accuracy, over the ``ok`` runs.

    Needs columns ``factor``, ``status`` and those of ``SUMMARY_METRICS``. Levels without an ok run
    are listed with 0 runs.
    """
    ok = runs[runs["status"] == "ok"]
    levels = sorted_levels(runs[factor].dropna().unique())
    grouped = ok.groupby(factor)
    table = pd.DataFrame(index=pd.Index(levels, name=factor))
    table["ok_runs"] = grouped.size().reindex(levels, fill_value=0)
    table["median_train_seconds"] = grouped["train_seconds"].median().reindex(levels)
    table["median_time_to_target_seconds"] = grouped["time_to_target_seconds"].median().reindex(levels)
    table["reached_target"] = grouped["time_to_target_seconds"].count().reindex(levels, fill_value=0)
    table["median_test_accuracy"] = grouped["test_accuracy"].median().reindex(levels)
    return table.reset_index()


def grid(runs: pd.DataFrame, factors: Sequence[str] = FACTORS) -> dict[str, list]:
    """The levels each factor took in the sweep. Needs the ``factors`` columns and ``seed``."""
    return {col: sorted_levels(runs[col].dropna().unique().tolist()) for col in (*factors, "seed")}


def cell_table(runs: pd.DataFrame, metrics: tuple[str, ...] = SUMMARY_METRICS, seed: int = 0,
               factors: Sequence[str] = FACTORS) -> pd.DataFrame:
    """One row per cell (a combination of ``factors``) over its ok runs: ``repeats`` and, per metric,
    the median and its 95% bootstrap CI over the repeats (``<metric>``, ``<metric>_low``,
    ``<metric>_high``; the CI is empty with one repeat: no spread is known).

    Needs the ``factors`` columns, ``status`` and ``metrics``.
    """
    ok = runs[runs["status"] == "ok"]
    rows = []
    for cell, group in ok.groupby(list(factors), sort=True, dropna=False):
        row = dict(zip(factors, cell, strict=True))
        row["repeats"] = len(group)
        for metric in metrics:
            values = group[metric].to_numpy(dtype=float)
            row[metric] = float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")
            row[f"{metric}_low"], row[f"{metric}_high"] = bootstrap_ci(values, seed=seed)
        rows.append(row)
    columns = [*factors, "repeats", *(f"{m}{s}" for m in metrics for s in ("", "_low", "_high"))]
    return pd.DataFrame(rows, columns=columns)


def paired_values(runs: pd.DataFrame, factor: str, level: object, baseline: object, metric: str,
                  factors: Sequence[str] = FACTORS) -> pd.DataFrame:
    """The ok runs at ``level`` and at ``baseline`` of ``factor``, paired by every other factor and the
    seed. Returns columns ``level`` and ``baseline`` (the metric's values), one row per pair; pairs
    where either value is missing (e.g. target never reached) are dropped.

    Needs the ``factors`` columns, ``seed``, ``status`` and ``metric``.
    """
    keys = [f for f in factors if f != factor] + ["seed"]
    ok = runs[runs["status"] == "ok"]
    a = ok[ok[factor] == level].set_index(keys)[metric]
    b = ok[ok[factor] == baseline].set_index(keys)[metric]
    pairs = pd.concat({"level": a, "baseline": b}, axis=1, join="inner").dropna()
    return pairs.reset_index(drop=True)


@dataclass(frozen=True)
class Effect:
    """The effect of ``level`` against ``baseline`` of ``factor`` on ``metric``.

    ``kind`` is ``ratio`` or ``difference``; ``estimate`` the median over ``pairs`` paired runs;
    ``low``/``high`` its 95% bootstrap CI (NaN with fewer than 2 pairs).
    """

    factor: str
    level: object
    baseline: object
    metric: str
    kind: str
    estimate: float
    low: float
    high: float
    pairs: int

    @property
    def neutral(self) -> float:
        return 1.0 if self.kind == "ratio" else 0.0

    @property
    def distinguishable(self) -> bool:
        """Whether the CI excludes "no effect" (1 for a ratio, 0 for a difference)."""
        return bool(np.isfinite(self.low) and (self.low > self.neutral or self.high < self.neutral))


def paired_effect(runs: pd.DataFrame, factor: str, level: object, baseline: object, metric: str, kind: str,
                  seed: int = 0, factors: Sequence[str] = FACTORS) -> Effect:
    """Median and bootstrap CI over pairs of ``level/baseline`` (``kind="ratio"``) or
    ``level - baseline`` (``kind="difference"``) of ``metric``. Needs what ``paired_values`` needs."""
    pairs = paired_values(runs, factor, level, baseline, metric, factors)
    if kind == "ratio":
        pairs = pairs[pairs["baseline"] > 0]
        values = (pairs["level"] / pairs["baseline"]).to_numpy(dtype=float)
    elif kind == "difference":
        values = (pairs["level"] - pairs["baseline"]).to_numpy(dtype=float)
    else:
        raise ValueError(f"kind={kind!r}; valid: ratio, difference")
    estimate = float(np.median(values)) if len(values) else float("nan")
    low, high = bootstrap_ci(values, seed=seed)
    return Effect(factor, level, baseline, metric, kind, estimate, low, high, len(values))


BASELINES = {"transfer": ("on", "off"), "early_stopping": ("on", "off"), "device": ("gpu", "cpu")}
"""For two-level factors: (level, baseline), so effects read as "what the folklore's choice does"."""
OPTIMIZER_BASELINE = "adam"


def factor_levels(runs: pd.DataFrame, factor: str, baseline: object = None) -> list[tuple[object, object]]:
    """The (level, baseline) comparisons made for ``factor`` in this sweep: each optimizer against
    Adam (the usual go-to), ``on`` against ``off``, ``gpu`` against ``cpu``; for any other factor,
    each level against ``baseline`` (the default's level; the first level when ``None`` or absent).
    Only levels with ok runs."""
    present = sorted_levels(runs.loc[runs["status"] == "ok", factor].dropna().unique())
    if factor == "optimizer":
        if OPTIMIZER_BASELINE not in present:
            return []
        return [(level, OPTIMIZER_BASELINE) for level in present if level != OPTIMIZER_BASELINE]
    if factor in BASELINES:
        level, fixed = BASELINES[factor]
        return [(level, fixed)] if {level, fixed} <= set(present) else []
    if len(present) < 2:
        return []
    base = baseline if baseline in present else present[0]
    return [(level, base) for level in present if level != base]


def effects_table(runs: pd.DataFrame, seed: int = 0, factors: Sequence[str] = FACTORS,
                  baselines: dict[str, object] | None = None) -> pd.DataFrame:
    """Every factor's effects: ratios of train seconds and of time to target, difference in test
    accuracy, each with its CI and number of pairs. ``baselines``: the baseline level of each factor
    beyond the article's four (``factor_levels``). Needs the ``factors`` columns, ``seed``,
    ``status`` and ``SUMMARY_METRICS``."""
    rows = []
    for factor in factors:
        for level, baseline in factor_levels(runs, factor, (baselines or {}).get(factor)):
            for metric, kind in (("train_seconds", "ratio"), ("time_to_target_seconds", "ratio"),
                                 ("test_accuracy", "difference")):
                e = paired_effect(runs, factor, level, baseline, metric, kind, seed=seed, factors=factors)
                rows.append({"factor": factor, "level": level, "baseline": baseline, "metric": metric,
                             "kind": kind, "estimate": e.estimate, "low": e.low, "high": e.high, "pairs": e.pairs,
                             "distinguishable": e.distinguishable})
    return pd.DataFrame(rows, columns=["factor", "level", "baseline", "metric", "kind", "estimate", "low", "high",
                                       "pairs", "distinguishable"])


def interactions(runs: pd.DataFrame, metric: str = "train_seconds", top: int = 3,
                 factors: Sequence[str] = FACTORS, baselines: dict[str, object] | None = None) -> pd.DataFrame:
    """The largest two-factor interactions on ``metric``: how much one factor's effect (median paired
    ratio, level/baseline) changes across the levels of another factor.

    For each ordered pair (A, B) and each comparison of A, the ratio is computed within each level of
    B; ``spread`` = largest / smallest of those ratios (1: no interaction). Returns the ``top`` rows
    by spread with columns ``factor``, ``level``, ``baseline``, ``across``, ``ratios`` (a dict
    B-level -> ratio) and ``spread``. Needs what ``paired_effect`` needs.
    """
    rows = []
    for factor, across in itertools.permutations(factors, 2):
        for level, baseline in factor_levels(runs, factor, (baselines or {}).get(factor)):
            ratios = {}
            for b_level, subset in runs.groupby(across):
                effect = paired_effect(subset, factor, level, baseline, metric, "ratio", factors=factors)
                if effect.pairs and np.isfinite(effect.estimate) and effect.estimate > 0:
                    ratios[str(b_level)] = effect.estimate
            if len(ratios) >= 2:
                rows.append({"factor": factor, "level": level, "baseline": baseline, "across": across,
                             "ratios": ratios, "spread": max(ratios.values()) / min(ratios.values())})
    table = pd.DataFrame(rows, columns=["factor", "level", "baseline", "across", "ratios", "spread"])
    return table.sort_values("spread", ascending=False, ignore_index=True).head(top)


def pareto_front(runs: pd.DataFrame, cost: str = "train_seconds", value: str = "test_accuracy") -> pd.Series:
    """Boolean mask of the ok runs on the Pareto front: no other run is at least as cheap in ``cost``
    and at least as good in ``value``, and strictly better in one. Needs ``status``, ``cost``, ``value``."""
    ok = runs[(runs["status"] == "ok") & runs[cost].notna() & runs[value].notna()]
    order = ok.sort_values([cost, value], ascending=[True, False])
    front, best = [], -np.inf
    for index, row in order.iterrows():
        if row[value] > best:
            front.append(index)
            best = row[value]
    return runs.index.isin(front)


def cost_to_target(runs: pd.DataFrame) -> pd.Series:
    """Dollars to reach the target accuracy: ``time_to_target_seconds / 3600 * price_per_hour``.
    Needs ``time_to_target_seconds`` and ``price_per_hour`` (NaN where either is unknown)."""
    return runs["time_to_target_seconds"] / 3600.0 * runs["price_per_hour"]


def break_even_epochs(first_epoch_extra_seconds: float, steady_saving_seconds: float) -> float | None:
    """After how many epochs a setting that costs ``first_epoch_extra_seconds`` more in its first epoch
    (compilation) but saves ``steady_saving_seconds`` in every later epoch has trained in less time in
    total: the smallest ``n`` with ``extra - (n - 1) * saving <= 0``, i.e. ``1 + extra / saving``, rounded
    up. ``1.0`` when the first epoch costs nothing extra and later ones save; ``None`` when later epochs
    save nothing (it never pays back). Scalars in seconds (medians of paired differences)."""
    if not steady_saving_seconds > 0:
        return None
    if first_epoch_extra_seconds <= 0:
        return 1.0
    return float(math.ceil(1 + first_epoch_extra_seconds / steady_saving_seconds))
