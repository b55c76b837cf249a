"""The report: reads result files only (never the training code) and writes runs.csv, cells.csv,
report.md, index.html and figures. Statistics (``stats``, ``stability``), sentences (``verdicts``),
plots (``figures``) and the pages that assemble them (``pages``). ``python -m harness.report SWEEP_DIR``
rebuilds a sweep's report."""

from harness.report.pages import render_report, write_report

__all__ = ["render_report", "write_report"]
