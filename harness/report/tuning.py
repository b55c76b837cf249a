"""A fair verdict on "Adam is the go-to": each optimizer at its best learning rate from an equal budget.

Which optimizer "wins" depends on how each was tuned (Choi et al. 2019; Schmidt, Schneider and Hennig
2021; AlgoPerf fixes the tuning trials per submission). The protocol, applied here and nowhere else:

- **Equal budget.** Every optimizer runs the same grid of learning rates around its own default
  (``optimizer.lr_scale``, a multiplier of the option's learning rate; or absolute
  ``optimizer.learning_rate`` values), with the same epochs and seeds.
- **Selection without bias.** The seeds are split in halves (sorted): the lower half *selects* each
  optimizer's learning rate, the upper half *measures* it, so picking the luckiest of five noisy
  values flatters no one. The criterion is the median time to target over the selection seeds, a run
  that never reached the target counting as infinitely slow; ties, and optimizers that reach it at no
  rate, are broken by the higher median best validation accuracy, then by the rate closest to the
  default. The test split is never used to select. With a single seed nothing can be held out, and
  the verdict says so.
- **Robustness.** The levels of the grid at which the optimizer reaches the target in most seeds.
- **Tuning cost.** The training seconds the optimizer's whole grid consumed.

Small pure functions over the runs table (one row per run, the columns ``harness.report.stats``
documents, plus the tuning factor's column); none imports training code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.cells import sorted_levels
from harness.report.stats import (
    OPTIMIZER_BASELINE,
    Effect,
    example_seeds,
    fewest_pairs,
    judged,
    median_interval,
    paired_effect,
)

TUNING_FACTORS = ("optimizer.lr_scale", "optimizer.learning_rate")
"""Settings that make a learning-rate grid, in order of preference."""


def tuning_factor(factors: Sequence[str], runs: pd.DataFrame) -> str | None:
    """The learning-rate factor of a sweep that compares optimizers over a grid of learning rates, or
    ``None`` (fewer than two optimizers or two learning rates with ok runs)."""
    ok = runs[runs["status"] == "ok"]
    if "optimizer" not in factors or ok["optimizer"].nunique() < 2:
        return None
    return next((f for f in TUNING_FACTORS if f in factors and ok[f].nunique() >= 2), None)


def split_seeds(seeds: Sequence) -> tuple[list, list]:
    """``(selection, evaluation)``: the lower and upper halves of the sorted distinct ``seeds`` (the
    lower gets the odd one out). With one seed both are that seed: nothing can be held out."""
    ordered = sorted(set(seeds))
    if len(ordered) < 2:
        return ordered, ordered
    half = (len(ordered) + 1) // 2
    return ordered[:half], ordered[half:]


def _median_time(values: pd.Series) -> float:
    """Median time to target, a run that never reached it counting as infinitely slow."""
    return float(np.median(values.astype(float).fillna(np.inf))) if len(values) else math.inf


def select_levels(runs: pd.DataFrame, factor: str, seeds: Sequence, default: float = 1.0) -> pd.DataFrame:
    """Each optimizer's chosen level of ``factor`` on the ok runs of ``seeds``: the lowest median time to
    target (never reached = infinite), then the highest median ``best_val_accuracy``, then the level
    closest to ``default`` (in log distance), then the lower level. Returns columns ``optimizer``, ``level``,
    ``median_time_to_target_seconds``, ``median_best_val_accuracy``, one row per optimizer."""
    ok = runs[(runs["status"] == "ok") & runs["seed"].isin(list(seeds))]
    rows = []
    for optimizer, runs_of_optimizer in ok.groupby("optimizer", sort=True):
        candidates = []
        for level, group in runs_of_optimizer.groupby(factor, sort=True):
            distance = abs(math.log(float(level) / default)) if float(level) > 0 and default > 0 else 0.0
            accuracy = float(group["best_val_accuracy"].median())
            candidates.append((_median_time(group["time_to_target_seconds"]), -accuracy, distance, level))
        time, negative_accuracy, _, level = min(candidates, key=lambda c: (*c[:3], float(c[3])))
        rows.append({"optimizer": optimizer, "level": level, "median_time_to_target_seconds": time,
                     "median_best_val_accuracy": -negative_accuracy})
    return pd.DataFrame(rows, columns=["optimizer", "level", "median_time_to_target_seconds",
                                       "median_best_val_accuracy"])


def at_chosen_levels(runs: pd.DataFrame, factor: str, choice: pd.DataFrame, seeds: Sequence) -> pd.DataFrame:
    """The ok runs of ``seeds`` at each optimizer's chosen level (``choice`` from ``select_levels``)."""
    chosen = dict(zip(choice["optimizer"], choice["level"], strict=True))
    ok = runs[(runs["status"] == "ok") & runs["seed"].isin(list(seeds))]
    return ok[[chosen.get(o) == level for o, level in zip(ok["optimizer"], ok[factor], strict=True)]]


def tuned_times(runs: pd.DataFrame, factor: str, choice: pd.DataFrame, seeds: Sequence) -> pd.DataFrame:
    """Per optimizer at its chosen level, over the ok runs of ``seeds``: ``runs``, ``reached`` (runs
    that reached the target), the median time to target (never reached = infinite) and its exact 95 %
    interval (``stats.median_interval``; empty with too few runs to tell); fastest first. Returns columns
    ``optimizer``, ``level``, ``runs``, ``reached``,
    ``median_time_to_target_seconds``, ``low``, ``high``."""
    measured = at_chosen_levels(runs, factor, choice, seeds)
    rows = []
    for optimizer, group in measured.groupby("optimizer", sort=True):
        times = group["time_to_target_seconds"].astype(float).fillna(np.inf).to_numpy()
        low, high = median_interval(times)
        rows.append({"optimizer": optimizer, "level": group[factor].iloc[0], "runs": len(times),
                     "reached": int(np.isfinite(times).sum()), "median_time_to_target_seconds": float(np.median(times)),
                     "low": low, "high": high})
    table = pd.DataFrame(rows, columns=["optimizer", "level", "runs", "reached", "median_time_to_target_seconds",
                                        "low", "high"])
    return table.sort_values(["median_time_to_target_seconds", "optimizer"], ignore_index=True)


def robustness(runs: pd.DataFrame, factor: str) -> pd.DataFrame:
    """Per optimizer: how many levels of ``factor`` it ran (``levels``), at how many most of its ok runs
    reached the target (``levels_reached``), and the training seconds of its whole grid
    (``tuning_seconds``: what tuning it cost)."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    for optimizer, group in ok.groupby("optimizer", sort=True):
        by_level = group.groupby(factor)["time_to_target_seconds"].agg(lambda s: s.notna().mean() > 0.5)
        rows.append({"optimizer": optimizer, "levels": len(by_level), "levels_reached": int(by_level.sum()),
                     "tuning_seconds": float(group["train_seconds"].sum())})
    return pd.DataFrame(rows, columns=["optimizer", "levels", "levels_reached", "tuning_seconds"])


def tuned_ratios(runs: pd.DataFrame, factor: str, choice: pd.DataFrame, seeds: Sequence, *,
                 factors: Sequence[str], baseline: str = OPTIMIZER_BASELINE) -> dict[str, Effect]:
    """Each other optimizer's time to target relative to ``baseline``'s, each at its chosen level, paired by
    seed and every other factor (``stats.paired_effect``; pairs where either missed the target are
    dropped), judged as one family with Holm's correction: the fastest is picked after seeing them all,
    so its comparison is one of several."""
    measured = at_chosen_levels(runs, factor, choice, seeds)
    others = [f for f in factors if f != factor]
    names = [o for o in sorted(set(measured["optimizer"])) if o != baseline]
    effects = [paired_effect(measured, "optimizer", o, baseline, metric="time_to_target_seconds", kind="ratio",
                             factors=others)
               for o in names]
    return dict(zip(names, judged(effects, "holm"), strict=True))


def levels_text(levels: Sequence) -> str:
    return ", ".join(str(v) for v in sorted_levels(levels))


def default_rates_sentence(ok: pd.DataFrame, factor: str, levels: list) -> list[str]:
    """The ranking at default learning rates (``lr_scale`` 1), where the grid scales them and includes 1."""
    from harness.report.verdicts import optimizer_ranking

    if factor != "optimizer.lr_scale" or 1.0 not in [float(v) for v in levels]:
        return []
    ranking = optimizer_ranking(ok[ok[factor].astype(float) == 1.0])
    order = ranking["optimizer"].tolist()
    adam = f" (Adam ranks {order.index(OPTIMIZER_BASELINE) + 1} of {len(order)})" if OPTIMIZER_BASELINE in order else ""
    best = ranking.iloc[0]
    fastest = best["optimizer"] if math.isfinite(best["median_time_to_target_seconds"]) else "none reaches it"
    return [f"At default learning rates (lr_scale 1): fastest to the target: {fastest}{adam}."]


def edge_sentences(choice: pd.DataFrame, factor: str, levels: list) -> list[str]:
    """A warning per edge of the grid (of more than two levels) that some optimizer chose: its best may
    lie beyond it."""
    edges: dict = {}
    for row in choice.itertuples():
        if len(levels) > 2 and row.level in (levels[0], levels[-1]):
            edges.setdefault(row.level, []).append(row.optimizer)
    return [f"At the edge of the grid: {', '.join(names)} chose {factor}={edge}, the "
            f"{'largest' if edge == levels[-1] else 'smallest'} value tried; the best may lie beyond it, so extend "
            "the grid that way before trusting this ranking." for edge, names in edges.items()]


def tuning_verdict(runs: pd.DataFrame, factors: Sequence[str]) -> tuple[list[str], pd.DataFrame | None]:
    """The fair optimizer verdict as sentences, and its table (per optimizer: chosen level, held-out
    time to target with CI, levels reaching the target, tuning seconds), or ``([], None)`` when the
    sweep has no learning-rate grid over two or more optimizers."""
    from harness.report.verdicts import described

    factor = tuning_factor(factors, runs)
    if factor is None:
        return [], None
    ok = runs[runs["status"] == "ok"]
    levels = sorted_levels(ok[factor].unique())
    selection, evaluation = split_seeds(ok["seed"].unique())
    choice = select_levels(runs, factor, selection)
    measured = tuned_times(runs, factor, choice, evaluation)
    grid = robustness(runs, factor)
    sentences = default_rates_sentence(ok, factor, levels)
    held_out = evaluation != selection
    how = (f"chosen on seeds {levels_text(selection)}, measured on held-out seeds {levels_text(evaluation)}"
           if held_out else "chosen and measured on the same single seed: biased towards lucky draws; "
           "repeat with seed=0,1,2,3 to hold seeds out")
    winner = measured.iloc[0]
    text = f"Each at its best of {len(levels)} values of {factor} ({how}): "
    if not math.isfinite(winner["median_time_to_target_seconds"]):
        text += "no optimizer reaches the target in most held-out runs."
    else:
        text += (f"{winner['optimizer']} is fastest ({factor}={winner['level']}, median "
                 f"{winner['median_time_to_target_seconds']:.2f} s to the target)")
        if winner["optimizer"] != OPTIMIZER_BASELINE and OPTIMIZER_BASELINE in set(measured["optimizer"]):
            family = tuned_ratios(runs, factor, choice, evaluation, factors=factors)
            effect = family[winner["optimizer"]]
            # only the held-out half of the seeds measures: twice the pairs in seeds
            text += f", relative to Adam at its best: {described(effect, example_seeds(2 * fewest_pairs()))}"
            if not effect.too_few:
                text += f" (judged with the {len(family)} optimizers' comparisons with Adam as one family, Holm's " \
                        "correction)"
        text += "."
    sentences.append(text)
    sentences += edge_sentences(choice, factor, levels)
    sentences.append("Robustness, levels of the grid where most runs reach the target: " + ", ".join(
        f"{row.optimizer} {row.levels_reached}/{row.levels}" for row in grid.itertuples()) + ".")
    table = measured.merge(grid, on="optimizer").rename(columns={
        "level": f"chosen {factor}", "median_time_to_target_seconds": "held-out median time to target (s)",
        "low": "CI low", "high": "CI high", "tuning_seconds": "tuning cost (train s)"})
    return sentences, table
