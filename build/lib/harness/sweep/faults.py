"""Faults of the machine, said plainly: a full disk ends a sweep with one line, never with a traceback.

Every finished run is already safe when the disk fills (a run's ``ok`` result is in the results store
before its ``result.json`` appears), so the sweep can stop at the first write that fails and say what
the user needs: what could not be written, how many runs are kept, that re-running the same command
resumes, and the report of what finished where it can still be written. The disk can fill at any write:
Hydra's own (``multirun.yaml``, a job's ``.hydra/``), the sweep's (``sweep.json``, ``run_spec.json``) or a
run's; ``stop_when_disk_full`` is put around each of those places (the sweep's callbacks, the harness
sweeper, each cell).
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from omegaconf import DictConfig

from harness.result_files import collect_results
from harness.sweep import progress

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
"""The errors of a filesystem with no room left: no space, or the user's quota reached."""


@dataclass(frozen=True)
class SweepPlaces:
    """Where a sweep writes: its folder, the results store and the reports' folder, and its name."""

    sweep_dir: Path
    results_dir: Path
    reports_dir: Path
    sweep_name: str


def sweep_places(config: DictConfig) -> SweepPlaces:
    """The places of the multirun whose composed (master) Hydra ``config`` this is; its name as the sweep
    recorded it when it started (``progress.sweep_name``)."""
    from hydra.utils import to_absolute_path

    sweep_dir = Path(config.hydra.sweep.dir)
    return SweepPlaces(sweep_dir, Path(to_absolute_path(str(config.results_dir))), Path(str(config.reports_dir)),
                       progress.sweep_name(sweep_dir) or str(config.sweep_name))


def disk_full(err: BaseException | None) -> OSError | None:
    """The "no space left" error in ``err`` or in what caused it (Hydra wraps a job's errors), else ``None``."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            return err
        err = err.__cause__ or err.__context__
    return None


def stop_for_full_disk(err: OSError, places: SweepPlaces) -> NoReturn:
    """Print one ``harness: error:`` line (what could not be written, the runs kept, how to resume), then
    the report of the finished runs if it can still be written; exit 1."""
    results, problems = collect_results(places.sweep_dir) if places.sweep_dir.is_dir() else ([], [])
    finished = [r for r in results if r.get("status") == "ok"]
    what = f"could not write {err.filename}" if err.filename else f"a write under {places.sweep_dir} failed"
    report = _report(results, problems, places)
    print(f"harness: error: no space left on the disk ({what}: {err.strerror or err}); {len(finished)} finished "
          f"run{'s' if len(finished) != 1 else ''} of this sweep {'are' if len(finished) != 1 else 'is'} kept "
          f"(every finished run is in the results store, {places.results_dir}); free some space and run the same "
          f"command again to resume: finished cells are reused, not retrained. {report}", file=sys.stderr)
    raise SystemExit(1)


def _report(results: list, problems: list[str], places: SweepPlaces) -> str:
    """The report of ``results`` written where it can be, and a sentence saying where (or why not)."""
    if not results:
        return "No run of this sweep finished, so there is no report."
    from harness.report.pages import render_report, sweep_label

    try:
        index = render_report(results, problems, sweep_label(places.sweep_dir), places.sweep_name,
                              places.reports_dir / places.sweep_name)
    except Exception as failure:  # most likely the same full disk; the runs are safe either way
        return f"The report of the finished runs could not be written either ({type(failure).__name__})."
    return f"Report of the finished runs: {index.resolve()}"


@contextmanager
def stop_when_disk_full(places: SweepPlaces, line_open: bool = False) -> Iterator[None]:
    """Around work that writes: a full disk becomes ``stop_for_full_disk``; any other error passes.
    ``line_open``: a progress line waits for its end on standard output (ended first)."""
    try:
        yield
    except Exception as err:
        full = disk_full(err)
        if full is None:
            raise
        if line_open:
            print("stopped: the disk is full", flush=True)
        stop_for_full_disk(full, places)
