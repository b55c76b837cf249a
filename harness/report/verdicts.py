"""One sentence per claim of the article, from the measured effects and their confidence intervals.

Each function takes the runs table (one row per run; the columns ``harness.report.stats`` documents) and
returns a sentence. Where an effect's 95% CI includes "no change", the sentence says the difference
is not distinguishable from noise; with fewer than two pairs, that no spread is known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.config.schema import FACTORS
from harness.report.stats import OPTIMIZER_BASELINE, Effect, break_even_epochs, paired_effect, paired_values


def format_effect(effect: Effect, digits: int = 2) -> str:
    """``×0.62 (95% CI ×0.55 to ×0.70, 12 pairs)`` or ``+0.012 (95% CI -0.004 to +0.020, 12 pairs)``."""
    def show(value: float) -> str:
        return f"×{value:.{digits}f}" if effect.kind == "ratio" else f"{value:+.{digits + 1}f}"

    if effect.pairs == 0 or not math.isfinite(effect.estimate):
        return "not measured (no paired runs)"
    if not math.isfinite(effect.low):
        return f"{show(effect.estimate)} (1 pair: no spread is known)"
    return f"{show(effect.estimate)} (95% CI {show(effect.low)} to {show(effect.high)}, {effect.pairs} pairs)"


def noise_clause(effect: Effect) -> str:
    """`` — not distinguishable from noise`` where the CI includes no change, else empty."""
    if effect.pairs >= 2 and math.isfinite(effect.low) and not effect.distinguishable:
        return ", not distinguishable from noise"
    return ""


def described(effect: Effect) -> str:
    return format_effect(effect) + noise_clause(effect)


def _target(runs: pd.DataFrame) -> float:
    values = runs["target_accuracy"].dropna()
    return float(values.median()) if len(values) else float("nan")


def optimizer_ranking(runs: pd.DataFrame) -> pd.DataFrame:
    """Optimizers ranked by median time to target over their ok runs, a run that never reached the
    target counting as infinitely slow (so an optimizer that reaches it only in easy cells does not
    look fast). Needs ``optimizer``, ``status``, ``time_to_target_seconds``. Returns columns
    ``optimizer``, ``median_time_to_target_seconds`` (inf: most runs never reached it), ``reached``,
    ``runs``, best first."""
    ok = runs[runs["status"] == "ok"]
    times = ok["time_to_target_seconds"].astype(float).fillna(np.inf)
    grouped = times.groupby(ok["optimizer"])
    table = pd.DataFrame({"median_time_to_target_seconds": grouped.median(),
                          "reached": ok["time_to_target_seconds"].notna().groupby(ok["optimizer"]).sum(),
                          "runs": grouped.size()})
    return table.rename_axis("optimizer").reset_index().sort_values(
        ["median_time_to_target_seconds", "optimizer"], ignore_index=True)


def optimizer_verdict(runs: pd.DataFrame, factors: Sequence[str] = FACTORS) -> str:
    """The best optimizer by median time to target, where Adam ranks, and the best against Adam."""
    ranking = optimizer_ranking(runs)
    if len(ranking) < 2:
        return "Optimizers: not compared (fewer than two optimizers have ok runs)."
    target = _target(runs)
    best = ranking.iloc[0]
    if not math.isfinite(best["median_time_to_target_seconds"]):
        return (f"Optimizers: none reached the target validation accuracy of {target:g} in most of its runs; "
                "no ranking by time to target.")
    text = (f"Fastest optimizer to {target:g} validation accuracy: {best['optimizer']} (median "
            f"{best['median_time_to_target_seconds']:.2f} s of training; reached in {best['reached']} of "
            f"{best['runs']} runs)")
    order = ranking["optimizer"].tolist()
    if OPTIMIZER_BASELINE in order:
        adam = ranking.iloc[order.index(OPTIMIZER_BASELINE)]
        never = "" if math.isfinite(adam["median_time_to_target_seconds"]) else \
            " (it missed the target in most runs)"
        text += f"; Adam ranks {order.index(OPTIMIZER_BASELINE) + 1} of {len(order)}{never}"
        if best["optimizer"] != OPTIMIZER_BASELINE:
            effect = paired_effect(runs, "optimizer", best["optimizer"], OPTIMIZER_BASELINE,
                                   "time_to_target_seconds", "ratio", factors=factors)
            text += f"; {best['optimizer']}'s time to target relative to Adam: {described(effect)}"
    return text + "."


def transfer_verdict(runs: pd.DataFrame, factors: Sequence[str] = FACTORS) -> str:
    """Transfer learning's effect on time to target and on test accuracy (on against off), naming the
    ``model`` and ``dataset`` it was measured on and what pretraining cost (``pretraining_cost``) where
    ``runs`` has those columns (the runs table has)."""
    time = paired_effect(runs, "transfer", "on", "off", "time_to_target_seconds", "ratio", factors=factors)
    accuracy = paired_effect(runs, "transfer", "on", "off", "test_accuracy", "difference", factors=factors)
    if time.pairs == 0 and accuracy.pairs == 0:
        return "Transfer learning: not measured (the sweep has no paired transfer on/off runs)."
    ok = runs[runs["status"] == "ok"]
    named = [", ".join(sorted(set(ok[column].dropna().astype(str)))) for column in ("model", "dataset")
             if column in ok]
    where = f"; {' on '.join(named)}" if any(named) else ""
    effect = (f"multiplies time to target by {described(time)}" if time.pairs else
              "cannot be compared on time to target (in no pair did both runs reach the target)")
    return (f"Transfer learning (on vs off{where}) {effect}; it changes test accuracy by {described(accuracy)}. "
            f"{pretraining_cost(ok[ok['transfer'] == 'on'])}").strip()


def pretraining_cost(transferred: pd.DataFrame) -> str:
    """What the pretrained weights of the ``transferred`` runs (ok, transfer on) cost: nothing in this
    sweep for ImageNet weights or a weights file; for pretraining on the source classes, its seconds,
    paid once and shared by the runs that reused the cached weights (each of them records the
    ``pretrain_seconds`` of the pretraining it reused: counted once)."""
    if transferred.empty or not {"pretrain_cache_hit", "pretrain_seconds", "pretrained_weights"} <= set(transferred):
        return ""
    pretrained_here = transferred[transferred["pretrain_cache_hit"].notna()]
    if pretrained_here.empty:
        imagenet = (transferred["pretrained_weights"] == "imagenet").all()
        named = "Keras' ImageNet weights" if imagenet else "a weights file"
        return f"Pretraining was free here: the runs started from {named}, trained elsewhere."
    paid = float(pretrained_here["pretrain_seconds"].dropna().unique().sum())  # cache hits repeat their source's
    share = paid / len(pretrained_here)
    return (f"Pretraining on the source classes cost {paid:.1f} s, paid once and amortised over the "
            f"{len(pretrained_here)} runs that used it: {share:.2f} s per run, not in their time to target.")


def early_stopping_verdict(runs: pd.DataFrame, factors: Sequence[str] = FACTORS) -> str:
    """Early stopping's effect on training time and on test accuracy (on against off)."""
    time = paired_effect(runs, "early_stopping", "on", "off", "train_seconds", "ratio", factors=factors)
    accuracy = paired_effect(runs, "early_stopping", "on", "off", "test_accuracy", "difference", factors=factors)
    if time.pairs == 0:
        return "Early stopping: not measured (the sweep has no paired early stopping on/off runs)."
    saved = f"{(1 - time.estimate):.0%} of training time" if time.estimate <= 1 else "no training time"
    return (f"Early stopping (on vs off) saves {saved}: train seconds {described(time)}; "
            f"its accuracy cost: test accuracy changes by {described(accuracy)}.")


def device_verdict(runs: pd.DataFrame, factors: Sequence[str] = FACTORS) -> str:
    """GPU against CPU on training time, or why it was not measured."""
    gpu = runs[runs["device"] == "gpu"]
    if not (gpu["status"] == "ok").any():
        reasons = sorted(set(gpu["reason"].dropna()))
        why = f"no GPU ({'; '.join(reasons)})" if reasons else "no GPU cells in this sweep"
        return f"GPU vs CPU: not measured: {why}."
    time = paired_effect(runs, "device", "gpu", "cpu", "train_seconds", "ratio", factors=factors)
    if time.pairs == 0:
        return "GPU vs CPU: not measured (no GPU run has a CPU twin)."
    speedup = 1 / time.estimate if time.estimate > 0 else np.inf
    return f"GPU vs CPU: train seconds {described(time)}, a {speedup:.1f}x speed-up."


def verdicts(runs: pd.DataFrame, factors: Sequence[str] = FACTORS) -> list[str]:
    """The four verdicts, in the article's order: optimizer, transfer, early stopping, GPU. Effects pair
    runs that agree on every other of ``factors`` (the sweep's, ``harness.cells``) and the seed, so a
    verdict is computed within the levels of any other swept setting."""
    return [verdict(runs, factors) for verdict in
            (optimizer_verdict, transfer_verdict, early_stopping_verdict, device_verdict)]


SPEED_FACTORS = ("jit_compile", "precision", "steps_per_execution", "backend")
"""Settings that change how fast the same training runs (issue #11): each swept one gets a verdict."""


def speed_verdict(runs: pd.DataFrame, factor: str, level: object, baseline: object,
                  factors: Sequence[str] = FACTORS) -> str:
    """``level`` against ``baseline`` of a speed setting: steady epoch time, the first epoch's extra
    cost (compilation, shown apart), the break-even number of epochs, time to target and test accuracy."""
    steady = paired_effect(runs, factor, level, baseline, "median_epoch_seconds", "ratio", factors=factors)
    if steady.pairs == 0:
        return f"{factor}={level} vs {baseline}: not measured (no paired ok runs)."
    first = paired_effect(runs, factor, level, baseline, "first_epoch_seconds", "difference", factors=factors)
    target = paired_effect(runs, factor, level, baseline, "time_to_target_seconds", "ratio", factors=factors)
    accuracy = paired_effect(runs, factor, level, baseline, "test_accuracy", "difference", factors=factors)
    epochs = paired_values(runs, factor, level, baseline, "median_epoch_seconds", factors)
    saving = float(np.median(epochs["baseline"] - epochs["level"]))
    pays = break_even_epochs(first.estimate, saving) if steady.distinguishable or steady.pairs < 2 else None
    if not (steady.distinguishable or steady.pairs < 2):
        payback = "no break-even: later epochs are not distinguishably faster"
    elif pays is None:
        payback = "it never pays back: later epochs are slower"
    elif pays <= 1:
        payback = "it costs nothing up front"
    else:
        payback = f"it has paid back its first epoch after {pays:.0f} epochs"
    return (f"{factor}={level} vs {baseline}: steady epoch time {described(steady)}; extra seconds in the first "
            f"epoch (compilation): {described(first)}; {payback}; time to target {described(target)}; "
            f"test accuracy {described(accuracy)}.")


def speed_verdicts(runs: pd.DataFrame, factors: Sequence[str], baselines: dict) -> list[str]:
    """A verdict per level of each swept speed setting against its baseline (``baselines``, recorded by
    the sweep: the default where the sweep has it)."""
    found = []
    for factor in (f for f in SPEED_FACTORS if f in factors and f in runs):
        levels = list(dict.fromkeys(runs[factor].dropna()))
        base = baselines.get(factor)
        base = base if base in levels else (levels[0] if levels else None)
        found += [speed_verdict(runs, factor, level, base, factors) for level in levels if level != base]
    return found
