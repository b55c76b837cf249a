"""Optimizers across workloads: performance profiles and AlgoPerf's score with exact answers on hand-made
runs tables, effects per workload (reversals said as such), and the across_workloads preset for real."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.report.profiles import (
    performance_ratios,
    problem_times,
    profile,
    profile_area,
    profile_verdict,
    spans_workloads,
)
from tests.conftest import report_of, results_under, run_harness

FACTORS = ["optimizer", "dataset"]


def runs_of(times: dict[tuple[str, str], list[float | None]]) -> pd.DataFrame:
    """One ok run per seed: ``(optimizer, dataset) -> times to target`` (None: missed the target)."""
    rows = [{"optimizer": o, "dataset": d, "seed": s, "status": "ok", "reason": None, "time_to_target_seconds": t}
            for (o, d), seeds in times.items() for s, t in enumerate(seeds)]
    return pd.DataFrame(rows)


def test_an_optimizer_fastest_everywhere_has_rho_of_one_at_tau_one_and_the_full_area():
    runs = runs_of({("adam", "a"): [1, 1, 1], ("sgd", "a"): [2, 2, 3], ("adam", "b"): [5, 5, 5],
                    ("sgd", "b"): [10, 20, 20]})
    ratios = performance_ratios(problem_times(runs, FACTORS))
    assert ratios.loc["a"].to_dict() == {"adam": 1.0, "sgd": 2.0} and ratios.loc["b"].to_dict() == {"adam": 1.0,
                                                                                                       "sgd": 4.0}
    rho = profile(ratios, [1.0, 2.0, 3.9, 4.0])
    assert rho["adam"].tolist() == [1.0, 1.0, 1.0, 1.0] and rho["sgd"].tolist() == [0.0, 0.5, 0.5, 1.0]
    area = profile_area(ratios)
    assert area["adam"] == 1.0
    assert area["sgd"] == pytest.approx(((4 - 2) / 3 + (4 - 4) / 3) / 2)  # by hand: 2/3 of a problem, then none


def test_a_miss_counts_as_never_and_a_problem_nobody_solved_counts_for_nobody():
    # c: sgd misses in 2 of 3 seeds (median: never); d: every run misses
    runs = runs_of({("adam", "c"): [4, 4, 4], ("sgd", "c"): [1, None, None],
                    ("adam", "d"): [None, None, None], ("sgd", "d"): [None, None, None]})
    times = problem_times(runs, FACTORS)
    assert times.loc["c", "sgd"] == np.inf and times.loc["c", "adam"] == 4.0
    ratios = performance_ratios(times)
    assert ratios.loc["c"].tolist() == [1.0, np.inf] and ratios.loc["d"].tolist() == [np.inf, np.inf]
    assert profile_area(ratios).to_dict() == {"adam": 0.5, "sgd": 0.0}


def test_the_verdict_counts_adam_within_the_margin_and_names_the_highest_area():
    runs = runs_of({("adam", "a"): [1.2] * 3, ("rmsprop", "a"): [1.0] * 3, ("adam", "b"): [3.0] * 3,
                    ("rmsprop", "b"): [2.0] * 3, ("adam", "c"): [1.0] * 3, ("rmsprop", "c"): [1.1] * 3})
    text, ratios = profile_verdict(runs, FACTORS)
    assert "adam is within ×1.25 of the fastest on 2 of 3;" in text  # a: ×1.2, b: ×1.5, c: ×1
    # areas by hand: adam (2.8 + 2.5 + 3) / 9 = 0.922; rmsprop (3 + 3 + 2.9) / 9 = 0.989
    assert "the highest is rmsprop (0.99; adam 0.92)" in text and len(ratios) == 3
    assert spans_workloads(["optimizer", "dataset._target_"]) and not spans_workloads(["optimizer", "transfer"])
    text, ratios = profile_verdict(runs[runs["dataset"] == "a"], FACTORS)  # one problem: no profile
    assert text == "" and ratios.empty


def test_the_report_shows_the_profiles_of_a_sweep_over_two_datasets(tmp_path):
    from harness.report.pages import render_report
    from harness.report.synthetic import synthetic_results

    results = []
    for dataset, slowdown in (("digits", 1.0), ("wine", 2.0)):
        for result in synthetic_results(96, seed=1):
            factors = {**result["factors"], "dataset": dataset}
            time = result["time_to_target_seconds"]
            results.append({**result, "run_key": f"{dataset}{result['run_key']}", "dataset": dataset,
                            "factors": factors, "time_to_target_seconds": time * slowdown if time else None})
    index = render_report(results, [], "synthetic", "two_datasets", tmp_path / "report")
    page = (tmp_path / "report" / "report.md").read_text()
    assert "## Optimizers across workloads" in page and "AlgoPerf's score" in page
    assert (tmp_path / "report" / "figures" / "profiles.png").is_file() and index.is_file()


def _two_workloads(effects: dict[str, float], seeds: int = 8, noise: float = 0.02, draw: int = 0) -> pd.DataFrame:
    """transfer on/off on two datasets; ``effects``: transfer's true ratio of time to target on each; lognormal
    noise of ``noise``, drawn from the generator seeded by ``draw``."""
    rng = np.random.default_rng(draw)
    rows = []
    for dataset, ratio in effects.items():
        for seed in range(seeds):
            for transfer, factor in (("off", 1.0), ("on", ratio)):
                rows.append({"optimizer": "adam", "transfer": transfer, "early_stopping": "off", "device": "cpu",
                             "dataset": dataset, "seed": seed, "status": "ok", "reason": None,
                             "time_to_target_seconds": 10.0 * factor * float(np.exp(rng.normal(0, noise)))})
    return pd.DataFrame(rows)


FACTORS_AND_DATASET = ["optimizer", "transfer", "early_stopping", "device", "dataset"]


def test_a_reversal_across_workloads_is_said_as_such_never_as_no_effect():
    from harness.report.stats import paired_effect
    from harness.report.workloads import across_workloads

    runs = _two_workloads({"digits": 0.5, "wine": 2.0})
    pooled = paired_effect(runs, "transfer", "on", "off", metric="time_to_target_seconds", kind="ratio",
                           factors=FACTORS_AND_DATASET)
    assert 0.5 < pooled.estimate < 2.0  # pooled over both, the two effects average out
    (comparison,) = across_workloads(runs, FACTORS_AND_DATASET)
    assert (comparison.factor, comparison.level, comparison.baseline) == ("transfer", "on", "off")
    assert comparison.effects["dataset=digits"].estimate == pytest.approx(0.5, rel=0.05)
    assert comparison.effects["dataset=wine"].estimate == pytest.approx(2.0, rel=0.05)
    assert comparison.statement().startswith("it reverses across workloads: faster beyond noise on dataset=digits, "
                                             "slower beyond noise on dataset=wine")


def test_an_effect_that_agrees_and_one_that_no_workload_can_tell():
    from harness.report.workloads import across_workloads

    (agrees,) = across_workloads(_two_workloads({"digits": 0.5, "wine": 0.5}), FACTORS_AND_DATASET)
    assert agrees.statement() == "it agrees across workloads: faster beyond noise on every one"
    (few,) = across_workloads(_two_workloads({"digits": 0.5, "wine": 2.0}, seeds=3), FACTORS_AND_DATASET)
    assert all(e.too_few for e in few.effects.values())
    assert few.statement().startswith("no workload tells it from noise")
    assert across_workloads(_two_workloads({"digits": 0.5}), FACTORS_AND_DATASET) == []  # one workload: nothing


def test_different_sizes_in_the_same_direction_are_a_difference_not_a_reversal():
    from harness.report.workloads import across_workloads

    (differs,) = across_workloads(_two_workloads({"digits": 0.3, "wine": 0.8}, seeds=12), FACTORS_AND_DATASET)
    assert differs.spread_p <= 0.05
    assert differs.statement().startswith("it agrees in direction (faster beyond noise on every one), but its size "
                                          "differs between workloads beyond noise (spread test, Holm-adjusted p = ")


def test_on_no_effect_anywhere_a_workload_is_rarely_called_and_a_reversal_almost_never():
    from harness.report.workloads import across_workloads

    sims, called, reversed_ = 60, 0, 0
    for i in range(sims):
        runs = _two_workloads({"digits": 1.0, "wine": 1.0}, seeds=8, noise=0.1, draw=100 + i)
        (comparison,) = across_workloads(runs, FACTORS_AND_DATASET)
        called += any(e.distinguishable for e in comparison.effects.values())
        reversed_ += comparison.statement().startswith("it reverses")
    assert called <= 0.05 * sims + 2  # Holm over the two workloads: family-wise 5 % (+2 for 60 draws' chance)
    assert reversed_ <= 1


def test_the_across_workloads_preset_runs_each_workload_to_its_own_target(tmp_path):
    # the preset, smaller: two optimizers, one seed, 3 epochs (the command line's sweep wins over the preset's)
    done = run_harness(["-m", "experiment=across_workloads", "optimizer=adam,sgd", "seed=0", "epochs=3",
                        "tracking=disabled", "report=false"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = results_under(tmp_path / "multirun")
    assert len(runs) == 8 and all(r["status"] == "ok" for r in runs), [r["reason"] for r in runs]
    targets = {(r["config"]["dataset"].get("_target_") or r["dataset"], str(r["config"]["model"].get("conv_filters"))):
               (r["target_metric"], r["target_value"]) for r in runs}
    assert targets == {("digits", "[16, 32]"): ("val_accuracy", 0.9), ("digits", "[32, 64, 64]"): ("val_accuracy", 0.9),
                       ("harness.examples.tabular.wine", "None"): ("val_accuracy", 0.9),
                       ("harness.examples.tabular.diabetes", "None"): ("val_mae", 0.65)}
    page = (report_of(done.stdout, tmp_path) / "report.md").read_text()
    assert "## Optimizers across workloads" in page and "Across 4 problems" in page
    assert "## Effects per workload" in page and "optimizer=sgd vs adam, time to target: " in page
