"""The report's figures, drawn with seaborn. Each function takes tidy tables and a path, writes one PNG
and returns its path, or ``None`` when the sweep holds nothing to draw. Axes carry units."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from harness.cells import read_back, sorted_levels  # noqa: E402

MAX_CURVES = 600
"""Above this many runs the learning curves show each optimizer's median curve, not every run."""


def _save(figure: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})  # no version: reproducible
    plt.close(figure)
    return path


def _column(frame: pd.DataFrame, name: str) -> str | None:
    """``name`` where ``frame`` has it as a column (a factor of the sweep), else ``None``: figures colour
    and facet by the article's factors where a sweep has them."""
    return name if name in frame else None


def as_levels(frame: pd.DataFrame, hue: str | None) -> tuple[pd.DataFrame, list[str] | None]:
    """``frame`` with a numeric or boolean ``hue`` column (``batch_size=32,64,128``) as its levels' text, and
    their order (numbers numerically), so that each level gets a colour of the categorical palette: seaborn
    shades a numeric hue on a sequential palette, on which the lowest level is nearly white."""
    if hue is None or not pd.api.types.is_numeric_dtype(frame[hue]):
        return frame, None
    text = {value: str(read_back(value)).lower() for value in frame[hue].dropna().unique()}
    order = [text[value] for value in sorted_levels(text)]
    return frame.assign(**{hue: frame[hue].map(text)}), order


def curve_colour(history: pd.DataFrame, factors: list[str], facets: tuple[str | None, ...]) -> str | None:
    """The factor that colours the learning curves: ``optimizer`` where the sweep varies it, else the first
    factor it varies that is not a facet (a ``batch_size`` sweep's curves told apart by batch size), else
    ``optimizer`` where it is a factor at all (its one level in the legend)."""
    varying = [f for f in factors if f not in facets and history[f].nunique(dropna=False) > 1]
    return next((f for f in ["optimizer", *varying] if f in varying), None) or (
        "optimizer" if "optimizer" in factors and "optimizer" not in facets else None)


def learning_curves(history: pd.DataFrame, path: Path) -> Path | None:
    """Validation accuracy (or, without it, the runs' target metric) against training seconds, one line per
    run (or, when there are many runs, the median curve of each level of its colour), coloured by the factor
    the sweep varies (``curve_colour``) and faceted by transfer (columns) and early stopping (rows) where those
    are factors. Needs ``history_frame`` columns."""
    if history.empty:
        return None
    column, label = "val_accuracy", "validation accuracy"
    if history["val_accuracy"].isna().all():  # a model without accuracy (a regression): its target metric
        if "target_metric_value" not in history or history["target_metric_value"].isna().all():
            return None
        column, label = "target_metric_value", str(history["target_metric"].dropna().iloc[0])
    sns.set_theme(style="whitegrid")
    col, row = _column(history, "transfer"), _column(history, "early_stopping")
    factors = list(history.columns[1:list(history.columns).index("seed")])  # history_frame: run_key, factors, seed
    hue = curve_colour(history, factors, (col, row))
    history, hue_order = as_levels(history, hue)
    many = history["run_key"].nunique() > MAX_CURVES
    if many:  # the median over runs at each epoch, drawn at the median elapsed time
        kept = [name for name in (hue, col, row) if name]
        history = (history.groupby([*kept, "epoch"], as_index=False)[["elapsed_train_seconds", column]].median()
                   .assign(run_key=lambda d: d[hue] if hue else "median"))
    grid = sns.relplot(data=history, x="elapsed_train_seconds", y=column, hue=hue, hue_order=hue_order, units="run_key",
                       estimator=None, kind="line", col=col, row=row, height=3.2, aspect=1.3,
                       linewidth=1, alpha=0.8, facet_kws={"margin_titles": True})
    grid.set_axis_labels("training time (s)", label)
    shown = "Validation accuracy" if column == "val_accuracy" else label  # a metric keeps its own name
    grid.figure.suptitle(f"{shown} over training time" + (f" (median per {hue})" if many and hue else
                                                           " (median)" if many else ""), y=1.02)
    return _save(grid.figure, path)


def pareto(runs: pd.DataFrame, front: pd.Series, path: Path) -> Path | None:
    """Test accuracy against train seconds for every ok run that has one (none: a model without accuracy,
    such as a regression, gets no figure), the Pareto front drawn as a step line.
    Needs ``status``, ``train_seconds``, ``test_accuracy`` (coloured by ``optimizer`` and marked by
    ``transfer`` where they are factors); ``front`` is ``stats.pareto_front(runs)``."""
    ok = runs[(runs["status"] == "ok") & runs["train_seconds"].notna() & runs["test_accuracy"].notna()]
    if ok.empty:
        return None
    sns.set_theme(style="whitegrid")
    figure, ax = plt.subplots(figsize=(7, 4.5))
    sns.scatterplot(data=ok, x="train_seconds", y="test_accuracy", hue=_column(ok, "optimizer"),
                    style=_column(ok, "transfer"), ax=ax, s=40)
    edge = runs[front].sort_values("train_seconds")
    ax.step(edge["train_seconds"], edge["test_accuracy"], where="post", color="black", linewidth=1,
            label="Pareto front")
    ax.set(xlabel="train seconds (s)", ylabel="test accuracy", title="Accuracy against training time, every run")
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    return _save(figure, path)


def effect_bars(effects: pd.DataFrame, path: Path,
                title: str = "Factor effects, paired by the other factors and seed (exact 95 % intervals)",
                ratio_of: str = "level / baseline") -> Path | None:
    """Each factor's ratio of train seconds and of time to target (level / baseline) with 95% CIs;
    1 = no change. Needs ``stats.effects_table`` columns, or a ``comparison`` column naming each row
    (then ``ratio_of`` says what the ratio is, and ``title`` what the figure shows)."""
    ratios = effects[(effects["kind"] == "ratio") & effects["estimate"].notna()].copy()
    if ratios.empty:
        return None
    sns.set_theme(style="whitegrid")
    if "comparison" not in ratios:
        ratios["comparison"] = (ratios["factor"] + ": " + ratios["level"].astype(str) + " vs "
                                + ratios["baseline"].astype(str))
    metrics = list(dict.fromkeys(ratios["metric"]))
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 0.45 * ratios["comparison"].nunique()
                                                                    + 1.8), squeeze=False, sharey=True,
                                layout="constrained")  # the main title above the panels' titles, not on them
    order = list(dict.fromkeys(ratios["comparison"]))
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = ratios[ratios["metric"] == metric].set_index("comparison").reindex(order)
        left, right = _ratio_limits(part[["estimate", "low", "high"]].to_numpy(dtype=float))
        part = part.assign(**{c: part[c].clip(left, right) for c in ("estimate", "low", "high")})  # ×∞: at the edge
        y = np.arange(len(order))
        low = (part["estimate"] - part["low"]).clip(lower=0).fillna(0)
        high = (part["high"] - part["estimate"]).clip(lower=0).fillna(0)
        # a ratio is a point on a log axis, centred on 1 (no change): a bar from 0 would draw ×0.9 as 90 % of ×1
        beyond = (part["distinguishable"].fillna(False).astype(bool) if "distinguishable" in part
                  else pd.Series(True, index=part.index)).to_numpy()
        for called, face, label in ((True, sns.color_palette()[0], "beyond noise, judged with its family"),
                                    (False, "white", "not distinguishable from noise")):
            shown = beyond == called
            if shown.any():  # hollow: an interval that may exclude ×1 alone, while its family's verdict is noise
                ax.errorbar(part["estimate"][shown], y[shown], xerr=[low[shown], high[shown]], fmt="o", capsize=3,
                            color=sns.color_palette()[0], markerfacecolor=face, label=label)
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlim(left, right)
        ticks = _ratio_ticks(left, right)
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"×{t:g}" for t in ticks]))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_yticks(y, order)
        ax.set_ylim(len(order) - 0.5, -0.5)  # the first comparison on top
        ax.set(xlabel=f"ratio, {ratio_of} (<1: faster)", title=metric.replace("_", " "))
    if "distinguishable" in ratios:  # below the panels: never over a point
        labelled = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels(),
                                                                             strict=True)}
        figure.legend(labelled.values(), labelled.keys(), loc="outside lower center", ncols=2, fontsize="small")
    figure.suptitle(title)
    return _save(figure, path)


RATIO_TICKS = (0.1, 0.2, 0.33, 0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
"""Where a ratio axis is labelled (those within its limits)."""


def _ratio_ticks(left: float, right: float, most: int = 7) -> list[float]:
    """``RATIO_TICKS`` within ``left``..``right``, 1 always, outward from 1 no closer than 1/``most`` of the
    axis (log scale), so their labels never overlap."""
    gap = (math.log(right) - math.log(left)) / most
    ticks = [1.0]
    below = sorted((t for t in RATIO_TICKS if left <= t < 1), reverse=True)
    for side in (below, sorted(t for t in RATIO_TICKS if 1 < t <= right)):
        last = 1.0
        for tick in side:
            if abs(math.log(tick) - math.log(last)) >= gap:
                ticks.append(tick)
                last = tick
    return sorted(ticks)


def _ratio_limits(values: np.ndarray) -> tuple[float, float]:
    """x limits for ratios on a log axis: symmetric about 1, with room on both sides of every value, so the
    line at 1 is never on the frame."""
    finite = values[np.isfinite(values) & (values > 0)]
    reach = float(np.abs(np.log(finite)).max()) if finite.size else 0.0
    reach = max(reach * 1.15, math.log(1.25))
    return math.exp(-reach), math.exp(reach)


def time_to_target_heatmap(cells: pd.DataFrame, path: Path) -> Path | None:
    """Median time to target (s) per optimizer × (transfer, early stopping), for each device with ok
    runs; none unless those four are factors of the sweep. Needs ``stats.cell_table`` columns."""
    data = cells[cells["time_to_target_seconds"].notna()]
    if data.empty or not {"optimizer", "transfer", "early_stopping", "device"} <= set(cells):
        return None
    devices = sorted(data["device"].unique())
    sns.set_theme(style="white")
    figure, axes = plt.subplots(1, len(devices), figsize=(6 * len(devices), 4), squeeze=False)
    for ax, device in zip(axes[0], devices, strict=True):
        part = cells[cells["device"] == device].assign(
            setting=lambda d: "transfer " + d["transfer"] + "\nES " + d["early_stopping"])
        table = part.pivot_table(index="optimizer", columns="setting", values="time_to_target_seconds",
                                 aggfunc="median", dropna=False)
        # colour from 0 s: 1.2 s against 1.5 s is a small difference and must look like one
        sns.heatmap(table, annot=True, fmt=".2f", cmap="viridis_r", ax=ax, cbar_kws={"label": "seconds"},
                    vmin=0, vmax=float(np.nanmax(table.to_numpy(dtype=float))))
        ax.set(title=f"Median time to target (s), {device}; blank: never reached", xlabel="", ylabel="optimizer")
    return _save(figure, path)



LEVEL_METRICS = (("time_to_target_seconds", "time to target (s)"), ("train_seconds", "train seconds"),
                 ("test_accuracy", "test accuracy"))


def metrics_by_level(runs: pd.DataFrame, factor: str, levels: list, path: Path,
                     metrics: tuple[tuple[str, str], ...] = LEVEL_METRICS) -> Path | None:
    """``metrics`` (column, axis label; by default time to target, train seconds and test accuracy)
    against the levels of ``factor``: the median over
    ok runs, one line per optimizer where it is a factor, shaded over the middle 95% of runs where the
    levels are numbers.
    Numeric levels go on a numeric axis, logarithmic when they are positive and span a factor of 10 or
    more (learning rates); others are categories in ``levels`` order. Needs ``status``, ``factor`` and the
    metrics."""
    ok = runs[(runs["status"] == "ok") & runs[factor].notna()]
    if ok.empty or len(levels) < 2:
        return None
    numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in levels)
    log = numeric and min(levels) > 0 and max(levels) / min(levels) >= 10
    data = ok.assign(level=ok[factor].astype(float) if numeric else pd.Categorical(
        ok[factor].astype(str), categories=[str(v) for v in levels], ordered=True))
    sns.set_theme(style="whitegrid")
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for ax, (metric, label) in zip(axes[0], metrics, strict=True):
        hue = _column(data, "optimizer") if factor != "optimizer" else None
        sns.lineplot(data=data, x="level", y=metric, hue=hue, hue_order=sorted(data[hue].unique()) if hue else None,
                     estimator="median",
                     errorbar=("pi", 95) if numeric else None, marker="o", ax=ax, sort=True)
        if log:  # ticks at the levels, as plain numbers, on every panel (one without a level keeps the range)
            ax.set_xscale("log")
            ax.set_xticks([float(v) for v in levels], labels=[f"{v:g}" for v in levels])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_xlim(min(levels) / 1.25, max(levels) * 1.25)
        ax.set(xlabel=factor, ylabel=label)
        if ax.get_legend() is not None and metric != metrics[-1][0]:
            ax.get_legend().remove()
    figure.suptitle(f"Against {factor} (median over runs)", y=1.02)
    return _save(figure, path)


def performance_profile(ratios: pd.DataFrame, path: Path, max_tau: float) -> Path | None:
    """Each optimizer's performance profile: the share of problems on which its time to target is within
    ``tau`` of the fastest, for ``tau`` from 1 to ``max_tau`` (a step per problem). ``ratios``: one row per
    problem, one column per optimizer (``profiles.performance_ratios``)."""
    if ratios.empty:
        return None
    sns.set_theme(style="whitegrid")
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    taus = np.linspace(1.0, max_tau, 301)
    for name in ratios.columns:
        axes.step(taus, [(ratios[name] <= tau).mean() for tau in taus], where="post", label=str(name))
    axes.set(xlabel="τ: time to target within ×τ of the fastest", ylabel="share of problems", ylim=(-0.03, 1.03),
             xlim=(1.0, max_tau), title=f"Performance profiles over {len(ratios)} problems")
    axes.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def resources(runs: pd.DataFrame, cell_names: pd.Series, path: Path) -> Path | None:
    """Per cell (``cell_names``, one per run), each ok run's peak memory (MiB) and the cores its fit kept
    busy, beside the share of a steady epoch its input alone took where that was timed. ``None`` where no
    run recorded its resources."""
    ok = runs[(runs["status"] == "ok") & runs.get("peak_rss_bytes", pd.Series(dtype=float)).notna()]
    if ok.empty or "cores_used" not in ok:
        return None
    data = ok.assign(cell=cell_names.loc[ok.index], peak_mib=ok["peak_rss_bytes"].astype(float) / 2**20)
    panels = [("peak_mib", "peak memory of the run's process (MiB)"), ("cores_used", "cores kept busy during fit")]
    if "input_share" in data and data["input_share"].notna().any():
        panels.append(("input_share", "input alone / steady epoch"))
    order = sorted(data["cell"].unique())
    sns.set_theme(style="whitegrid")
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 1.2 + 0.28 * len(order)),
                                sharey=True, squeeze=False)
    for ax, (column, label) in zip(axes[0], panels, strict=True):
        sns.stripplot(data=data, x=column, y="cell", order=order, ax=ax, size=4, jitter=False)
        ax.set(xlabel=label, ylabel="")
    figure.suptitle("Resources per run (read at each run's boundaries)", y=1.0)
    return _save(figure, path)
