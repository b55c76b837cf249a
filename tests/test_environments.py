"""Environments as a factor (``python=A,B``): before and after a package upgrade in one sweep, interleaved,
each run keyed by and recording its interpreter's packages; a bad interpreter is one line before training."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.config.validate import ConfigError, check_interpreter
from harness.interpreters import interpreter_path, interpreter_versions
from harness.report.tables import results_frame
from harness.report.verdicts import SPEED_FACTORS, judge_as_family, package_changes, speed_verdict
from tests.conftest import FAST, report_of, results_under, run_harness


def same_packages_interpreter(folder: Path) -> str:
    """A second interpreter with this one's packages (a script that execs it): the null check's 'after'."""
    wrapper = folder / "bin" / "python"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_an_interpreter_is_named_by_path_or_command_and_defaults_to_this_one(monkeypatch, tmp_path):
    assert interpreter_path(None) == sys.executable
    monkeypatch.chdir(tmp_path)
    assert interpreter_path("envs/b/bin/python") == str(tmp_path / "envs/b/bin/python")
    monkeypatch.setenv("PATH", str(Path(same_packages_interpreter(tmp_path)).parent))
    assert interpreter_path("python") == str(tmp_path / "bin" / "python")  # a command, looked up on PATH


def test_a_missing_interpreter_is_one_line_naming_what_is_valid():
    with pytest.raises(ConfigError) as said:
        check_interpreter("/nowhere/bin/python", "tensorflow")
    assert str(said.value).startswith("python=/nowhere/bin/python is not an executable file; valid: ")
    assert "\n" not in str(said.value)


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="the harness is installed in the base interpreter here")
def test_an_interpreter_without_the_harness_is_one_line_saying_how_to_install_it(monkeypatch, tmp_path):
    base = os.path.join(sys.base_prefix, "bin", "python3")  # this virtual environment's base: no harness there
    monkeypatch.chdir(tmp_path)  # (from a checkout's root, its harness/ folder would be importable there)
    with pytest.raises(ConfigError) as said:
        check_interpreter(base, "tensorflow")
    assert f"python={base} cannot run the harness" in str(said.value) and "pip install -e" in str(said.value)
    assert "\n" not in str(said.value)


def test_another_interpreter_is_asked_for_its_package_versions(tmp_path):
    other = same_packages_interpreter(tmp_path)
    assert interpreter_versions(other, "tensorflow") == interpreter_versions(None, "tensorflow")


def _runs(packages_after: str, ratio: float, seeds: int, rng: np.random.Generator) -> pd.DataFrame:
    """Runs of two environments, paired by seed, steady epoch times with ±15 % noise and ``ratio`` after."""
    rows = []
    for seed in range(seeds):
        for python, packages, factor in (("/a/python", "keras 3.5.0, numpy 2.1.0", 1.0),
                                         ("/b/python", packages_after, ratio)):
            epoch = 0.1 * factor * rng.lognormal(0, 0.15)
            rows.append({"python": python, "seed": seed, "status": "ok", "packages": packages,
                         "median_epoch_seconds": epoch, "first_epoch_seconds": 3 * epoch,
                         "time_to_target_seconds": 5 * epoch, "test_accuracy": 0.9, "train_seconds": 10 * epoch})
    return pd.DataFrame(rows)


def _environment_verdict(runs: pd.DataFrame) -> tuple[str, bool]:
    """The report's sentence for ``python``, and whether its steady epoch time was called beyond noise
    (judged with the sentence's other comparisons, as the report does)."""
    steady = {}

    def sentence(measure):
        def recording(factor, level, baseline, metric, kind, *where):
            effect = measure(factor, level, baseline, metric, kind, *where)
            if metric == "median_epoch_seconds":
                steady["effect"] = effect  # the last call is the family-judged one
            return effect
        return speed_verdict(runs, "python", "/b/python", "/a/python", recording, factors=["python"])

    judged = judge_as_family(runs, [sentence], ["python"])
    return judged.sentences[0], steady["effect"].distinguishable


def test_the_environment_verdict_names_the_packages_that_changed_and_finds_a_real_slowdown():
    assert "python" in SPEED_FACTORS
    runs = _runs("keras 3.6.0, numpy 2.1.0", ratio=1.5, seeds=10, rng=np.random.default_rng(0))
    assert package_changes(runs, "python", "/b/python", "/a/python") == " (keras 3.5.0 → 3.6.0)"
    sentence, distinguishable = _environment_verdict(runs)
    assert sentence.startswith("python=/b/python vs /a/python (keras 3.5.0 → 3.6.0): steady epoch time ×1.")
    assert distinguishable


def test_identical_environments_are_rarely_told_apart_in_repeated_trials():
    # The null check, by simulation: the same packages on both sides, 200 sweeps of 8 seeds; a stated 95 %
    # allows 5 % false calls, and 20 of 200 (10 %) lies beyond 5 % by more than chance allows (p < 0.001).
    rng = np.random.default_rng(1)
    called = 0
    for _ in range(200):
        runs = _runs("keras 3.5.0, numpy 2.1.0", ratio=1.0, seeds=8, rng=rng)
        sentence, distinguishable = _environment_verdict(runs)
        called += distinguishable
    assert "(the same package versions)" in sentence
    assert called < 20, called


def test_a_sweep_over_two_environments_runs_them_interleaved_and_records_each_sides_packages(tmp_path):
    after = same_packages_interpreter(tmp_path / "after")
    done = run_harness(["-m", *FAST, f"python={sys.executable},{after}", "seed=0,1", "report=false"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = sorted(results_under(tmp_path / "multirun"), key=lambda r: r["sweep_position"])
    assert [r["status"] for r in results] == ["ok"] * 4
    pythons = [r["config"]["python"] for r in results]
    assert sorted(pythons[:2]) == sorted(pythons[2:]) == sorted([sys.executable, after])  # each seed's block: both
    assert len({r["run_key"] for r in results}) == 4  # another environment's run is never this one's
    packages = [r["environment"]["packages"] for r in results]
    assert all(p["keras"] == packages[0]["keras"] and p["numpy"] for p in packages)
    runs = results_frame(results)
    assert list(runs["python"]) == pythons and runs["packages"].str.contains("keras ").all()
    report = (report_of(done.stdout, tmp_path) / "report.md").read_text()
    assert f"python={after} vs {sys.executable} (the same package versions): steady epoch time" in report
