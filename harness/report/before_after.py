"""Did it get faster? Two sweeps compared cell by cell, with verdicts, for a person and for a CI gate.

``python -m harness.compare BEFORE AFTER [--out DIR] [--fail-if-slower 5%]``: each side is a sweep folder
(its ``result.json`` files) or a report's ``runs.csv``. Runs are matched by cell and seed: equal in every
setting that varies within a side; the settings that are constant on each side but differ between the
sides (a config value, Keras' or TensorFlow's version, the machine) are what changed, named in the output.
Per cell and metric: the ratio AFTER/BEFORE (steady epoch time, train seconds, time to target) or the
difference (test accuracy) over the seeds both sides ran, with the report's exact intervals and tests
(``harness.report.stats``; a time to target never reached is infinitely slow): "too few to tell" below 6
seeds, the cells judged as one family
(Benjamini-Hochberg), the overall effects (every pair of every cell) as another (Holm). Like asv's
``compare`` and pyperf's ``compare_to``, changes beyond noise come first, largest first; ``--fail-if-slower``
exits 1 when the overall or a cell's steady epoch time is slower by more than the threshold, beyond noise
(slower beyond noise, with its whole 95 % interval above 1 + the threshold). A change not beyond noise
comes with the smallest change its pairs could have called at their spread; a gate that could not have
seen its threshold says so (``--require-power``: and fails).

Reads result files only: it never imports the training code.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from harness.cells import NON_SEMANTIC_KEYS
from harness.report import stats
from harness.report.tables import ENVIRONMENT_COLUMNS, cell_name, factor_columns, results_frame, table_factors
from harness.result_files import collect_results, one_per_cell

METRICS = (("median_epoch_seconds", "ratio", "steady epoch time"), ("train_seconds", "ratio", "train seconds"),
           ("time_to_target_seconds", "ratio", "time to target"), ("test_accuracy", "difference", "test accuracy"))
"""What is compared: the column, ratio or difference, and its name in words."""
GATED = "median_epoch_seconds"
"""The metric ``--fail-if-slower`` judges by default: steady epoch time, the speed of training itself."""
GATE_METRICS = {"steady": "median_epoch_seconds", "train": "train_seconds", "target": "time_to_target_seconds"}
"""``--metric``'s choices: steady epoch time (the code's speed: compilation and convergence left out), train
seconds (what a whole training costs, compilation included), time to target (speed to a useful model:
convergence included, and so its noise)."""
WORDS = {metric: words for metric, _, words in METRICS}
MUST_MATCH = ("target_accuracy", "target.metric", "target.value", "target.mode", "dataset.name", "dataset.path",
              "dataset._target_")
"""Settings two comparable sweeps share: the same target, on the same data."""
MACHINE = ("hostname", "cpu_model", "gpu_names")


class CompareError(ValueError):
    """Two sweeps that cannot be compared, said in one line."""


@dataclass
class Side:
    """One side of the comparison: its label, its ok runs (the runs table, ``results_frame``) and each
    run's flattened semantic config (``config``: dotted keys)."""

    label: str
    runs: pd.DataFrame
    config: pd.DataFrame
    factors: list[str]


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if not prefix and key in NON_SEMANTIC_KEYS:
            continue
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def load_side(path: Path) -> Side:
    """The ok runs of a sweep folder (each run's whole config) or a report's ``runs.csv`` (its factors, seed,
    data and target: what the table records); ``CompareError`` where there are none."""
    path = Path(path)
    if path.is_file() and path.suffix == ".csv":
        runs = pd.read_csv(path)
        runs = runs[runs["status"] == "ok"].reset_index(drop=True)
        columns = list(runs.columns)
        factors = table_factors(columns)
        kept = [*factors, "seed", *(c for c in ("dataset", "model", "target_accuracy", "target_metric",
                                                "target_value") if c in columns)]
        config = runs[kept].rename(columns={"dataset": "dataset.name", "model": "model.name",
                                            "target_metric": "target.metric", "target_value": "target.value"})
        return _side(path, runs, config, factors)
    elif path.is_dir():
        results, _ = collect_results(path)
        results, _ = one_per_cell([r for r in results if r.get("status") == "ok"])
        runs = results_frame(results) if results else pd.DataFrame()
        factors = factor_columns(results)  # as the runs table has them, beside the whole config
        config = pd.DataFrame([{**_flat(r.get("config") or {}), **{f: (r.get("factors") or {}).get(f) for f in factors},
                                "seed": r.get("seed")} for r in results])
        return _side(path, runs, config, factors)
    raise CompareError(f"{path} is neither a sweep folder nor a report's runs.csv")


def _side(path: Path, runs: pd.DataFrame, config: pd.DataFrame, factors: list[str]) -> Side:
    if runs.empty:
        raise CompareError(f"{path}: no ok results to compare (a sweep folder with result.json files, or runs.csv)")
    return Side(str(path), runs.reset_index(drop=True), config.reset_index(drop=True), factors)


def _values(column: pd.Series) -> list:
    return sorted({str(v) for v in column if not (isinstance(v, float) and math.isnan(v))})


@dataclass
class Matching:
    """How two sides relate: ``identity`` (the settings that tell cells and seeds apart), ``named`` (those
    a cell is called by: the sweeps' factors among them), ``changed`` (``setting -> (before, after)``:
    constant on each side, different between them) and ``notes`` (what could not be compared, one line each)."""

    identity: list[str]
    named: list[str]
    changed: dict[str, tuple[str, str]]
    notes: list[str]


def match(before: Side, after: Side) -> Matching:
    """What tells cells apart, what changed between the sides, and what to say about the rest."""
    keys = [key for key in before.config.columns if key in after.config.columns]  # what both sides record
    identity, changed, notes = [], {}, []
    for key in keys:
        a, b = _values(before.config[key]), _values(after.config[key])
        if len(a) > 1 or len(b) > 1 or key == "seed":  # pairs are always of the same seed
            identity.append(key)
        elif a != b:
            changed[key] = (a[0] if a else "", b[0] if b else "")
    for key in MUST_MATCH:
        if key in changed:
            raise CompareError(f"the sweeps measure different things: {key} is {changed[key][0]} before and "
                               f"{changed[key][1]} after; compare sweeps with the same target on the same data")
    for column in [c for c in ENVIRONMENT_COLUMNS if c in before.runs and c in after.runs]:
        a, b = _values(before.runs[column]), _values(after.runs[column])
        if len(a) == 1 and len(b) == 1 and a != b and column not in ("hostname",):
            changed[column] = (a[0], b[0])
    for side in (before, after):
        machines = side.runs.reindex(columns=list(MACHINE)).astype(object).fillna("").drop_duplicates()
        if len(machines) > 1:
            notes.append(f"{side.label}: its runs come from {len(machines)} machines; its timings mix them")
        parallel = pd.to_numeric(side.runs.get("parallel_jobs", pd.Series(dtype=float)), errors="coerce")
        if (parallel > 1).any():
            notes.append(f"{side.label}: {int((parallel > 1).sum())} runs ran in parallel (up to {int(parallel.max())}"
                         " at once): their timings are not those of runs alone")
    factors = set(before.factors) | set(after.factors)
    named = [key for key in identity if key in factors and key != "seed"] or [k for k in identity if k != "seed"]
    return Matching(identity, named, changed, notes)


def _metric(runs: pd.DataFrame, metric: str) -> np.ndarray:
    """A metric of ok runs; a time to target never reached is infinitely slow (``stats.TIME_TO_REACH``)."""
    values = pd.to_numeric(runs.get(metric), errors="coerce").to_numpy(dtype=float)
    return np.where(np.isnan(values), np.inf, values) if metric in stats.TIME_TO_REACH else values


def paired_runs(before: Side, after: Side, matching: Matching) -> tuple[pd.DataFrame, list[str]]:
    """One row per (cell, seed) both sides ran: ``cell`` (in words) and, per metric, ``<metric>_before`` and
    ``<metric>_after``; and a line for the cells only one side has."""
    frames = []
    for side, name in ((before, "before"), (after, "after")):
        identity = side.config.reindex(columns=matching.identity).astype(str)
        table = identity.assign(**{f"{m}_{name}": _metric(side.runs, m) for m, _, _ in METRICS})
        frames.append(table)
    pairs = frames[0].merge(frames[1], on=matching.identity, how="outer", indicator=True)
    lines = []
    for where, label in (("left_only", before.label), ("right_only", after.label)):
        alone = pairs[pairs["_merge"] == where]
        if len(alone):
            cells = sorted({cell_name(row, matching.named) for _, row in alone.iterrows()})
            lines.append(f"{len(alone)} runs only in {label} (not compared): {'; '.join(cells[:4])}"
                         f"{' and more' if len(cells) > 4 else ''}")
    both = pairs[pairs["_merge"] == "both"].drop(columns="_merge").reset_index(drop=True)
    if both.empty:
        raise CompareError(f"no cell and seed is in both sweeps ({before.label}, {after.label}): nothing to compare; "
                           "they must share cells (the same grid, or overlapping seeds)")
    both["cell"] = [cell_name(row, matching.named) for _, row in both.iterrows()]
    return both, lines


def _effect(pairs: pd.DataFrame, metric: str, kind: str, cell: str) -> stats.Effect:
    """The effect AFTER against BEFORE of ``cell``'s ``pairs`` on ``metric`` (its per-pair changes in
    ``changes``)."""
    before, after = pairs[f"{metric}_before"].to_numpy(float), pairs[f"{metric}_after"].to_numpy(float)
    both = ~(np.isnan(before) | np.isnan(after))
    misses = (int(np.isinf(after[both]).sum()), int(np.isinf(before[both]).sum()))
    return stats.effect_of(stats.change_values(after, before, kind), kind, factor=cell, level="after",
                           baseline="before", metric=metric, misses=misses)


def comparison_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per cell and metric, and ``overall`` (every pair of every cell), the effect AFTER against BEFORE:
    ``scope`` (``cell``/``overall``), ``cell``, ``metric``, ``kind``, ``estimate``, ``low``, ``high``,
    ``pairs``, ``p_value``, ``p_adjusted``, ``correction``, ``distinguishable``, for ratios without misses
    of the target the smallest changes the pairs could have called in their family (``detectable_faster``,
    ``detectable_slower``: ``stats.detectable_ratios``; a miss has no size to shift), and for the overall
    ratios the geometric mean of the per-cell median ratios (``geomean``). Cells are judged as one family
    (Benjamini-Hochberg), the overall effects as another (Holm). Beyond noise first, largest change first."""
    cells = [_effect(group, metric, kind, cell) for cell, group in pairs.groupby("cell", sort=True)
             for metric, kind, _ in METRICS]
    overall = [_effect(pairs, metric, kind, "overall") for metric, kind, _ in METRICS]
    rows = []
    for scope, effects, correction in (("overall", overall, "holm"), ("cell", cells, "bh")):
        for effect in stats.judged(effects, correction):
            measured = {k: v for k, v in effect.row().items() if k not in ("factor", "level", "baseline")}
            row = {"scope": scope, "cell": effect.factor, **measured, "distinguishable": effect.distinguishable,
                   "geomean": float("nan")}
            if scope == "overall" and effect.kind == "ratio":
                per_cell = [e.estimate for e in cells if e.metric == effect.metric and 0 < e.estimate < np.inf]
                row["geomean"] = float(np.exp(np.mean(np.log(per_cell)))) if per_cell else float("nan")
            rows.append(row)
    table = pd.DataFrame(rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(table["kind"] == "ratio", np.abs(np.log(table["estimate"].where(table["estimate"] > 0))),
                          np.abs(table["estimate"]))
    overall_first = table["scope"] != "overall"
    order = table["metric"].map({metric: i for i, (metric, _, _) in enumerate(METRICS)})
    table = table.assign(_scope=overall_first, _order=order.where(~overall_first, 0),
                         _beyond=~table["distinguishable"], _change=-change)
    table = table.sort_values(["_scope", "_order", "_beyond", "_change", "cell", "metric"], na_position="last")
    return table.drop(columns=["_scope", "_order", "_beyond", "_change"]).reset_index(drop=True)


def parse_threshold(text: str) -> float:
    """``5%`` or ``0.05`` -> 0.05; ``ValueError`` (one line) otherwise. A bare number above 1 is refused:
    ``5`` would mean 500 % slower, which is almost never what was meant."""
    percent = text.strip().endswith("%")
    try:
        value = float(text.strip().removesuffix("%")) / (100 if percent else 1)
    except ValueError:
        value = -1.0
    if not percent and value > 1:
        raise ValueError(f"--fail-if-slower {text} would mean {value:.0%} slower; write {text}% for {text} percent "
                         "(a bare number is a fraction: 0.05 is 5%)")
    if not 0 <= value < 10:
        raise ValueError(f"--fail-if-slower {text} is invalid; valid: a percentage such as 5% (or 0.05)")
    return value


def slower_beyond(table: pd.DataFrame, threshold: float, metric: str = GATED) -> pd.DataFrame:
    """The rows (overall or cells) of ``metric`` that are slower by more than ``threshold`` beyond noise:
    slower beyond noise in their family, and the whole 95 % interval above ``1 + threshold`` (an estimate
    above it whose interval reaches below it could be a smaller slowdown)."""
    gated = table[(table["metric"] == metric) & table["distinguishable"]]
    return gated[gated["low"] > 1 + threshold]


def _shown(row: pd.Series) -> str:
    fields = {f.name for f in dataclasses.fields(stats.Effect)}
    effect = stats.Effect(**{**{k: v for k, v in row.items() if k in fields}, "factor": row["cell"],
                             "level": "after", "baseline": "before", "pairs": int(row["pairs"])})
    from harness.report.verdicts import described

    if effect.distinguishable:  # a direction, in words
        worse = effect.estimate > effect.neutral if effect.kind == "ratio" else effect.estimate < effect.neutral
        word = ("slower" if worse else "faster") if effect.kind == "ratio" else ("lower" if worse else "higher")
        return f"{described(effect)}, {word} beyond noise"
    return described(effect)  # not beyond noise: with what its pairs could have called (``could_call``)


def blind_spot(table: pd.DataFrame, threshold: float, metric: str = GATED) -> str | None:
    """The warning for a gate of ``threshold`` that the comparison could not fail: a slowdown of
    ``1 + threshold`` in ``metric``, overall, is smaller than the smallest it could call (``None``: it could
    see it). Where no change could be called at all, says why: the smallest p-value of its pairs,
    adjusted in its family."""
    overall = table[(table["scope"] == "overall") & (table["metric"] == metric)].iloc[0]
    smallest = overall["detectable_slower"]
    if smallest <= 1 + threshold:
        return None
    advice = "run more seeds or longer epochs, or sweep both sides in one sweep (a factor) so that drift cancels"
    if math.isnan(smallest) and int(overall["pairs"]) >= stats.fewest_pairs():
        return (f"this comparison cannot say what slowdown in {WORDS[metric]} it could see (runs that missed the "
                f"target have no size to shift); gate on steady epoch time to know")
    if math.isfinite(smallest):
        return (f"this comparison cannot see a {threshold:.0%} slowdown in {WORDS[metric]}: at this noise its "
                f"{int(overall['pairs'])} pairs could see ×{smallest:.2f} or more; {advice}")
    pairs = int(overall["pairs"])
    family = int(table[table["scope"] == "overall"]["p_value"].notna().sum())
    if pairs < stats.fewest_pairs():
        why = f"{pairs} pairs are too few to tell (fewer than {stats.fewest_pairs()})"
    else:
        lowest = 2 / 2**pairs
        why = (f"the smallest p-value of {pairs} pairs, {lowest:.3f}, judged with {family} comparisons (Holm) is "
               f"{min(1.0, lowest * family):.3f}, above {stats.ALPHA:.2f}")
    return f"this comparison could not fail whatever happened: {why}; {advice}"


def spread_within_cells(pairs: pd.DataFrame, side: str, metric: str = GATED) -> float:
    """How much runs of one cell differ on ``side`` (``before``/``after``) in ``metric``: the robust standard
    deviation (scaled MAD) of its log around each cell's median, over the cells with two or more seeds;
    NaN where no cell has two."""
    logs = np.log(pd.to_numeric(pairs[f"{metric}_{side}"], errors="coerce").replace([0, np.inf], np.nan))
    centred = logs - logs.groupby(pairs["cell"]).transform("median")
    repeated = pairs.groupby("cell")["cell"].transform("size") >= 2
    kept = centred[repeated].dropna()
    return float(scipy_stats.median_abs_deviation(kept, scale="normal")) if len(kept) >= 2 else float("nan")


def noise_lines(pairs: pd.DataFrame, matching: Matching, table: pd.DataFrame) -> list[str]:
    """The run-to-run spread of steady epoch time on each side, and a drift warning where nothing recorded
    changed between the sides yet steady epoch time moved beyond noise: the machine, not the code, differed."""
    spreads = {side: spread_within_cells(pairs, side) for side in ("before", "after")}
    if any(math.isnan(v) for v in spreads.values()):
        shown = "not measured (no cell has two seeds on both sides)"
    else:
        shown = " and ".join(f"±{math.expm1(v):.0%} {side}" for side, v in spreads.items())
    lines = [f"noise: runs of one cell differ by {shown} in steady epoch time (robust standard deviation)"]
    overall = table[(table["scope"] == "overall") & (table["metric"] == GATED)].iloc[0]
    if not matching.changed and overall["distinguishable"]:
        lines.append(f"warning: nothing that the results record changed, yet steady epoch time moved "
                     f"×{overall['estimate']:.2f} beyond noise: the machine's state most likely differed between the "
                     "sweeps (load, clock, heat); run both sides interleaved in one sweep (a factor of the grid)")
    return lines


def summary_lines(before: Side, after: Side, matching: Matching, table: pd.DataFrame, notes: list[str], *,
                  noise: Sequence[str] = ()) -> list[str]:
    """The terminal's answer: what changed, the noise (``noise_lines``), the overall effects, the cells beyond
    noise, what was left out."""
    names = {metric: words for metric, _, words in METRICS}
    lines = [f"before: {before.label} ({len(before.runs)} ok runs)",
             f"after:  {after.label} ({len(after.runs)} ok runs)"]
    changed = "; ".join(f"{key} {a} -> {b}" for key, (a, b) in matching.changed.items())
    lines.append(f"changed: {changed or 'nothing that the results record'}")
    lines += noise
    overall = table[table["scope"] == "overall"]
    for _, row in overall.iterrows():
        geomean = (f"; geometric mean of the cells' ratios ×{row['geomean']:.2f}" if math.isfinite(row["geomean"])
                   else "")
        lines.append(f"overall {names[row['metric']]}: {_shown(row)}{geomean}")
    cells = table[table["scope"] == "cell"]
    beyond = cells[cells["distinguishable"]]
    lines.append(f"cells beyond noise (Benjamini-Hochberg over {int(cells['p_adjusted'].notna().sum())} testable "
                 f"comparisons): {len(beyond)}")
    lines += [f"  {row['cell']}: {names[row['metric']]} {_shown(row)}" for _, row in beyond.head(10).iterrows()]
    gated = cells[cells["metric"] == GATED]
    few = gated[gated["pairs"] < stats.fewest_pairs()]["cell"].nunique()
    if few:
        lines.append(f"{few} of {len(gated)} cells have fewer than {stats.fewest_pairs()} seeds on both sides: too few "
                     f"to tell per cell (the overall effects pool them; run more seeds, e.g. {stats.example_seeds()})")
    return lines + [f"note: {note}" for note in [*matching.notes, *notes]]


def write_comparison(out: Path, before: Side, after: Side, matching: Matching, *, table: pd.DataFrame,
                     lines: list[str]) -> Path:
    """``comparison.csv``, ``comparison.md`` and ``index.html`` (one figure: per-cell ratios with their
    intervals) in ``out``; returns ``index.html``."""
    from harness.report import figures
    from harness.report.pages import Section, write_pages

    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "comparison.csv", index=False)
    bars = table[table["scope"] == "cell"].rename(columns={"cell": "comparison"})
    figure = figures.effect_bars(bars, out / "figures" / "cells.png", ratio_of="after / before",
                                 title="Per cell: AFTER / BEFORE over the seeds both ran (exact 95 % interval; "
                                 "none below 6 seeds)")
    shown = table.assign(effect=[_shown(row) for _, row in table.iterrows()],
                         beyond_noise=table["distinguishable"].map({True: "yes", False: "no"}))
    sections = [
        Section("Answer", "Ratios are AFTER / BEFORE (below 1: faster after); accuracy is a difference. Intervals "
                "are exact 95 % intervals over paired runs (same cell and seed; stats: Hodges-Lehmann ratio for times, "
                "median difference for accuracy); the overall effects "
                "are judged as one family (Holm), the cells as another (Benjamini-Hochberg).", lines, figure=figure),
        Section("Every comparison", "", table=shown[["scope", "cell", "metric", "effect", "p_adjusted",
                                                     "beyond_noise", "geomean"]]),
    ]
    return write_pages("harness comparison", sections, out, "comparison.md")


def options_parser() -> argparse.ArgumentParser:
    """The command line's options (also read by the docs' generated reference)."""
    options = argparse.ArgumentParser(prog="python -m harness.compare", description=__doc__.split("\n\n")[0])
    options.add_argument("before", type=Path, help="a sweep folder (multirun/<sweep>) or a report's runs.csv")
    options.add_argument("after", type=Path, help="the same, after the change")
    options.add_argument("--out", type=Path, default=None, help="where to write the comparison (default: "
                         "reports/compare_<before>_vs_<after>)")
    options.add_argument("--fail-if-slower", default=None, metavar="PERCENT",
                         help="exit 1 if steady epoch time (or --metric), overall or in any cell, got slower by "
                         "more than this beyond noise (e.g. 5%%): a training-speed regression gate for CI")
    options.add_argument("--metric", choices=tuple(GATE_METRICS), default="steady",
                         help="what --fail-if-slower judges: steady (steady epoch time, the default: the code's "
                         "speed), train (train seconds: compilation included), target (time to target: "
                         "convergence included)")
    options.add_argument("--require-power", action="store_true",
                         help="with --fail-if-slower: exit 1 also where the comparison could not have seen such a "
                         "slowdown (too few pairs or too much noise), instead of passing with a warning")
    return options


def main(argv: list[str] | None = None) -> int:
    parser = options_parser()
    args = parser.parse_args(argv)
    if args.require_power and args.fail_if_slower is None:
        parser.error("--require-power needs --fail-if-slower PERCENT")
    try:
        threshold = parse_threshold(args.fail_if_slower) if args.fail_if_slower is not None else None
        before, after = load_side(args.before), load_side(args.after)
        matching = match(before, after)
        pairs, alone = paired_runs(before, after, matching)
    except (CompareError, ValueError) as err:
        print(f"harness.compare: error: {err}", file=sys.stderr)
        return 2
    table = comparison_table(pairs)
    lines = summary_lines(before, after, matching, table, alone, noise=noise_lines(pairs, matching, table))
    out = args.out or Path("reports") / f"compare_{Path(before.label).name}_vs_{Path(after.label).name}"
    index = write_comparison(out, before, after, matching, table=table, lines=lines)
    print("\n".join(lines))
    print(f"comparison: {index.resolve()}")
    if threshold is not None:
        metric = GATE_METRICS[args.metric]
        blind = blind_spot(table, threshold, metric)
        if blind:
            print(f"harness.compare: warning: {blind}", file=sys.stderr)
        slower = slower_beyond(table, threshold, metric)
        if len(slower):
            named = "; ".join(f"{row['cell']} ×{row['estimate']:.2f}" for _, row in slower.head(5).iterrows())
            print(f"harness.compare: slower beyond noise by more than {threshold:.0%} in {WORDS[metric]}: {named}",
                  file=sys.stderr)
            return 1
        if blind and args.require_power:
            print("harness.compare: failing (--require-power): the gate could not have seen the slowdown it guards "
                  "against", file=sys.stderr)
            return 1
    return 0
