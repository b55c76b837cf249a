"""One sentence per claim of the article, from the measured effects and their intervals.

Each verdict function takes the runs table (one row per run; the columns ``harness.report.stats``
documents) and returns a sentence. The comparisons that a group of verdicts states are judged as one
family (``judge_as_family``, Holm's correction): a sentence calls an effect a direction only where it holds
for the whole family at 5 %, says "not distinguishable from noise" where it does not, and "too few to
tell" where the pairs are too few for any 95 % statement (``stats.fewest_pairs``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.report.stats import (
    OPTIMIZER_BASELINE,
    Effect,
    break_even_epochs,
    example_seeds,
    factor_levels,
    fewest_pairs,
    judged,
    metric_values,
    paired_effect,
    paired_values,
)

Measure = Callable[..., Effect]
"""Measures one comparison, ``(factor, level, baseline, metric, kind[, where]) -> Effect``, for a verdict
(``where``: ``stats.paired_values``' filter on the level's runs)."""
Sentence = Callable[[Measure], str]
"""A verdict waiting for its measurements: called once to learn its comparisons, once to be written."""


@dataclass(frozen=True)
class Judged:
    """Verdict ``sentences`` whose ``comparisons`` (those with enough pairs to test, of ``measured`` with any
    pairs) were judged as one family with Holm's correction."""

    sentences: list[str]
    comparisons: int
    measured: int = 0

    @property
    def note(self) -> str:
        """How the family was judged, for the section's text."""
        if self.comparisons == 0 and self.measured == 0:
            return "None of these comparisons has paired runs in this sweep."
        if self.comparisons == 0:
            return (f"No comparison here has the {fewest_pairs()} pairs that a 95 % statement needs: every effect "
                    f"is too few to tell (run more seeds, e.g. {example_seeds()}).")
        needed = fewest_pairs(0.05 / self.comparisons)
        return (f"Intervals are exact 95 % intervals: for times, of the Hodges-Lehmann ratio (signed-rank test on "
                f"log ratios); for accuracies, of the median difference (sign test over the pairs that changed). "
                f"\"Beyond noise\" is judged over the {self.comparisons} comparison"
                f"{'s' if self.comparisons > 1 else ''} below as one family (Holm's correction, 5 % family-wise "
                f"error), so a lone lucky "
                f"comparison does not become a verdict; with {self.comparisons} comparisons, an effect needs at "
                f"least {needed} pairs to be told from noise. The unit is the pair: two runs alike in every other "
                f"setting and the seed. A verdict is about the cells swept here (it says the factor changes the "
                f"metric in them); where its effect differs between cells (see the interactions) the estimate "
                f"is their mix, not a prediction for cells not swept.")


def judge_as_family(runs: pd.DataFrame, sentences: Sequence[Sentence], factors: Sequence[str]) -> Judged:
    """Write ``sentences`` with every comparison they state judged together: each is called first to learn
    which comparisons it makes (measured on ``runs``, paired by the other ``factors`` and the seed), then
    again with those comparisons Holm-adjusted as one family."""
    found: dict[tuple, Effect] = {}

    def measure(*comparison) -> Effect:
        if comparison not in found:
            factor, level, baseline, metric, kind, *where = comparison
            found[comparison] = paired_effect(runs, factor, level, baseline, metric=metric, kind=kind, factors=factors,
                                              where=where[0] if where else None)
        return found[comparison]

    for sentence in sentences:
        sentence(measure)
    family = dict(zip(found, judged(list(found.values()), "holm"), strict=True))
    written = [sentence(lambda *comparison: family.get(comparison) or measure(*comparison)) for sentence in sentences]
    with_pairs = [e for e in found.values() if e.pairs]
    return Judged(written, sum(not e.too_few for e in with_pairs), len(with_pairs))


def _counts(effect: Effect) -> str:
    """``; 10 higher, 10 equal, 0 lower`` for a difference (what the sign test weighs); for a time to target,
    how many pairs' runs missed it on each side (counted as infinitely slow)."""
    if effect.kind == "difference":
        return f"; {effect.above} higher, {effect.equal} equal, {effect.below} lower"
    misses = [f"{count} at {level}" for count, level in ((effect.level_misses, effect.level),
                                                           (effect.baseline_misses, effect.baseline)) if count]
    return f"; missed the target (counted as never): {', '.join(misses)}" if misses else ""


def _shown_value(effect: Effect, value: float, digits: int = 2) -> str:
    """``×0.87`` for a ratio, ``+0.012`` for a difference."""
    if effect.kind == "ratio":
        return "×∞" if value == math.inf else f"×{value:.{digits}f}"
    return f"{value:+.{digits + 1}f}"


def format_effect(effect: Effect, digits: int = 2, more_seeds: str = "") -> str:
    """``×0.62 (95% CI ×0.55 to ×0.70, 12 pairs)``, ``+0.012 (95% CI -0.004 to +0.020, 12 pairs; 7 higher,
    3 equal, 2 lower)``, or ``×0.91 (3 pairs: too few to tell; run more seeds, e.g. seed=0,1,2,3,4,5)``
    (``more_seeds``: the override to suggest there, where a pair needs more than one seed); misses of the
    target named (``_counts``)."""
    def show(value: float) -> str:
        return _shown_value(effect, value, digits)

    if effect.pairs == 0 or math.isnan(effect.estimate):
        return "not measured (no paired runs)"
    if effect.equal == effect.pairs and not effect.too_few:
        return f"{show(effect.estimate)} (unchanged in all {effect.pairs} pairs)"
    if effect.too_few:
        plural = "s" if effect.pairs != 1 else ""
        return f"{show(effect.estimate)} ({effect.pairs} pair{plural}: too few to tell{_counts(effect)}; run more " \
               f"seeds, e.g. {more_seeds or example_seeds()})"
    return (f"{show(effect.estimate)} (95% CI {show(effect.low)} to {show(effect.high)}, {effect.pairs} pairs"
            f"{_counts(effect)})")


def noise_clause(effect: Effect) -> str:
    """``, not distinguishable from noise`` where the effect is not beyond noise (naming the correction
    where the interval alone excludes no change but the family does not), else empty; nothing where the
    pairs are too few (``format_effect`` says so)."""
    if effect.too_few or effect.distinguishable or math.isnan(effect.estimate) or effect.equal == effect.pairs:
        return ""
    if effect.correction and (effect.low > effect.neutral or effect.high < effect.neutral):
        # the interval above is this comparison's alone: beside a family's verdict, say the family's interval
        family = (f": that interval is this comparison's alone; with the others, its simultaneous 95% interval is "
                  f"{_shown_value(effect, effect.family_low)} to {_shown_value(effect, effect.family_high)}"
                  if not (math.isnan(effect.family_low) or math.isnan(effect.family_high)) else
                  ": that interval is this comparison's alone, and its pairs are too few for one that holds "
                  "with the others")
        return (f", not distinguishable from noise when judged with the other comparisons ({effect.correction}-"
                f"adjusted p = {effect.p_adjusted:.2g}){family}{could_call(effect)}")
    return f", not distinguishable from noise{could_call(effect)}"


def could_call(effect: Effect) -> str:
    """What a ratio effect's pairs, at their spread, could have called beyond noise in its family: the size
    a "not distinguishable" cannot rule out (empty where unknown: a difference, a miss, judged alone)."""
    if math.isnan(effect.detectable_slower):
        return ""
    if not math.isfinite(effect.detectable_slower):
        return "; at this many pairs in this family no change could be called"
    return (f"; it could call ×{effect.detectable_faster:.2f} or faster, ×{effect.detectable_slower:.2f} or "
            "slower")


def described(effect: Effect, more_seeds: str = "") -> str:
    """The effect with its interval (``format_effect``) and whether it is told from noise (``noise_clause``)."""
    return format_effect(effect, more_seeds=more_seeds) + noise_clause(effect)


def _target(runs: pd.DataFrame) -> float:
    given = runs["target_value"].dropna() if "target_value" in runs else pd.Series(dtype=float)
    values = given if len(given) else runs["target_accuracy"].dropna()
    return float(values.median()) if len(values) else float("nan")


def target_phrase(runs: pd.DataFrame) -> str:
    """What the runs' time to target means: ``0.9 validation accuracy``, or the user's target metric with
    its direction, ``val_mae <= 60`` (``target_metric``, ``target_value``; results from before these
    existed timed validation accuracy)."""
    metrics = runs["target_metric"].dropna().unique() if "target_metric" in runs else []
    pairs = runs[["target_metric", "target_value"]].dropna().drop_duplicates() if "target_value" in runs else []
    if len(pairs) > 1:  # a sweep across workloads (or over targets): no one number
        from harness.config.schema import target_mode

        said = [f"{metric} {'<=' if target_mode(metric) == 'min' else '>='} {value:g}"
                for metric, value in sorted(pairs.itertuples(index=False))]
        return f"their own targets ({', '.join(said)})"
    metric = str(metrics[0]) if len(metrics) else "val_accuracy"
    if metric == "val_accuracy":
        return f"{_target(runs):g} validation accuracy"
    from harness.config.schema import target_mode

    return f"{metric} {'<=' if target_mode(metric) == 'min' else '>='} {_target(runs):g}"


def optimizer_ranking(runs: pd.DataFrame) -> pd.DataFrame:
    """Optimizers ranked by median time to target over their runs judged on it (``stats.metric_values``:
    the ok ones and the diverged), a run that never reached the target counting as infinitely slow (so an
    optimizer that reaches it only in easy cells does not look fast). Needs ``optimizer``, ``status``,
    ``reason``, ``time_to_target_seconds``. Returns columns ``optimizer``, ``median_time_to_target_seconds``
    (inf: most runs never reached it), ``reached``, ``runs``, best first."""
    times = metric_values(runs, "time_to_target_seconds")
    optimizers = runs.loc[times.index, "optimizer"]
    grouped = times.groupby(optimizers)
    table = pd.DataFrame({"median_time_to_target_seconds": grouped.median(),
                          "reached": np.isfinite(times).groupby(optimizers).sum(), "runs": grouped.size()})
    return table.rename_axis("optimizer").reset_index().sort_values(
        ["median_time_to_target_seconds", "optimizer"], ignore_index=True)


def optimizer_verdict(runs: pd.DataFrame, factors: Sequence[str], measure: Measure | None = None) -> str:
    """The best optimizer by median time to target, where Adam ranks, and the best against Adam."""
    if measure is None:  # judged alone: a family of its own comparisons
        return judge_as_family(runs, [functools.partial(optimizer_verdict, runs, factors)], factors).sentences[0]
    ranking = optimizer_ranking(runs)
    if len(ranking) < 2:
        return "Optimizers: not compared (fewer than two optimizers have ok runs)."
    target = target_phrase(runs)
    best = ranking.iloc[0]
    if not math.isfinite(best["median_time_to_target_seconds"]):
        return (f"Optimizers: none reached the target ({target}) in most of its runs; no ranking by time to target.")
    order = ranking["optimizer"].tolist()
    effect, compared = None, None
    if OPTIMIZER_BASELINE in order:
        # the best was picked after seeing every optimizer's runs: each one's comparison with Adam
        # joins the family, so that the fastest of many is not a lucky draw called a verdict
        others = {o: measure("optimizer", o, OPTIMIZER_BASELINE, "time_to_target_seconds", "ratio")
                  for o in order if o != OPTIMIZER_BASELINE}
        # "fastest" needs the best told apart from Adam, or Adam from the runner-up where Adam is best
        compared = best["optimizer"] if best["optimizer"] != OPTIMIZER_BASELINE else order[1]
        effect = others[compared]
    medians = (f"{best['optimizer']} (median {best['median_time_to_target_seconds']:.2f} s of training; reached in "
               f"{best['reached']} of {best['runs']} runs)")
    if effect is None or effect.distinguishable:
        text = f"Fastest optimizer to {target}: {medians}"
    else:  # the lowest median, but not told apart from Adam: no "fastest" yet
        text = f"Optimizers to {target}: none told apart from Adam yet; the lowest median is {medians}"
    if OPTIMIZER_BASELINE in order:
        adam = ranking.iloc[order.index(OPTIMIZER_BASELINE)]
        never = "" if math.isfinite(adam["median_time_to_target_seconds"]) else \
            " (it missed the target in most runs)"
        text += f"; Adam ranks {order.index(OPTIMIZER_BASELINE) + 1} of {len(order)}{never}"
    if effect is not None:
        text += f"; {compared}'s time to target relative to Adam: {described(effect)}"
    return text + "."


def transfer_verdict(runs: pd.DataFrame, factors: Sequence[str], measure: Measure | None = None) -> str:
    """Transfer learning's effect on time to target and on test accuracy (on against off), naming the
    ``model`` and ``dataset`` it was measured on and what pretraining cost (``pretraining_cost``) where
    ``runs`` has those columns (the runs table has)."""
    if measure is None:  # judged alone: a family of its own comparisons
        return judge_as_family(runs, [functools.partial(transfer_verdict, runs, factors)], factors).sentences[0]
    time = measure("transfer", "on", "off", "time_to_target_seconds", "ratio")
    accuracy = measure("transfer", "on", "off", "test_accuracy", "difference")
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


def early_stopping_verdict(runs: pd.DataFrame, factors: Sequence[str], measure: Measure | None = None) -> str:
    """Early stopping (on against off) judged where it acted: how many runs it stopped, and its effect on
    training time and test accuracy in those pairs; a run it never stopped trained exactly as without it,
    so pooling those pairs would dilute the effect toward none. A saving is stated only beyond noise."""
    if measure is None:  # judged alone: a family of its own comparisons
        return judge_as_family(runs, [functools.partial(early_stopping_verdict, runs, factors)], factors).sentences[0]
    every = measure("early_stopping", "on", "off", "train_seconds", "ratio")
    if every.pairs == 0:
        return "Early stopping: not measured (the sweep has no paired early stopping on/off runs)."
    on = runs[(runs["status"] == "ok") & (runs["early_stopping"] == "on")]
    if "early_stopped" not in runs or on["early_stopped"].isna().all():  # results that do not record it
        accuracy = measure("early_stopping", "on", "off", "test_accuracy", "difference")
        return (f"Early stopping (on vs off): train seconds {described(every)}; test accuracy changes by "
                f"{described(accuracy)}.")
    stopped = int((on["early_stopped"] == True).sum())  # noqa: E712  (a column of objects: True, False, None)
    counted = f"Early stopping (on vs off) stopped {stopped} of {len(on)} runs early"
    if stopped == 0:
        return f"{counted}: it never acted in this sweep (more epochs, or a smaller patience, give it the chance)."
    acted = ("early_stopped", True)
    time = measure("early_stopping", "on", "off", "train_seconds", "ratio", acted)
    accuracy = measure("early_stopping", "on", "off", "test_accuracy", "difference", acted)
    if time.distinguishable and time.estimate < 1:
        saved = f"it saved {1 - time.estimate:.0%} of training time there"
    else:
        saved = "no saving beyond noise"
    return (f"{counted} (the others trained every epoch, as without it). Where it stopped: train seconds "
            f"{described(time)}, {saved}; test accuracy changes by {described(accuracy)}.")


def device_verdict(runs: pd.DataFrame, factors: Sequence[str], measure: Measure | None = None) -> str:
    """GPU against CPU on training time, or why it was not measured."""
    if measure is None:  # judged alone: a family of its own comparisons
        return judge_as_family(runs, [functools.partial(device_verdict, runs, factors)], factors).sentences[0]
    gpu = runs[runs["device"] == "gpu"]
    if not (gpu["status"] == "ok").any():
        reasons = sorted(set(gpu["reason"].dropna()))
        why = f"no GPU ({'; '.join(reasons)})" if reasons else "no GPU cells in this sweep"
        return f"GPU vs CPU: not measured: {why}."
    time = measure("device", "gpu", "cpu", "train_seconds", "ratio")
    if time.pairs == 0:
        return "GPU vs CPU: not measured (no GPU run has a CPU twin)."
    speedup = 1 / time.estimate if time.estimate > 0 else np.inf
    target = measure("device", "gpu", "cpu", "time_to_target_seconds", "ratio")
    sentence = (f"GPU vs CPU: train seconds {described(time)}, a {speedup:.1f}x speed-up; time to target "
                f"{described(target)}")
    if "cost_to_target_usd" not in runs:
        return sentence + "."
    ok = runs[runs["status"] == "ok"]
    prices = ok.groupby("device")["price_per_hour"].max()  # NaN: no run of that device has a price
    unpriced = [device for device in ("cpu", "gpu") if pd.isna(prices.get(device))]
    if unpriced:
        return (f"{sentence}; cost to target not compared: no price per hour for {' or '.join(unpriced)} "
                "(device.price_per_hour=, or python -m harness.report SWEEP --price cpu=0.05).")
    cost = measure("device", "gpu", "cpu", "cost_to_target_usd", "ratio")
    return f"{sentence}; cost to target {described(cost)}."


ARTICLE_VERDICTS = {"optimizer": optimizer_verdict, "transfer": transfer_verdict,
                    "early_stopping": early_stopping_verdict, "device": device_verdict}
"""The article's claims, in its order, by the factor each judges."""


def verdicts(runs: pd.DataFrame, factors: Sequence[str]) -> Judged:
    """The article's verdicts (optimizer, transfer, early stopping, GPU, in its order) for those of its
    factors among ``factors``, judged as one family. Effects pair runs that agree on every other of
    ``factors`` (the sweep's, ``harness.cells``) and the seed, so a verdict is computed within the levels of
    any other swept setting."""
    return judge_as_family(runs, [functools.partial(verdict, runs, factors)
                                  for factor, verdict in ARTICLE_VERDICTS.items() if factor in factors], factors)


SPEED_FACTORS = ("jit_compile", "precision", "steps_per_execution", "backend", "python")
"""Settings that change how fast the same training runs (``python``: the environment, before and after an
upgrade): each swept one gets a verdict."""


def package_changes(runs: pd.DataFrame, factor: str, level: object, baseline: object) -> str:
    """For the ``python`` factor, which package versions differ between the two environments, as their
    runs recorded them (``environment.packages``): " (keras 3.5.0 → 3.6.0)"; else ""."""
    if factor != "python" or "packages" not in runs:
        return ""

    def versions(at: object) -> dict[str, str]:
        recorded = runs.loc[runs[factor] == at, "packages"].dropna()
        return dict(item.rsplit(" ", 1) for item in str(recorded.iloc[0]).split(", ") if " " in item) \
            if len(recorded) else {}

    before, after = versions(baseline), versions(level)
    changed = [f"{name} {before.get(name, 'none')} → {after.get(name, 'none')}" for name in {**before, **after}
               if before.get(name) != after.get(name)]
    return f" ({', '.join(changed)})" if changed else " (the same package versions)"


def speed_verdict(runs: pd.DataFrame, factor: str, level: object, baseline: object, measure: Measure, *,
                  factors: Sequence[str]) -> str:
    """``level`` against ``baseline`` of a speed setting: steady epoch time, the first epoch's extra
    cost (compilation, shown apart), the break-even number of epochs, time to target and test accuracy."""
    steady = measure(factor, level, baseline, "median_epoch_seconds", "ratio")
    if steady.pairs == 0:
        return f"{factor}={level} vs {baseline}: not measured (no paired ok runs)."
    first = measure(factor, level, baseline, "first_epoch_seconds", "difference")
    target = measure(factor, level, baseline, "time_to_target_seconds", "ratio")
    accuracy = measure(factor, level, baseline, "test_accuracy", "difference")
    epochs = paired_values(runs, factor, level, baseline, "median_epoch_seconds", factors=factors)
    saving = float(np.median(epochs["baseline"] - epochs["level"]))
    pays = break_even_epochs(first.estimate, saving)
    guess = " (from the medians; too few pairs to tell)" if steady.too_few else ""
    if not (steady.distinguishable or steady.too_few):
        payback = "no break-even: later epochs are not distinguishably faster"
    elif pays is None:
        payback = f"it never pays back: later epochs are slower{guess}"
    elif pays <= 1:
        payback = f"it costs nothing up front{guess}"
    else:
        payback = f"it has paid back its first epoch after {pays:.0f} epochs{guess}"
    changed = package_changes(runs, factor, level, baseline)
    return (f"{factor}={level} vs {baseline}{changed}: steady epoch time {described(steady)}; extra seconds in the "
            f"first epoch (compilation): {described(first)}; {payback}; time to target {described(target)}; "
            f"test accuracy {described(accuracy)}.")


def speed_verdicts(runs: pd.DataFrame, factors: Sequence[str], baselines: dict) -> Judged:
    """A verdict per level of each swept speed setting against its baseline (``baselines``, recorded by
    the sweep: the default where the sweep has it), all judged as one family."""
    found: list[Sentence] = []
    for factor in (f for f in SPEED_FACTORS if f in factors and f in runs):
        levels = list(dict.fromkeys(runs[factor].dropna()))
        base = baselines.get(factor)
        base = base if base in levels else (levels[0] if levels else None)
        found += [functools.partial(speed_verdict, runs, factor, level, base, factors=factors)
                  for level in levels if level != base]
    return judge_as_family(runs, found, factors)


RESOURCE_METRICS = (("peak_rss_bytes", "peak memory"), ("device_peak_memory_bytes", "peak GPU memory"),
                    ("cores_used", "cores used"), ("cpu_energy_joules", "CPU energy"),
                    ("gpu_energy_joules", "GPU energy"))
"""What a run held and used (its counters, read at its boundaries), as ratios level / baseline."""


def resource_verdict(runs: pd.DataFrame, factor: str, level: object, baseline: object, measure: Measure) -> str:
    """``level`` against ``baseline`` of ``factor`` on every resource fact both sides recorded; empty where
    they share none (results from before the facts existed, or energy nowhere measured)."""
    parts = []
    for metric, label in RESOURCE_METRICS:
        if metric not in runs or runs[metric].isna().all():
            continue
        effect = measure(factor, level, baseline, metric, "ratio")
        if effect.pairs:
            parts.append(f"{label} {described(effect)}")
    return f"{factor}={level} vs {baseline}: {'; '.join(parts)}." if parts else ""


def resource_verdicts(runs: pd.DataFrame, factors: Sequence[str], baselines: dict) -> Judged:
    """A sentence per level of each swept factor against its baseline on memory, cores and energy, all
    judged as one family (Holm): "mixed precision: peak GPU memory ×0.55" is a claim like any other."""
    found: list[Sentence] = [functools.partial(resource_verdict, runs, factor, level, base)
                             for factor in factors if factor in runs
                             for level, base in factor_levels(runs, factor, baselines.get(factor))]
    judged_family = judge_as_family(runs, found, factors)
    return Judged([s for s in judged_family.sentences if s], judged_family.comparisons, judged_family.measured)
