"""Benchmark (not a test): how long the report takes for 1,000 and 10,000 runs.

    python benchmarks/report_speed.py [N ...] [--out DIR]

Builds synthetic result records (``harness.report.synthetic``, shaped like real result files) and times
``harness.report.render_report`` on them: the tables, statistics (exact intervals), figures and files.
Target: 1,000 runs in under 10 s on 2 cores. What it prints also goes to ``--out``/output.txt, which the
README quotes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from transcript import add_out_option, transcript

from harness.report import render_report
from harness.report.synthetic import synthetic_results


def time_report(n_runs: int) -> float:
    results = synthetic_results(n_runs)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        render_report(results, [], "synthetic", f"synthetic {n_runs}", Path(folder))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000], help="runs per report")
    add_out_option(parser, "report_speed")
    args = parser.parse_args()
    with transcript(args.out):
        print(f"report generation on {os.cpu_count()} cores")
        time_report(48)  # warm-up: imports, font cache
        for n_runs in args.sizes:
            print(f"{n_runs:>6} runs: {time_report(n_runs):6.1f} s", flush=True)


if __name__ == "__main__":
    main()
