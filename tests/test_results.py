"""The result contract at its two ends: every write and every read is checked against ``Result``, and
result files written by earlier code stay readable and keep their run keys (so the results store
reuses them). Unit tests: no training here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness import run_key as keys
from harness.result_files import collect_results, load_stored, read_result, store_result, write_result

WRITTEN_BEFORE = Path(__file__).parent / "data" / "results-2026-12-03"
"""Result files written by the harness of 2026-12-03 (a real sweep: one ok cpu run, one skipped gpu
cell), with the software versions and machine their run keys were computed with (``key_inputs.json``):
the run key includes both, so the test puts them back to check the rest of the key is unchanged."""


@pytest.mark.parametrize("name", ["ok.json", "skipped.json"])
def test_results_written_by_earlier_code_are_read_and_reused(monkeypatch, tmp_path, name):
    inputs = json.loads((WRITTEN_BEFORE / "key_inputs.json").read_text())
    monkeypatch.setattr(keys, "interpreter_versions", lambda python, backend: inputs["software"])
    monkeypatch.setattr(keys, "machine_fingerprint", lambda: inputs["machine"])
    result = read_result(WRITTEN_BEFORE / name)  # passes today's contract
    assert keys.run_key(result["config"]) == result["run_key"]  # the same run finds it under the same key
    if result["status"] == "ok":
        shutil.copy(WRITTEN_BEFORE / name, tmp_path / f"{result['run_key']}.json")
        assert load_stored(tmp_path, result["run_key"]) == result  # reused by the next sweep


def test_every_write_and_read_of_a_result_is_checked_against_the_contract(tmp_path):
    result = read_result(WRITTEN_BEFORE / "ok.json")
    with pytest.raises(ValueError, match=r"not a valid result \(unknown key 'train_secs'\)"):
        write_result(tmp_path / "run" / "result.json", {**result, "train_secs": 1.0})
    assert not (tmp_path / "run").exists()  # nothing half-valid is left behind
    with pytest.raises(ValueError, match="missing required key 'environment'"):
        store_result(tmp_path / "store", {k: v for k, v in result.items() if k != "environment"})

    bad = tmp_path / "sweep" / "0" / "result.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({**result, "epochs_run": "two"}))  # e.g. written by hand, or by a broken tool
    with pytest.raises(ValueError, match=r"epochs_run='two' is not <class 'int'>"):
        read_result(bad)
    write_result(tmp_path / "sweep" / "1" / "result.json", result)
    found, problems = collect_results(tmp_path / "sweep")
    assert found == [result]
    assert len(problems) == 1 and problems[0].startswith(f"{bad}: unreadable result") and "epochs_run" in problems[0]
    shutil.copy(bad, tmp_path / f"{result['run_key']}.json")
    assert load_stored(tmp_path, result["run_key"]) is None  # an invalid stored result is trained again


def test_the_runs_table_has_a_column_for_every_flat_field_and_reads_its_factors_back(tmp_path):
    import pandas as pd

    from harness.report.tables import factor_columns, results_frame, table_factors

    result = read_result(WRITTEN_BEFORE / "ok.json")
    flat = [key for key, value in result.items() if not isinstance(value, dict) and key != "history"]
    swept = {**result, "factors": {**result["factors"], "batch_size": 64}, "run_key": "other"}
    runs = results_frame([result, swept])
    assert set(flat) <= set(runs.columns)  # a field the contract gains is a column without a second list
    assert not {"config", "environment", "history", "factors"} & set(runs.columns)  # nested: not columns
    runs.to_csv(tmp_path / "runs.csv", index=False)
    columns = list(pd.read_csv(tmp_path / "runs.csv").columns)
    assert table_factors(columns) == factor_columns([result, swept]) == [
        "optimizer", "transfer", "early_stopping", "device", "batch_size"]
