"""Result files on disk: written atomically (temp file, fsync, rename), so that a crash never leaves a
half-written result behind; read back with a check, so that readers skip (and report) any file that is
not a result; and the results store (``<results_dir>/<run_key>.json``) that later sweeps reuse."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.outcomes import STATUSES
from harness.results import RESULT_FILE, Result, result_problems, upgraded


def write_json_atomic(path: Path, data: dict[str, Any] | Result) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one. An
    ``OSError`` names ``path`` (a full disk fails inside ``write``, whose error names no file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, default=str, allow_nan=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None:
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_result(path: Path) -> Result:
    """Read one result file, as today's contract has it (``upgraded``) and checked against it
    (``result_problems``); raises ``ValueError`` naming what is wrong if it is not a valid result, so that a
    reader fails loudly instead of showing an empty column."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        raise ValueError(f"{path}: not a result (no valid 'status')")
    data = upgraded(data)
    problems = result_problems(data)
    if problems:
        raise ValueError(f"{path}: not a result ({'; '.join(problems)})")
    return data


def write_result(path: Path, result: Result) -> None:
    """Write a result file atomically, checked against the contract first: a result the contract does not
    describe is a bug, stopped where it is made rather than where it is read. Raises ``ValueError``."""
    problems = result_problems(result)
    if problems:
        raise ValueError(f"{path}: not a valid result ({'; '.join(problems)})")
    write_json_atomic(path, result)


def load_stored(results_dir: Path, key: str) -> Result | None:
    """The ``ok`` result stored under ``key`` in the results store, or ``None`` (absent, unreadable,
    or not ok: failed and interrupted runs are retried, skipped ones re-checked)."""
    try:
        result = read_result(Path(results_dir) / f"{key}.json")
    except (OSError, ValueError):
        return None
    return result if result["status"] == "ok" else None


def store_result(results_dir: Path, result: Result) -> None:
    """Keep an ``ok`` result in the store (``<results_dir>/<run_key>.json``) for later sweeps."""
    write_result(Path(results_dir) / f"{result['run_key']}.json", result)


def collect_results(folder: Path) -> tuple[list[Result], list[str]]:
    """All results under ``folder`` (searched recursively) and a list of problems with unreadable ones."""
    results, problems = [], []
    for path in sorted(Path(folder).rglob(RESULT_FILE)):
        try:
            results.append(read_result(path))
        except (OSError, ValueError) as err:
            problems.append(f"{path}: unreadable result ({err})")
    return results, problems


PREFERENCE = {"ok": 0, "skipped": 1, "failed": 2, "interrupted": 3}


def one_per_cell(results: list[Result]) -> tuple[list[Result], int]:
    """Keep one result per run key (an ``ok`` one if any; among equals the last given), so that a
    folder holding a killed sweep and its resumed re-run counts each cell once. Returns the kept
    results, in their first order, and how many were dropped."""
    best: dict[str, tuple[int, int]] = {}
    for index, result in enumerate(results):
        key = result.get("run_key") or f"#{index}"
        rank = PREFERENCE.get(result.get("status"), 9)
        if key not in best or rank <= best[key][0]:
            best[key] = (rank, index)
    keep = sorted(index for _, index in best.values())
    return [results[i] for i in keep], len(results) - len(keep)
