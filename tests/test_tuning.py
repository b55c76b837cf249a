"""The fair optimizer comparison (harness.report.tuning) on hand-built tables with exact answers."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from harness.report.tuning import robustness, select_levels, split_seeds, tuned_times, tuning_verdict

FACTOR = "optimizer.lr_scale"

# Time to target (None: never reached) per (optimizer, lr_scale) and seed 0..3. On seeds 0 and 1, sgd
# at lr_scale 10 is lucky (3 s); on seeds 2 and 3 it is slow (9 s). Adam at 1 is a steady 5 s.
TIMES = {
    ("adam", 0.1): [None, None, None, None], ("adam", 1.0): [5, 5, 5, 5], ("adam", 10.0): [8, 8, 8, 8],
    ("sgd", 0.1): [None, None, None, None], ("sgd", 1.0): [6, 6, 6, 6], ("sgd", 10.0): [3, 3, 9, 9],
}


def table(times: dict = TIMES) -> pd.DataFrame:
    rows = []
    for (optimizer, scale), per_seed in times.items():
        for seed, time in enumerate(per_seed):
            rows.append({"optimizer": optimizer, FACTOR: scale, "transfer": "off", "early_stopping": "off",
                         "device": "cpu", "seed": seed, "status": "ok", "time_to_target_seconds": time,
                         "best_val_accuracy": 0.95 if time else 0.5, "train_seconds": 10.0, "target_accuracy": 0.9})
    return pd.DataFrame(rows)


def test_seeds_split_in_halves():
    assert split_seeds([3, 1, 0, 2]) == ([0, 1], [2, 3])
    assert split_seeds([0, 1, 2]) == ([0, 1], [2])
    assert split_seeds([7]) == ([7], [7])


def test_held_out_seeds_do_not_reward_a_lucky_draw():
    runs = table()
    choice = select_levels(runs, FACTOR, [0, 1])
    assert dict(zip(choice["optimizer"], choice["level"], strict=True)) == {"adam": 1.0, "sgd": 10.0}
    # Measured on the seeds that chose it, sgd's lucky rate wins ...
    same = tuned_times(runs, FACTOR, choice, [0, 1])
    assert same["optimizer"].tolist() == ["sgd", "adam"]
    # ... measured on held-out seeds, adam is faster: 5 s against 9 s.
    held_out = tuned_times(runs, FACTOR, choice, [2, 3])
    assert held_out["optimizer"].tolist() == ["adam", "sgd"]
    assert held_out["median_time_to_target_seconds"].tolist() == [5.0, 9.0]
    assert held_out["reached"].tolist() == [2, 2]


def test_never_reached_counts_as_infinitely_slow_and_ties_prefer_accuracy_then_the_default():
    times = {("adam", 0.1): [None, None], ("adam", 1.0): [None, None], ("adam", 10.0): [None, None],
             ("sgd", 0.5): [4, 4], ("sgd", 2.0): [4, 4], ("sgd", 8.0): [4, 4]}
    runs = table(times)
    runs.loc[(runs["optimizer"] == "adam") & (runs[FACTOR] == 10.0), "best_val_accuracy"] = 0.8
    choice = dict(select_levels(runs, FACTOR, [0, 1])[["optimizer", "level"]].itertuples(index=False))
    assert choice["adam"] == 10.0  # never reached anywhere: the best validation accuracy decides
    assert choice["sgd"] == 0.5  # a tie in time and accuracy: the closest to the default; 0.5 and 2 tie: the lower
    assert math.isinf(tuned_times(runs, FACTOR, select_levels(runs, FACTOR, [0]), [1])
                      .set_index("optimizer").loc["adam", "median_time_to_target_seconds"])


def test_robustness_and_tuning_cost():
    grid = robustness(table(), FACTOR).set_index("optimizer")
    assert grid.loc["adam", "levels_reached"] == 2 and grid.loc["adam", "levels"] == 3
    assert grid.loc["sgd", "tuning_seconds"] == 120.0  # 3 levels x 4 seeds x 10 s


def test_the_verdict_names_the_held_out_winner_and_the_robustness():
    sentences, shown = tuning_verdict(table(), ("optimizer", "transfer", "early_stopping", "device", FACTOR))
    text = " ".join(sentences)
    assert "At default learning rates (lr_scale 1): fastest to the target: adam (Adam ranks 1 of 2)." in text
    assert "chosen on seeds 0, 1, measured on held-out seeds 2, 3" in text
    assert "adam is fastest (optimizer.lr_scale=1.0, median 5.00 s to the target)" in text
    assert "adam 2/3, sgd 2/3" in text
    assert "At the edge of the grid: sgd chose optimizer.lr_scale=10.0, the largest value tried" in text
    assert shown["optimizer"].tolist() == ["adam", "sgd"]
    assert tuning_verdict(table()[lambda d: d["optimizer"] == "adam"], ("optimizer", FACTOR)) == ([], None)


def test_a_real_tuning_sweep_gives_the_tuned_verdict_and_the_sensitivity_figure(tmp_path):

    from tests.conftest import report_of, results_under, run_harness

    done = run_harness(["-m", "optimizer=adam,sgd", "optimizer.lr_scale=0.3,3", "seed=0,1", "epochs=3",
                        "target_accuracy=0.5", "tracking=disabled", "report=false"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = results_under(tmp_path / "multirun")
    assert len(results) == 8
    for result in results:  # the scale multiplies each optimizer's own default learning rate
        default = {"adam": 0.001, "sgd": 0.01}[result["factors"]["optimizer"]]
        assert result["learning_rate"] == pytest.approx(default * result["factors"]["optimizer.lr_scale"])
    report = report_of(done.stdout, tmp_path)
    markdown = (report / "report.md").read_text()
    section = markdown.split("## Optimizers at their best learning rate")[1].split("\n## ")[0]
    assert "Each at its best of 2 values of optimizer.lr_scale (chosen on seeds 0, measured on held-out seeds 1)" \
        in section
    assert "Robustness, levels of the grid where most runs reach the target: adam " in section
    assert "figures/sensitivity.png" in section and (report / "figures" / "sensitivity.png").is_file()


def test_what_a_run_returns_to_a_search():
    from harness.sweep.cell import objective

    ok = {"status": "ok", "time_to_target_seconds": 2.5, "best_val_accuracy": 0.9}
    assert objective(ok, None) is None
    assert objective(ok, "time_to_target_seconds") == 2.5
    assert objective({**ok, "time_to_target_seconds": None}, "time_to_target_seconds") == math.inf  # never reached
    assert math.isnan(objective({"status": "failed"}, "time_to_target_seconds"))  # Optuna: a failed trial


def test_an_optuna_search_of_three_trials_runs_for_real(tmp_path):
    from pathlib import Path

    import yaml

    from tests.conftest import results_under, run_harness

    done = run_harness(["-m", "hparams_search=optuna", "optimizer=adam", "hydra.sweeper.n_trials=3", "epochs=2",
                        "target_accuracy=0.5", "tracking=disabled"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = results_under(tmp_path / "multirun")
    assert len(results) == 3 and all(r["status"] == "ok" for r in results)
    scales = [r["factors"]["optimizer.lr_scale"] for r in results]
    assert len(set(scales)) == 3 and all(0.1 <= s <= 10 for s in scales)  # TPE's draws, within the space
    [summary] = tmp_path.glob("multirun/*/optimization_results.yaml")  # what Optuna found
    best = yaml.safe_load(summary.read_text())
    times = {r["factors"]["optimizer.lr_scale"]: r["time_to_target_seconds"] or math.inf for r in results}
    assert best["best_value"] == min(times.values())  # it optimised what the runs returned
    report = Path(done.stdout.splitlines()[-1].removeprefix("report: ")).with_name("report.md").read_text()
    assert "## By optimizer.lr_scale" in report
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in lines] == ["[1/3", "[2/3", "[3/3"]  # n_trials is known: no [1/?]
    shown = [re.search(r"optimizer\.lr_scale=(\S+)", line).group(1) for line in lines]
    assert all(len(value.replace(".", "").lstrip("0")) <= 4 for value in shown), shown  # 4 significant digits
