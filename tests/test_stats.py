"""Statistics on small hand-built tables with exact expected values (harness.report.stats, harness.report.verdicts)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from harness.report import stats, verdicts
from tests.conftest import ARTICLE


def run(optimizer="adam", transfer="off", early_stopping="off", device="cpu", seed=0, status="ok", reason=None,
        train_seconds=1.0, time_to_target_seconds=1.0, test_accuracy=0.9, price_per_hour=None, target=0.9,
        **more):
    return dict(optimizer=optimizer, transfer=transfer, early_stopping=early_stopping, device=device, seed=seed,
                status=status, reason=reason, train_seconds=train_seconds, test_accuracy=test_accuracy,
                time_to_target_seconds=time_to_target_seconds, price_per_hour=price_per_hour, target_accuracy=target,
                **more)


def table(*rows):
    return pd.DataFrame(list(rows))


SKEWED = np.arange(1, 21) ** 2.0  # 1, 4, ..., 400: mean 143.5, median 110.5, so mean and median tell apart


def test_fewest_pairs_for_a_95_percent_statement():
    # 2 * 0.5**5 = 0.0625 > 0.05 >= 2 * 0.5**6 = 0.03125; Holm's first step over 7 comparisons: 0.05 / 7
    assert stats.fewest_pairs() == 6
    assert stats.fewest_pairs(0.05 / 7) == 9  # 2 / 2**8 = 0.0078 > 0.0071 >= 2 / 2**9
    assert stats.fewest_pairs(0.0625) == 5  # exactly attainable


def test_median_interval_is_the_order_statistics_of_the_sign_test():
    # n = 20: P(B <= 5) = 0.0207 and P(B <= 6) = 0.0577 for B ~ Binomial(20, 1/2), so the 95 % interval is
    # (x(6), x(15)); at 99 %: P(B <= 3) = 0.0013, P(B <= 4) = 0.0059, so (x(4), x(17)).
    assert stats.median_interval(SKEWED) == (36.0, 225.0)
    assert stats.median_interval(SKEWED, confidence=0.99) == (16.0, 289.0)
    # n = 10: P(B <= 1) = 0.0107, P(B <= 2) = 0.0547: (x(2), x(9)); the order of the input does not matter
    assert stats.median_interval(SKEWED[:10][::-1]) == (4.0, 81.0)
    # n = 6: only (x(1), x(6)) reaches 95 % (1 - 2/64 = 0.969)
    assert stats.median_interval([5.0, 1.0, 3.0, 2.0, 9.0, 4.0]) == (1.0, 9.0)
    # a mean's interval would be centred near 143.5; this one holds the median (110.5) and not the mean's bulk
    low, high = stats.median_interval(SKEWED)
    assert low < float(np.median(SKEWED)) < high < float(np.mean(SKEWED)) + 100


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_too_few_values_give_no_interval_and_no_test(n):
    p, low, high = stats.sign_test(np.linspace(2.0, 3.0, n), 1.0)
    assert math.isnan(p) and math.isnan(low) and math.isnan(high)


def test_sign_test_exact_p_values():
    assert stats.sign_test(np.linspace(1.1, 2.0, 6), 1.0)[0] == pytest.approx(2 / 64)  # all six above
    assert stats.sign_test([0.9, *np.linspace(1.1, 2.0, 7)], 1.0)[0] == pytest.approx(2 * 9 / 256)  # 1 of 8 below
    assert stats.sign_test(np.zeros(36), 0.0)[0] == 1.0  # no change at all: no evidence of one


def test_holm_exact_answers():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> kept monotone: 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = stats.holm([0.01, float("nan"), 0.02])  # an untested comparison is not in the family
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert stats.holm([0.6, 0.9]).tolist() == [1.0, 1.0]


def test_benjamini_hochberg_exact_answers():
    # sorted: 0.005 * 4/1 = 0.02, 0.01 * 4/2 = 0.02, 0.03 * 4/3 = 0.04, 0.04 * 4/4 = 0.04
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert math.isnan(stats.benjamini_hochberg([float("nan")])[0])


def test_paired_effect_pairs_by_other_factors_and_seed():
    runs = table(
        run("adam", "on", train_seconds=2.0), run("adam", "off", train_seconds=4.0),
        run("sgd", "on", train_seconds=3.0), run("sgd", "off", train_seconds=3.0),
        run("rmsprop", "on", train_seconds=9.0),  # no twin: not paired
        run("nag", "on", status="failed"), run("nag", "off", train_seconds=1.0),  # failed: not paired
    )
    effect = stats.paired_effect(runs, "transfer", "on", "off", metric="train_seconds", kind="ratio", factors=ARTICLE)
    assert (effect.estimate, effect.pairs) == (pytest.approx(math.sqrt(0.5)), 2)  # Hodges-Lehmann of ×0.5, ×1
    assert effect.too_few and math.isnan(effect.low) and math.isnan(effect.p_value)
    assert not effect.distinguishable  # two pairs cannot tell anything from noise
    difference = stats.paired_effect(runs, "transfer", "on", "off", metric="train_seconds", kind="difference",
                                     factors=ARTICLE)
    assert difference.estimate == -1.0


def test_a_run_that_never_reached_the_target_stays_in_the_comparison_as_infinitely_slow():
    runs = table(run("adam", "on", time_to_target_seconds=1.0), run("adam", "off", time_to_target_seconds=None),
                 run("sgd", "on", time_to_target_seconds=1.0), run("sgd", "off", time_to_target_seconds=4.0),
                 run("nag", "on", time_to_target_seconds=None), run("nag", "off", time_to_target_seconds=None),
                 run("rmsprop", "on", status="failed", reason="nan loss", time_to_target_seconds=None),
                 run("rmsprop", "off", time_to_target_seconds=2.0))
    effect = stats.paired_effect(runs, "transfer", "on", "off", metric="time_to_target_seconds", kind="ratio",
                                 factors=ARTICLE)
    # ratios: 0 (off missed), 0.25, 1 (both missed: no change), inf (on diverged: never reaches it)
    assert effect.pairs == 4 and (effect.level_misses, effect.baseline_misses) == (2, 2)
    assert (effect.above, effect.equal, effect.below) == (1, 1, 2)
    # the ranking and the summary table count misses the same way: a median over all four runs of a level
    summary = stats.factor_summary(runs.iloc[2:], "transfer").set_index("transfer")
    assert summary.loc["on", "median_time_to_target_seconds"] == math.inf  # 1, inf, inf: most runs missed
    assert summary.loc["off", "median_time_to_target_seconds"] == 4.0  # 4, inf, 2
    assert summary.loc["on", "reached_target"] == 1 and summary.loc["off", "reached_target"] == 2


def test_misses_counted_as_never_move_a_comparison_that_dropping_them_would_hide():
    # SGD reaches the target 2x slower than Adam in 8 seeds and never in 4: dropped, 8 pairs of ×2; kept as
    # infinitely slow, 12 pairs all above 1 (p = 2/4096) with the misses said
    runs = table(*[run("adam", seed=s, time_to_target_seconds=1.0 + s / 10) for s in range(12)],
                 *[run("sgd", seed=s, time_to_target_seconds=(2.0 + s / 5) if s < 8 else None) for s in range(12)])
    effect = stats.paired_effect(runs, "optimizer", "sgd", "adam", metric="time_to_target_seconds", kind="ratio",
                                 factors=ARTICLE)
    assert effect.pairs == 12 and effect.level_misses == 4 and effect.p_value == pytest.approx(2 / 4096)
    assert effect.high == math.inf and effect.distinguishable
    assert "missed the target (counted as never): 4 at sgd" in verdicts.format_effect(effect)


def test_distinguishable_when_every_one_of_six_pairs_agrees_and_not_with_one_against():
    runs = table(*[run("adam", level, seed=s, train_seconds=t) for s in range(6)
                   for level, t in (("on", 1.0 + s / 10), ("off", 2.0 + s / 10))])
    effect = stats.paired_effect(runs, "transfer", "on", "off", metric="train_seconds", kind="ratio", factors=ARTICLE)
    assert effect.pairs == 6 and effect.p_value == pytest.approx(2 / 64) and effect.distinguishable
    # six values: only the smallest and largest Walsh averages (the values themselves) bound a 95 % interval
    assert (effect.low, effect.high) == (pytest.approx(1.0 / 2.0), pytest.approx(1.5 / 2.5))
    runs.loc[(runs["seed"] == 0) & (runs["transfer"] == "on"), "train_seconds"] = 3.0  # one pair the other way
    assert not stats.paired_effect(runs, "transfer", "on", "off", metric="train_seconds", kind="ratio",
                                   factors=ARTICLE).distinguishable


def test_signed_rank_p_is_scipys_exact_wilcoxon_and_stays_exact_with_ties():
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(0)
    for n in (6, 9, 12, 25):
        values = rng.normal(0.3, 1.0, n)
        assert stats.signed_rank_p(values) == pytest.approx(scipy_stats.wilcoxon(values, method="exact").pvalue)
    # ties and zeros: scipy's exact enumeration of all 2**12 sign flips (Pratt's zeros) gives the same p
    tied = np.array([1, 1, 2, -1, 3, 0, 0, 2, 2, -3, 4, 1.0])
    flips = scipy_stats.wilcoxon(tied, zero_method="pratt", method=scipy_stats.PermutationMethod(n_resamples=10**5))
    assert stats.signed_rank_p(tied) == pytest.approx(flips.pvalue)
    assert stats.signed_rank_p(np.zeros(10)) == 1.0
    assert stats.signed_rank_p(np.linspace(0.1, 1.0, 6)) == pytest.approx(2 / 64)  # the smallest p at 6 pairs


def test_hodges_lehmann_exact_answers():
    # Walsh averages of (1, 2, 3, 10): 1, 1.5, 2, 2, 2.5, 3, 5.5, 6, 6.5, 10: median 2.75 (the mean, 4, is pulled)
    assert stats.hodges_lehmann([1.0, 2.0, 3.0, 10.0])[0] == 2.75
    assert all(math.isnan(bound) for bound in stats.hodges_lehmann([1.0, 2.0, 3.0, 10.0])[1:])  # too few
    # n = 10: P(T <= 8) = 0.0244 <= 0.025 < P(T <= 9) = 0.0322, so the 9th smallest and largest of 55 averages
    values = np.arange(1.0, 11.0) ** 2
    walsh = np.sort([(a + b) / 2 for i, a in enumerate(values) for b in values[i:]])
    assert stats.hodges_lehmann(values) == (float(np.median(walsh)), walsh[8], walsh[-9])


def test_ties_count_for_neither_side_of_an_accuracy_difference():
    # 20 pairs: 10 up by one test example, 10 unchanged, none down: the sign test over the 10 that changed
    effect = stats.effect_of([1 / 224] * 10 + [0.0] * 10, "difference")
    assert effect.p_value == pytest.approx(2 / 2**10) and (effect.above, effect.equal, effect.below) == (10, 10, 0)
    assert effect.distinguishable
    # the example report's transfer accuracy: 26 up, 4 tied, 6 down: p = 0.00054, beyond noise
    changes = [0.01] * 26 + [0.0] * 4 + [-0.01] * 6
    assert stats.effect_of(changes, "difference").p_value == pytest.approx(0.000535, abs=1e-6)
    assert "26 higher, 4 equal, 6 lower" in verdicts.format_effect(stats.effect_of(changes, "difference"))
    unchanged = stats.effect_of(np.zeros(36), "difference")
    assert unchanged.p_value == 1.0 and not unchanged.distinguishable


def test_a_family_judges_what_a_lone_comparison_would_call_beyond_noise():
    lone = stats.effect_of(np.linspace(0.7, 0.8, 6), "ratio")  # p = 2/64 = 0.031: beyond noise alone
    null = stats.effect_of([0.9, 1.1, 0.95, 1.05, 0.98, 1.02], "ratio")
    assert lone.distinguishable and not null.distinguishable
    family = stats.judged([lone, null], "holm")  # Holm: 2 * 0.031 = 0.0625 > 0.05
    assert family[0].p_adjusted == pytest.approx(2 * 2 / 64) and not family[0].distinguishable
    assert family[0].correction == "Holm"


def test_beside_a_family_verdict_of_noise_the_interval_shown_is_the_family_s_and_holds_no_change():
    # Known answers: alone, p = 10/1024 and the 95 % interval excludes 1; in a family of 9, Holm's p is
    # 9 x 10/1024 = 0.088 and the simultaneous (Bonferroni, 1 - 0.05/9) interval holds 1, as the verdict says.
    lone = stats.effect_of([0.8, 0.85, 0.9, 0.95, 1.02, 0.88, 0.92, 0.97, 0.83, 1.01], "ratio")
    assert lone.p_value == pytest.approx(10 / 1024) and lone.high < 1
    others = [stats.effect_of(np.random.default_rng(seed).lognormal(0, 0.1, 10), "ratio") for seed in range(8)]
    judged = stats.judged([lone, *others], "holm")[0]
    assert judged.p_adjusted == pytest.approx(9 * 10 / 1024) and not judged.distinguishable
    assert (judged.family_low, judged.family_high) == pytest.approx(
        stats.simultaneous_interval(lone.changes, "ratio", 9)) and judged.family_low < 1 < judged.family_high
    said = verdicts.described(judged)
    assert "×0.85 to ×0.97" in said and "its simultaneous 95% interval is ×0.81 to ×1.01" in said
    six = stats.judged([stats.effect_of(np.linspace(0.7, 0.8, 6), "ratio"), *others[:1]], "holm")[0]
    assert math.isnan(six.family_low)  # 6 pairs reach p = 1/32 at best: no interval at 1 - 0.05/2
    assert "too few for one that holds with the others" in verdicts.described(six)


@pytest.mark.parametrize("pairs", [8, 12, 30])
def test_a_family_s_simultaneous_intervals_cover_every_true_effect_at_once_95_percent_of_the_time(pairs):
    # Known answers: 4 comparisons with true ratios x0.8, x1, x1.2, x1.5 (symmetric noise on the log scale);
    # all four intervals must hold their truths together in at least 95 % of 500 seeded families.
    truths = np.array([0.8, 1.0, 1.2, 1.5])
    rng = np.random.default_rng(pairs)
    covered = []
    for _ in range(500):
        ratios = truths[:, None] * rng.lognormal(0, 0.15, (4, pairs)) / rng.lognormal(0, 0.15, (4, pairs))
        bounds = [stats.simultaneous_interval(values, "ratio", 4) for values in ratios]
        covered.append(all(low <= truth <= high for (low, high), truth in zip(bounds, truths, strict=True)))
    assert np.mean(covered) >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / 500)


NOISES = {
    "lognormal": lambda rng, shape: rng.lognormal(0.0, 0.1, shape),
    "heavy-tailed": lambda rng, shape: np.exp(0.05 * rng.standard_t(2, shape)),  # Student t, 2 df: no variance
}


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("pairs", [2, 3, 4, 6, 10, 12, 36, 250])  # 250: above the exact limit
def test_no_true_effect_is_called_beyond_noise_at_most_5_percent_of_the_time(pairs, noise):
    # Known answer: the two settings are identical. 1,000 simulated comparisons (seeded); 5 % + 3 standard
    # errors of the simulation (0.7 %) is the most a 95 % statement may miss by.
    rng = np.random.default_rng(pairs)
    machine = rng.lognormal(0.0, 0.2, size=(1000, pairs))  # each seed's machine factor, shared by the pair
    ratios = machine * NOISES[noise](rng, (1000, pairs)) / (machine * NOISES[noise](rng, (1000, pairs)))
    called = [stats.effect_of(values, "ratio").distinguishable for values in ratios]
    assert np.mean(called) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 1000)
    if pairs < 6:
        assert not any(called)


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("pairs", [6, 10, 30, 250])  # 250: above the exact limit, the normal approximation
def test_the_intervals_cover_the_true_effect_at_least_95_percent_of_the_time(pairs, noise):
    truth = 0.8  # a true ×0.8 effect: the log ratio is symmetric about log 0.8
    rng = np.random.default_rng(100 + pairs)
    ratios = truth * NOISES[noise](rng, (1000, pairs)) / NOISES[noise](rng, (1000, pairs))
    effects = [stats.effect_of(values, "ratio") for values in ratios]
    assert np.mean([e.low <= truth <= e.high for e in effects]) >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / 1000)
    medians = [stats.median_interval(values) for values in ratios]  # a cell's repeats: the sign test's interval
    assert np.mean([low <= truth <= high for low, high in medians]) >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / 1000)


def test_a_true_effect_of_15_percent_is_found_at_12_pairs_in_a_family_of_9():
    # ×0.85 with 10 % lognormal noise per run, judged at Holm's strictest step over 9 comparisons (0.05 / 9):
    # the sign test finds it in ~20 % of sweeps (only 12 of 12 pairs agreeing can pass), the signed-rank
    # test on log ratios in ~60 %
    rng = np.random.default_rng(15)
    ratios = 0.85 * rng.lognormal(0.0, 0.1, (1000, 12)) / rng.lognormal(0.0, 0.1, (1000, 12))
    found = np.mean([stats.effect_of(values, "ratio").p_value <= 0.05 / 9 for values in ratios])
    by_sign = np.mean([stats.sign_test(values, 1.0)[0] <= 0.05 / 9 for values in ratios])
    assert found >= 0.5 and by_sign < 0.3


def test_a_true_effect_of_30_percent_is_found_with_8_pairs():
    rng = np.random.default_rng(7)
    ratios = 0.7 * rng.lognormal(0.0, 0.1, (400, 8)) / rng.lognormal(0.0, 0.1, (400, 8))
    found = [stats.effect_of(values, "ratio").distinguishable for values in ratios]
    assert np.mean(found) >= 0.9


def _null_sweep(rng: np.random.Generator, seeds: int) -> pd.DataFrame:
    """A sweep of four identical optimizers and transfer on/off (identical too), ``seeds`` seeds: every
    difference is noise. Times: a per-seed machine factor × 10 % lognormal noise; accuracy ± 0.01."""
    rows = []
    for seed in range(seeds):
        machine = rng.lognormal(0.0, 0.2)
        for optimizer in ("adam", "sgd", "rmsprop", "nag"):
            for transfer in ("on", "off"):
                rows.append(run(optimizer, transfer, seed=seed, train_seconds=machine * rng.lognormal(0.0, 0.1),
                                time_to_target_seconds=machine * rng.lognormal(0.0, 0.1),
                                test_accuracy=0.9 + rng.normal(0.0, 0.01)))
    return table(*rows)


@pytest.mark.parametrize("seeds", [6, 12])
def test_reports_on_pure_noise_rarely_call_anything_beyond_noise(seeds):
    # 12 comparisons per report (3 optimizers vs Adam and transfer on vs off, 3 metrics each): judged one by
    # one at 5 %, about a third of these reports would hold a false "beyond noise". As a family, ~5 % may
    # (the bound: 5 % + 3 standard errors of 60 simulated reports; kept small for the suite's time).
    rng = np.random.default_rng(seeds)
    reports = [stats.effects_table(_null_sweep(rng, seeds), ARTICLE) for _ in range(60)]
    assert all(len(effects) == 12 and effects["p_adjusted"].notna().all() for effects in reports)
    assert np.mean([effects["distinguishable"].any() for effects in reports]) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 60)
    lone = np.mean([(effects["p_value"] <= 0.05).any() for effects in reports])
    assert lone > 0.15  # the same reports judged comparison by comparison: the family is what holds the rate
    called = [verdicts.verdicts(_null_sweep(rng, seeds), ARTICLE).sentences for _ in range(10)]
    assert sum("not distinguishable" not in " ".join(sentences) for sentences in called) <= 1


def test_a_true_effect_is_found_by_the_report_and_its_verdict():
    rng = np.random.default_rng(3)
    rows = [run(optimizer, seed=seed, train_seconds=scale * rng.lognormal(0, 0.1),
                time_to_target_seconds=scale * rng.lognormal(0, 0.1), test_accuracy=0.9)
            for seed in range(8) for optimizer, scale in (("adam", 1.0), ("sgd", 0.7))]
    effects = stats.effects_table(table(*rows), ARTICLE).set_index("metric")
    assert effects.loc["train_seconds", "distinguishable"] and effects.loc["time_to_target_seconds", "distinguishable"]
    assert not effects.loc["test_accuracy", "distinguishable"]
    assert effects.loc["train_seconds", "correction"] == "Benjamini-Hochberg"
    text = verdicts.optimizer_verdict(table(*rows), ARTICLE)
    assert "sgd's time to target relative to Adam: ×0.6" in text or "×0.7" in text
    assert "not distinguishable" not in text and "too few" not in text


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


def test_cell_table_median_and_interval_over_repeats():
    runs = table(*[run(seed=s, train_seconds=t) for s, t in enumerate(SKEWED[:10])],
                 *[run("sgd", seed=s, train_seconds=5.0 + s) for s in range(5)])
    cells = stats.cell_table(runs, metrics=("train_seconds",), factors=ARTICLE).set_index("optimizer")
    assert cells.loc["adam", "repeats"] == 10 and cells.loc["adam", "train_seconds"] == 30.5  # (25 + 36) / 2
    assert (cells.loc["adam", "train_seconds_low"], cells.loc["adam", "train_seconds_high"]) == (4.0, 81.0)
    assert cells.loc["sgd", "train_seconds"] == 7.0
    assert math.isnan(cells.loc["sgd", "train_seconds_low"])  # 5 repeats: too few for a 95 % interval


def test_interactions_measure_how_an_effect_changes_across_another_factor():
    runs = table(run("adam", "on", "on", train_seconds=1.0), run("adam", "off", "on", train_seconds=4.0),
                 run("adam", "on", "off", train_seconds=2.0), run("adam", "off", "off", train_seconds=2.0))
    top = stats.interactions(runs, top=10, factors=ARTICLE)
    row = top[(top["factor"] == "transfer") & (top["across"] == "early_stopping")].iloc[0]
    assert row["ratios"] == {"off": 1.0, "on": 0.25}
    assert row["spread"] == 4.0


def test_pareto_front_keeps_runs_no_other_run_beats():
    runs = table(run(train_seconds=1.0, test_accuracy=0.80), run(train_seconds=2.0, test_accuracy=0.90),
                 run(train_seconds=3.0, test_accuracy=0.85), run(train_seconds=4.0, test_accuracy=0.95),
                 run(train_seconds=2.0, test_accuracy=0.70))
    assert stats.pareto_front(runs).tolist() == [True, True, False, True, False]


def test_cost_is_time_times_the_device_price_and_a_miss_costs_without_end():
    runs = table(run(device="gpu", time_to_target_seconds=3600.0, price_per_hour=0.35),
                 run(time_to_target_seconds=7200.0, price_per_hour=None),
                 run(device="gpu", train_seconds=1800.0, time_to_target_seconds=None, price_per_hour=2.0))
    to_target, spent = stats.with_costs(runs)["cost_to_target_usd"], stats.with_costs(runs)["cost_usd"]
    assert to_target.iloc[0] == pytest.approx(0.35) and math.isnan(to_target.iloc[1])  # the CPU has no price
    assert to_target.iloc[2] == np.inf and spent.iloc[2] == pytest.approx(1.0)  # half an hour at $2/h, no target


def test_the_gpu_verdict_gives_time_and_cost_to_target_with_their_intervals():
    # 8 pairs: the GPU reaches the target in a fifth of the CPU's time at 6.5 times its price: x1.3 the cost
    pairs = [(run(device="gpu", seed=s, time_to_target_seconds=20.0 * (1 + s / 100), price_per_hour=0.65),
              run(device="cpu", seed=s, time_to_target_seconds=100.0 * (1 + s / 100), price_per_hour=0.10))
             for s in range(8)]
    runs = stats.with_costs(table(*[r for pair in pairs for r in pair]))
    text = verdicts.device_verdict(runs, ARTICLE)
    assert "time to target ×0.20 (95% CI ×0.20 to ×0.20, 8 pairs)" in text, text
    assert "cost to target ×1.30 (95% CI ×1.30 to ×1.30, 8 pairs)" in text, text
    unpriced = stats.with_costs(runs.assign(price_per_hour=runs["price_per_hour"].where(runs["device"] == "gpu")))
    assert "cost to target not compared: no price per hour for cpu" in verdicts.device_verdict(unpriced, ARTICLE)


def test_verdicts_name_the_best_optimizer_and_adams_rank():
    runs = table(*[run(opt, seed=s, time_to_target_seconds=t + s / 1000) for s in range(8)
                   for opt, t in (("adam", 2.0), ("sgd", 4.0), ("rmsprop", 1.0))])
    text = verdicts.optimizer_verdict(runs, ARTICLE)
    assert text.startswith("Fastest optimizer to 0.9 validation accuracy: rmsprop (median 1.00 s of training; "
                           "reached in 8 of 8 runs)")
    assert "Adam ranks 2 of 3" in text
    assert "rmsprop's time to target relative to Adam: ×0.50 (95% CI" in text
    # with 3 seeds the lowest median is not yet told apart from Adam: no "fastest" beside "too few to tell"
    few = verdicts.optimizer_verdict(runs[runs["seed"] < 3], ARTICLE)
    assert few.startswith("Optimizers to 0.9 validation accuracy: none told apart from Adam yet; the lowest median "
                          "is rmsprop (median 1.00 s of training; reached in 3 of 3 runs); Adam ranks 2 of 3; "
                          "rmsprop's time to target relative to Adam: ×0.50 (3 pairs: too few to tell"), few
    # where Adam is best, "fastest" needs Adam told apart from the runner-up
    slow = table(*[run(opt, seed=s, time_to_target_seconds=t + s / 1000) for s in range(8)
                   for opt, t in (("adam", 1.0), ("sgd", 3.0))])
    assert verdicts.optimizer_verdict(slow, ARTICLE).startswith("Fastest optimizer to 0.9 validation accuracy: adam")
    assert "sgd's time to target relative to Adam: ×2.99 (95% CI" in verdicts.optimizer_verdict(slow, ARTICLE)


def test_a_verdict_of_noise_says_what_its_pairs_could_have_called():
    # 12 pairs with +-10 % noise and no effect, judged alone (a family of one): the sizes it could call are
    # exactly stats.detectable_ratios of its log ratios at 0.05
    rng = np.random.default_rng(3)
    noise = np.exp(rng.normal(0, 0.1, 12))
    runs = table(*[run("adam", transfer, seed=s, time_to_target_seconds=(2.0 * noise[s] if transfer == "on" else 2.0))
                   for s in range(12) for transfer in ("on", "off")])
    text = verdicts.transfer_verdict(runs, ARTICLE)
    faster, slower = stats.detectable_ratios(np.log(noise), 2)  # the verdict's family: time and accuracy
    assert f"not distinguishable from noise; it could call ×{faster:.2f} or faster, ×{slower:.2f} or slower" in text
    assert faster < 1 < slower


def test_verdict_says_when_an_effect_is_noise():
    runs = table(run("adam", "on", time_to_target_seconds=2.0, test_accuracy=0.9),
                 run("adam", "off", time_to_target_seconds=4.0, test_accuracy=0.9),
                 run("sgd", "on", time_to_target_seconds=3.0, test_accuracy=0.8),
                 run("sgd", "off", time_to_target_seconds=3.0, test_accuracy=0.9))
    text = verdicts.transfer_verdict(runs, ARTICLE)
    assert text == ("Transfer learning (on vs off) multiplies time to target by ×0.71 (2 pairs: too few to tell; run "
                    "more seeds, e.g. seed=0,1,2,3,4,5); it changes test accuracy by -0.050 (2 pairs: too few to "
                    "tell; 0 higher, 1 equal, 1 lower; run more seeds, e.g. seed=0,1,2,3,4,5).")
    six = table(*[run("adam", transfer, seed=s, time_to_target_seconds=t * (1 + s / 100), test_accuracy=0.9)
                  for s in range(6) for transfer, t in (("on", 3.0), ("off", 2.0) if s % 2 else ("off", 4.0))])
    assert verdicts.transfer_verdict(six, ARTICLE) == (
        "Transfer learning (on vs off) multiplies time to target by ×1.06 (95% CI ×0.75 to ×1.50, 6 pairs), not "
        "distinguishable from noise; at this many pairs in this family no change could be called; it changes test "
        "accuracy by +0.000 (unchanged in all 6 pairs).")  # 6 pairs among 2 comparisons: 2/2^6 x 2 > 0.05


def test_transfer_verdict_names_backbone_and_dataset_and_counts_a_pretraining_once():
    on = dict(model="small_cnn", dataset="digits", pretrained_weights="/cache/k.weights.h5", pretrain_seconds=6.0)
    runs = table(run("adam", "on", time_to_target_seconds=2.0, **on, pretrain_cache_hit=False),
                 run("adam", "off", time_to_target_seconds=4.0, model="small_cnn", dataset="digits"),
                 run("adam", "on", seed=1, time_to_target_seconds=2.0, **on, pretrain_cache_hit=True),
                 run("adam", "off", seed=1, time_to_target_seconds=4.0, model="small_cnn", dataset="digits"))
    assert verdicts.transfer_verdict(runs, ARTICLE).endswith(
        "Pretraining on the source classes cost 6.0 s, paid once and amortised over the 2 runs that used it: "
        "3.00 s per run, not in their time to target.")
    assert verdicts.transfer_verdict(runs, ARTICLE).startswith(
        "Transfer learning (on vs off; small_cnn on digits) multiplies")
    imagenet = runs.assign(model="vgg16", pretrained_weights=["imagenet", None] * 2, pretrain_cache_hit=None,
                           time_to_target_seconds=[2.0, None] * 2)
    assert verdicts.transfer_verdict(imagenet, ARTICLE) == (
        "Transfer learning (on vs off; vgg16 on digits) multiplies time to target by ×0.00 (2 pairs: too few to "
        "tell; missed the target (counted as never): 2 at off; run more seeds, e.g. seed=0,1,2,3,4,5); it changes "
        "test accuracy by +0.000 (2 pairs: too few to tell; 0 higher, 2 equal, 0 lower; run more seeds, e.g. "
        "seed=0,1,2,3,4,5). Pretraining was free here: the runs started from Keras' ImageNet weights, "
        "trained elsewhere.")


def test_device_verdict_without_a_gpu_says_not_measured():
    runs = table(run(), run(device="gpu", status="skipped", reason="no GPU visible"))
    assert verdicts.device_verdict(runs, ARTICLE) == "GPU vs CPU: not measured: no GPU (no GPU visible)."


def test_an_optimizer_that_mostly_misses_the_target_ranks_last_however_fast_its_one_hit():
    runs = table(run("sgd", seed=0, time_to_target_seconds=0.1), run("sgd", seed=1, time_to_target_seconds=None),
                 run("sgd", seed=2, time_to_target_seconds=None), run("adam", seed=0, time_to_target_seconds=2.0),
                 run("adam", seed=1, time_to_target_seconds=3.0), run("adam", seed=2, time_to_target_seconds=None))
    ranking = verdicts.optimizer_ranking(runs)
    assert ranking["optimizer"].tolist() == ["adam", "sgd"]
    assert ranking["median_time_to_target_seconds"].tolist() == [3.0, math.inf]
    assert ranking["reached"].tolist() == [2, 1]
    assert verdicts.optimizer_verdict(runs, ARTICLE).startswith(
        "Optimizers to 0.9 validation accuracy: none told apart from Adam yet; the lowest median is adam (median "
        "3.00 s of training; reached in 2 of 3 runs); Adam ranks 1 of 2; sgd's time to target relative to Adam:")


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

    from harness.report.verdicts import speed_verdicts

    rows = []
    for seed in range(8):  # 8 pairs: beyond noise even with Holm over 4 comparisons (4 * 2 / 2**8 = 0.031)
        for jit, first, steady in ((False, 1.0, 1.0), (True, 3.0, 0.5)):  # XLA: +2 s once, then 0.5 s faster
            rows.append({"optimizer": "adam", "transfer": "off", "early_stopping": "off", "device": "cpu",
                         "jit_compile": jit, "seed": seed, "status": "ok", "first_epoch_seconds": first,
                         "median_epoch_seconds": steady, "time_to_target_seconds": first + 9 * steady,
                         "test_accuracy": 0.9})
    judged = speed_verdicts(pd.DataFrame(rows), [*ARTICLE, "jit_compile"], {"jit_compile": False})
    (verdict,) = judged.sentences
    assert verdict.startswith("jit_compile=True vs False: steady epoch time ×0.50 (95% CI ×0.50 to ×0.50, 8 pairs)")
    assert ("extra seconds in the first epoch (compilation): +2.000 (95% CI +2.000 to +2.000, 8 pairs; 8 higher, 0 "
            "equal, 0 lower)") in verdict
    assert "it has paid back its first epoch after 5 epochs" in verdict  # 1 + 2 / 0.5
    assert "time to target ×0.75" in verdict  # 7.5 s against 10 s
    # steady time, first epoch, time to target and accuracy (it never moves: p = 1), judged together
    assert judged.comparisons == 4 and "Holm" in judged.note and "at least 8 pairs" in judged.note
    few = speed_verdicts(pd.DataFrame(rows[:6]), [*ARTICLE, "jit_compile"], {"jit_compile": False})
    assert "3 pairs: too few to tell" in few.sentences[0] and "(from the medians; too few pairs to tell)" in \
        few.sentences[0] and few.comparisons == 0


def _transfer_sweep(rng: np.random.Generator, seeds: int, effect: dict[str, float]) -> pd.DataFrame:
    """Transfer on/off under two optimizers, 10 % lognormal noise per run; ``effect``: transfer's true ratio
    under each optimizer."""
    return table(*[run(optimizer, transfer, seed=seed, train_seconds=(effect[optimizer] if transfer == "on" else 1.0)
                       * rng.lognormal(0.0, 0.1))
                   for seed in range(seeds) for optimizer in effect for transfer in ("on", "off")])


def test_an_interaction_is_shown_only_beyond_noise():
    rng = np.random.default_rng(5)
    same = stats.interactions(_transfer_sweep(rng, 12, {"adam": 0.8, "sgd": 0.8}), top=10, factors=ARTICLE)
    row = same[(same["factor"] == "transfer") & (same["across"] == "optimizer")].iloc[0]
    assert row["spread"] > 1 and row["pairs"] == 24 and not row["distinguishable"]  # chance alone
    different = stats.interactions(_transfer_sweep(rng, 12, {"adam": 0.5, "sgd": 1.0}), top=10, factors=ARTICLE)
    row = different[(different["factor"] == "transfer") & (different["across"] == "optimizer")].iloc[0]
    assert row["spread"] == pytest.approx(2.0, rel=0.2) and row["distinguishable"]
    # with no interaction, a report rarely shows one: 40 simulated sweeps, the permutation p at 5 %
    found = [stats.interactions(_transfer_sweep(rng, 8, {"adam": 0.8, "sgd": 0.8}), top=10,
                                factors=ARTICLE)["distinguishable"].any()
             for _ in range(40)]
    assert np.mean(found) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 40)


def test_early_stopping_is_judged_where_it_acted():
    rows = []
    for seed in range(12):
        stops = seed < 8  # it stops 8 of 12 runs, saving 40 % there; the other 4 train every epoch
        rows += [run(early_stopping="on", seed=seed, train_seconds=(0.6 if stops else 1.0) * (1 + seed / 100),
                     early_stopped=stops, test_accuracy=0.9),
                 run(early_stopping="off", seed=seed, train_seconds=1.0 + seed / 100, early_stopped=False,
                     test_accuracy=0.9)]
    text = verdicts.early_stopping_verdict(table(*rows), ARTICLE)
    assert text.startswith("Early stopping (on vs off) stopped 8 of 12 runs early (the others trained every epoch, "
                           "as without it). Where it stopped: train seconds ×0.60 (95% CI ×0.60 to ×0.60, 8 pairs), "
                           "it saved 40% of training time there; test accuracy changes by +0.000 (unchanged in all 8 "
                           "pairs).")
    never = table(*[dict(row, early_stopped=False, train_seconds=1.0) for row in rows])
    assert "it never acted in this sweep" in verdicts.early_stopping_verdict(never, ARTICLE)


def test_the_gate_fails_only_where_the_whole_interval_is_slower_than_the_threshold():
    from harness.report.before_after import slower_beyond

    gated = pd.DataFrame([
        {"cell": "a", "metric": "median_epoch_seconds", "estimate": 1.10, "low": 1.02, "high": 1.20,
         "distinguishable": True},  # slower beyond noise, but it could be a 2 % slowdown: not more than 5 %
        {"cell": "b", "metric": "median_epoch_seconds", "estimate": 1.30, "low": 1.08, "high": 1.50,
         "distinguishable": True},  # more than 5 % slower, beyond noise
        {"cell": "c", "metric": "median_epoch_seconds", "estimate": 1.30, "low": 1.08, "high": 1.50,
         "distinguishable": False},  # not beyond noise in its family
    ])
    assert slower_beyond(gated, 0.05)["cell"].tolist() == ["b"]


def test_the_smallest_callable_change_is_exact_and_none_where_no_p_value_can_pass():
    # Known answers: 6 pairs judged alone need all 21 Walsh averages of one sign (p = 2/64 = 0.031), so the
    # boundary is the spread's extreme, ×e^±0.1; judged with 3 others the smallest p is 4 × 0.031 > 0.05.
    logs = [-0.1, -0.05, 0.0, 0.0, 0.05, 0.1]
    assert stats.detectable_ratios(logs, family=1) == pytest.approx((math.exp(-0.1), math.exp(0.1)))
    assert stats.detectable_ratios(logs, family=4) == (0.0, math.inf)
    assert stats.detectable_ratios(logs[:5], family=1) == (0.0, math.inf)  # too few to tell
    # At any size and family, a shift just past the boundary is called and one just short of it is not.
    rng = np.random.default_rng(3)
    for n, family in ((8, 1), (12, 4), (20, 9), (40, 3)):
        values = rng.normal(0.0, 0.1, n) + rng.standard_t(3, n) * 0.02
        faster, slower = stats.detectable_ratios(values, family)
        walsh = [(values[i] + values[j]) / 2 for i in range(n) for j in range(i, n)]
        centred = values - np.median(walsh)
        for boundary in (math.log(slower), math.log(faster)):
            assert stats.signed_rank_p(centred + boundary * 1.001) <= stats.ALPHA / family
            assert stats.signed_rank_p(centred + boundary * 0.999) > stats.ALPHA / family


def _resource_runs(seeds: int = 8) -> pd.DataFrame:
    """precision=mixed_bfloat16 halves peak memory in every pair and leaves cores used alone (their ratio moves
    up and down by the seed: no effect); threads=0 on 4 CPUs, 1.2 cores busy."""
    rows = []
    for seed in range(seeds):
        for precision, peak in (("float32", 400.0), ("mixed_bfloat16", 200.0)):
            rows.append({"optimizer": "adam", "transfer": "off", "early_stopping": "off", "device": "cpu",
                         "precision": precision, "seed": seed, "status": "ok", "peak_rss_bytes": peak * 2**20,
                         "cores_used": 1.2 * (1.05 if (seed + (precision == "float32")) % 2 else 0.95),
                         "cpus_available": 4, "threads": 0, "cpu_energy_joules": None, "input_share": None})
    return pd.DataFrame(rows)


def test_resource_verdicts_judge_memory_and_cores_as_one_family_with_exact_answers():
    from harness.report.verdicts import resource_verdicts

    judged = resource_verdicts(_resource_runs(), [*ARTICLE, "precision"], {"precision": "float32"})
    (sentence,) = judged.sentences  # energy measured nowhere: not in the sentence
    assert sentence.startswith("precision=mixed_bfloat16 vs float32: peak memory ×0.50 (95% CI ×0.50 to ×0.50, "
                               "8 pairs); cores used ×")
    assert "CPU energy" not in sentence and "GPU" not in sentence
    cores = sentence.split("cores used ")[1]
    assert "not distinguishable from noise" in cores  # the seed's wobble, either way
    assert judged.comparisons == 2 and "Holm" in judged.note
    few = resource_verdicts(_resource_runs(seeds=3), [*ARTICLE, "precision"], {"precision": "float32"})
    assert "3 pairs: too few to tell" in few.sentences[0]


def test_runs_that_leave_most_of_their_cores_idle_are_named_and_one_core_runs_never():
    from harness.report.pages import idle_cores_warnings

    runs = _resource_runs(seeds=2)
    (warning,) = idle_cores_warnings(runs, [*ARTICLE, "precision"])
    assert warning.startswith("Warning: 4 runs kept fewer than 50% of the cores they were given busy during fit "
                              "(median 1.20 of 4), in 2 cells")
    assert idle_cores_warnings(runs.assign(threads=2), [*ARTICLE, "precision"]) == []  # 1.2 of 2 threads: busy
    assert idle_cores_warnings(runs.assign(cpus_available=1), [*ARTICLE, "precision"]) == []  # nothing to leave idle


def test_the_resources_section_has_its_figure_and_is_left_out_for_results_without_resources(tmp_path):
    from harness.report.pages import resources_section

    section = resources_section(_resource_runs(), [*ARTICLE, "precision"], {"precision": "float32"}, tmp_path)
    assert section is not None and section.figure == tmp_path / "resources.png" and section.figure.is_file()
    assert section.text.startswith("Resources per run: peak memory of its process median 300 MiB")
    old = _resource_runs().assign(peak_rss_bytes=None, cores_used=None, cpus_available=None)  # empty in the table
    assert resources_section(old, [*ARTICLE, "precision"], {"precision": "float32"}, tmp_path) is None


def test_above_the_exact_limit_the_signed_rank_test_is_within_a_thousandth_of_the_exact_one():
    from harness.report.stats import EXACT_UP_TO, _subset_sum_distribution, signed_rank_p

    rng = np.random.default_rng(7)
    n = EXACT_UP_TO + 50
    for shift in (0.0, 0.1, 0.2, 0.3):
        tied = np.round(rng.normal(shift, 1, n), 1)  # ties and zeros: the approximation's harder case
        nonzero = tied[tied != 0]
        doubled = np.rint(2 * scipy.stats.rankdata(np.abs(tied))[tied != 0]).astype(int)
        observed, dist = int(doubled[nonzero > 0].sum()), _subset_sum_distribution(doubled)
        exact = min(1.0, 2 * min(dist[:observed + 1].sum(), dist[observed:].sum()))
        assert signed_rank_p(tied) == pytest.approx(exact, abs=1e-3)
        untied = rng.normal(shift, 1, n)
        assert signed_rank_p(untied) == pytest.approx(
            scipy.stats.wilcoxon(untied, method="exact").pvalue, abs=1e-3)


def test_walsh_averages_selected_without_listing_them_are_the_listed_ones_exactly():
    from harness.report.stats import EXACT_UP_TO, _select_sums, walsh_averages_at, walsh_centre_and

    rng = np.random.default_rng(3)
    for trial in range(150):  # small arrays, with ties and identical values, bisected down to 0, 1 or 7 listed
        n = int(rng.integers(1, 40))
        x = np.sort([rng.normal, lambda size: rng.integers(-2, 3, size) * 0.1,
                     lambda size: np.full(size, 0.3)][trial % 3](size=n))
        rows, columns = np.triu_indices(n)
        sums = np.sort(x[rows] + x[columns])
        positions = rng.integers(0, len(sums), 4)
        for listed in (0, 1, 7):
            assert _select_sums(x, positions, listed) == [float(sums[p]) for p in positions]
    tied = np.round(rng.normal(0.2, 1, EXACT_UP_TO + 51), 1)  # above the limit: selected, not listed
    rows, columns = np.triu_indices(len(tied))
    walsh = np.sort((np.sort(tied)[rows] + np.sort(tied)[columns]) / 2)
    assert walsh_averages_at(tied, [0, 999, len(walsh) - 1]) == [walsh[0], walsh[999], walsh[-1]]
    assert walsh_centre_and(tied, [5]) == (float(np.median(walsh)), [walsh[5]])


def test_above_the_exact_limit_the_critical_counts_are_the_normal_approximations():
    from harness.report.stats import EXACT_UP_TO, _critical_count, _untied_at_most

    for n in (EXACT_UP_TO, EXACT_UP_TO + 1, 5000):
        for tail in (0.025, 0.025 / 7, 1e-6):
            critical = _critical_count(n, tail)  # the largest count whose lower tail is within `tail`
            assert _untied_at_most(n, critical) <= tail < _untied_at_most(n, critical + 1)
    assert _critical_count(6, 0.025) == 0 and _critical_count(5, 0.025) == -1  # 1/64 <= 0.025 < 2/64; 1/32 > 0.025


def test_the_verdicts_note_tells_no_paired_runs_from_too_few_pairs():
    from harness.report.verdicts import Judged

    streaming_only = table(*(run(seed=s) for s in range(6)))  # the article's factors held fixed: nothing to pair
    assert verdicts.verdicts(streaming_only, ARTICLE).note == "None of these comparisons has paired runs in this sweep."
    two_seeds = table(*(run(o, seed=s) for o in ("adam", "sgd") for s in range(2)))
    assert verdicts.verdicts(two_seeds, ARTICLE).note.startswith(
        "No comparison here has the 6 pairs that a 95 % statement")
    assert Judged([], 1, 1).note.startswith("Intervals are exact 95 % intervals")
