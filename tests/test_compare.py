"""Did it get faster? Two sweeps compared (#23): known answers on synthetic result files (a slowdown of
×1.3 caught, no change found in noise), one-line errors, and two real sweeps with one setting changed."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.report import before_after
from harness.report.synthetic import synthetic_results
from harness.result_files import write_json_atomic
from tests.conftest import FAST, report_of, results_under, run_harness


def write_sweep(folder: Path, results: list[dict]) -> Path:
    for i, result in enumerate(results):
        write_json_atomic(folder / str(i) / "result.json", result)
    return folder


def slowed(results: list[dict], factor: float) -> list[dict]:
    """The same runs, every epoch ``factor`` times as long (as after a regression), on a newer Keras."""
    changed = copy.deepcopy(results)
    for result in changed:
        for key in ("median_epoch_seconds", "train_seconds", "first_epoch_seconds"):
            result[key] *= factor
        result["environment"]["keras"] = "3.99"
    return changed


def run_compare(tmp_path: Path, before: Path, after: Path, *more: str, capsys) -> tuple[int, str, str]:
    code = before_after.main([str(before), str(after), "--out", str(tmp_path / "out"), *more])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_slowdown_is_caught_named_and_fails_the_gate(tmp_path, capsys):
    before = write_sweep(tmp_path / "before", synthetic_results(96, seed=0))
    after = write_sweep(tmp_path / "after", slowed(synthetic_results(96, seed=0), 1.3))
    code, out, err = run_compare(tmp_path, before, after, "--fail-if-slower", "5%", capsys=capsys)
    assert code == 1, out + err
    assert "changed: keras 3 -> 3.99" in out
    assert "overall steady epoch time: ×1.30 (95% CI ×1.30 to ×1.30, 96 pairs), slower beyond noise" in out
    assert "slower beyond noise by more than 5% in steady epoch time: overall ×1.30" in err
    table = pd.read_csv(tmp_path / "out" / "comparison.csv")
    assert list(table["scope"][:4]) == ["overall"] * 4 and table["metric"][0] == "median_epoch_seconds"
    assert (tmp_path / "out" / "figures" / "cells.png").is_file() and (tmp_path / "out" / "index.html").is_file()
    # ×1.04 is slower, and beyond noise here (no noise at all), but within a 5 % gate
    mild = write_sweep(tmp_path / "mild", slowed(synthetic_results(96, seed=0), 1.04))
    assert run_compare(tmp_path, before, mild, "--fail-if-slower", "5%", capsys=capsys)[0] == 0


def test_the_gate_judges_the_metric_asked_for(tmp_path, capsys):
    # after: compilation three times as long (train seconds up) and convergence slower (time to target x1.3),
    # while every steady epoch is as before: each gate sees what it judges, and only that
    before = write_sweep(tmp_path / "before", synthetic_results(96, seed=0))
    changed = synthetic_results(96, seed=0)
    for result in changed:
        result["train_seconds"] += 2 * result["first_epoch_seconds"]
        result["first_epoch_seconds"] *= 3
        if result["time_to_target_seconds"] is not None:
            result["time_to_target_seconds"] *= 1.3
    after = write_sweep(tmp_path / "after", changed)
    assert run_compare(tmp_path, before, after, "--fail-if-slower", "5%", capsys=capsys)[0] == 0  # steady
    code, _, err = run_compare(tmp_path, before, after, "--fail-if-slower", "5%", "--metric", "train", capsys=capsys)
    assert code == 1 and "slower beyond noise by more than 5% in train seconds: overall ×" in err, err
    code, _, err = run_compare(tmp_path, before, after, "--fail-if-slower", "5%", "--metric", "target", capsys=capsys)
    assert code == 1 and "slower beyond noise by more than 5% in time to target: overall ×1.30" in err, err


def test_two_sweeps_of_noise_compare_as_unchanged():
    # Known answer: nothing changed but the noise (another seed of the synthetic timings, 10 % lognormal).
    # Over 30 such comparisons the overall steady epoch time is called changed at most in a few.
    called = 0
    for seed in range(30):
        before = before_after.Side("before", *_frames(synthetic_results(96, seed=seed)))
        after = before_after.Side("after", *_frames(synthetic_results(96, seed=100 + seed)))
        matching = before_after.match(before, after)
        assert matching.changed == {}
        pairs, alone = before_after.paired_runs(before, after, matching)
        assert len(pairs) == 96 and alone == []
        table = before_after.comparison_table(pairs)
        cells = table[table["scope"] == "cell"]
        assert not cells["distinguishable"].any()  # 2 seeds per cell: too few to tell, never a verdict
        overall = table[(table["scope"] == "overall") & (table["metric"] == "median_epoch_seconds")].iloc[0]
        called += bool(overall["distinguishable"])
        assert before_after.slower_beyond(table, 0.05).empty
    assert called <= 3


def _frames(results: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    from harness.report.tables import factor_columns, results_frame

    factors = factor_columns(results)
    return results_frame(results), pd.DataFrame([{**{f: r["factors"].get(f) for f in factors}, "seed": r["seed"]}
                                                 for r in results]), factors


def test_the_gate_threshold_reads_percentages_and_refuses_a_bare_number_above_one(tmp_path, capsys):
    assert before_after.parse_threshold("5%") == pytest.approx(0.05) and before_after.parse_threshold("0.05") == 0.05
    assert before_after.parse_threshold("1") == 1.0  # a fraction: 100 %
    sweep = write_sweep(tmp_path / "before", synthetic_results(8))
    for text, said in (("5", "--fail-if-slower 5 would mean 500% slower; write 5% for 5 percent"),
                       ("fast", "--fail-if-slower fast is invalid; valid: a percentage such as 5% (or 0.05)")):
        assert before_after.main([str(sweep), str(sweep), "--fail-if-slower", text]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert said in line, line


@pytest.mark.parametrize(("make_after", "said"), [
    (lambda rs: [], "no ok results to compare"),
    (lambda rs: [{**r, "seed": r["seed"] + 10} for r in rs], "no cell and seed is in both sweeps"),
    (lambda rs: [{**r, "config": {**r["config"], "target": {"metric": "val_accuracy", "value": 0.8}}} for r in rs],
     "the sweeps measure different things: target.value is 0.9 before and 0.8 after"),
])
def test_what_cannot_be_compared_is_one_line(tmp_path, capsys, make_after, said):
    results = [{**r, "config": {**r["config"], "target": {"metric": "val_accuracy", "value": 0.9}}}
               for r in synthetic_results(48)]
    before = write_sweep(tmp_path / "before", results)
    after = write_sweep(tmp_path / "after", make_after(results))
    (tmp_path / "after").mkdir(exist_ok=True)
    code, out, err = run_compare(tmp_path, before, after, capsys=capsys)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("harness.compare: error: ") and said in line, line


def test_two_real_sweeps_with_one_setting_changed(tmp_path, capsys):
    grid = ["-m", *FAST, "optimizer=adam,sgd", "seed=0,1,2"]
    before = run_harness([*grid, "report=false", f"hydra.sweep.dir={tmp_path / 'before'}"], cwd=tmp_path)
    after = run_harness([*grid, "steps_per_execution=4", "report=false", f"hydra.sweep.dir={tmp_path / 'after'}"],
                        cwd=tmp_path)
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert len(results_under(tmp_path / "after")) == 6 and "reused" not in after.stdout  # another run key: trained
    runs_csv = report_of(before.stdout, tmp_path) / "runs.csv"
    code, out, err = run_compare(tmp_path, tmp_path / "before", tmp_path / "after", capsys=capsys)
    assert code == 0, err
    assert "changed: steps_per_execution 1 -> 4" in out  # the one difference, named
    assert "overall steady epoch time: ×" in out and "6 pairs" in out  # 2 cells x 3 seeds, with an interval
    table = pd.read_csv(tmp_path / "out" / "comparison.csv")
    cells = table[table["scope"] == "cell"]
    assert sorted(set(cells["cell"])) == ["optimizer=adam", "optimizer=sgd"]
    assert set(cells.loc[cells["metric"] == "median_epoch_seconds", "pairs"]) == {3}  # 3 seeds per cell
    # the same results: the test accuracy is unchanged by steps per execution (it computes the same thing)
    overall = table[table["scope"] == "overall"].set_index("metric")
    assert overall.loc["test_accuracy", "estimate"] == 0.0
    assert np.isfinite(overall.loc["median_epoch_seconds", "low"])
    # the same runs swept in one sweep (every cell reused from the two above): its own effect of the setting
    # on train seconds is the comparison's overall one, interval, pairs and verdict alike
    both = run_harness([*grid, "steps_per_execution=1,4", "report=false"], cwd=tmp_path)
    assert both.returncode == 0 and both.stdout.count("reused from sweep") == 12, both.stdout
    effects = pd.read_csv(report_of(both.stdout, tmp_path) / "effects.csv")
    inside = effects[(effects["factor"] == "steps_per_execution") & (effects["metric"] == "train_seconds")].iloc[0]
    across = overall.loc["train_seconds"]
    assert (inside["estimate"], inside["low"], inside["high"], inside["pairs"]) == pytest.approx(
        (across["estimate"], across["low"], across["high"], across["pairs"]))
    assert inside["p_value"] == pytest.approx(across["p_value"])
    # a report's runs.csv serves as a side too: the same 6 pairs (it records the factors, not every setting)
    assert before_after.main([str(runs_csv), str(tmp_path / "after"), "--out", str(tmp_path / "csv")]) == 0
    assert "6 pairs" in capsys.readouterr().out


def test_a_gate_that_could_not_see_its_threshold_says_so_and_can_be_made_to_fail(tmp_path, capsys):
    # As a new user tried it: 6 pairs, the second sweep ×1.6 slower. The smallest p-value of 6 pairs
    # (2/64) judged with the other overall comparisons (Holm over 4) is 0.125: no gate could fail.
    before = write_sweep(tmp_path / "before", synthetic_results(6, seed=0))
    after = write_sweep(tmp_path / "after", slowed(synthetic_results(6, seed=1), 1.6))
    code, out, err = run_compare(tmp_path, before, after, "--fail-if-slower", "5%", capsys=capsys)
    assert code == 0, out + err
    assert ("warning: this comparison could not fail whatever happened: the smallest p-value of 6 pairs, 0.031, "
            "judged with 4 comparisons (Holm) is 0.125, above 0.05; run more seeds") in err
    assert "at this many pairs in this family no change could be called" in out
    strict = run_compare(tmp_path, before, after, "--fail-if-slower", "5%", "--require-power", capsys=capsys)
    assert strict[0] == 1 and "failing (--require-power)" in strict[2]
    # 12 pairs of noise could see about a fifth, not 5 %: said with the size it could see
    before, after = (write_sweep(tmp_path / f"{side}12", synthetic_results(12, seed=seed))
                     for side, seed in (("before", 0), ("after", 1)))
    code, out, err = run_compare(tmp_path, before, after, "--fail-if-slower", "5%", capsys=capsys)
    table = pd.read_csv(tmp_path / "out" / "comparison.csv")
    overall = table[(table["scope"] == "overall") & (table["metric"] == before_after.GATED)]
    smallest = overall["detectable_slower"].item()
    assert code == 0 and 1.1 < smallest < 1.4
    assert (f"cannot see a 5% slowdown in steady epoch time: at this noise its 12 pairs could see ×{smallest:.2f} "
            "or more") in err
    assert f"×{smallest:.2f} or slower" in out
    # 96 pairs at the same noise could see 5 %: no warning
    before, after = (write_sweep(tmp_path / f"{side}96", synthetic_results(96, seed=seed))
                     for side, seed in (("before", 0), ("after", 1)))
    assert run_compare(tmp_path, before, after, "--fail-if-slower", "5%", capsys=capsys)[2] == ""


def test_the_noise_within_each_side_is_said_and_a_shift_with_nothing_changed_is_called_drift(tmp_path, capsys):
    # Known answer: one cell, three seeds at log times 0, +0.1, -0.1 (scaled MAD 1.4826 × 0.1) before, and
    # the same ×1.5 after.
    pairs = pd.DataFrame({"cell": ["a"] * 3, "median_epoch_seconds_before": np.exp([0.0, 0.1, -0.1]),
                          "median_epoch_seconds_after": 1.5 * np.exp([0.0, 0.1, -0.1])})
    assert before_after.spread_within_cells(pairs, "before") == pytest.approx(1.482602 * 0.1, rel=1e-5)
    assert math.isnan(before_after.spread_within_cells(pairs.head(1), "before"))  # one seed: no spread to measure
    # Two sweeps of the same runs, the second ×1.3 slower with nothing recorded changed: the machine drifted.
    runs = synthetic_results(96, seed=0)
    drifted = copy.deepcopy(runs)
    for result in drifted:
        result["median_epoch_seconds"] *= 1.3
    code, out, _ = run_compare(tmp_path, write_sweep(tmp_path / "b", runs), write_sweep(tmp_path / "a", drifted),
                               capsys=capsys)
    assert code == 0 and "changed: nothing that the results record" in out
    assert "noise: runs of one cell differ by" in out and "warning: nothing that the results record changed, yet " \
        "steady epoch time moved ×1.30 beyond noise: the machine's state most likely differed" in out
    # the same shift with a new Keras recorded is no drift warning: something changed
    code, out, _ = run_compare(tmp_path, write_sweep(tmp_path / "b", runs),
                               write_sweep(tmp_path / "k", slowed(runs, 1.3)), capsys=capsys)
    assert "changed: keras 3 -> 3.99" in out and "the machine's state" not in out
