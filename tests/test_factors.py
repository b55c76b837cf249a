"""Sweep any setting: every value that varies across a sweep is a factor, in the progress lines, the
result files, runs.csv and the report (a section per swept setting), with real tiny sweeps."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from harness.cells import baselines, describe, overrides, sorted_levels, swept_factors
from tests.conftest import ARTICLE, compose_config, report_of, results_under, run_harness


def configs(*cells: list[str]) -> list[dict]:
    return [compose_config(cell).resolved for cell in cells]


def test_a_value_swept_within_an_option_is_a_factor_the_option_change_alone_is_not():
    grid = configs(*([f"optimizer={o}", f"optimizer.learning_rate={lr}"]
                     for o in ("adam", "sgd") for lr in (0.1, 0.01)))
    assert swept_factors(grid) == [*ARTICLE, "optimizer.learning_rate"]
    # adam and sgd have different default learning rates: that is the optimizer factor, not a new one
    assert swept_factors(configs(["optimizer=adam"], ["optimizer=sgd"])) == ARTICLE
    # vgg16's transfer=on starts from ImageNet, small_cnn's from the source classes: that is the model factor
    grid = configs(*([f"model={m}", f"transfer={t}"] for m in ("small_cnn", "vgg16") for t in ("on", "off")))
    assert swept_factors(grid) == [*ARTICLE, "model"]


def test_the_article_factors_are_the_default_of_a_setting_not_special():
    from harness.config.schema import Config

    assert Config().factors == ARTICLE
    grid = configs(["model=small_cnn", "factors=[model]"], ["model=mobilenet_v2", "factors=[model]"])
    assert swept_factors(grid) == ["model"]  # the article's four are not named, and do not vary
    assert swept_factors(configs(["factors=[]"], ["factors=[]"])) == []
    assert swept_factors(configs(["factors=[]", "epochs=2"], ["factors=[]", "epochs=3"])) == ["epochs"]
    assert swept_factors(configs(["factors=[batch_size]"])) == ["batch_size"]  # named: a factor although fixed
    assert swept_factors([]) == []


@pytest.mark.parametrize(("cells", "factor"), [
    ([["model=small_cnn"], ["model=mobilenet_v2"]], "model"),
    ([["epochs=2"], ["epochs=3"]], "epochs"),
    ([["batch_size=16"], ["batch_size=64"]], "batch_size"),
    ([["early_stopping=on", "early_stopping.patience=0"], ["early_stopping=on", "early_stopping.patience=2"]],
     "early_stopping.patience"),
])
def test_each_kind_of_setting_is_found(cells, factor):
    assert swept_factors(configs(*cells)) == [*ARTICLE, factor]


def test_seeds_and_bookkeeping_settings_are_never_factors():
    assert swept_factors(configs(["seed=0"], ["seed=1", "rerun=true", "run_timeout_s=5", "order=grid"])) == \
        ARTICLE


def test_baselines_are_the_default_where_swept_else_the_first_level():
    grid = configs(["optimizer.learning_rate=0.1", "epochs=3"], ["optimizer.learning_rate=0.001", "epochs=2"])
    found = baselines(compose_config([]).resolved, grid, [*ARTICLE, "optimizer.learning_rate", "epochs"])
    assert found == {"optimizer": "adam", "transfer": "off", "early_stopping": "off", "device": "cpu",
                     "optimizer.learning_rate": 0.001, "epochs": 2}  # adam's default 0.001; 50 epochs not swept


def test_one_description_of_a_cell():
    factors = {"optimizer": "adam", "transfer": "off", "early_stopping": "off", "device": "cpu",
               "optimizer.learning_rate": 0.01, "early_stopping.restore_best_weights": False}
    assert describe(factors, 0) == ("optimizer=adam transfer=off early_stopping=off device=cpu "
                                    "optimizer.learning_rate=0.01 early_stopping.restore_best_weights=false seed=0")
    assert overrides(factors, 1) == ["optimizer=adam", "transfer=off", "early_stopping=off", "device=cpu",
                                     "optimizer.learning_rate=0.01", "early_stopping.restore_best_weights=false",
                                     "seed=1"]


def test_levels_sort_numbers_numerically():
    assert sorted_levels([10, 2, np.float64(0.5), 2.0, "b", "a"]) == [0.5, 2, 10, "a", "b"]


def test_learning_rates_by_optimizer_six_distinct_cells_and_a_report_section(tmp_path):
    done = run_harness(["-m", "optimizer=adam,sgd", "optimizer.learning_rate=0.1,0.01,0.001", "epochs=3",
                        "tracking=disabled", "report=false"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line.split(" … ")[0] for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == len({line.split("] ", 1)[1] for line in lines}) == 6
    cell = r"optimizer=sgd transfer=off early_stopping=off device=cpu optimizer.learning_rate=0.1 seed=0"
    assert any(re.search(rf"\] {cell}$", line)
               for line in lines)

    results = results_under(tmp_path / "multirun")
    assert {(r["factors"]["optimizer"], r["factors"]["optimizer.learning_rate"]) for r in results} == {
        (o, lr) for o in ("adam", "sgd") for lr in (0.1, 0.01, 0.001)}
    assert all(r["factor_baselines"] == {"optimizer": "adam", "transfer": "off", "early_stopping": "off",
                                         "device": "cpu", "optimizer.learning_rate": 0.001} for r in results)

    report = report_of(done.stdout, tmp_path)
    runs = pd.read_csv(report / "runs.csv")
    assert sorted(runs["optimizer.learning_rate"]) == [0.001, 0.001, 0.01, 0.01, 0.1, 0.1]
    markdown = (report / "report.md").read_text()
    section = markdown.split("## By optimizer.learning_rate")[1].split("\n## ")[0]
    assert "compare each level with optimizer.learning_rate=0.001" in section
    assert "figures/by_level_4.png" in section and (report / "figures" / "by_level_4.png").is_file()
    rows = [line.split("|")[1].strip() for line in section.splitlines() if re.match(r"\| 0\.", line)]
    assert rows == ["0.001", "0.01", "0.1"]  # numeric order
    # the optimizer effect is paired within learning rates: 3 pairs (one per learning rate, seed 0)
    assert "| optimizer | sgd vs adam | train_seconds |" in markdown and "3 pairs: too few to tell" in markdown
    assert "Fixed: transfer: off; early_stopping: off; device: cpu." in markdown


def test_several_settings_swept_together_and_resume_keeps_its_meaning(tmp_path):
    done = run_harness(["-m", "epochs=1,2", "batch_size=16,64", "tracking=disabled", "report=false"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    cells = {line.split("] ", 1)[1].split(" … ")[0] for line in done.stdout.splitlines() if line.startswith("[")}
    assert cells == {f"optimizer=adam transfer=off early_stopping=off device=cpu epochs={e} batch_size={b} seed=0"
                     for e in (1, 2) for b in (16, 64)}
    report = report_of(done.stdout, tmp_path)
    runs = pd.read_csv(report / "runs.csv")
    assert {"epochs", "batch_size"} <= set(runs.columns) and len(runs) == 4
    markdown = (report / "report.md").read_text()
    assert "## By epochs" in markdown and "## By batch_size" in markdown

    # A stored result is reused only for an identical run config (that another batch size is another
    # key: test_resilience's run-key tests), and a reused result takes this sweep's factors.
    third = run_harness(["-m", "epochs=1,2,3", "batch_size=16", "tracking=disabled", "report=false"], cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    reused = [line for line in third.stdout.splitlines() if "reused" in line]
    assert len(reused) == 2 and all("batch_size" not in line for line in reused)
    latest = max((tmp_path / "multirun").iterdir(), key=lambda p: p.stat().st_mtime)
    for result in results_under(latest):
        assert set(result["factors"]) == {*ARTICLE, "epochs"}  # batch_size is fixed in this sweep


def test_a_key_one_swept_option_lacks_is_one_line_before_training(tmp_path):
    done = run_harness(["-m", "optimizer=adam,sgd", "optimizer.beta_1=0.8,0.9", "tracking=disabled"], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "harness: error: optimizer.beta_1 is not a setting of optimizer=sgd; valid: learning_rate, lr_scale, "
        "weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency, "
        "loss_scale_factor, gradient_accumulation_steps, momentum, nesterov"]
    assert not list(tmp_path.rglob("result.json"))


def test_single_runs_and_old_results_keep_the_article_factors(tmp_path):
    done = run_harness(["epochs=1", "tracking=disabled"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [result] = results_under(tmp_path / "outputs")
    assert result["factors"] == {"optimizer": "adam", "transfer": "off", "early_stopping": "off", "device": "cpu"}
    assert json.loads(json.dumps(result))["factor_baselines"] == {}


def test_settings_a_workload_brings_with_it_are_not_factors_of_their_own():
    # each workload sets its dataset and model, and with them its target, loss and metrics: those vary only
    # together with dataset._target_, so they describe its levels rather than being factors to judge apart
    workloads = ("digits_cnn", "digits_wide_cnn", "wine_mlp", "diabetes_mlp")
    configs = [compose_config([f"workload={name}", f"optimizer={optimizer}"]).resolved
               for name in workloads for optimizer in ("adam", "sgd")]
    assert swept_factors(configs) == [*ARTICLE, "dataset", "model", "dataset._target_", "model.dense_units"]
    # two settings swept independently stay two factors
    both = [compose_config([f"epochs={e}", f"batch_size={b}"]).resolved for e in (1, 2) for b in (16, 64)]
    assert swept_factors(both) == [*ARTICLE, "epochs", "batch_size"]
