"""Is Adam the go-to across workloads? Performance profiles (Dolan and Moré; AlgoPerf's scoring) over the
problems a sweep spans. Pure functions over the runs table, tested with exact answers.

A problem is one combination of every factor but the optimizer (e.g. ``dataset=digits model=small_cnn
transfer=on``); an optimizer's time on it is the median over its seeds of time to target, a run that
missed the target counting as never (``stats.metric_values``). Its ratio is that time over the fastest
optimizer's on the problem (infinite for a miss, and for every optimizer where none reached the target).
The profile ``rho(tau)`` is the share of problems on which the optimizer is within ``tau`` of the fastest;
its area from ``tau = 1`` to ``MAX_TAU``, divided by ``MAX_TAU - 1``, is AlgoPerf's score (1: fastest
everywhere; 0: never within ``MAX_TAU``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.cells import WORKLOAD_FACTORS
from harness.report.stats import metric_values

MAX_TAU = 4.0
"""How far the profile is integrated: AlgoPerf's ``max_tau``."""
WITHIN = 1.25
"""The verdict's "close to the fastest": within ×1.25 of it."""


def spans_workloads(factors: Sequence[str]) -> bool:
    """Whether the sweep's ``factors`` hold a workload factor (``WORKLOAD_FACTORS``, or a setting under one)."""
    return any(f.split(".")[0] in WORKLOAD_FACTORS for f in factors)


def problem_times(runs: pd.DataFrame, factors: Sequence[str], solver: str = "optimizer") -> pd.DataFrame:
    """One row per problem (every factor but ``solver``), one column per ``solver`` level: the median time to
    target over the seeds (``inf``: missed in most, or no run there)."""
    times = metric_values(runs, "time_to_target_seconds")
    problem = [f for f in factors if f != solver]
    judged = runs.loc[times.index, [*problem, solver]].assign(_time=times)
    judged[problem] = judged[problem].astype(object).where(judged[problem].notna(), "null")  # a workload lacks it
    table = judged.groupby([*problem, solver], sort=True)["_time"].median().unstack(solver)  # the problems swept only
    return table.fillna(np.inf)


def performance_ratios(times: pd.DataFrame) -> pd.DataFrame:
    """Each time over its problem's fastest (``inf`` for a miss, and for all where none reached the target)."""
    fastest = times.min(axis=1)
    ratios = times.div(fastest.where(np.isfinite(fastest)), axis=0)
    return ratios.where(np.isfinite(fastest), np.inf, axis=0).fillna(np.inf)


def profile(ratios: pd.DataFrame, taus: Sequence[float]) -> pd.DataFrame:
    """``rho(tau)`` per solver: the share of problems with a ratio of at most ``tau`` (rows: ``taus``)."""
    return pd.DataFrame({tau: (ratios <= tau).mean(axis=0) for tau in taus}).T.rename_axis("tau")


def profile_area(ratios: pd.DataFrame, max_tau: float = MAX_TAU) -> pd.Series:
    """The area under each solver's profile from 1 to ``max_tau`` over ``max_tau - 1``, exactly: a problem
    at ratio ``r`` adds ``(max_tau - r) / (max_tau - 1)`` of its weight (nothing beyond ``max_tau``)."""
    inside = (max_tau - ratios.clip(lower=1.0)).clip(lower=0.0) / (max_tau - 1.0)
    return inside.mean(axis=0)


def profile_verdict(runs: pd.DataFrame, factors: Sequence[str], baseline: str = "adam") -> tuple[str, pd.DataFrame]:
    """The sentence on the optimizers across the sweep's problems, and the ratios behind it (one row per
    problem; empty where there is no profile: fewer than two problems or two optimizers)."""
    times = problem_times(runs, factors)
    if len(times) < 2 or times.shape[1] < 2:
        return "", pd.DataFrame()
    ratios = performance_ratios(times)
    area = profile_area(ratios).sort_values(ascending=False, kind="stable")
    n = len(ratios)
    if area.iloc[0] == 0:
        return f"Across {n} problems: no optimizer reached the target on any of them; no profile to compare.", ratios
    best = area.index[0]
    tied = [name for name in area.index if np.isclose(area[name], area[best])]
    if baseline in ratios:
        close = int((ratios[baseline] <= WITHIN).sum())
        text = (f"Across {n} problems (every combination of the factors but the optimizer): {baseline} is within "
                f"×{WITHIN} of the fastest on {close} of {n}; ")
    else:
        text = f"Across {n} problems (every combination of the factors but the optimizer): "
    leaders = " and ".join(tied) if len(tied) > 1 else best
    text += (f"by the area of its performance profile (AlgoPerf's score: τ from 1 to {MAX_TAU:g}; 1 = fastest "
             f"everywhere), the highest is {leaders} ({area[best]:.2f}")
    text += f"; {baseline} {area[baseline]:.2f})." if baseline in area and baseline not in tied else ")."
    text += (" A profile summarises medians of seeds: it has no interval, so read it beside the paired verdicts "
             "above, which do.")
    return text, ratios
