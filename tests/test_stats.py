"""Statistics on small hand-built tables with exact expected values (harness.report.stats, harness.report.verdicts)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.report import stats, verdicts


def run(optimizer="adam", transfer="off", early_stopping="off", device="cpu", seed=0, status="ok", reason=None,
        train_seconds=1.0, time_to_target_seconds=1.0, test_accuracy=0.9, price_per_hour=None, target=0.9,
        **more):
    return dict(optimizer=optimizer, transfer=transfer, early_stopping=early_stopping, device=device, seed=seed,
                status=status, reason=reason, train_seconds=train_seconds, test_accuracy=test_accuracy,
                time_to_target_seconds=time_to_target_seconds, price_per_hour=price_per_hour, target_accuracy=target,
                **more)


def table(*rows):
    return pd.DataFrame(list(rows))


def test_bootstrap_ci_of_constant_values_is_that_value():
    assert stats.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_bootstrap_ci_of_two_values_spans_them():
    # Resampled medians of [1, 2] are 1, 1.5 or 2 (probabilities 1/4, 1/2, 1/4): the 2.5% and 97.5%
    # quantiles are the extremes.
    assert stats.bootstrap_ci([1.0, 2.0]) == (1.0, 2.0)


def test_bootstrap_ci_with_one_value_is_unknown():
    low, high = stats.bootstrap_ci([3.0, float("nan")])
    assert math.isnan(low) and math.isnan(high)


def test_bootstrap_ci_is_reproducible_and_agrees_with_scipy():
    from scipy.stats import bootstrap

    data = np.random.default_rng(1).normal(10.0, 2.0, size=60)
    ours = stats.bootstrap_ci(data, resamples=4000, seed=3)
    assert ours == stats.bootstrap_ci(data, resamples=4000, seed=3)
    theirs = bootstrap((data,), np.median, method="percentile", n_resamples=4000, random_state=3).confidence_interval
    assert ours[0] == pytest.approx(theirs.low, abs=0.25) and ours[1] == pytest.approx(theirs.high, abs=0.25)
    assert ours[0] < np.median(data) < ours[1]


def test_paired_effect_pairs_by_other_factors_and_seed():
    runs = table(
        run("adam", "on", train_seconds=2.0), run("adam", "off", train_seconds=4.0),
        run("sgd", "on", train_seconds=3.0), run("sgd", "off", train_seconds=3.0),
        run("rmsprop", "on", train_seconds=9.0),  # no twin: not paired
        run("nag", "on", status="failed"), run("nag", "off", train_seconds=1.0),  # failed: not paired
    )
    effect = stats.paired_effect(runs, "transfer", "on", "off", "train_seconds", "ratio")
    assert (effect.estimate, effect.pairs) == (0.75, 2)
    assert (effect.low, effect.high) == (0.5, 1.0)
    assert not effect.distinguishable  # the CI reaches 1: no change is possible
    difference = stats.paired_effect(runs, "transfer", "on", "off", "train_seconds", "difference")
    assert difference.estimate == -1.0


def test_paired_effect_drops_pairs_that_never_reached_the_target():
    runs = table(run("adam", "on", time_to_target_seconds=1.0), run("adam", "off", time_to_target_seconds=None),
                 run("sgd", "on", time_to_target_seconds=1.0), run("sgd", "off", time_to_target_seconds=4.0))
    effect = stats.paired_effect(runs, "transfer", "on", "off", "time_to_target_seconds", "ratio")
    assert (effect.estimate, effect.pairs) == (0.25, 1)


def test_distinguishable_when_the_ci_excludes_no_change():
    runs = table(*[run("adam", level, seed=s, train_seconds=t) for s in range(4)
                   for level, t in (("on", 1.0 + s / 10), ("off", 2.0 + s / 10))])
    effect = stats.paired_effect(runs, "transfer", "on", "off", "train_seconds", "ratio")
    assert effect.pairs == 4 and effect.high < 1 and effect.distinguishable


def test_factor_summary_medians_over_ok_runs():
    runs = table(run("adam", train_seconds=1.0, test_accuracy=0.8), run("adam", seed=1, train_seconds=3.0,
                 test_accuracy=1.0, time_to_target_seconds=None), run("sgd", status="failed", train_seconds=None))
    summary = stats.factor_summary(runs, "optimizer").set_index("optimizer")
    assert summary.loc["adam", "ok_runs"] == 2 and summary.loc["sgd", "ok_runs"] == 0
    assert summary.loc["adam", "median_train_seconds"] == 2.0
    assert summary.loc["adam", "median_test_accuracy"] == 0.9
    assert summary.loc["adam", "reached_target"] == 1
    assert math.isnan(summary.loc["sgd", "median_train_seconds"])


def test_status_counts_put_failures_first():
    runs = table(run(), run(status="skipped", reason="no GPU visible"), run(status="failed", reason="nan loss"),
                 run(status="failed", reason="nan loss"))
    counts = stats.status_counts(runs)
    assert counts.to_dict("records") == [
        {"status": "failed", "reason": "nan loss", "runs": 2},
        {"status": "skipped", "reason": "no GPU visible", "runs": 1},
        {"status": "ok", "reason": "", "runs": 1},
    ]


def test_cell_table_median_and_ci_over_repeats():
    runs = table(run(seed=0, train_seconds=1.0), run(seed=1, train_seconds=2.0), run(seed=2, train_seconds=3.0),
                 run("sgd", train_seconds=5.0))
    cells = stats.cell_table(runs, metrics=("train_seconds",)).set_index("optimizer")
    assert cells.loc["adam", "repeats"] == 3 and cells.loc["adam", "train_seconds"] == 2.0
    assert cells.loc["adam", "train_seconds_low"] == 1.0 and cells.loc["adam", "train_seconds_high"] == 3.0
    assert math.isnan(cells.loc["sgd", "train_seconds_low"])  # one repeat: no spread known


def test_interactions_measure_how_an_effect_changes_across_another_factor():
    runs = table(run("adam", "on", "on", train_seconds=1.0), run("adam", "off", "on", train_seconds=4.0),
                 run("adam", "on", "off", train_seconds=2.0), run("adam", "off", "off", train_seconds=2.0))
    top = stats.interactions(runs, top=10)
    row = top[(top["factor"] == "transfer") & (top["across"] == "early_stopping")].iloc[0]
    assert row["ratios"] == {"off": 1.0, "on": 0.25}
    assert row["spread"] == 4.0


def test_pareto_front_keeps_runs_no_other_run_beats():
    runs = table(run(train_seconds=1.0, test_accuracy=0.80), run(train_seconds=2.0, test_accuracy=0.90),
                 run(train_seconds=3.0, test_accuracy=0.85), run(train_seconds=4.0, test_accuracy=0.95),
                 run(train_seconds=2.0, test_accuracy=0.70))
    assert stats.pareto_front(runs).tolist() == [True, True, False, True, False]


def test_cost_to_target_uses_the_device_price():
    runs = table(run(device="gpu", time_to_target_seconds=3600.0, price_per_hour=0.35),
                 run(time_to_target_seconds=7200.0, price_per_hour=None))
    cost = stats.cost_to_target(runs)
    assert cost.iloc[0] == pytest.approx(0.35) and math.isnan(cost.iloc[1])


def test_verdicts_name_the_best_optimizer_and_adams_rank():
    runs = table(*[run(opt, seed=s, time_to_target_seconds=t + s / 100) for s in range(3)
                   for opt, t in (("adam", 2.0), ("sgd", 4.0), ("rmsprop", 1.0))])
    text = verdicts.optimizer_verdict(runs)
    assert text.startswith("Fastest optimizer to 0.9 validation accuracy: rmsprop (median 1.01 s of training; "
                           "reached in 3 of 3 runs)")
    assert "Adam ranks 2 of 3" in text
    assert "rmsprop's time to target relative to Adam: ×0.50" in text


def test_verdict_says_when_an_effect_is_noise():
    runs = table(run("adam", "on", time_to_target_seconds=2.0, test_accuracy=0.9),
                 run("adam", "off", time_to_target_seconds=4.0, test_accuracy=0.9),
                 run("sgd", "on", time_to_target_seconds=3.0, test_accuracy=0.8),
                 run("sgd", "off", time_to_target_seconds=3.0, test_accuracy=0.9))
    text = verdicts.transfer_verdict(runs)
    assert text == ("Transfer learning (on vs off) multiplies time to target by ×0.75 (95% CI ×0.50 to ×1.00, "
                    "2 pairs), not distinguishable from noise; it changes test accuracy by -0.050 (95% CI -0.100 "
                    "to +0.000, 2 pairs), not distinguishable from noise.")


def test_transfer_verdict_names_backbone_and_dataset_and_counts_a_pretraining_once():
    on = dict(model="small_cnn", dataset="digits", pretrained_weights="/cache/k.weights.h5", pretrain_seconds=6.0)
    runs = table(run("adam", "on", time_to_target_seconds=2.0, **on, pretrain_cache_hit=False),
                 run("adam", "off", time_to_target_seconds=4.0, model="small_cnn", dataset="digits"),
                 run("adam", "on", seed=1, time_to_target_seconds=2.0, **on, pretrain_cache_hit=True),
                 run("adam", "off", seed=1, time_to_target_seconds=4.0, model="small_cnn", dataset="digits"))
    assert verdicts.transfer_verdict(runs).endswith(
        "Pretraining on the source classes cost 6.0 s, paid once and amortised over the 2 runs that used it: "
        "3.00 s per run, not in their time to target.")
    assert verdicts.transfer_verdict(runs).startswith("Transfer learning (on vs off; small_cnn on digits) multiplies")
    imagenet = runs.assign(model="vgg16", pretrained_weights=["imagenet", None] * 2, pretrain_cache_hit=None,
                           time_to_target_seconds=[2.0, None] * 2)
    assert verdicts.transfer_verdict(imagenet) == (
        "Transfer learning (on vs off; vgg16 on digits) cannot be compared on time to target (in no pair did both "
        "runs reach the target); it changes test accuracy by +0.000 (95% CI +0.000 to +0.000, 2 pairs), not "
        "distinguishable from noise. Pretraining was free here: the runs started from Keras' ImageNet weights, "
        "trained elsewhere.")


def test_device_verdict_without_a_gpu_says_not_measured():
    runs = table(run(), run(device="gpu", status="skipped", reason="no GPU visible"))
    assert verdicts.device_verdict(runs) == "GPU vs CPU: not measured: no GPU (no GPU visible)."


def test_an_optimizer_that_mostly_misses_the_target_ranks_last_however_fast_its_one_hit():
    runs = table(run("sgd", seed=0, time_to_target_seconds=0.1), run("sgd", seed=1, time_to_target_seconds=None),
                 run("sgd", seed=2, time_to_target_seconds=None), run("adam", seed=0, time_to_target_seconds=2.0),
                 run("adam", seed=1, time_to_target_seconds=3.0), run("adam", seed=2, time_to_target_seconds=None))
    ranking = verdicts.optimizer_ranking(runs)
    assert ranking["optimizer"].tolist() == ["adam", "sgd"]
    assert ranking["median_time_to_target_seconds"].tolist() == [3.0, math.inf]
    assert ranking["reached"].tolist() == [2, 1]
    assert verdicts.optimizer_verdict(runs).startswith(
        "Fastest optimizer to 0.9 validation accuracy: adam (median 3.00 s of training; reached in 2 of 3 runs); "
        "Adam ranks 1 of 2.")


def test_break_even_epochs_exact_answers():
    from harness.report.stats import break_even_epochs

    assert break_even_epochs(2.0, 0.5) == 5.0  # 1 + 2 / 0.5: after 5 epochs the extra 2 s are saved
    assert break_even_epochs(0.3, 0.1) == 4.0  # 1 + 3 = 4
    assert break_even_epochs(0.25, 0.1) == 4.0  # 1 + 2.5, rounded up to whole epochs
    assert break_even_epochs(-0.1, 0.1) == 1.0  # no extra cost: pays from the start
    assert break_even_epochs(1.0, 0.0) is None  # saves nothing per epoch: never
    assert break_even_epochs(1.0, -0.2) is None  # slower per epoch: never


def test_speed_verdict_gives_the_compilation_cost_apart_and_the_break_even_epochs():
    import pandas as pd

    from harness.config.schema import FACTORS
    from harness.report.verdicts import speed_verdicts

    rows = []
    for seed in range(3):
        for jit, first, steady in ((False, 1.0, 1.0), (True, 3.0, 0.5)):  # XLA: +2 s once, then 0.5 s faster
            rows.append({"optimizer": "adam", "transfer": "off", "early_stopping": "off", "device": "cpu",
                         "jit_compile": jit, "seed": seed, "status": "ok", "first_epoch_seconds": first,
                         "median_epoch_seconds": steady, "time_to_target_seconds": first + 9 * steady,
                         "test_accuracy": 0.9})
    (verdict,) = speed_verdicts(pd.DataFrame(rows), [*FACTORS, "jit_compile"], {"jit_compile": False})
    assert verdict.startswith("jit_compile=True vs False: steady epoch time ×0.50 (95% CI ×0.50 to ×0.50, 3 pairs)")
    assert "extra seconds in the first epoch (compilation): +2.000 (95% CI +2.000 to +2.000, 3 pairs)" in verdict
    assert "it has paid back its first epoch after 5 epochs" in verdict  # 1 + 2 / 0.5
    assert "time to target ×0.75" in verdict  # 7.5 s against 10 s
