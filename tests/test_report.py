"""The report from result files: every part present, rebuilt byte for byte, rendered in a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.report import write_report
from harness.report.synthetic import synthetic_results
from harness.result_files import write_json_atomic
from tests.conftest import ARTICLE, results_under, run_harness

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """A sweep folder of 96 synthetic result files (the full grid, two seeds) and one failed run."""
    folder = tmp_path_factory.mktemp("sweep")
    results = synthetic_results(96)
    failed = {key: value for key, value in results[0].items() if key != "train_seconds"}  # it never finished
    results.append({**failed, "run_key": "failed0", "seed": 9, "status": "failed", "reason": "nan loss",
                    "history": [], "test_accuracy": None})
    for i, result in enumerate(results):
        write_json_atomic(folder / str(i) / "result.json", result)
    return folder


def test_report_has_every_part(sweep_dir, tmp_path):
    index = write_report(sweep_dir, tmp_path / "report")
    markdown = index.with_name("report.md").read_text()
    for heading in ("Setup", "Verdicts on the article's claims", "Factor effects", "Learning curves",
                    "Accuracy against training time", "Measurement quality", "Time to target",
                    "By optimizer", "By transfer", "By early_stopping", "By device",
                    "Cost to target", "Per cell", "Failed and skipped runs", "Every run", "Re-run"):
        assert f"## {heading}" in markdown, heading
    # the answer first: verdicts (with the effects figure), then how far to trust the timings, then the evidence
    headings = re.findall(r"^## (.+)$", markdown, flags=re.M)
    assert headings[:3] == ["Verdicts on the article's claims", "Measurement quality", "Setup"]
    assert headings.index("Factor effects") < headings.index("Per cell")
    assert "![Verdicts on the article's claims](figures/effects.png)" in markdown
    assert "<details><summary>Steady epoch time (seconds) per cell" in index.read_text()
    assert "Holm" in markdown.split("## Measurement quality")[0]
    effects = pd.read_csv(index.with_name("effects.csv"))
    assert {"factor", "level", "baseline", "metric", "estimate", "low", "high", "pairs", "p_value", "p_adjusted",
            "distinguishable"} <= set(effects.columns)
    assert len(effects) == 24 and set(effects["correction"]) == {"Benjamini-Hochberg"}  # 8 comparisons × 3 metrics
    assert effects["pairs"].min() >= 6 and effects["p_adjusted"].notna().all()
    verdict_section = markdown.split("## Verdicts on the article's claims")[1].split("##")[0]
    verdict_lines = [line for line in verdict_section.splitlines() if line.startswith("- ")]
    assert [line[:20] for line in verdict_lines] == ["- Optimizers to 0.9 ", "- Transfer learning ",
                                                     "- Early stopping (on", "- GPU vs CPU: train "]
    assert "Adam ranks" in verdict_lines[0] and "95% CI" in verdict_lines[1]
    assert "| failed | nan loss | 1 |" in markdown
    assert "python -m harness optimizer=sgd transfer=on early_stopping=on device=cpu seed=9" in markdown
    for figure in ("learning_curves", "pareto", "effects", "time_to_target"):
        assert (index.parent / "figures" / f"{figure}.png").stat().st_size > 5000
    assert index.read_text().count("data:image/png;base64,") == 4
    cells = pd.read_csv(index.with_name("cells.csv"))
    assert len(cells) == 48 and set(cells["repeats"]) == {2}
    assert len(pd.read_csv(index.with_name("runs.csv"))) == 97


def test_report_rebuilds_identically(sweep_dir, tmp_path):
    first = write_report(sweep_dir, tmp_path / "a").parent
    second = write_report(sweep_dir, tmp_path / "b").parent
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) >= 8
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: install Debian's chromium (.ci/run does) to "
                    "render the report in a real browser")
def test_report_renders_in_headless_chromium_with_every_image(sweep_dir, tmp_path):
    index = write_report(sweep_dir, tmp_path / "report")
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--window-size=1280,900",
         "--dump-dom", index.as_uri()],
        capture_output=True, text=True, timeout=900, check=True).stdout
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert loaded, "the page's load handler did not run"
    assert loaded.group(1) == loaded.group(2) == "4"
    assert "Verdicts on the article" in dom and dom.count("<table") >= 6
    width = re.search(r'data-page-width="(\d+)/(\d+)"', dom)
    assert width and int(width.group(1)) <= int(width.group(2)), width  # no sideways scrolling at 1280 px


EXAMPLES = sorted(path.parent for path in (Path(__file__).resolve().parent.parent / "reports" / "example")
                  .rglob("results.tar.gz"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_shipped_example_is_up_to_date_with_the_report_code(tmp_path, monkeypatch, example):
    # Each shipped example must be what the current report code makes of its stored results; if this
    # fails after a change to the report, run reports/example/rebuild.sh and commit the result.
    import tarfile

    with tarfile.open(example / "results.tar.gz") as archive:
        archive.extractall(tmp_path / "multirun", filter="data")
    sweep = next((tmp_path / "multirun").iterdir())
    monkeypatch.chdir(tmp_path)
    index = write_report(Path("multirun") / sweep.name, tmp_path / "rebuilt")
    for name in ("report.md", "runs.csv", "cells.csv"):  # text; PNG bytes depend on the plotting library
        assert (index.parent / name).read_text() == (example / name).read_text(), name


def test_a_finished_sweep_is_re_costed_at_another_price_without_training(sweep_dir, tmp_path, capsys):
    from harness.report.pages import cost_section, main

    assert main([str(sweep_dir), "--out", str(tmp_path / "out"), "--price", "gpu=2.0", "--price", "cpu=0.05"]) == 0
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert set(runs.loc[runs["device"] == "gpu", "price_per_hour"]) == {2.0}
    assert set(runs.loc[runs["device"] == "cpu", "price_per_hour"]) == {0.05}
    table = cost_section(runs, factors=ARTICLE).table.set_index(["optimizer", "transfer", "early_stopping", "device"])
    ok = runs[runs["status"] == "ok"]
    for cell, group in ok.groupby(["optimizer", "transfer", "early_stopping", "device"]):
        price = 2.0 if cell[3] == "gpu" else 0.05
        to_target = group["time_to_target_seconds"].fillna(float("inf"))  # a miss: never, at any price
        expected = (to_target / 3600 * price).median()  # time to target x the price
        assert table.loc[cell, "median_cost_to_target_usd"] == pytest.approx(expected, rel=1e-12)
    assert (table["median_cost_to_target_usd"] < float("inf")).sum() > 10  # most cells reach the target
    assert "No price set for" not in (tmp_path / "out" / "report.md").read_text()

    assert main([str(sweep_dir), "--out", str(tmp_path / "bad"), "--price", "tpu=1"]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert said == ["harness.report: error: --price tpu=1 is invalid; valid: DEVICE=USD_PER_HOUR with DEVICE cpu "
                    "or gpu and a price >= 0, e.g. --price gpu=2.0"]


def test_a_run_is_judged_for_another_target_from_its_history_with_exact_answers():
    from harness.targets import RetargetError, retarget

    history = [{"train_seconds": 1.0, "val_accuracy": a, "val_loss": 1 - a} for a in (0.5, 0.8, 0.92, 0.95)]
    made = {"run_key": "k", "status": "ok", "history": history, "target_metric": "val_accuracy",
            "target_value": 0.9, "target_mode": "max", "time_to_target_seconds": 3.0, "epochs_to_target": 3}
    (higher,) = retarget([made], value=0.94)
    assert (higher["time_to_target_seconds"], higher["epochs_to_target"], higher["target_accuracy"]) == (4.0, 4, 0.94)
    (missed,) = retarget([made], value=0.99)
    assert missed["time_to_target_seconds"] is None and missed["best_target_metric"] == 0.95  # a miss: never
    (loss,) = retarget([made], metric="val_loss", value=0.25)  # a loss: reached at or below (mode auto: min)
    assert (loss["target_mode"], loss["epochs_to_target"], loss["target_accuracy"]) == ("min", 2, None)
    assert retarget([{**made, "status": "failed"}], value=0.5) == [{**made, "status": "failed"}]  # untouched
    with pytest.raises(RetargetError, match=r"^target.metric=val_mae is not in the history of run k; valid: "
                                            r"val_accuracy, val_loss$"):
        retarget([made], metric="val_mae")


def test_a_finished_sweep_is_judged_for_another_target_without_training(sweep_dir, tmp_path, capsys):
    from harness.report.pages import main

    assert main([str(sweep_dir), "--out", str(tmp_path / "at95"), "target.value=0.95"]) == 0
    page = (tmp_path / "at95" / "report.md").read_text()
    assert ("Judged after the fact for the target val_accuracy 0.95 (set with target.value=0.95), from each run's "
            "per-epoch history: its runs were made for val_accuracy 0.9, and no run was trained again.") in page
    assert "Optimizers to 0.95 validation accuracy" in page
    runs = pd.read_csv(tmp_path / "at95" / "runs.csv")
    assert set(runs.loc[runs["status"] == "ok", "target_value"]) == {0.95}
    assert main([str(sweep_dir), "--out", str(tmp_path / "bad"), "target.valeu=0.95"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "harness.report: error: target.valeu=0.95 is not a target setting; valid: target.value=NUMBER|auto, "
        "target.metric=NAME (e.g. val_loss), target.mode=auto|max|min"]


def _made(optimizer: str, bests: list[float], metric: str = "val_accuracy", dataset: str = "digits") -> list[dict]:
    """Ok results whose histories reach ``bests`` (one run each) in their last epoch."""
    return [{"status": "ok", "config": {"optimizer": {"name": optimizer}}, "dataset": dataset, "model": "small_cnn",
             "run_key": f"{i}",
             "target_metric": metric, "target_value": 0.5, "target_mode": "max" if metric == "val_accuracy" else "min",
             "history": [{"train_seconds": 1.0, metric: 0.0 if metric == "val_accuracy" else 9.0},
                         {"train_seconds": 1.0, metric: best}]} for i, best in enumerate(bests)]


def test_an_auto_target_is_what_most_of_adams_runs_reached_per_workload_with_exact_answers():
    from harness.targets import auto_targets, retarget_auto

    runs = _made("adam", [0.98, 0.90, 0.94, 0.96, 0.92]) + _made("sgd", [0.5, 0.6])
    assert auto_targets(runs) == {"dataset=digits model=small_cnn": ("val_accuracy", 0.92, "max")}  # 4 of 5 reach it
    errors = _made("adam", [0.5, 0.9, 0.7, 0.6, 0.8], metric="val_mae", dataset="wine")  # minimised
    assert auto_targets(errors)["dataset=wine model=small_cnn"] == ("val_mae", 0.8, "min")  # 4 of 5 at most it
    both = auto_targets(runs + errors)
    assert set(both) == {"dataset=digits model=small_cnn", "dataset=wine model=small_cnn"}  # one per workload
    assert auto_targets(_made("sgd", [0.7, 0.8, 0.9]))["dataset=digits model=small_cnn"][1] == 0.7  # no adam: all
    judged, _ = retarget_auto(runs)
    reached = [r["epochs_to_target"] for r in judged if r["config"]["optimizer"]["name"] == "adam"]
    assert sorted(reached, key=lambda e: e is None) == [2, 2, 2, 2, None]


def test_a_finished_sweep_judged_for_auto_targets_says_each_value(sweep_dir, tmp_path):
    from harness.report.pages import main

    assert main([str(sweep_dir), "--out", str(tmp_path / "auto"), "target.value=auto"]) == 0
    page = (tmp_path / "auto" / "report.md").read_text()
    assert "Judged after the fact for each workload's auto target, the best value that at least 80% of adam's runs " \
           "(of all runs, where it has none) reached (dataset=digits model=small_cnn: val_accuracy >= " in page


def test_re_targeting_a_real_sweep_agrees_with_runs_made_for_that_target(tmp_path):
    # one sweep, each cell made for 0.6 and for 0.85 (training does not depend on the target: the same seed
    # trains the same model); judged after the fact for 0.85, the 0.6 runs reach it at their twins' epochs
    from harness.report.pages import main

    done = run_harness(["-m", "epochs=3", "tracking=disabled", "optimizer=adam,sgd", "target_accuracy=0.6,0.85"],
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sweep = next((tmp_path / "multirun").iterdir())
    assert main([str(sweep), "--out", str(tmp_path / "at85"), "target.value=0.85"]) == 0
    runs = pd.read_csv(tmp_path / "at85" / "runs.csv")
    made = {(r["factors"]["optimizer"], r["target_value"]): r for r in results_under(sweep)}
    for _, row in runs.iterrows():
        twin = made[(row["optimizer"], 0.85)]
        assert row["epochs_to_target"] == twin["epochs_to_target"] or (
            pd.isna(row["epochs_to_target"]) and twin["epochs_to_target"] is None)


@pytest.mark.parametrize("kept", [[], ["transfer"], ["model"]])
def test_a_sweep_of_other_factors_or_none_gets_a_report_without_the_articles_parts(tmp_path, kept):
    # The article's four are the default factors, not special columns: results that name other factors
    # (``factors=[model]``) or none (``factors=[]``) are reported by the same code.
    default = {"optimizer": "adam", "transfer": "off", "early_stopping": "off", "device": "cpu"}
    results = [r for r in synthetic_results(48 * 6) if all(r["factors"][k] == v for k, v in default.items()
                                                          if k not in kept)]
    models = ["small_cnn", "mobilenet_v2"] if kept == ["model"] else ["small_cnn"]
    for number, result in enumerate(results):
        for model in models:  # the same timings for both models: a factor with no effect
            levels = {**result["factors"], "model": model}
            write_json_atomic(tmp_path / "sweep" / f"{number}-{model}" / "result.json",
                              {**result, "run_key": f"{result['run_key']}-{model}",
                               "factors": {k: v for k, v in levels.items() if k in kept}})
    report = (write_report(tmp_path / "sweep", tmp_path / "report").parent / "report.md").read_text()
    runs = pd.read_csv(tmp_path / "report" / "runs.csv")
    assert set(runs) & set(ARTICLE) == {*kept, "device"} - {"model"}  # device: where it ran, for its cost
    article = "## Verdicts on the article's claims" in report
    assert article == (kept == ["transfer"]) and "Fastest optimizer" not in report and "Optimizers" not in report
    if kept == ["transfer"]:
        assert "Transfer learning (on vs off; small_cnn on digits) multiplies time to target by" in report
    if not kept:
        assert "| the only cell | 6 |" in report  # the sweep is one cell, repeated over seeds
    if kept == ["model"]:
        assert "Grid: model: mobilenet_v2, small_cnn; seed: 0, 1, 2, 3, 4, 5." in report
        assert "| model | small_cnn vs mobilenet_v2 | train_seconds | ×1.00 (" in report


def test_a_numeric_factor_colours_its_curves_as_levels_with_none_drawn_nearly_white(tmp_path, monkeypatch):
    # seaborn shades a numeric hue (batch_size=8,16,128) on a sequential palette, on which the lowest level is
    # nearly white on the white grid: the curves take the categorical palette, one colour a level
    import seaborn as sns
    from matplotlib.colors import to_rgb

    from harness.report import figures

    history = pd.DataFrame([{"run_key": f"{size}-{seed}", "batch_size": size, "seed": seed, "epoch": epoch,
                             "elapsed_train_seconds": epoch + 1.0, "val_accuracy": 0.5 + 0.1 * epoch}
                            for size in (128, 8, 16) for seed in (0, 1) for epoch in range(3)])
    shown, order = figures.as_levels(history, "batch_size")
    assert order == ["8", "16", "128"] and set(shown["batch_size"]) == {"8", "16", "128"}  # numbers numerically
    named = history.assign(optimizer="adam")
    assert figures.as_levels(named, "optimizer")[1] is None and figures.as_levels(history, None)[1] is None  # as is
    assert figures.as_levels(history.assign(jit=history["batch_size"] > 8), "jit")[1] == ["false", "true"]

    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda figure, path: drawn.setdefault(
        "colours", {to_rgb(line.get_color()) for ax in figure.axes for line in ax.get_lines()}))
    figures.learning_curves(history, tmp_path / "curves.png")
    palette = {to_rgb(colour) for colour in sns.color_palette()[:3]}
    assert drawn["colours"] >= palette and all(sum(colour) / 3 < 0.8 for colour in palette)


def test_the_curves_are_coloured_by_the_factor_the_sweep_varies():
    from harness.report.figures import curve_colour

    frame = pd.DataFrame({"optimizer": ["adam"] * 4, "transfer": ["off", "on"] * 2, "batch_size": [8, 8, 16, 16],
                          "precision": ["float32"] * 4})
    factors = ["optimizer", "transfer", "batch_size", "precision"]
    assert curve_colour(frame, factors, ("transfer", None)) == "batch_size"  # not the optimizer's one level
    assert curve_colour(frame.assign(optimizer=["adam", "sgd"] * 2), factors, ("transfer", None)) == "optimizer"
    assert curve_colour(frame, factors, (None, None)) == "transfer"  # the first factor varied, facets aside
    assert curve_colour(frame.assign(batch_size=8), factors, ("transfer", None)) == "optimizer"  # none varies
    assert curve_colour(frame, ["precision"], (None, None)) is None


def test_numeric_levels_on_a_log_axis_are_labelled_as_the_levels_on_every_panel(tmp_path, monkeypatch):
    # batch_size=8,16,128 spans a factor of 10: a log axis; where a panel lacks a level (128 never reached the
    # target) it still spans them all, labelled 8, 16, 128 rather than matplotlib's 8x10^0, 9x10^0, 10^1
    from harness.report import figures

    runs = pd.DataFrame({"status": "ok", "batch_size": [8, 16, 128], "optimizer": "adam",
                         "time_to_target_seconds": [0.95, 0.88, float("nan")], "train_seconds": [0.95, 0.98, 0.82],
                         "test_accuracy": [0.96, 0.96, 0.85]})
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda figure, path: drawn.setdefault("axes", [
        ([t.get_text() for t in ax.get_xticklabels()], ax.get_xlim(), ax.xaxis.get_minorticklocs())
        for ax in figure.axes]))
    figures.metrics_by_level(runs, "batch_size", [8, 16, 128], tmp_path / "by_level.png")
    assert len(drawn["axes"]) == 3
    for labels, (left, right), minor in drawn["axes"]:
        assert labels == ["8", "16", "128"] and left < 8 and right > 128 and len(minor) == 0
