"""The report: reads result files only (never the training code) and writes runs.csv, cells.csv,
effects.csv, report.md, index.html and figures. Statistics (``stats``, ``stability``), sentences
(``verdicts``), plots (``figures``) and the pages that assemble them (``pages``); two sweeps compared
(``compare``). ``python -m harness.report SWEEP_DIR`` rebuilds a sweep's report.

``render_report`` and ``write_report`` are loaded on first use, so that importing the pure statistics
(``harness.report.stats``) does not import the pages, the plotting library or the config schema."""

from __future__ import annotations

from typing import Any

__all__ = ["render_report", "write_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from harness.report import pages

        return getattr(pages, name)
    raise AttributeError(f"module 'harness.report' has no attribute {name!r}")
