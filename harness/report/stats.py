"""Statistics over the runs table: small pure functions, one row per run in, a table or number out.

Every function states the columns it needs. Effects compare two levels of one factor on *paired* runs:
runs that agree on every other factor and the seed, so that an effect is not confounded by the rest
of the grid. Ratios are ``metric(level) / metric(baseline)`` (below 1: the level is faster);
differences are ``metric(level) - metric(baseline)``.

Intervals are exact and distribution-free: the 95 % interval of a median (over pairs, or over a cell's
seeds) is the pair of order statistics that the inverted sign test gives (``scipy.stats.quantile_test``),
so it covers the true median at least 95 % of the time for any continuous distribution and any number
of values. No such interval exists below ``fewest_pairs()`` values (6 at 95 %: with 5, even all five on
one side happen by chance 6 % of the time): there the statistics say "too few to tell" instead of
printing an interval, and never "beyond noise". An effect is "beyond noise" when its sign-test p-value,
adjusted for the family of comparisons it is judged with (``holm`` for verdicts, ``benjamini_hochberg``
for the long effects table), is at most ``ALPHA``. None of this imports training code.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from harness.cells import FACTORS, sorted_levels

SUMMARY_METRICS = ("train_seconds", "time_to_target_seconds", "test_accuracy")
DEFAULT_RESAMPLES = 2000
STATUS_ORDER = {"failed": 0, "interrupted": 1, "skipped": 2, "ok": 3}


CONFIDENCE = 0.95
"""The level of every interval the report prints."""
ALPHA = 1 - CONFIDENCE
"""The error rate a family of comparisons is held to (family-wise for Holm, false discoveries for BH)."""


def fewest_pairs(alpha: float = ALPHA) -> int:
    """The fewest values for which a two-sided sign test can reach ``alpha``: the smallest ``n`` with
    ``2 * 0.5**n <= alpha`` (6 at 0.05; 9 at 0.05 / 7, Holm's first step over 7 comparisons)."""
    return max(1, math.ceil(math.log2(2 / alpha) - 1e-12))


def example_seeds(n: int | None = None) -> str:
    """``seed=0,1,2,3,4,5``: the override that gives ``n`` (default ``fewest_pairs()``) repeats."""
    return "seed=" + ",".join(str(s) for s in range(n or fewest_pairs()))


def _clean(values: np.ndarray | Sequence[float]) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    return data[~np.isnan(data)]


def sign_test(values: np.ndarray | Sequence[float], neutral: float,
              confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(p, low, high)`` for the median of ``values`` (1-D; NaNs dropped, infinite values kept: a time never
    reached is infinitely slow), from ``scipy.stats.quantile_test``: the two-sided sign test's p-value
    against a median of ``neutral`` (values equal to it count for it), and the exact distribution-free
    ``confidence`` interval of the median (the order statistics of the inverted test; it covers the true
    median at least that often for any continuous distribution, at any number of values). All NaN with
    fewer than ``fewest_pairs(1 - confidence)`` values: no interval reaches ``confidence`` there."""
    data = _clean(values)
    if len(data) < fewest_pairs(1 - confidence):
        return (float("nan"), float("nan"), float("nan"))
    test = scipy_stats.quantile_test(data, q=neutral, p=0.5)
    interval = test.confidence_interval(confidence)
    return (float(test.pvalue), float(interval.low), float(interval.high))


def median_interval(values: np.ndarray | Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact ``confidence`` interval of the median of ``values`` (``sign_test``); ``(nan, nan)`` with
    too few values to tell."""
    data = _clean(values)
    _, low, high = sign_test(data, float(np.median(data)) if len(data) else 0.0, confidence)
    return (low, high)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (controls the family-wise error rate under any dependence), in
    the order given. NaN p-values (comparisons too small to test) stay NaN and are not in the family."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    steps = len(order) - np.arange(len(order))
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps * p[order]))
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (controls the false discovery rate;
    ``scipy.stats.false_discovery_control``), in the order given; NaN stays NaN, outside the family."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        adjusted[tested] = scipy_stats.false_discovery_control(p[tested], method="bh")
    return adjusted


CORRECTIONS = {"holm": ("Holm", holm), "bh": ("Benjamini-Hochberg", benjamini_hochberg)}
"""How a family of comparisons is judged: key -> (name in the report, adjusting function)."""


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


def cell_table(runs: pd.DataFrame, metrics: tuple[str, ...] = SUMMARY_METRICS,
               factors: Sequence[str] = FACTORS) -> pd.DataFrame:
    """One row per cell (a combination of ``factors``) over its ok runs: ``repeats`` and, per metric,
    the median and its exact 95 % interval over the repeats (``<metric>``, ``<metric>_low``,
    ``<metric>_high``; ``median_interval``: empty with fewer than ``fewest_pairs()`` repeats, too few to tell).

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
            row[f"{metric}_low"], row[f"{metric}_high"] = median_interval(values)
        rows.append(row)
    columns = [*factors, "repeats", *(f"{m}{s}" for m in metrics for s in ("", "_low", "_high"))]
    return pd.DataFrame(rows, columns=columns)


def paired_values(runs: pd.DataFrame, factor: str, level: object, baseline: object, metric: str, *,
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
    ``low``/``high`` its exact 95 % interval (``median_interval``; NaN with too few pairs);
    ``p_value`` the sign test's against no change; ``p_adjusted`` the same after the correction named by
    ``correction`` for the family it was judged with (NaN and empty: judged alone).
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
    p_value: float = float("nan")
    p_adjusted: float = float("nan")
    correction: str = ""

    @property
    def neutral(self) -> float:
        return 1.0 if self.kind == "ratio" else 0.0

    @property
    def too_few(self) -> bool:
        """Fewer pairs than any 95 % statement needs (``fewest_pairs``)."""
        return self.pairs < fewest_pairs()

    @property
    def judged_p(self) -> float:
        """The p-value the verdict rests on: adjusted for its family where it was judged with one."""
        return self.p_adjusted if self.correction else self.p_value

    @property
    def distinguishable(self) -> bool:
        """Beyond noise: enough pairs, and the (family-adjusted) p-value at most ``ALPHA``."""
        return bool(not self.too_few and self.judged_p <= ALPHA)


def _values(pairs: pd.DataFrame, kind: str) -> np.ndarray:
    if kind == "ratio":
        pairs = pairs[pairs["baseline"] > 0]
        return (pairs["level"] / pairs["baseline"]).to_numpy(dtype=float)
    if kind == "difference":
        return (pairs["level"] - pairs["baseline"]).to_numpy(dtype=float)
    raise ValueError(f"kind={kind!r}; valid: ratio, difference")


def effect_of(values: np.ndarray | Sequence[float], kind: str, *, factor: str = "", level: object = None,
              baseline: object = None, metric: str = "") -> Effect:
    """The ``Effect`` of paired ``values`` (1-D: one ratio or difference per pair, NaNs dropped): their
    median, its exact interval and the sign test against no change (1 for ``ratio``, 0 for
    ``difference``). The interval and the test need ``fewest_pairs()`` values; fewer give NaN."""
    data = _clean(values)
    neutral = 1.0 if kind == "ratio" else 0.0
    estimate = float(np.median(data)) if len(data) else float("nan")
    p_value, low, high = sign_test(data, neutral)
    return Effect(factor, level, baseline, metric, kind, estimate, low, high, len(data), p_value)


def paired_effect(runs: pd.DataFrame, factor: str, level: object, baseline: object, *, metric: str, kind: str,
                  factors: Sequence[str] = FACTORS) -> Effect:
    """Median, exact interval and sign test over pairs of ``level/baseline`` (``kind="ratio"``) or
    ``level - baseline`` (``kind="difference"``) of ``metric`` (``effect_of``), judged alone. Needs what
    ``paired_values`` needs."""
    values = _values(paired_values(runs, factor, level, baseline, metric, factors=factors), kind)
    return effect_of(values, kind, factor=factor, level=level, baseline=baseline, metric=metric)


def judged(effects: Sequence[Effect], correction: str) -> list[Effect]:
    """``effects`` judged as one family: each with ``p_adjusted`` by ``correction`` (a key of
    ``CORRECTIONS``) over those with enough pairs to be tested; the others stay untested."""
    name, adjust = CORRECTIONS[correction]
    adjusted = adjust([e.p_value for e in effects])
    return [dataclasses.replace(e, p_adjusted=float(p), correction=name)
            for e, p in zip(effects, adjusted, strict=True)]


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


EFFECT_METRICS = (("train_seconds", "ratio"), ("time_to_target_seconds", "ratio"), ("test_accuracy", "difference"))
"""What every comparison of the effects table measures, and how."""
EFFECT_COLUMNS = ["factor", "level", "baseline", "metric", "kind", "estimate", "low", "high", "pairs", "p_value",
                  "p_adjusted", "correction", "distinguishable"]


def effects_table(runs: pd.DataFrame, factors: Sequence[str] = FACTORS,
                  baselines: dict[str, object] | None = None, correction: str = "bh") -> pd.DataFrame:
    """Every factor's effects (``EFFECT_METRICS``), each with its interval, pairs and sign-test p-value,
    the whole table judged as one family by ``correction`` (Benjamini-Hochberg by default: a long table
    of exploratory comparisons; ``distinguishable`` is "beyond noise" after it). ``baselines``: the
    baseline level of each factor beyond the article's four (``factor_levels``). Needs the ``factors``
    columns, ``seed``, ``status`` and ``SUMMARY_METRICS``. Columns: ``EFFECT_COLUMNS``."""
    found = [paired_effect(runs, factor, level, baseline, metric=metric, kind=kind, factors=factors)
             for factor in factors for level, baseline in factor_levels(runs, factor, (baselines or {}).get(factor))
             for metric, kind in EFFECT_METRICS]
    rows = [{**dataclasses.asdict(e), "distinguishable": e.distinguishable} for e in judged(found, correction)]
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def effects_from_table(effects: pd.DataFrame) -> list[Effect]:
    """The ``Effect`` of each row of an ``effects_table``."""
    fields = [f.name for f in dataclasses.fields(Effect)]
    return [Effect(**{k: row[k] for k in fields}) for row in effects.to_dict("records")]


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
                effect = paired_effect(subset, factor, level, baseline, metric=metric, kind="ratio", factors=factors)
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
