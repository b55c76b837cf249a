"""The comparison report of a sweep: result files in; ``runs.csv``, ``cells.csv``, ``effects.csv``, ``report.md``,
``index.html`` (self-contained: figures inlined) and ``figures/*.png`` out.

``python -m harness.report SWEEP_DIR [--out DIR]`` rebuilds it from the stored results alone, without
training, byte for byte (nothing in it depends on the time or on how the folder was named on the
command line); a multirun calls the same ``write_report`` when it ends. It reads result files only:
it never imports the training code. The numbers come from ``harness.report.stats``, the sentences from
``harness.report.verdicts``, the plots from ``harness.report.figures``.
"""

from __future__ import annotations

import argparse
import base64
import html
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.cells import overrides, sorted_levels
from harness.comet_summary import comet_summary
from harness.config.schema import TARGET_MODES
from harness.report import figures, stability, stats, tuning, workloads
from harness.report.profiles import MAX_TAU, profile_verdict, spans_workloads
from harness.report.tables import cell_name, factor_baselines, factor_columns, history_frame, results_frame
from harness.report.verdicts import format_effect, optimizer_ranking, resource_verdicts, speed_verdicts, verdicts
from harness.result_files import collect_results, one_per_cell
from harness.results import Result
from harness.targets import AUTO_REACHED, AUTO_REFERENCE, RetargetError, described_targets, retarget, retarget_auto

DRIFT_WARNING = 0.05
"""Warn about drift when the fitted change over the sweep exceeds this and its CI excludes no change."""

RUN_TABLE_COLUMNS = ("seed", "status", "reason", "epochs_run", "early_stopped", "train_seconds",
                     "first_epoch_seconds", "median_epoch_seconds", "time_to_target_seconds", "epochs_to_target",
                     "best_val_accuracy", "test_accuracy", "reused")


@dataclass
class Section:
    """A titled part of the report: text, bullet items, a table and a figure, each optional."""

    title: str
    text: str = ""
    items: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    figure: Path | None = None
    folded: str = ""
    """Where set, the table is folded away under this summary line (HTML ``<details>``)."""


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def _values(runs: pd.DataFrame, column: str, default: str = "") -> str:
    """The distinct values of ``column`` as one text (whole floats shown without ``.0``: pandas turns
    ints with gaps into floats), or ``default`` if there are none."""
    values = {int(v) if isinstance(v, float) and v.is_integer() else v for v in runs[column].dropna()}
    return ", ".join(sorted({str(v) for v in values if str(v) != ""})) or default


def data_loading_fact(runs: pd.DataFrame) -> str:
    """What loading and decoding the data cost the ok runs that measured it (``data_seconds``; never
    training time) and, for folders, how many read their decoded images from the cache
    (``data_cache_hit``), which images were left out as unreadable (``skipped_images``) and how many
    streamed them from disk (``data_streamed``); nothing where no run measured it
    (results from before it was recorded)."""
    ok = runs[runs["status"] == "ok"]
    seconds = pd.to_numeric(ok["data_seconds"], errors="coerce").dropna()
    if seconds.empty:
        return ""
    text = (f"Data loading and decoding, outside training time: median {seconds.median():.2f} s per run "
            f"(at most {seconds.max():.2f} s)")
    hits = ok["data_cache_hit"].dropna() if "data_cache_hit" in ok else pd.Series(dtype=bool)
    if not hits.empty:
        text += (f"; {int(hits.astype(bool).sum())} of {len(hits)} folder runs read their images already "
                 "decoded from the cache")
    skipped = sorted({name for names in ok.get("skipped_images", pd.Series(dtype=object)).dropna() for name in names})
    if skipped:
        text += (f"; {len(skipped)} unreadable image{'s' if len(skipped) != 1 else ''} left out "
                 f"(dataset.skip_unreadable=true): {', '.join(skipped[:5])}{' and more' if len(skipped) > 5 else ''}")
    streamed = int(ok["data_streamed"].fillna(False).astype(bool).sum()) if "data_streamed" in ok else 0
    if streamed:
        text += (f"; {streamed} run{'s' if streamed != 1 else ''} streamed {'their' if streamed != 1 else 'its'} "
                 "images from disk batch by batch, reading inside the timed epochs")
    return text + "."


def resources_fact(runs: pd.DataFrame) -> str:
    """What the ok runs held and used, from the counters each read at its boundaries: peak memory of the
    run's process, and the cores its ``fit`` kept busy beside the CPUs it could use; nothing where no run
    recorded them (results from before they were)."""
    ok = runs[runs["status"] == "ok"]
    nothing = pd.Series(dtype=float)
    peak = pd.to_numeric(ok.get("peak_rss_bytes", nothing), errors="coerce").dropna() / 2**20
    cores = pd.to_numeric(ok.get("cores_used", nothing), errors="coerce").dropna()
    if peak.empty or cores.empty:
        return ""
    text = (f"Resources per run: peak memory of its process median {peak.median():.0f} MiB (at most "
            f"{peak.max():.0f} MiB); cores kept busy during fit median {cores.median():.2f} (at most "
            f"{cores.max():.2f}) of {_values(ok, 'cpus_available')} available")
    device = pd.to_numeric(ok.get("device_peak_memory_bytes", nothing), errors="coerce").dropna() / 2**20
    if not device.empty:
        text += f"; peak GPU memory median {device.median():.0f} MiB (at most {device.max():.0f} MiB)"
    text += energy_fact(ok)
    share = pd.to_numeric(ok["input_share"], errors="coerce").dropna()
    if not share.empty:
        text += (f"; the training input alone (timed after training, input_check) took a median {share.median():.0%} "
                 f"of a steady epoch in the {len(share)} runs that timed it")
    return text + "."


def energy_fact(ok: pd.DataFrame) -> str:
    """The energy the ok runs' fits used, from the counters they read (CPU packages' RAPL, the GPU's NVML),
    or, once, why it was not measured; nothing for results from before energy was recorded."""
    if "energy_unmeasured" not in ok or ok["energy_unmeasured"].isna().all():
        return ""
    measured = [f"{side} median {values.median():.0f} J (at most {values.max():.0f} J)"
                for side, values in (("CPU packages", pd.to_numeric(ok["cpu_energy_joules"], errors="coerce").dropna()),
                                     ("GPU", pd.to_numeric(ok["gpu_energy_joules"], errors="coerce").dropna()))
                if len(values)]
    why = sorted({reason for reasons in ok["energy_unmeasured"].dropna() for reason in reasons})
    text = f"; energy during fit: {', '.join(measured)}" if measured else ""
    return text + (f"; energy not measured: {'; '.join(why)}" if why else "")


def setup_section(runs: pd.DataFrame, sweep_label: str, factors: Sequence[str]) -> Section:
    """Hardware, versions, grid (the factors that vary; those with one level as the sweep's fixed
    conditions), repeats and the runs per status; its warnings are ``setup_warnings``."""
    ran = runs[runs["status"].isin(["ok", "failed", "interrupted"])]
    repeats = stats.by_cell(runs[runs["status"] == "ok"], factors, dropna=False).size()
    levels = stats.grid(runs, factors)
    varied = {k: v for k, v in levels.items() if len(v) > 1 or k == "seed"}
    fixed = {k: v[0] for k, v in levels.items() if len(v) == 1 and k != "seed"}
    fixed_text = ("Fixed: " + "; ".join(f"{k}: {v}" for k, v in fixed.items()) + ".") if fixed else ""
    if len(repeats) == 0:
        repeat_text = "No ok runs."
    elif repeats.min() == repeats.max():
        repeat_text = f"Repeats per cell (ok runs): {repeats.min()}."
    else:
        repeat_text = f"Repeats per cell (ok runs): {repeats.min()} to {repeats.max()}."
    facts = [
        f"Sweep: `{sweep_label}`, {len(runs)} runs.",
        "Grid: " + "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in (
            varied if fixed_text else levels).items()) + ".",
        fixed_text,
        repeat_text,
        f"CPU: {_values(ran, 'cpu_model', 'unknown')} ({_values(ran, 'cpu_count', '?')} cores); "
        f"GPU: {_values(ran, 'gpu_names', 'none')}; hosts: {_values(ran, 'hostname', '?')}.",
        f"Python {_values(ran, 'python')}, Keras {_values(ran, 'keras')} (backend {_values(ran, 'backend')}), "
        f"TensorFlow {_values(ran, 'tensorflow', '-')}.",
        f"XLA (jit_compile): {_values(ran, 'jit_compile')}; threads per run: {_values(ran, 'threads')} "
        "(0 = TensorFlow's default).",
        data_loading_fact(runs),
    ]
    return Section("Setup", " ".join(fact for fact in facts if fact), table=stats.status_counts(runs))


def input_bound_warnings(runs: pd.DataFrame, factors: Sequence[str]) -> list[str]:
    """A warning naming the cells whose runs were input-bound (``input_bound``: their training input alone
    took most of a steady epoch, timed after training where ``input_check`` asked for it)."""
    if "input_share" not in runs:  # a table of results from before the input was timed
        return []
    ok = runs[runs["status"] == "ok"]
    measured = ok[ok["input_share"].notna()]
    bound = measured[measured["input_bound"].fillna(False).astype(bool)]
    if bound.empty:
        return []
    cells = "; ".join(f"{cell_name(row, factors)} ({row['input_share']:.0%})"
                      for _, row in stats.by_cell(bound, factors, dropna=False)["input_share"].median()
                      .reset_index().head(5).iterrows())
    return [f"Warning: {len(bound)} of {len(measured)} runs whose input was timed were input-bound: their training "
            f"input alone took most of a steady epoch (median share per cell: {cells}). The model waits on its "
            "data there: a faster input pipeline (caching, prefetching, more workers) would speed them; a faster "
            "device would not."]


IDLE_CORES_SHARE = 0.5
"""A run that kept fewer than this share of its cores busy during fit is said to have left them idle."""


def idle_cores_warnings(runs: pd.DataFrame, factors: Sequence[str]) -> list[str]:
    """A warning naming the cells whose runs kept fewer than ``IDLE_CORES_SHARE`` of the cores they were given
    busy during fit (``threads``, else the CPUs the process could use; only where that is 2 or more): more
    threads or cores would not make such a training faster."""
    ok = runs[runs["status"] == "ok"]
    if ok.empty or "cores_used" not in ok:
        return []
    threads = pd.to_numeric(ok.get("threads", pd.Series(float("nan"), index=ok.index)), errors="coerce")
    given = threads.where(threads > 0, pd.to_numeric(ok.get("cpus_available"), errors="coerce"))
    used = pd.to_numeric(ok["cores_used"], errors="coerce")
    idle = ok[(given >= 2) & (used < IDLE_CORES_SHARE * given)]
    if idle.empty:
        return []
    names = sorted({cell_name(row, factors) for _, row in idle.iterrows()})
    return [f"Warning: {len(idle)} runs kept fewer than {IDLE_CORES_SHARE:.0%} of the cores they were given busy "
            f"during fit (median {used.loc[idle.index].median():.2f} of {given.loc[idle.index].median():.0f}), in "
            f"{len(names)} cells: {'; '.join(names[:5])}{f' and {len(names) - 5} more' if len(names) > 5 else ''}. "
            "The training cannot use them (a small model or batch, or an input that makes it wait): more cores "
            "will not make it faster."]


def resources_section(runs: pd.DataFrame, factors: Sequence[str], baselines: dict,
                      figure_dir: Path) -> Section | None:
    """What the runs held and used, and what each swept setting changes of it (``resource_verdicts``);
    ``None`` for results from before runs recorded their resources."""
    judged_family = resource_verdicts(runs, factors, baselines)
    names = runs.apply(lambda row: cell_name(row, factors), axis=1) if len(runs) else pd.Series(dtype=str)
    figure = figures.resources(runs, names, figure_dir / "resources.png")
    text = ("Peak memory, cores used and energy, read from counters each run keeps at its boundaries (never "
            "sampled inside the timed training). Each swept setting's levels against its baseline, paired by every "
            f"other factor and the seed. {judged_family.note}") if judged_family.sentences else ""
    items = judged_family.sentences + idle_cores_warnings(runs, factors)
    fact = resources_fact(runs)
    if not (fact or items or figure):
        return None
    return Section("Resources", f"{fact} {text}".strip(), items, figure=figure)


def setup_warnings(runs: pd.DataFrame, factors: Sequence[str]) -> list[str]:
    """Warnings about how the runs were made: in parallel, on mixed machines, one repeat per cell, reused
    from earlier sweeps."""
    ran = runs[runs["status"].isin(["ok", "failed", "interrupted"])]
    repeats = stats.by_cell(runs[runs["status"] == "ok"], factors, dropna=False).size()
    items = []
    parallel = pd.to_numeric(ran.get("parallel_jobs", pd.Series(dtype=float)), errors="coerce")
    if (parallel > 1).any():
        items.append(f"Warning: {int((parallel > 1).sum())} runs ran in parallel (up to {int(parallel.max())} at "
                     "once): their timings are not comparable to sequential ones.")
    overlapped = stability.overlapping_runs(ran)
    if overlapped.any() and not (parallel > 1).any():
        items.append(f"Warning: {int(overlapped.sum())} runs overlapped in time on the same host (seen from their "
                     "start and end times), although each recorded running alone: they shared the machine, "
                     "and their timings with it.")
    items += input_bound_warnings(runs, factors)
    machines = ran.reindex(columns=["hostname", "cpu_model", "gpu_names"]).astype(object).fillna("").drop_duplicates()
    if len(machines) > 1:
        items.append(f"Warning: runs come from {len(machines)} different machines; compare timings within one.")
    if len(repeats) and repeats.max() == 1:
        items.append(f"One repeat per cell: a cell's spread is unknown (repeat with {stats.example_seeds()}); "
                     "effects below compare pairs of cells that differ in one factor.")
    reused = runs.get("reused", pd.Series(False, index=runs.index)).fillna(False).astype(bool)
    if reused.sum():
        hosts = _values(runs[reused], "hostname", "?")
        items.append(f"{reused.sum()} results were reused from earlier sweeps (resume), run on host(s) {hosts} "
                     "with this sweep's hardware; rerun=true retrains them.")
    return items


def measurement_section(runs: pd.DataFrame, factors: Sequence[str]) -> Section:
    """Are the timings trustworthy? How the runs were made (``setup_warnings``), spread between repeats,
    drift of the machine's speed during the sweep, and whether the steps are long enough to time compute
    rather than overhead (``stability``). The per-cell spread table is folded away."""
    items = setup_warnings(runs, factors)
    spread = stability.repeat_spread(runs, cells=tuple(factors))
    shaky = spread[spread["cv"] > stability.CV_WARNING]
    if len(shaky):
        named = "; ".join(f"{cell_name(row, factors)} ({row['cv']:.1%})" for _, row in shaky.head(5).iterrows())
        more = f" and {len(shaky) - 5} more" if len(shaky) > 5 else ""
        items.append(f"Warning: the timings may be unstable: steady epoch time varies by more than "
                     f"{stability.CV_WARNING:.0%} between repeats (coefficient of variation) in {len(shaky)} of "
                     f"{len(spread)} cells: {named}{more}. Use more repeats ({stats.example_seeds()}) or a "
                     "quieter machine.")
    elif len(spread):
        items.append(f"Steady epoch time varies by at most {spread['cv'].max():.0%} between repeats of a cell "
                     f"(coefficient of variation; warning above {stability.CV_WARNING:.0%}).")
    else:
        items.append(f"Spread between repeats: unknown (one repeat per cell; repeat with {stats.example_seeds()}).")
    drift = stability.speed_drift(runs, cells=tuple(factors))
    if drift is None:
        items.append("Drift check: not possible (it needs at least 3 runs with start times in cells with repeats; "
                     f"repeat with {stats.example_seeds()}).")
    else:
        measured = (f"steady epoch times of identical cells changed by {drift.change:+.0%} (95% CI "
                    f"{drift.low:+.0%} to {drift.high:+.0%}) over the sweep's {drift.span_minutes:.0f} minutes "
                    f"({drift.runs} runs)")
        if drift.distinguishable and abs(drift.change) > DRIFT_WARNING:
            items.append(f"Warning: the machine's speed drifted during the sweep: {measured}. Shuffled order "
                         "(order=shuffled, the default) spreads drift over every level, but it widens every "
                         "interval: use a quieter machine, or more repeats.")
        else:
            items.append(f"Drift check: {measured}.")
    step = stability.median_step_seconds(runs)
    if step is not None and step < stability.TINY_STEP_SECONDS:
        items.append(f"Warning: this workload is too small to say anything about devices: the median training step "
                     f"took {step * 1000:.1f} ms, so framework overhead dominates what is timed. Use a bigger model, "
                     "batch or dataset (e.g. model=mobilenet_v2) to compare devices or compilation.")
    table = spread.assign(cell=[cell_name(row, factors) for _, row in spread.iterrows()])[
        ["cell", "repeats", "mean", "cv"]]
    return Section("Measurement quality", "", items, table if len(table) else None,
                   folded="Steady epoch time (seconds) per cell over its repeats: mean and coefficient of "
                   "variation, largest first")


def beyond_noise(effect: stats.Effect) -> str:
    """The effects table's verdict column: ``yes``, ``no`` or ``too few to tell``."""
    return "too few to tell" if effect.too_few else ("yes" if effect.distinguishable else "no")


def effects_section(runs: pd.DataFrame, effects: pd.DataFrame, factors: Sequence[str],
                    baselines: dict | None = None) -> Section:
    """Each factor's effects (``stats.effects_table``, judged as one family) with their intervals, and the
    largest two-factor interactions."""
    found = stats.effects_from_table(effects)
    shown = pd.DataFrame({
        "factor": effects["factor"],
        "comparison": effects["level"].astype(str) + " vs " + effects["baseline"].astype(str),
        "metric": effects["metric"],
        "effect (95% CI)": [format_effect(effect) for effect in found],
        "adjusted p": effects["p_adjusted"],
        "beyond noise": [beyond_noise(effect) for effect in found],
    })
    tested = int(effects["p_adjusted"].notna().sum())
    text = ("Ratios are level / baseline of paired runs (same other factors and seed; below 1 = faster; a run that "
            "missed the target is infinitely slow to it); accuracy effects are differences. Times: Hodges-Lehmann "
            "ratio with its exact 95 % interval, signed-rank test on log ratios; accuracies: median difference with "
            "its exact interval, sign test over the pairs that changed. \"Beyond noise\" judges the table's "
            f"{tested} testable comparisons as one family with the Benjamini-Hochberg correction (at most 5 % of "
            "the effects called beyond noise are expected to be false discoveries); the verdicts above judge their "
            "fewer comparisons with Holm's stricter correction, so a comparison can be beyond noise here and not "
            f"there. A comparison with fewer than {stats.fewest_pairs()} pairs is too few to tell.")
    found_interactions = stats.interactions(runs, factors=factors, baselines=baselines, top=1000)
    beyond = found_interactions[found_interactions["distinguishable"]].head(3)
    items = []
    for row in beyond.itertuples():
        ratios = ", ".join(f"×{ratio:.2f} with {row.across}={level}" for level, ratio in row.ratios.items())
        items.append(f"{row.factor} {row.level} vs {row.baseline}, train seconds: {ratios} "
                     f"(spread ×{row.spread:.2f}, Holm-adjusted p = {row.p_adjusted:.2g}).")
    if items:
        text += (" Two-factor interactions beyond noise (one factor's effect on train seconds changes with "
                 "another; tested against pairs dealt to the other factor's levels at random, Holm's correction):")
    elif len(found_interactions):
        largest = found_interactions.iloc[0]
        judged = (f"Holm-adjusted p = {largest['p_adjusted']:.2g}" if math.isfinite(largest["p_adjusted"])
                  else "too few pairs per level to test")
        text += (f" No two-factor interaction is beyond noise: the largest spread, ×{largest['spread']:.2f} "
                 f"({largest['factor']}'s effect across {largest['across']}), is within what chance gives among "
                 f"{len(found_interactions)} ({judged}).")
    return Section("Factor effects", text, items, shown)


def cost_section(runs: pd.DataFrame, factors: Sequence[str]) -> Section:
    """DAWNBench-style cost to target per cell, from each device's price per hour."""
    priced = runs if "cost_to_target_usd" in runs else stats.with_costs(runs)
    ok = priced[priced["status"] == "ok"]
    ok = ok.assign(time_to_target_seconds=stats.metric_values(ok, "time_to_target_seconds"))  # a miss: never
    table = (stats.by_cell(ok, factors, dropna=False)
             .agg(price_per_hour=("price_per_hour", "first"), median_time_to_target_seconds=(
                 "time_to_target_seconds", "median"), median_cost_to_target_usd=("cost_to_target_usd", "median"))
             .reset_index(drop=not factors))
    unpriced = sorted(set(ok.loc[ok["price_per_hour"].isna(), "device"]))
    text = ("Cost to reach the target accuracy = time to target × the device's price per hour "
            "(device.price_per_hour; the GPU default is $0.35/h, a cloud GPU at $300 for 850 hours).")
    if unpriced:
        text += f" No price set for: {', '.join(unpriced)} (e.g. device.price_per_hour=0.05)."
    text += " Another price re-costs a finished sweep without training: python -m harness.report SWEEP --price gpu=2.0."
    if table["price_per_hour"].isna().all():
        return Section("Cost to target", text)  # no device has a price: a table of empty costs says nothing
    return Section("Cost to target", text, table=table.dropna(axis="columns", how="all") if len(table) else None)


def rerun_command(row: pd.Series, factors: Sequence[str]) -> str:
    """The command that re-runs one cell as it ran (recorded by the sweep: ``harness.cells.rerun_command``);
    for results written before it was recorded, the cell's factors and seed (``harness.cells.overrides``)."""
    recorded = row.get("rerun_command")
    if isinstance(recorded, str) and recorded:
        return recorded
    return "python -m harness " + " ".join(overrides({f: row[f] for f in factors}, row["seed"]))


SENSITIVITY_METRICS = (("time_to_target_seconds", "time to target (s)"),
                       ("best_val_accuracy", "best validation accuracy"))


def profile_sections(runs: pd.DataFrame, factors: Sequence[str], figure_dir: Path) -> list[Section]:
    """Where the sweep spans workloads (``profiles.spans_workloads``) and compares optimizers: their
    performance profiles across its problems, with the verdict and the ratios; nothing otherwise."""
    if not spans_workloads(factors) or "optimizer" not in factors:
        return []
    sentence, ratios = profile_verdict(runs, factors)
    if not sentence:
        return []
    figure = figures.performance_profile(ratios, figure_dir / "profiles.png", MAX_TAU)
    return [Section("Optimizers across workloads", "Each optimizer's time to target on each problem over the "
                    "fastest's (inf: missed the target), and the share of problems within ×τ of the fastest.",
                    [sentence], ratios.reset_index(), figure)]


def _in_family(effect: stats.Effect) -> str:
    """``, beyond noise`` or ``, not told from noise (Holm-adjusted p = 0.31)``; nothing where too few to tell."""
    if effect.too_few or math.isnan(effect.p_value):
        return ""
    if effect.distinguishable:
        return ", beyond noise"
    return f", not told from noise (Holm-adjusted p = {effect.p_adjusted:.2g})"


def workload_sections(runs: pd.DataFrame, factors: Sequence[str], baselines: dict) -> list[Section]:
    """Where the sweep spans workloads: each other factor's effect on time to target within each workload,
    and whether it agrees, differs or reverses between them (``workloads.across_workloads``)."""
    found = workloads.across_workloads(runs, factors, baselines)
    items = [f"{c.factor}={c.level} vs {c.baseline}, time to target: "
             + "; ".join(f"{name} {format_effect(effect)}{_in_family(effect)}" for name, effect in c.effects.items())
             + f". So {c.statement()}." for c in found if any(e.pairs for e in c.effects.values())]
    if not items:
        return []
    tested = sum(not e.too_few for c in found for e in c.effects.values())
    needs = (f"; with {tested} comparisons, one needs at least {stats.fewest_pairs(stats.ALPHA / tested)} pairs to "
             "be told from noise" if tested else "")
    return [Section("Effects per workload", "Each setting's levels against its baseline within each workload (every "
                    f"combination of {', '.join(workloads.workload_factors(factors))}), paired by every other factor "
                    f"and the seed; the {tested} comparisons with enough pairs are judged as one family (Holm){needs}; "
                    "whether a ratio's size differs between workloads, by a permutation test of its spread. A pooled "
                    "effect elsewhere in this report averages over workloads; this section says where it holds.",
                    items)]


def tuning_sections(runs: pd.DataFrame, factors: Sequence[str], figure_dir: Path) -> list[Section]:
    """Where the sweep compares optimizers over a learning-rate grid: the fair verdict (``tuning``) and
    the learning-rate sensitivity curves; nothing otherwise."""
    sentences, table = tuning.tuning_verdict(runs, factors)
    if table is None:
        return []
    factor = tuning.tuning_factor(factors, runs)
    levels = sorted_levels(runs.loc[runs["status"] == "ok", factor].dropna().unique())
    figure = figures.metrics_by_level(runs, factor, levels, figure_dir / "sensitivity.png", SENSITIVITY_METRICS)
    text = ("Each optimizer at its best learning rate from an equal budget (the same grid around its own "
            "default, the same epochs and seeds): the lower half of the seeds chooses the rate by time to "
            "target (never reached = infinitely slow; ties: best validation accuracy, then the rate closest "
            "to the default), the upper half measures it; the test split is never used to choose. "
            "Tuning cost: the training seconds of each optimizer's whole grid.")
    return [Section("Optimizers at their best learning rate", text, sentences, table, figure)]


def level_sections(runs: pd.DataFrame, factors: Sequence[str], baselines: dict, figure_dir: Path) -> list[Section]:
    """Per factor with two levels or more, medians at each level; for each factor compared against a
    baseline level (not ``stats.fixed_comparison``), also its baseline and a figure of the metrics against
    its levels."""
    sections = []
    for number, factor in enumerate(factors):
        if runs[factor].dropna().nunique() < 2:
            continue  # one level: a fixed condition of the sweep, listed in its setup
        table = stats.factor_summary(runs, factor)
        text = "Medians over the ok runs at each level (not paired); times in seconds."
        figure = None
        if not stats.fixed_comparison(factor):
            levels = sorted_levels(runs[factor].dropna().unique())
            base = baselines.get(factor)
            base = base if base in levels else (levels[0] if levels else None)
            text += (f" Effects above compare each level with {factor}={base} (the default where the sweep has "
                     "it, else its first level), on runs equal in every other factor and the seed.")
            figure = figures.metrics_by_level(runs, factor, levels, figure_dir / f"by_level_{number}.png")
        sections.append(Section(f"By {factor}", text, table=table, figure=figure))
    return sections


def failure_sections(runs: pd.DataFrame, factors: Sequence[str]) -> list[Section]:
    """The runs that are not ``ok``, failures first: reason, output file (failed runs) and re-run command."""
    bad = runs[runs["status"] != "ok"].assign(_order=lambda d: d["status"].map(stats.STATUS_ORDER))
    if not len(bad):
        return []
    bad = bad.sort_values(["_order", *factors, "seed"])
    table = bad[[*factors, "seed", "status", "reason"]].assign(
        rerun=[rerun_command(row, factors) for _, row in bad.iterrows()])
    logs = [log if row["status"] == "failed" and isinstance(log := row.get("log_file"), str) else ""
            for _, row in bad.iterrows()]
    if any(logs):  # skipped runs ran nothing: no output to point at
        table = table.assign(output=logs)
    return [Section("Failed and skipped runs", "Failures first, with their reasons, the file holding each failed "
                    "run's output and traceback, and the command that re-runs it alone as it ran; re-running the "
                    "sweep command retries every failed cell.", table=table)]


def figure_sections(runs: pd.DataFrame, history: pd.DataFrame, cells: pd.DataFrame, figure_dir: Path) -> list[Section]:
    """The figures of every sweep: learning curves, accuracy against training time, time to target per cell."""
    plots = [
        ("Learning curves", figures.learning_curves(history, figure_dir / "learning_curves.png")),
        ("Accuracy against training time", figures.pareto(runs, stats.pareto_front(runs), figure_dir / "pareto.png")),
        ("Time to target", figures.time_to_target_heatmap(cells, figure_dir / "time_to_target.png")),
    ]
    return [Section(title, figure=path) for title, path in plots if path is not None]


def build_sections(runs: pd.DataFrame, history: pd.DataFrame, sweep_label: str, problems: list[str], *,
                   comet: str | None, figure_dir: Path, factors: Sequence[str],
                   baselines: dict | None = None, cells: pd.DataFrame | None = None,
                   effects: pd.DataFrame | None = None, preface: str = "") -> list[Section]:
    """The report's content, independent of its format; figures are written into ``figure_dir``.
    ``factors``: the runs table's factor columns (``results.factor_columns``); ``baselines``: the
    baseline level of each; ``cells``, ``effects``: ``stats.cell_table`` and
    ``stats.effects_table`` of ``runs`` where the caller has them already (computed here otherwise);
    ``preface``: what the reader must know before the verdicts (a target set after the fact)."""
    baselines = baselines or {}
    cells = stats.cell_table(runs, factors=factors) if cells is None else cells
    effects = stats.effects_table(runs, factors=factors, baselines=baselines) if effects is None else effects
    article = verdicts(runs, factors)
    effects_figure = figures.effect_bars(effects, figure_dir / "effects.png")
    note = f"{preface} {article.note}" if preface else article.note
    if (grid := tuning.tuning_factor(factors, runs)) is not None:  # two answers to "which is fastest": say why
        note += (f" The optimizer verdict pools every value of {grid} (each optimizer at every rate of the grid, "
                 "paired by it): it answers \"which is fastest across these rates\"; \"Optimizers at their best "
                 "learning rate\" below answers \"which is fastest when each gets its own best rate\", and the two "
                 "can name different optimizers.")
    ranking = optimizer_ranking(runs) if "optimizer" in factors else None
    if article.sentences:
        sections = [Section("Verdicts on the article's claims", note, article.sentences, ranking, effects_figure)]
    else:  # none of the article's factors swept: its effects are in "Factor effects"
        sections = [Section("Effects", preface, figure=effects_figure)] if preface or effects_figure else []
    speed = speed_verdicts(runs, factors, baselines)
    if speed.sentences:
        sections.append(Section("Verdicts on the speed settings", "Each level against the baseline, paired by "
                                "every other factor and the seed. The first epoch includes compilation (XLA, "
                                "tracing), so its extra cost is shown apart, with the number of epochs after "
                                f"which the setting has saved more than it cost. {speed.note}", speed.sentences))
    sections += tuning_sections(runs, factors, figure_dir)
    sections += profile_sections(runs, factors, figure_dir)
    sections += workload_sections(runs, factors, baselines)
    sections.append(measurement_section(runs, factors))
    if problems:
        sections.append(Section("Skipped result files", "These were left out:", problems))
    sections.append(setup_section(runs, sweep_label, factors))
    sections.append(effects_section(runs, effects, factors, baselines))
    sections += level_sections(runs, factors, baselines, figure_dir)
    sections += figure_sections(runs, history, cells, figure_dir)
    sections.append(cost_section(runs, factors))
    sections += [section for section in [resources_section(runs, factors, baselines, figure_dir)] if section]
    sections.append(Section("Per cell", "Median over repeats with its exact 95 % interval (low, high; order "
                            f"statistics); empty: fewer than {stats.fewest_pairs()} repeats, too few to tell. Times "
                            "in seconds.", table=cells))
    sections += failure_sections(runs, factors)
    if comet:
        sections.append(Section("Comet", comet))
    order = runs["status"].map(stats.STATUS_ORDER)
    per_run = runs.assign(_order=order).sort_values(["_order", *factors, "seed"])[[*factors, *RUN_TABLE_COLUMNS]]
    sections.append(Section("Every run", "", table=per_run))
    sections.append(Section("Re-run", f"Rebuild this report: `python -m harness.report {sweep_label}`. Re-running "
                            "the sweep command reuses finished cells; `rerun=true` retrains them."))
    return sections


def render_markdown(title: str, sections: list[Section], out_dir: Path) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        if section.text:
            parts.append(section.text)
        if section.items:
            parts.append("\n".join(f"- {item}" for item in section.items))
        if section.figure is not None:
            parts.append(f"![{section.title}]({section.figure.relative_to(out_dir).as_posix()})")
        if section.table is not None and section.folded:
            parts.append(f"<details><summary>{html.escape(section.folded)}</summary>\n\n"
                         f"{markdown_table(section.table)}\n\n</details>")
        elif section.table is not None:
            parts.append(markdown_table(section.table))
    return "\n\n".join(parts) + "\n"


SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, column) {
  th.style.cursor = 'pointer'; th.title = 'sort';
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], rows = Array.from(body.rows);
    var up = th.dataset.order !== 'up'; th.dataset.order = up ? 'up' : 'down';
    rows.sort(function (a, b) {
      var x = a.cells[column].innerText, y = b.cells[column].innerText, nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return up ? c : -c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
window.addEventListener('load', function () {
  var images = Array.from(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-loaded', loaded + '/' + images.length);
  var page = document.documentElement;  // wider than the window: the page would scroll sideways
  document.body.setAttribute('data-page-width', page.scrollWidth + '/' + page.clientWidth);
});
"""
STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}td,th{padding:3px 8px;"
         "border-bottom:1px solid #ddd;text-align:left}th{background:#f4f4f4}img{max-width:100%}"
         "li{margin:0.3em 0}code{background:#f4f4f4;padding:0 3px}p,li,td{overflow-wrap:anywhere}"
         ".wide{overflow-x:auto;max-width:100%}")  # a wide table scrolls in its box, never the page


def _inline(text: str) -> str:
    """Escaped HTML for report text, with Markdown's `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def render_html(title: str, sections: list[Section]) -> str:
    """A self-contained page: figures inlined as data URIs, tables sortable by a click on a header."""
    body = []
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            body.append(f"<p>{_inline(section.text)}</p>")
        if section.items:
            body.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in section.items) + "</ul>")
        if section.figure is not None:
            data = base64.b64encode(section.figure.read_bytes()).decode()
            body.append(f"<img alt='{html.escape(section.title)}' src='data:image/png;base64,{data}'>")
        if section.table is not None:
            table = section.table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.3g}",
                                          classes="sortable", border=0)
            table = f"<div class='wide'>{table}</div>"
            if section.folded:
                table = f"<details><summary>{html.escape(section.folded)}</summary>{table}</details>"
            body.append(table)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(body)}"
            f"<script>{SORT_SCRIPT}</script></body></html>\n")


def sweep_label(sweep_dir: Path) -> str:
    """How the report names the sweep folder: relative to the working directory where possible, so that
    the report reads the same whichever way the folder was given."""
    resolved = Path(sweep_dir).resolve()
    try:
        return os.path.relpath(resolved)
    except ValueError:
        return str(resolved)


def write_report(sweep_dir: Path, out_dir: Path | None = None, reports_root: Path = Path("reports"),
                 prices: dict[str, float] | None = None, target: dict[str, Any] | None = None) -> Path:
    """Write the report of the sweep in ``sweep_dir``; returns the path of ``index.html``.

    ``out_dir`` defaults to ``reports_root/<sweep name>``; ``prices`` (device -> USD per hour) replace the
    prices the runs were made with; ``target`` (``metric``, ``value``, ``mode``) judges the runs for
    another target, from their histories (``targets.retarget``). Raises ``FileNotFoundError`` if the folder
    holds no result files, ``targets.RetargetError`` if the runs did not record the target's metric.
    """
    sweep_dir = Path(sweep_dir)
    results, problems = collect_results(sweep_dir)
    if not results:
        raise FileNotFoundError(f"no result.json files under {sweep_dir}")
    preface = ""
    if target:
        made = described_targets(results)
        if target.get("value") == "auto":
            results, chosen = retarget_auto(results, target.get("metric"), target.get("mode"))
            said = "; ".join(f"{workload}: {metric} {'<=' if how == 'min' else '>='} {value:.4g}"
                             for workload, (metric, value, how) in chosen.items())
            judged_for = (f"each workload's auto target, the best value that at least {AUTO_REACHED:.0%} of "
                          f"{AUTO_REFERENCE}'s runs (of all runs, where it has none) reached ({said})")
        else:
            results = retarget(results, **target)
            judged_for = f"the target {described_targets(results)}"
        preface = (f"Judged after the fact for {judged_for} (set with "
                   f"{' '.join(f'target.{k}={v}' for k, v in target.items())}), from each run's per-epoch history: "
                   f"its runs were made for {made}, and no run was trained again.")
    results, dropped = one_per_cell(results)
    if dropped:
        problems.append(f"{dropped} more results of cells already counted (e.g. a sweep and its resumed "
                        "re-run): each cell is counted once, an ok result first")
    names = sorted({str(r["sweep_name"]) for r in results if r.get("sweep_name")})
    name = names[-1] if names else sweep_dir.name
    out_dir = Path(out_dir) if out_dir is not None else Path(reports_root) / name
    return render_report(results, problems, sweep_label(sweep_dir), name, out_dir, prices=prices, preface=preface)


def render_report(results: list[Result], problems: list[str], label: str, name: str, out_dir: Path, *,
                  prices: dict[str, float] | None = None, preface: str = "") -> Path:
    """Write every report file for ``results`` (result records) into ``out_dir``; returns ``index.html``.
    ``prices`` (device -> USD per hour) replace the prices the runs were made with."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = results_frame(results)
    for device, price in (prices or {}).items():
        runs.loc[runs["device"] == device, "price_per_hour"] = price
    runs = stats.with_costs(runs)
    factors, baselines = factor_columns(results), factor_baselines(results)
    runs.to_csv(out_dir / "runs.csv", index=False)
    cells = stats.cell_table(runs, factors=factors)
    effects = stats.effects_table(runs, factors=factors, baselines=baselines)
    cells.to_csv(out_dir / "cells.csv", index=False)
    effects.to_csv(out_dir / "effects.csv", index=False)
    sections = build_sections(runs, history_frame(results), label, problems, comet=comet_summary(results),
                              figure_dir=out_dir / "figures", factors=factors, baselines=baselines, cells=cells,
                              effects=effects, preface=preface)
    return write_pages(f"harness report: {name}", sections, out_dir)


def write_pages(title: str, sections: list[Section], out_dir: Path, markdown_name: str = "report.md") -> Path:
    """The ``sections`` as ``markdown_name`` and a self-contained ``index.html`` in ``out_dir``; returns the latter."""
    (out_dir / markdown_name).write_text(render_markdown(title, sections, out_dir))
    index = out_dir / "index.html"
    index.write_text(render_html(title, sections))
    return index


def parse_price(text: str) -> tuple[str, float]:
    """``gpu=2.0`` -> ``("gpu", 2.0)``; ``ValueError`` with one line naming what is valid."""
    device, _, price = text.partition("=")
    try:
        value = float(price)
    except ValueError:
        value = -1.0
    if device not in ("cpu", "gpu") or not value >= 0:
        raise ValueError(f"--price {text} is invalid; valid: DEVICE=USD_PER_HOUR with DEVICE cpu or gpu and a "
                         "price >= 0, e.g. --price gpu=2.0")
    return device, value


TARGET_KEYS = {"value": float, "metric": str, "mode": str}
"""What ``python -m harness.report SWEEP target.KEY=VALUE`` may set (``TargetConfig``)."""


def parse_target(text: str) -> tuple[str, Any]:
    """``target.value=0.95`` -> ``("value", 0.95)``; ``ValueError`` with one line naming what is valid."""
    key, _, value = text.partition("=")
    name = key.removeprefix("target.")
    valid = "target.value=NUMBER|auto, target.metric=NAME (e.g. val_loss), target.mode=auto|max|min"
    if not key.startswith("target.") or name not in TARGET_KEYS or not value:
        raise ValueError(f"{text} is not a target setting; valid: {valid}")
    if name == "mode" and value not in TARGET_MODES:
        raise ValueError(f"{text} is invalid; valid: target.mode={'|'.join(TARGET_MODES)}")
    if name == "value" and value == "auto":
        return name, value  # each workload's own, from its runs (targets.auto_targets)
    try:
        return name, TARGET_KEYS[name](value)
    except ValueError:
        raise ValueError(f"{text} is invalid; valid: {valid}") from None


def options_parser() -> argparse.ArgumentParser:
    """The command line's options (also read by the docs' generated reference)."""
    options = argparse.ArgumentParser(prog="python -m harness.report", description=" ".join(
        __doc__.split("\n\n")[0].replace("``", "").split()))
    options.add_argument("sweep_dir", type=Path, help="a sweep folder (e.g. multirun/<sweep>) with result.json files")
    options.add_argument("--out", type=Path, default=None, help="output folder (default: reports/<sweep name>)")
    options.add_argument("target", nargs="*", metavar="target.KEY=VALUE",
                         help="judge the sweep for another target, without training: target.value=0.95 "
                              "(auto: each workload's, the best value at least 80%% of adam's runs reached), "
                              "target.metric=val_loss, target.mode=min")
    options.add_argument("--price", action="append", default=[], metavar="DEVICE=USD_PER_HOUR",
                         help="re-cost the sweep at this price per hour for a device (cpu or gpu), without "
                              "training; repeat for both, e.g. --price gpu=2.0 --price cpu=0.05")
    return options


def main(argv: list[str] | None = None) -> int:
    parser = options_parser()
    args = parser.parse_intermixed_args(argv)  # target settings before or after the options
    if not args.sweep_dir.is_dir():
        print(f"harness.report: error: {args.sweep_dir} is not a folder", file=sys.stderr)
        return 2
    try:
        prices = dict(parse_price(text) for text in args.price)
        target = dict(parse_target(text) for text in args.target)
    except ValueError as err:
        print(f"harness.report: error: {err}", file=sys.stderr)
        return 2
    try:
        index = write_report(args.sweep_dir, args.out, prices=prices, target=target)
    except (FileNotFoundError, RetargetError) as err:
        print(f"harness.report: error: {err}", file=sys.stderr)
        return 2
    print(f"report: {index.resolve()}")
    return 0
