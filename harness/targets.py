"""Time to target from a run's per-epoch history: one definition for the run that records it and for the
report that judges a finished sweep for another target, without training (``retarget``).

Imports neither Keras nor Hydra nor pandas: the report may use it."""

from __future__ import annotations

import math
from typing import Any

from harness.cells import WORKLOAD_FACTORS
from harness.config.schema import target_mode
from harness.results import Result
from harness.stage_records import TargetFacts, assemble


def time_to_target(history: list[dict[str, Any]], value: float, *, metric: str,
                   mode: str) -> tuple[float | None, int | None]:
    """Training seconds and epochs until the epoch ``metric`` first reaches ``value`` (``mode`` ``max``: at
    least it; ``min``: at most it), counting each epoch's ``train_seconds``; ``(None, None)``: never."""
    elapsed = 0.0
    for number, epoch in enumerate(history, start=1):
        elapsed += epoch["train_seconds"]
        reached = epoch.get(metric)
        if reached is not None and (reached >= value if mode == "max" else reached <= value):
            return elapsed, number
    return None, None


def target_facts(history: list[dict[str, Any]], *, metric: str, value: float, mode: str) -> TargetFacts:
    """What a result says about its target: the target itself (``mode`` resolved), time and epochs to it,
    and the best epoch value of its metric (``None`` where no epoch recorded the metric)."""
    resolved = target_mode(metric, mode)
    seconds, epochs = time_to_target(history, value, metric=metric, mode=resolved)
    recorded = [epoch[metric] for epoch in history if metric in epoch]
    return TargetFacts(target_metric=metric, target_value=value, target_mode=resolved,
                       target_accuracy=value if metric == "val_accuracy" else None,
                       time_to_target_seconds=seconds, epochs_to_target=epochs,
                       best_target_metric=(max if resolved == "max" else min)(recorded) if recorded else None)


def own_target(result: Result) -> tuple[str, float, str]:
    """The target ``result`` was made for: metric, value and mode (results from before ``target`` existed
    record only ``target_accuracy``: validation accuracy, at least it)."""
    metric = result.get("target_metric") or "val_accuracy"
    value = result.get("target_value", result.get("target_accuracy"))
    return metric, value, result.get("target_mode") or target_mode(metric)


def described_targets(results: list[Result]) -> str:
    """The targets of the ok ``results`` in words: ``val_accuracy 0.9``."""
    return ", ".join(sorted({f"{metric} {value:g}" for metric, value, _ in
                             (own_target(r) for r in results if r.get("status") == "ok")}))


class RetargetError(ValueError):
    """A target that the results cannot be judged for (its metric not recorded)."""


def retarget(results: list[Result], *, metric: str | None = None, value: float | None = None,
             mode: str | None = None) -> list[Result]:
    """``results`` judged for another target, from their histories alone: each ok result with its target
    facts (``target_facts``) recomputed; ``metric``, ``value`` and ``mode`` default to each result's own
    (a new ``metric`` without ``mode``: ``auto``). ``RetargetError`` (one line) where an ok run's history
    does not record the metric."""
    judged = []
    for result in results:
        if result.get("status") != "ok":
            judged.append(result)
            continue
        own_metric, own_value, own_mode = own_target(result)
        name = metric or own_metric
        history = result.get("history") or []
        if not any(name in epoch for epoch in history):
            recorded = sorted({key for epoch in history for key in epoch
                               if key.startswith("val_") and key != "val_seconds"})  # metrics, not the timer's
            raise RetargetError(f"target.metric={name} is not in the history of run {result['run_key']}; "
                                f"valid: {', '.join(recorded) or 'none recorded'}")
        how = mode or ("auto" if metric else own_mode)
        facts = target_facts(history, metric=name, value=own_value if value is None else value, mode=how)
        judged.append(assemble(result, facts))
    return judged


AUTO_REFERENCE = "adam"
"""The optimizer whose runs set an ``auto`` target (AlgoPerf sets its targets from a reference optimizer's runs)."""
AUTO_REACHED = 0.8
"""An ``auto`` target is the best value that this share of the reference optimizer's runs reached."""


def workload_of(result: Result) -> str:
    """The workload a result belongs to, in words: its dataset and model, and every swept setting under them."""
    swept = {key: value for key, value in (result.get("factors") or {}).items()
             if key.split(".")[0] in WORKLOAD_FACTORS and key not in WORKLOAD_FACTORS}
    parts = {"dataset": result.get("dataset"), "model": result.get("model"), **swept}
    return " ".join(f"{key}={value}" for key, value in parts.items() if value is not None)  # lacked: left out


def optimizer_of(result: Result) -> str | None:
    """The optimizer option a result's run trained with (its config's, whatever the sweep's factors)."""
    return ((result.get("config") or {}).get("optimizer") or {}).get("name")


def auto_targets(results: list[Result], metric: str | None = None,
                 mode: str | None = None) -> dict[str, tuple[str, float, str]]:
    """Per workload (``workload_of``), a target derived from the runs themselves: the best value of the target
    metric that at least ``AUTO_REACHED`` of the ``AUTO_REFERENCE`` optimizer's ok runs reached within their budget (of
    every optimizer's, where the sweep has no such run). ``metric`` and ``mode`` default to each run's own.
    Returns workload -> (metric, value, mode); a workload whose runs never recorded the metric is left out."""
    by_workload: dict[str, list[Result]] = {}
    for result in results:
        if result.get("status") == "ok":
            by_workload.setdefault(workload_of(result), []).append(result)
    targets = {}
    for workload, runs in sorted(by_workload.items()):
        reference = [r for r in runs if optimizer_of(r) == AUTO_REFERENCE] or runs
        own_metric, _, own_mode = own_target(reference[0])
        name = metric or own_metric
        how = target_mode(name, mode or ("auto" if metric else own_mode))
        bests = sorted(best for best in ((max if how == "max" else min)(
            (e[name] for e in r.get("history") or [] if name in e), default=None) for r in reference)
            if best is not None)
        if not bests:
            continue
        if how == "min":
            bests.reverse()  # worst first, as for a maximised metric
        reached_by = math.ceil(AUTO_REACHED * len(bests) - 1e-9)  # runs that must reach it: at least the share
        targets[workload] = (name, bests[len(bests) - reached_by], how)
    return targets


def retarget_auto(results: list[Result], metric: str | None = None,
                  mode: str | None = None) -> tuple[list[Result], dict[str, tuple[str, float, str]]]:
    """``results`` judged for each workload's ``auto_targets``, with those targets."""
    targets = auto_targets(results, metric, mode)
    judged = []
    for result in results:
        chosen = targets.get(workload_of(result)) if result.get("status") == "ok" else None
        judged += retarget([result], metric=chosen[0], value=chosen[1], mode=chosen[2]) if chosen else [result]
    return judged, targets
