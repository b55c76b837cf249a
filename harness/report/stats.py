"""Statistics over the runs table: small pure functions, one row per run in, a table or number out.

Every function states the columns it needs. Effects compare two levels of one factor on *paired* runs:
runs that agree on every other factor and the seed, so that an effect is not confounded by the rest
of the grid. Ratios are ``metric(level) / metric(baseline)`` (below 1: the level is faster);
differences are ``metric(level) - metric(baseline)``. A run that never reached the target (or diverged)
is infinitely slow to it: it stays in every time-to-target comparison as an infinite ratio.

The tests are exact and distribution-free at any number of pairs up to ``EXACT_UP_TO`` (above, the signed-rank
test's normal approximation). Ratios (times): the Wilcoxon signed-rank test on log ratios (``signed_rank_p``,
exact with ties) with the Hodges-Lehmann estimate
and its interval (``hodges_lehmann``): under no effect the log ratio of two exchangeable runs is
symmetric about 0, which is all the test assumes. Differences (accuracies, which move in steps and tie
often): the sign test over the pairs that changed (ties dropped, as the sign test defines them) with
the median and its order-statistic interval, and the up / equal / down counts. The null hypothesis is
"no effect in any pair": the pairs of all cells are the unit, so an effect beyond noise means the level
changes the metric in at least some cells (``interactions`` says where it differs between cells).
Below ``fewest_pairs()`` values (6 at 95 %) no test can reach 5 %: there the statistics say "too few to
tell", never "beyond noise". An effect is "beyond noise" when its p-value, adjusted for the family of
comparisons it is judged with (``holm`` for verdicts, ``benjamini_hochberg`` for the long effects
table), is at most ``ALPHA``. ``tests/test_stats.py`` checks the error rates and the power by
simulation. None of this imports training code.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from harness.cells import sorted_levels
from harness.outcomes import DIVERGED

SUMMARY_METRICS = ("train_seconds", "time_to_target_seconds", "test_accuracy")
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


INFINITE_LOG = 1e6
"""A log ratio standing for an infinite one (a run that never reached the target against one that did):
larger than any real log ratio, so it ranks last, and its average with a finite one stays infinite when
exponentiated."""


def _subset_sum_distribution(weights: np.ndarray) -> np.ndarray:
    """P(S = s) for s = 0 .. sum(weights), where S sums each positive integer weight with probability 1/2
    independently: the exact null distribution of a signed-rank statistic (weights = its ranks)."""
    dist = np.zeros(int(weights.sum()) + 1)
    dist[0] = 1.0
    for weight in weights.astype(int):
        shifted = np.zeros_like(dist)
        shifted[weight:] = dist[:-weight]
        dist = (dist + shifted) / 2
    return dist


EXACT_UP_TO = 200
"""Up to this many values the signed-rank statistic's null is enumerated exactly (``O(n³)``) and the Walsh averages
are listed; above, the null is its normal approximation with continuity correction (with ties, scipy's tie
correction), within 0.001 of the exact p-value there, and the Walsh averages needed are selected without listing
them (``walsh_averages_at``): a sweep of thousands of runs is judged in seconds, not minutes."""


@functools.lru_cache(maxsize=256)
def _untied_cdf(n: int) -> np.ndarray:
    """``P(T <= t)`` for t = 0 .. n(n+1)/2: the signed-rank statistic's exact null without ties (n values)."""
    return np.cumsum(_subset_sum_distribution(np.arange(1, n + 1)))


def _untied_normal(n: int) -> tuple[float, float]:
    """The mean and standard deviation of the untied signed-rank statistic of ``n`` values under no effect."""
    return n * (n + 1) / 4, math.sqrt(n * (n + 1) * (2 * n + 1) / 24)


def _untied_at_most(n: int, count: int) -> float:
    """``P(T <= count)`` under no effect, ``T`` the untied signed-rank statistic of ``n`` values: exact up to
    ``EXACT_UP_TO`` values, above that its normal approximation with continuity correction."""
    if count < 0:
        return 0.0
    if n <= EXACT_UP_TO:
        cdf = _untied_cdf(n)
        return float(cdf[min(count, len(cdf) - 1)])
    mean, sd = _untied_normal(n)
    return float(scipy_stats.norm.cdf((count + 0.5 - mean) / sd))


def _critical_count(n: int, tail: float) -> int:
    """The largest ``c`` with ``P(T <= c) <= tail`` for the untied statistic of ``n`` values (-1 if none)."""
    if n <= EXACT_UP_TO:
        return int(np.searchsorted(_untied_cdf(n), tail, side="right")) - 1
    mean, sd = _untied_normal(n)
    count = math.floor(mean - 0.5 + sd * scipy_stats.norm.ppf(tail))
    while _untied_at_most(n, count + 1) <= tail:
        count += 1
    while count >= 0 and _untied_at_most(n, count) > tail:
        count -= 1
    return count


def signed_rank_p(values: np.ndarray | Sequence[float]) -> float:
    """The two-sided p-value of the Wilcoxon signed-rank test of ``values`` (NaNs dropped) against a
    distribution symmetric about 0, exact at any number of values and with ties: zeros ranked and then
    dropped (Pratt's method), tied magnitudes given their mid-rank, and the statistic's null distribution
    enumerated over all sign flips (``_subset_sum_distribution``; its normal approximation above ``EXACT_UP_TO``
    values). Without ties or zeros it equals ``scipy.stats.wilcoxon(values, method="exact")``. 1.0 when every
    value is 0."""
    data = _clean(values)
    nonzero = data != 0
    if not nonzero.any():
        return 1.0
    magnitudes = np.abs(data)
    if nonzero.all() and len(np.unique(magnitudes)) == len(data):  # no ties: ranks 1..n, a cached null
        ranks = np.empty(len(data))
        ranks[np.argsort(magnitudes)] = np.arange(1, len(data) + 1)
        n, observed = len(data), int(ranks[data > 0].sum())  # the null is symmetric: P(T >= t) = P(T <= m - t)
        below, above = _untied_at_most(n, observed), _untied_at_most(n, n * (n + 1) // 2 - observed)
        return float(min(1.0, 2 * min(below, above)))
    if nonzero.sum() > EXACT_UP_TO:
        return float(scipy_stats.wilcoxon(data, zero_method="pratt", method="approx", correction=True).pvalue)
    doubled = np.rint(2 * scipy_stats.rankdata(magnitudes)[nonzero]).astype(int)  # mid-ranks: halves
    observed = int(doubled[data[nonzero] > 0].sum())
    dist = _subset_sum_distribution(doubled)
    below, above = dist[:observed + 1].sum(), dist[observed:].sum()
    return float(min(1.0, 2 * min(below, above)))


def walsh_averages_at(values: np.ndarray | Sequence[float], positions: Sequence[int]) -> list[float]:
    """The Walsh averages ``(x_i + x_j) / 2`` (``i <= j``) of ``values`` at 0-based ``positions`` of their sorted
    order. Up to ``EXACT_UP_TO`` values all ``n(n+1)/2`` are listed and sorted; above, each is selected without
    listing them (``_select_sums``: ``O(n log n)`` per step, a few dozen steps), the same numbers exactly: 5,000
    pairs have 12.5 million Walsh averages, which a report of thousands of runs would otherwise sort per effect."""
    data = np.sort(_clean(values))
    if len(data) <= EXACT_UP_TO:
        rows, columns = np.triu_indices(len(data))
        walsh = np.sort((data[rows] + data[columns]) / 2)
        return [float(walsh[p]) for p in positions]
    return [float(total / 2) for total in _select_sums(data, positions)]


def walsh_centre_and(values: np.ndarray | Sequence[float], positions: Sequence[int]) -> tuple[float, list[float]]:
    """The median of the Walsh averages of ``values`` (their Hodges-Lehmann estimate) and the Walsh averages at
    ``positions``, selected together (``walsh_averages_at``)."""
    count = len(_clean(values)) * (len(_clean(values)) + 1) // 2
    middle_low, middle_high, *at = walsh_averages_at(values, [(count - 1) // 2, count // 2, *positions])
    return float(np.mean([middle_low, middle_high])), at


def _sums_at_most(x: np.ndarray, total: float) -> np.ndarray:
    """Per ``i``, the end ``c_i`` of the ``j >= i`` whose sum ``x_i + x_j`` (as floats add) is at most ``total``
    (``x`` sorted, so each row of sums is sorted): a search, then corrected where ``total - x_i`` rounded."""
    index = np.arange(len(x))
    ends = np.maximum(np.searchsorted(x, total - x, side="right"), index)
    while True:
        grow = (ends < len(x)) & (x + x[np.minimum(ends, len(x) - 1)] <= total)
        shrink = (ends > index) & (x + x[np.maximum(ends - 1, 0)] > total)
        if not (grow.any() or shrink.any()):
            return ends
        ends = ends + grow - shrink


def _select_sums(x: np.ndarray, positions: Sequence[int], listed: int = 4096) -> list[float]:
    """The pairwise sums ``x_i + x_j`` (``i <= j``, ``x`` sorted, finite) at 0-based ``positions`` of their
    sorted order, by bisection on the value: it keeps ``count(lo) <= k < count(hi)`` until at most ``listed``
    sums lie in ``(lo, hi]``, then lists those and picks the one at ``k``; or until no float lies between
    ``lo`` and ``hi``, when every sum in ``(lo, hi]`` is ``hi``."""
    index = np.arange(len(x))
    found = []
    for k in positions:
        lo, hi = np.nextafter(x[0] + x[0], -np.inf), x[-1] + x[-1]  # no sum at or below lo; all at or below hi
        lo_ends, hi_ends = index.copy(), np.full(len(x), len(x))
        while int((hi_ends - lo_ends).sum()) > listed and lo < (mid := lo + (hi - lo) / 2) < hi:
            ends = _sums_at_most(x, mid)
            if int((ends - index).sum()) > k:
                hi, hi_ends = mid, ends
            else:
                lo, lo_ends = mid, ends
        counts = hi_ends - lo_ends
        if counts.sum() > listed:  # no float between lo and hi
            found.append(float(hi))
            continue
        rows = np.repeat(index, counts)
        columns = np.arange(counts.sum()) + np.repeat(lo_ends - (np.cumsum(counts) - counts), counts)
        window = np.sort(x[rows] + x[columns])
        found.append(float(window[k - int((lo_ends - index).sum())]))
    return found


def hodges_lehmann(values: np.ndarray | Sequence[float],
                   confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(estimate, low, high)``: the Hodges-Lehmann estimate of the centre of ``values`` (the median of
    the Walsh averages, all ``(x_i + x_j) / 2`` with ``i <= j``) and the ``confidence`` interval that
    inverts the signed-rank test (the ``c + 1``-th smallest and largest Walsh averages, ``c`` the test's
    critical value): it covers the centre of any symmetric distribution at least that often, at any
    number of values. NaN bounds with fewer than ``fewest_pairs(1 - confidence)`` values."""
    data = _clean(values)
    n = len(data)
    if n == 0:
        return (float("nan"), float("nan"), float("nan"))
    if n < fewest_pairs(1 - confidence):
        return (walsh_centre_and(data, [])[0], float("nan"), float("nan"))
    critical = _critical_count(n, (1 - confidence) / 2)
    estimate, (low, high) = walsh_centre_and(data, [critical, n * (n + 1) // 2 - critical - 1])
    return (estimate, low, high)


def detectable_ratios(logs: np.ndarray | Sequence[float], family: int = 1,
                      alpha: float = ALPHA) -> tuple[float, float]:
    """``(faster, slower)``: the smallest changes that paired log ratios with the spread of ``logs`` could
    call beyond noise, as ratios (below and above 1). The observed values are centred on their
    Hodges-Lehmann estimate and shifted; the signed-rank test calls the shift once it reaches the
    family's strictest level (``alpha / family``: Holm's and Benjamini-Hochberg's first step over
    ``family`` testable comparisons). Exact: the test counts the positive Walsh averages, so the boundary
    is one of them. ``(0, inf)`` where no change could be called at all: too few pairs for that level
    (the smallest p-value of ``n`` pairs is ``2 / 2**n``), or too few to tell."""
    data = _clean(logs)
    n = len(data)
    level = alpha / max(family, 1)
    if n < fewest_pairs():
        return (0.0, float("inf"))
    critical = _critical_count(n, level / 2)  # P(T >= m - c) = P(T <= c) <= level / 2, by symmetry
    if critical < 0:
        return (0.0, float("inf"))
    needed = n * (n + 1) // 2 - critical  # positive Walsh averages the shifted values need (or negative ones)
    centre, (low, high) = walsh_centre_and(data, [needed - 1, n * (n + 1) // 2 - needed])
    return (_exp(centre - low), _exp(centre - high))


def log_ratios(ratios: np.ndarray | Sequence[float]) -> np.ndarray:
    """``log(ratios)`` with an infinite ratio (or 0) as ``±INFINITE_LOG``; NaN stays NaN."""
    with np.errstate(divide="ignore"):
        return np.clip(np.log(np.asarray(ratios, dtype=float)), -INFINITE_LOG, INFINITE_LOG)


def _exp(value: float) -> float:
    with np.errstate(over="ignore"):
        return float(np.exp(value))


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


TIME_TO_REACH = ("time_to_target_seconds", "epochs_to_target")
"""Metrics a run may never reach: a miss (empty) counts as infinitely slow, not as a missing value."""


def metric_values(runs: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` of the runs that can be judged on it: the ok runs, and for ``TIME_TO_REACH`` also the
    runs that diverged (``DIVERGED``: they never reach the target); a miss is ``inf``. Needs ``status``,
    ``reason`` (for the diverged) and ``metric``."""
    judged_on = runs["status"] == "ok"
    if metric in TIME_TO_REACH:
        judged_on |= (runs["status"] == "failed") & (runs.get("reason") == DIVERGED)
    values = runs.loc[judged_on, metric].astype(float)
    return values.fillna(np.inf) if metric in TIME_TO_REACH else values


def factor_summary(runs: pd.DataFrame, factor: str) -> pd.DataFrame:
    """Per level of ``factor``: ok runs, median train seconds, median time to target (a miss counts as
    infinitely slow: inf when most runs missed), how many runs reached the target, and median test
    accuracy, over the ``ok`` runs.

    Needs columns ``factor``, ``status`` and those of ``SUMMARY_METRICS``. Levels without an ok run
    are listed with 0 runs.
    """
    ok = runs[runs["status"] == "ok"]
    levels = sorted_levels(runs[factor].dropna().unique())
    grouped = ok.groupby(factor)
    table = pd.DataFrame(index=pd.Index(levels, name=factor))
    table["ok_runs"] = grouped.size().reindex(levels, fill_value=0)
    table["median_train_seconds"] = grouped["train_seconds"].median().reindex(levels)
    to_target = metric_values(runs, "time_to_target_seconds")
    table["median_time_to_target_seconds"] = to_target.groupby(runs[factor]).median().reindex(levels)
    table["reached_target"] = np.isfinite(to_target).groupby(runs[factor]).sum().reindex(levels, fill_value=0)
    table["median_test_accuracy"] = grouped["test_accuracy"].median().reindex(levels)
    return table.reset_index()


def grid(runs: pd.DataFrame, factors: Sequence[str]) -> dict[str, list]:
    """The levels each factor took in the sweep. Needs the ``factors`` columns and ``seed``."""
    return {col: sorted_levels(runs[col].dropna().unique().tolist()) for col in (*factors, "seed")}


def by_cell(frame: pd.DataFrame, factors: Sequence[str], **groupby: Any) -> Any:
    """``frame.groupby`` by cell (the ``factors`` columns, other ``groupby`` arguments passed on); a sweep
    without factors is one cell, repeated over seeds: one group."""
    return frame.groupby(list(factors) if factors else np.zeros(len(frame), dtype=int), **groupby)


def cell_groups(frame: pd.DataFrame, factors: Sequence[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """Each cell of ``frame`` in sorted order, as its levels (factor to level; a missing level kept) and its
    rows."""
    for key, group in by_cell(frame, factors, sort=True, dropna=False):
        yield dict(zip(factors, key if factors else (), strict=True)), group


def cell_table(runs: pd.DataFrame, metrics: tuple[str, ...] = SUMMARY_METRICS, *,
               factors: Sequence[str]) -> pd.DataFrame:
    """One row per cell (a combination of ``factors``) over its ok runs: ``repeats`` and, per metric,
    the median and its exact 95 % interval over the repeats (``<metric>``, ``<metric>_low``,
    ``<metric>_high``; ``median_interval``: empty with fewer than ``fewest_pairs()`` repeats, too few to
    tell; a run that missed the target is infinitely slow to it, ``metric_values``).

    Needs the ``factors`` columns, ``status`` and ``metrics``.
    """
    ok = runs[runs["status"] == "ok"]
    rows = []
    for levels, group in cell_groups(ok, factors):
        row = dict(levels)
        row["repeats"] = len(group)
        for metric in metrics:
            values = metric_values(group, metric).to_numpy(dtype=float)
            row[metric] = float(np.nanmedian(values)) if (~np.isnan(values)).any() else float("nan")
            row[f"{metric}_low"], row[f"{metric}_high"] = median_interval(values)
        rows.append(row)
    columns = [*factors, "repeats", *(f"{m}{s}" for m in metrics for s in ("", "_low", "_high"))]
    return pd.DataFrame(rows, columns=columns)


def paired_values(runs: pd.DataFrame, factor: str, level: object, baseline: object, metric: str, *,
                  factors: Sequence[str], where: tuple[str, object] | None = None) -> pd.DataFrame:
    """The runs at ``level`` and at ``baseline`` of ``factor`` that can be judged on ``metric``
    (``metric_values``: a miss is ``inf``), paired by every other factor and the seed. Returns columns
    ``level`` and ``baseline`` (the metric's values), one row per pair; pairs where either value is missing
    are dropped. ``where=(column, value)`` keeps only the pairs whose ``level`` run has that value (e.g.
    ``("early_stopped", True)``: the pairs where early stopping acted).

    Needs the ``factors`` columns, ``seed``, ``status`` and ``metric`` (and ``where``'s column).
    """
    keys = [f for f in factors if f != factor] + ["seed"]
    values = metric_values(runs, metric)
    needed = dict.fromkeys([*keys, factor, *([where[0]] if where is not None else [])])  # not every column
    judged_on = runs.loc[values.index, list(needed)].assign(_value=values)
    at_level = judged_on[judged_on[factor] == level]
    if where is not None:
        at_level = at_level[at_level[where[0]] == where[1]]
    a = at_level.set_index(keys)["_value"]
    b = judged_on[judged_on[factor] == baseline].set_index(keys)["_value"]
    pairs = pd.concat({"level": a, "baseline": b}, axis=1, join="inner").dropna()
    return pairs.reset_index(drop=True)


@dataclass(frozen=True)
class Effect:
    """The effect of ``level`` against ``baseline`` of ``factor`` on ``metric``.

    ``kind`` is ``ratio`` or ``difference``. For a ratio, ``estimate`` is the Hodges-Lehmann estimate of
    the ratio over ``pairs`` paired runs and ``low``/``high`` its exact 95 % interval, ``p_value`` the
    signed-rank test's on log ratios; for a difference, the median difference, its order-statistic
    interval and the sign test's p over the pairs that changed. NaN bounds: too few pairs. ``above``,
    ``equal``, ``below``: pairs above, at and below no change (for a ratio above is slower);
    ``level_misses``/``baseline_misses``: pairs whose run at that level never reached the target.
    ``p_adjusted``: the p-value after the correction named by ``correction`` for the family it was
    judged with (NaN and empty: judged alone); ``family_low``/``family_high``: its simultaneous 95 %
    interval in that family (``simultaneous_interval``); ``detectable_faster``/``detectable_slower``: the
    smallest ratios its pairs could have called in that family (``detectable_ratios``; NaN for differences
    and misses). ``changes``: the per-pair values it was computed
    from (not a column of the effects table).
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
    above: int = 0
    equal: int = 0
    below: int = 0
    level_misses: int = 0
    baseline_misses: int = 0
    family_low: float = float("nan")
    family_high: float = float("nan")
    detectable_faster: float = float("nan")
    detectable_slower: float = float("nan")
    changes: tuple[float, ...] = dataclasses.field(default=(), repr=False, compare=False)

    def row(self) -> dict[str, object]:
        """Its fields as one row of a table (``changes`` left out: the pairs are not a column)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "changes"}

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


def change_values(level: np.ndarray | Sequence[float], baseline: np.ndarray | Sequence[float],
                  kind: str) -> np.ndarray:
    """Per pair, ``level / baseline`` (``kind="ratio"``; two misses, both infinite, are no change: 1) or
    ``level - baseline`` (``"difference"``). Pairs whose baseline is 0 or whose values are missing are
    dropped."""
    a, b = np.asarray(level, dtype=float), np.asarray(baseline, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    if kind == "ratio":
        keep &= b > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.isinf(a) & np.isinf(b), 1.0, a / b)[keep]
    if kind == "difference":
        return (a - b)[keep]
    raise ValueError(f"kind={kind!r}; valid: ratio, difference")


def effect_of(values: np.ndarray | Sequence[float], kind: str, *, factor: str = "", level: object = None,
              baseline: object = None, metric: str = "", misses: tuple[int, int] = (0, 0)) -> Effect:
    """The ``Effect`` of paired ``values`` (1-D: one ratio or difference per pair, ``change_values``; NaNs
    dropped): for ratios the signed-rank test on their logs with the Hodges-Lehmann estimate and
    interval, for differences the sign test over the pairs that changed with the median and its
    interval. The intervals need ``fewest_pairs()`` values; fewer give NaN bounds and p."""
    data = _clean(values)
    counts = {"above": int((data > (1.0 if kind == "ratio" else 0.0)).sum()),
              "below": int((data < (1.0 if kind == "ratio" else 0.0)).sum())}
    counts["equal"] = len(data) - counts["above"] - counts["below"]
    too_few = len(data) < fewest_pairs()
    if kind == "ratio":
        logs = log_ratios(data)
        centre, low, high = hodges_lehmann(logs)
        estimate, low, high = _exp(centre), _exp(low), _exp(high)
        p_value = float("nan") if too_few else signed_rank_p(logs)
    else:
        estimate = float(np.median(data)) if len(data) else float("nan")
        _, low, high = sign_test(data, estimate if len(data) else 0.0)
        changed = counts["above"] + counts["below"]
        p_value = float("nan") if too_few else (
            float(scipy_stats.binomtest(counts["above"], changed).pvalue) if changed else 1.0)
    return Effect(factor, level, baseline, metric, kind, estimate, low, high, len(data), p_value, **counts,
                  level_misses=misses[0], baseline_misses=misses[1], changes=tuple(data))


def simultaneous_interval(values: np.ndarray | Sequence[float], kind: str, family: int) -> tuple[float, float]:
    """The interval of ``effect_of``'s at confidence ``1 - ALPHA / family`` (Bonferroni): the ``family``
    intervals of a family cover their true values all at once at least 95 % of the time. Holm and
    Benjamini-Hochberg call beyond noise everything Bonferroni does, so where they do not, this interval
    holds no change, as the verdict says. NaN where the pairs are too few for that confidence."""
    data = _clean(values)
    confidence = 1 - ALPHA / max(family, 1)
    if kind == "ratio":
        _, low, high = hodges_lehmann(log_ratios(data), confidence)
        return _exp(low), _exp(high)
    _, low, high = sign_test(data, 0.0, confidence)
    return low, high


def paired_effect(runs: pd.DataFrame, factor: str, level: object, baseline: object, *, metric: str, kind: str,
                  factors: Sequence[str], where: tuple[str, object] | None = None) -> Effect:
    """The ``Effect`` (``effect_of``) of ``level`` against ``baseline`` on ``metric`` over the pairs
    ``paired_values`` gives, judged alone, with the misses of each side counted."""
    pairs = paired_values(runs, factor, level, baseline, metric, factors=factors, where=where)
    misses = (int(np.isinf(pairs["level"]).sum()), int(np.isinf(pairs["baseline"]).sum()))
    return effect_of(change_values(pairs["level"], pairs["baseline"], kind), kind, factor=factor, level=level,
                     baseline=baseline, metric=metric, misses=misses)


def judged(effects: Sequence[Effect], correction: str) -> list[Effect]:
    """``effects`` judged as one family: each with ``p_adjusted`` by ``correction`` (a key of
    ``CORRECTIONS``) over those with enough pairs to be tested; the others stay untested."""
    name, adjust = CORRECTIONS[correction]
    adjusted = adjust([e.p_value for e in effects])
    family = sum(not math.isnan(e.p_value) for e in effects)
    return [dataclasses.replace(e, p_adjusted=float(p), correction=name,
                                **dict(zip(("family_low", "family_high"),
                                           simultaneous_interval(e.changes, e.kind, family), strict=True)),
                                **dict(zip(("detectable_faster", "detectable_slower"),
                                           _detectable(e, family), strict=True)))
            for e, p in zip(effects, adjusted, strict=True)]


def _detectable(effect: Effect, family: int) -> tuple[float, float]:
    """``detectable_ratios`` of a ratio ``effect`` in a ``family``; NaN for a difference and where a pair's run
    missed the target (a miss has no size to shift)."""
    if effect.kind != "ratio" or effect.level_misses or effect.baseline_misses or not effect.changes:
        return float("nan"), float("nan")
    return detectable_ratios(log_ratios(effect.changes), family)


BASELINES = {"transfer": ("on", "off"), "early_stopping": ("on", "off"), "device": ("gpu", "cpu")}
"""For two-level factors: (level, baseline), so effects read as "what the folklore's choice does"."""
OPTIMIZER_BASELINE = "adam"


def fixed_comparison(factor: str) -> bool:
    """Whether ``factor`` is compared the article's way (``factor_levels``), not against a baseline level."""
    return factor == "optimizer" or factor in BASELINES


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
ROW_FIELDS = [f.name for f in dataclasses.fields(Effect) if f.name != "changes"]
"""The fields of an ``Effect`` that are columns of a table (``Effect.row``)."""
EFFECT_COLUMNS = [*ROW_FIELDS, "distinguishable"]


def effects_table(runs: pd.DataFrame, factors: Sequence[str],
                  baselines: dict[str, object] | None = None, correction: str = "bh") -> pd.DataFrame:
    """Every factor's effects (``EFFECT_METRICS``), each with its interval, pairs and p-value (``effect_of``),
    the whole table judged as one family by ``correction`` (Benjamini-Hochberg by default: a long table
    of exploratory comparisons; ``distinguishable`` is "beyond noise" after it). ``baselines``: the
    level each factor is compared against (the article's factors compare their own way, ``factor_levels``).
    Needs the ``factors`` columns, ``seed``, ``status`` and ``SUMMARY_METRICS``. Columns: ``EFFECT_COLUMNS``."""
    found = [paired_effect(runs, factor, level, baseline, metric=metric, kind=kind, factors=factors)
             for factor in factors for level, baseline in factor_levels(runs, factor, (baselines or {}).get(factor))
             for metric, kind in EFFECT_METRICS]
    rows = [{**e.row(), "distinguishable": e.distinguishable} for e in judged(found, correction)]
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def effects_from_table(effects: pd.DataFrame) -> list[Effect]:
    """The ``Effect`` of each row of an ``effects_table``."""
    return [Effect(**{k: row[k] for k in ROW_FIELDS if k in row}) for row in effects.to_dict("records")]


INTERACTION_RESAMPLES = 999
INTERACTION_COLUMNS = ["factor", "level", "baseline", "across", "ratios", "spread", "pairs", "p_value", "p_adjusted",
                       "distinguishable"]


def _spread_of_medians(*groups: np.ndarray, axis: int = -1) -> np.ndarray:
    medians = np.stack([np.median(group, axis=axis) for group in groups])
    return medians.max(axis=0) - medians.min(axis=0)


def interaction_p(groups: Sequence[np.ndarray], resamples: int = INTERACTION_RESAMPLES) -> float:
    """How often a spread of the groups' median log ratios at least as large as the observed one arises
    when the pairs are dealt to the groups at random (``scipy.stats.permutation_test``): the chance of
    such an interaction when the effect is the same in every group. NaN with fewer than two pairs in a
    group."""
    if len(groups) < 2 or min(len(group) for group in groups) < 2:
        return float("nan")
    test = scipy_stats.permutation_test(list(groups), _spread_of_medians, permutation_type="independent",
                                        n_resamples=resamples, alternative="greater", vectorized=True,
                                        rng=np.random.default_rng(0))  # the same report from the same runs
    return float(test.pvalue)


def interactions(runs: pd.DataFrame, metric: str = "train_seconds", top: int = 3, *,
                 factors: Sequence[str], baselines: dict[str, object] | None = None) -> pd.DataFrame:
    """Two-factor interactions on ``metric``: how much one factor's effect (paired ratio, level/baseline)
    changes across the levels of another factor, and whether that is beyond noise.

    For each ordered pair (A, B) and each comparison of A, the ratio (``paired_effect``'s estimate) is
    computed within each level of B; ``spread`` = largest / smallest of them (1: no interaction).
    Even with no interaction the largest of many spreads is well above 1 by chance, so each spread is
    tested (``interaction_p``: pairs dealt to B's levels at random) and the family of spreads judged by
    Holm's correction. Returns the ``top`` rows by spread (``INTERACTION_COLUMNS``: ``ratios`` a dict
    B-level -> ratio, ``pairs`` in all, ``distinguishable`` beyond noise). Needs what ``paired_effect``
    needs."""
    rows = []
    for factor, across in itertools.permutations(factors, 2):
        for level, baseline in factor_levels(runs, factor, (baselines or {}).get(factor)):
            ratios, groups = {}, []
            for b_level, subset in runs.groupby(across):
                pairs = paired_values(subset, factor, level, baseline, metric, factors=factors)
                values = change_values(pairs["level"], pairs["baseline"], "ratio")
                estimate = effect_of(values, "ratio").estimate
                if len(values) and 0 < estimate < np.inf:
                    ratios[str(b_level)] = estimate
                    groups.append(log_ratios(values))
            if len(ratios) >= 2:
                rows.append({"factor": factor, "level": level, "baseline": baseline, "across": across,
                             "ratios": ratios, "spread": max(ratios.values()) / min(ratios.values()),
                             "pairs": sum(len(group) for group in groups), "p_value": interaction_p(groups)})
    table = pd.DataFrame(rows, columns=INTERACTION_COLUMNS)
    table["p_adjusted"] = holm(table["p_value"].to_numpy(dtype=float)) if len(table) else []
    table["distinguishable"] = table["p_adjusted"] <= ALPHA
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


def with_costs(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with what each run cost at its device's ``price_per_hour`` (USD, DAWNBench-style):
    ``cost_usd`` (train seconds) and ``cost_to_target_usd`` (time to target; a miss is infinitely costly,
    as it is infinitely slow). NaN where the device has no price. Needs ``status``, ``train_seconds``,
    ``time_to_target_seconds`` and ``price_per_hour``."""
    per_second = pd.to_numeric(runs["price_per_hour"], errors="coerce") / 3600.0
    to_target = pd.to_numeric(runs["time_to_target_seconds"], errors="coerce")
    to_target = to_target.where(to_target.notna() | (runs["status"] != "ok"), np.inf)
    return runs.assign(cost_usd=pd.to_numeric(runs["train_seconds"], errors="coerce") * per_second,
                       cost_to_target_usd=to_target * per_second)


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
