"""Is the machine steady enough? The stability statistics with exact answers, and the report's warnings
on hand-built tables with an injected drift, an unstable cell and tiny steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.report.pages import measurement_section
from harness.report.stability import bootstrap_slope, median_step_seconds, repeat_spread, speed_drift
from tests.conftest import ARTICLE

CELL = {"optimizer": "adam", "transfer": "off", "early_stopping": "off", "device": "cpu"}


def runs_table(epoch_seconds: list[list[float]], started_at: list[list[float]], step: float = 0.02) -> pd.DataFrame:
    """One row per run: cell ``i`` (optimizer ``o<i>``) has the given steady epoch times and start times."""
    rows = []
    for i, (times, starts) in enumerate(zip(epoch_seconds, started_at, strict=True)):
        for seed, (seconds, start) in enumerate(zip(times, starts, strict=True)):
            rows.append({**CELL, "optimizer": f"o{i}", "seed": seed, "status": "ok", "median_epoch_seconds": seconds,
                         "started_at": start, "median_step_seconds": step})
    return pd.DataFrame(rows)


def test_repeat_spread_is_the_coefficient_of_variation_per_cell():
    runs = runs_table([[1.0, 1.2], [2.0, 2.0, 2.0], [5.0]], [[0, 1], [2, 3, 4], [5]])
    table = repeat_spread(runs, cells=ARTICLE)
    assert list(table["optimizer"]) == ["o0", "o1"]  # largest first; one repeat: no spread, not listed
    assert table["cv"].iloc[0] == pytest.approx(np.sqrt(0.02) / 1.1)
    assert table["cv"].iloc[1] == 0.0
    assert list(table["repeats"]) == [2, 3]


def test_bootstrap_slope_of_a_line_is_exact():
    x = np.arange(10.0)
    slope, low, high = bootstrap_slope(x, 3 * x + 1)
    assert slope == pytest.approx(3.0) and low == pytest.approx(3.0) and high == pytest.approx(3.0)
    assert all(np.isnan(bootstrap_slope(np.ones(5), x[:5])))  # no spread in x: no slope
    assert all(np.isnan(bootstrap_slope(x[:2], x[:2])))


def test_speed_drift_finds_an_injected_drift_and_none_where_there_is_none():
    starts = [[0, 120, 240, 360, 480, 600], [60, 180, 300, 420, 540, 599]]
    # Both cells slow down by 2 % of their median per minute; cell o1 is twice as slow as o0 throughout.
    drifting = [[1 + 0.02 * (t - 300) / 60 for t in cell] for cell in starts]
    runs = runs_table([drifting[0], [2 * v for v in drifting[1]]], starts)
    drift = speed_drift(runs, cells=ARTICLE)
    assert drift.span_minutes == pytest.approx(10.0) and drift.runs == 12
    assert drift.change == pytest.approx(0.2, rel=0.05) and drift.distinguishable

    steady_times = [[1.0, 1.1, 0.9, 1.0, 1.1, 0.9], [2.0, 1.8, 2.2, 2.0, 1.8, 2.2]]
    steady = speed_drift(runs_table(steady_times, starts), cells=ARTICLE)
    assert not steady.distinguishable
    assert speed_drift(runs_table([[1.0, 1.0]], [[0, 1]]), cells=ARTICLE) is None  # too few runs


def test_report_warns_about_drift_unstable_cells_and_tiny_steps():
    starts = [[0, 120, 240, 360, 480, 600], [60, 180, 300, 420, 540, 599]]
    drifting = [[1 + 0.04 * (t - 300) / 60 for t in cell] for cell in starts]  # 4 % per minute
    section = measurement_section(runs_table(drifting, starts, step=0.001), factors=ARTICLE)
    text = "\n".join(section.items)
    assert "Warning: the machine's speed drifted during the sweep" in text and "changed by +39%" in text
    assert "Warning: the timings may be unstable" in text and "optimizer=o0 transfer=off" in text
    assert "Warning: this workload is too small to say anything about devices" in text and "1.0 ms" in text
    assert section.table is not None and len(section.table) == 2

    # a small drift that is certain (no noise at all: its interval is tight) stays below the size that
    # matters: the warning needs both halves, beyond noise *and* over 5 % (a check on the interval alone
    # would warn here)
    small = [[1 + 0.03 * (t - 300) / 600 for t in cell] for cell in starts]
    certain = speed_drift(runs_table(small, starts), cells=ARTICLE)
    assert certain.distinguishable and certain.change == pytest.approx(0.03, rel=0.1) and certain.high < 0.05
    quiet = measurement_section(runs_table(small, starts), factors=ARTICLE)
    assert not any("drifted" in item for item in quiet.items) and any(
        item.startswith("Drift check: steady epoch times of identical cells changed by +3%") for item in quiet.items)

    calm = measurement_section(runs_table([[1.0, 1.01, 0.99, 1.0], [2.0, 2.02, 1.98, 2.0]],
                                          [[0, 1, 2, 3], [4, 5, 6, 7]]), factors=ARTICLE)
    assert not any(item.startswith("Warning") for item in calm.items), calm.items
    assert any("varies by at most 1%" in item for item in calm.items)


def test_old_results_without_step_times_give_no_step_warning():
    runs = runs_table([[1.0, 1.0]], [[0, 1]]).assign(median_step_seconds=None)
    assert median_step_seconds(runs) is None


def test_runs_that_overlapped_on_one_host_are_found_whatever_the_engine_recorded():
    from harness.report.stability import overlapping_runs

    #           a: 0-10   b: 1-5 (inside a)   c: 6-8 (inside a)   d: 12-14 (alone)   e: 13-20 on another host
    runs = pd.DataFrame({"hostname": ["h1", "h1", "h1", "h1", "h2", "h1"],
                         "started_at": [0.0, 1.0, 6.0, 12.0, 13.0, 2.0],
                         "ended_at": [10.0, 5.0, 8.0, 14.0, 20.0, 3.0],
                         "reused": [False, False, False, False, False, True]})  # f: reused, its times not ours
    assert list(overlapping_runs(runs)) == [True, True, True, False, False, False]
    chained = pd.DataFrame({"hostname": ["h"] * 3, "started_at": [0.0, 2.0, 11.0], "ended_at": [5.0, 12.0, 13.0]})
    assert list(overlapping_runs(chained)) == [True, True, True]  # b overlaps a, c overlaps b (not a)
    back_to_back = pd.DataFrame({"hostname": ["h"] * 2, "started_at": [0.0, 5.0], "ended_at": [5.0, 9.0]})
    assert not overlapping_runs(back_to_back).any()

    # in the report: runs that each recorded running alone (parallel_jobs 1) but overlapped are warned about
    table = runs_table([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], [[0, 10, 20], [5, 30, 40]])
    table = table.assign(ended_at=table["started_at"] + 8, hostname="h", parallel_jobs=1)
    warned = [item for item in measurement_section(table, factors=ARTICLE).items if "overlapped in time" in item]
    assert warned == ["Warning: 3 runs overlapped in time on the same host (seen from their start and end times), "
                      "although each recorded running alone: they shared the machine, and their timings with it."]
    apart = table.assign(ended_at=table["started_at"] + 4)
    assert not any("overlapped" in item for item in measurement_section(apart, factors=ARTICLE).items)
