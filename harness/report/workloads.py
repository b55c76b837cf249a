"""Does an effect hold across workloads? Each factor's effect on time to target within each workload
(every combination of the workload factors: ``dataset``, ``model``, settings under them), judged as one family,
and one statement per comparison: it agrees, it differs, it reverses, or no workload tells it from noise.

A pooled average over workloads can hide a reversal (faster on one, slower on another: ×1 overall); here a
reversal is said as such. Pure functions over the runs table, tested with exact answers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.cells import WORKLOAD_FACTORS, read_back
from harness.report.stats import (
    ALPHA,
    INFINITE_LOG,
    Effect,
    factor_levels,
    holm,
    interaction_p,
    judged,
    log_ratios,
    paired_effect,
)


def workload_factors(factors: Sequence[str]) -> list[str]:
    """The factors of a sweep that make another workload (``WORKLOAD_FACTORS``, or a setting under one)."""
    return [f for f in factors if f.split(".")[0] in WORKLOAD_FACTORS]


@dataclass(frozen=True)
class AcrossWorkloads:
    """One comparison (``level`` vs ``baseline`` of ``factor``) in each workload, and whether its size differs
    between them beyond noise (``spread_p``: the permutation test of ``stats.interaction_p``, Holm-adjusted
    over the section's comparisons; NaN where a workload has fewer than two pairs)."""

    factor: str
    level: object
    baseline: object
    effects: dict[str, Effect]
    spread_p: float = math.nan

    def statement(self) -> str:
        """Reverses, differs, agrees, or told from noise nowhere: never "no effect" where workloads disagree."""
        faster = [w for w, e in self.effects.items() if e.distinguishable and e.estimate < 1]
        slower = [w for w, e in self.effects.items() if e.distinguishable and e.estimate > 1]
        if faster and slower:
            return (f"it reverses across workloads: faster beyond noise on {', '.join(faster)}, slower beyond noise "
                    f"on {', '.join(slower)}; a pooled ratio would hide both")
        told = faster or slower
        everywhere = bool(told) and len(told) == len(self.effects)
        direction = f"{'faster' if faster else 'slower'} beyond noise on every one"
        if not math.isnan(self.spread_p) and self.spread_p <= ALPHA:
            differs = ("its size differs between workloads beyond noise (spread test, Holm-adjusted "
                       f"p = {self.spread_p:.2g})")
            return f"it agrees in direction ({direction}), but {differs}" if everywhere else differs
        if everywhere:
            return f"it agrees across workloads: {direction}"
        if told:
            return (f"{'faster' if faster else 'slower'} beyond noise on {', '.join(told)}; not told from noise on "
                    f"the others, whose pairs cannot say whether it holds there")
        return "no workload tells it from noise: read each one's interval, not as \"no effect\""


def _workload_name(key: tuple, names: Sequence[str]) -> str:
    """``dataset=digits model=small_cnn model.dense_units=128``: a setting this workload lacks is left out."""
    shown = {name: read_back(value) for name, value in zip(names, key, strict=True)}
    return " ".join(f"{name}={value}" for name, value in shown.items() if value is not None)


def across_workloads(runs: pd.DataFrame, factors: Sequence[str], baselines: dict | None = None,
                     metric: str = "time_to_target_seconds") -> list[AcrossWorkloads]:
    """Every comparison of every factor that is not a workload factor, within each workload: paired by every
    other factor and the seed, all judged as one family (Holm: each is a claim about one workload); empty where
    the sweep spans fewer than two workloads."""
    names = workload_factors(factors)
    if not names:
        return []
    workloads = {(key if isinstance(key, tuple) else (key,)): group
                 for key, group in runs.groupby(names, dropna=False, sort=True)}
    if len(workloads) < 2:
        return []
    found = []
    for factor in (f for f in factors if f not in names):
        for level, base in factor_levels(runs, factor, (baselines or {}).get(factor)):
            effects = {_workload_name(key, names): paired_effect(group, factor, level, base, metric=metric,
                                                                 kind="ratio", factors=factors)
                       for key, group in workloads.items()}
            found.append(AcrossWorkloads(factor, level, base, effects))
    flat = judged([e for comparison in found for e in comparison.effects.values()], "holm")
    spreads = [interaction_p([finite_log_ratios(e) for e in c.effects.values()]) for c in found]
    adjusted = holm(spreads)
    result, i = [], 0
    for comparison, spread in zip(found, adjusted, strict=True):
        n = len(comparison.effects)
        result.append(AcrossWorkloads(comparison.factor, comparison.level, comparison.baseline,
                                      dict(zip(comparison.effects, flat[i:i + n], strict=True)), float(spread)))
        i += n
    return result


def finite_log_ratios(effect: Effect) -> np.ndarray:
    """The log ratios of an effect's pairs where both runs reached the target: a miss has no size to compare."""
    values = log_ratios(effect.changes) if effect.changes else np.array([])
    return values[np.abs(values) < INFINITE_LOG]
