"""The lines a sweep prints: one per run as it starts and ends, with an ETA, and a closing summary.

``[3/48] optimizer=adam transfer=on early_stopping=off device=cpu seed=0 … ok in 4.1 s (training 2.2 s), test acc 0.97,
ETA 2 min``
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.results import PROGRESS_FILE

SWEEP_FILE = "sweep.json"
_durations: list[float] = []  # seconds per finished cell in this process (the sequential launcher)


def start_sweep(sweep_dir: Path, cells: list[list[str]] | None, *, factors: list[str],
                baselines: dict[str, Any] | None = None, name: str | None = None, total: int | None = None) -> None:
    """Record the sweep's ``name`` (its identity, fixed as it starts: every run of it records this one),
    its cells in the order they run (their overrides; ``None`` if the sweeper does not say ahead; then
    ``total``, where a search knows its number of trials), its factors and their baselines
    (``harness.cells``), so that each job can say where it stands and what it varies, and the order is on
    record."""
    _durations.clear()
    sweep = {"name": name, "total": len(cells) if cells is not None else total, "started": time.time(),
              "cells": cells, "factors": factors, "factor_baselines": baselines or {}}
    (sweep_dir / SWEEP_FILE).write_text(json.dumps(sweep, indent=1))


def read_sweep_file(sweep_dir: Path) -> dict[str, Any]:
    """The sweep's ``sweep.json`` (empty where it has none, or an unreadable one)."""
    try:
        return json.loads((sweep_dir / SWEEP_FILE).read_text())
    except (OSError, ValueError):
        return {}


def factors(sweep_dir: Path, named: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """The sweep's factors and their baselines (a run config's ``named`` factors, without baselines, where the
    sweep recorded none)."""
    sweep = read_sweep_file(sweep_dir)
    return list(sweep.get("factors", named)), sweep.get("factor_baselines") or {}


def sweep_name(sweep_dir: Path) -> str | None:
    """The sweep's name as recorded when it started (``None``: not a multirun, or none recorded). Hydra
    resolves ``${now:...}`` anew in each job where the folder does not fix it (``hydra.sweep.dir=DIR``),
    so the jobs take the name from here."""
    return read_sweep_file(sweep_dir).get("name")


def total(sweep_dir: Path) -> int | None:
    """How many cells the sweep has (``None`` if unknown)."""
    return read_sweep_file(sweep_dir).get("total")


def position(sweep_dir: Path, job_num: int) -> str:
    """``[3/48] `` for the job numbered 2 (Hydra counts from 0) of a 48-cell sweep."""
    cells = total(sweep_dir)
    return f"[{job_num + 1}/{cells if cells else '?'}] "


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def test_summary(result: dict[str, Any]) -> str:
    """``, test acc 0.970``, or for a model without accuracy its first other test metric
    (``, test mae 44.56``), else its test loss."""
    if result.get("test_accuracy") is not None:
        return f", test acc {result['test_accuracy']:.3f}"
    metrics = result.get("test_metrics") or {"loss": result.get("test_loss")}
    name = next((key for key in metrics if key != "loss"), "loss")
    return f", test {name} {metrics[name]:.4g}" if metrics.get(name) is not None else ""


def outcome(result: dict[str, Any], elapsed: float, sweep_dir: Path, job_num: int | None,
            startup_s: float = 0.0) -> str:
    """How a run ended: ``ok in 4.1 s (training 2.2 s), test acc 0.97, ETA 2 min`` (ETA only inside a sweep).

    Args:
        result: the run's result.
        elapsed: the run's seconds from launch to its result (data, model, fit, evaluation), seen from here.
        sweep_dir: the sweep's folder (its cell count gives the ETA).
        job_num: the cell's place in the sweep, ``None`` outside one.
        startup_s: seconds the run waited for the run server to start, shown apart: the first run of a
            sweep would otherwise seem slower than the rest.
    """
    status = result["status"]
    text = status if status == "skipped" else f"{status} in {elapsed:.1f} s"  # a skipped cell ran nothing
    parts = [f"training {result['train_seconds']:.1f} s"] if result.get("train_seconds") is not None else []
    parts += [f"+{startup_s:.1f} s starting the run server"] if startup_s >= 0.05 else []
    if parts and status != "skipped" and not result.get("reused"):
        text += f" ({', '.join(parts)})"
    if result.get("reused"):
        text = f"ok, reused from sweep {result['reused_from']}"
        host = (result.get("environment") or {}).get("hostname")
        if host and host != platform.node():  # same hardware (it is in the run key), another host
            text += f" on host {host}"
    if status == "ok":
        text += test_summary(result)
        if result.get("early_stopped"):
            text += f", stopped early after {result['epochs_run']} epochs"
    else:
        text += f": {result.get('reason')}"
        if status == "failed" and result.get("log_file"):
            text += f" (its output and traceback: {result['log_file']})"
    if not result.get("reused"):
        _durations.append(elapsed)
    cells = total(sweep_dir) if job_num is not None else None
    if cells and _durations and job_num is not None and job_num + 1 < cells:
        remaining = cells - job_num - 1
        text += f", ETA {_duration(statistics.mean(_durations) * remaining)}"
    return text


PHASES = {"data": "loading the data", "model": "building the model"}
"""What a run does before it trains, as its progress file names it (``harness.run.train.write_progress``)."""


class LiveLine:
    """A long run's live state, from its progress file (``harness.results.PROGRESS_FILE``): ``loading the
    data``, ``building the model``, ``epoch 1/50 running (its first compiles)``, then after each epoch
    ``epoch 3/50 (fine_tune), val acc 0.812, 41 s/epoch, run ETA ≤ 32 min``.

    On a terminal it is rewritten in place after the cell's ``[3/48] … `` heading (and erased before the
    outcome is printed there); elsewhere (CI logs, files) it is printed as a plain indented line at most
    every ``plain_every_s`` seconds, so short runs print none. The ETA is the epochs left times the
    median epoch so far: an upper bound where early stopping may end the run sooner.
    """

    def __init__(self, run_dir: Path, stream: Any = None, plain_every_s: float = 30.0) -> None:
        self.path = run_dir / PROGRESS_FILE
        self.stream = stream or sys.stdout
        self.in_place = bool(getattr(self.stream, "isatty", lambda: False)())
        self.plain_every_s = plain_every_s
        self.started = time.monotonic()
        self.last_plain = self.started
        self.seen: tuple[int, float] | None = None  # the state last read (epochs done, when it was written)
        self.last_printed: tuple[int, float] | None = None
        self.epoch_seconds: list[float] = []
        self.printed_plain = False  # the heading's line was ended: the outcome needs its own line
        self.shown = False
        if self.in_place:
            self.stream.write("\x1b7")  # remember where the live text starts (after the heading)

    def text(self) -> str | None:
        """The live text, or ``None`` before the run has written its progress file."""
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        phase, epoch, epochs = state.get("phase", "training"), state["epoch"], state["epochs"]
        if (epoch, state["at"]) != self.seen:
            self.seen = (epoch, state["at"])
            if state.get("epoch_seconds") is not None:
                self.epoch_seconds.append(state["epoch_seconds"])
        if phase != "training":
            text = PHASES.get(phase, phase)
            if state.get("images"):  # a folder's first decoding: how far it got
                text += f": decoded {state['decoded']:,} of {state['images']:,} images"
            return text
        stage = f" ({state['stage']})" if state.get("stage") in ("head", "fine_tune") else ""
        if state.get("epoch_seconds") is None:  # a stage has begun; its first epoch has not ended
            return f"epoch {epoch + 1}/{epochs}{stage} running" + (" (its first compiles)" if not epoch else "")
        per_epoch = statistics.median(self.epoch_seconds[1:] or self.epoch_seconds)  # the first one compiles
        text = f"epoch {epoch}/{epochs}{stage}"
        if state.get("val_accuracy") is not None:
            text += f", val acc {state['val_accuracy']:.3f}"
        left = epochs - epoch
        return text + f", {per_epoch:.1f} s/epoch" + (f", run ETA ≤ {_duration(left * per_epoch)}" if left else "")

    def update(self) -> None:
        """Show the run's state now (called while waiting for the run)."""
        text = self.text()
        if text is None or self.seen == self.last_printed:  # nothing new since the last line
            return
        if self.in_place:
            self.stream.write(f"\x1b8\x1b[K{text}")
            self.shown, self.last_printed = True, self.seen
        elif time.monotonic() - self.last_plain >= self.plain_every_s:
            self.stream.write(("\n" if not self.printed_plain else "") + f"    {text}\n")
            self.printed_plain, self.last_plain, self.last_printed = True, time.monotonic(), self.seen
        self.stream.flush()

    def close(self) -> None:
        """Erase the live text (terminal), so that the outcome follows the heading."""
        if self.in_place and self.shown:
            self.stream.write("\x1b8\x1b[K")
            self.stream.flush()


def interrupted(results_dir: Path | None) -> str:
    """What Ctrl-C leaves the user with: the finished runs kept, and how to resume (one wording for every
    launcher)."""
    return (f"\nharness: interrupted. Finished runs are kept in {results_dir}; run the same command again to "
            "resume (finished cells are reused, not retrained).")


def summary(results: list[dict[str, Any]], problems: list[str]) -> str:
    """``48 runs: 24 ok, 24 skipped (no GPU visible: 24)``, from a sweep's results and unreadable files."""
    counts = Counter(r["status"] for r in results)
    reasons = Counter(r.get("reason") for r in results if r["status"] != "ok")
    by_status = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    text = f"{len(results)} run{'s' if len(results) != 1 else ''}: {by_status}"
    if reasons:
        text += " (" + "; ".join(f"{reason}: {n}" for reason, n in reasons.most_common()) + ")"
    if problems:
        text += f"; {len(problems)} unreadable result files"
    return text
