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
    written = json.loads((WRITTEN_BEFORE / name).read_text())
    former = ["optimizer", "transfer", "early_stopping", "device"]  # the article's factors had keys of their own
    assert result["factors"] == {**{k: written[k] for k in former}, **written["factors"]}
    assert list(result["factors"])[:4] == former and not set(former) & set(result)
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


def test_the_runs_table_names_each_runs_device_where_the_device_is_no_factor():
    from harness.report.tables import results_frame

    result = read_result(WRITTEN_BEFORE / "ok.json")
    runs = results_frame([{**result, "factors": {"batch_size": 64}}])
    assert runs.loc[0, "device"] == result["config"]["device"]["name"] == "cpu"  # the cost verdicts need it
    assert "optimizer" not in runs  # not a factor: not a column


def test_each_stage_record_field_is_a_result_key_of_the_same_type():
    # A record's field that may be None where the contract has no None stands for "does not apply":
    # assemble leaves it out of the result, so its type is the contract's own, or that | None.
    import typing

    from harness.results import fits, result_fields
    from harness.stage_records import stage_records

    contract = result_fields()
    for record in stage_records():
        for name, hint in typing.get_type_hints(record).items():
            assert name in contract, f"{record.__name__}.{name} is not a result key"
            absent_marker = not fits(None, contract[name]) and hint == contract[name] | None
            assert hint == contract[name] or absent_marker, f"{record.__name__}.{name}: {hint} vs {contract[name]}"


def test_every_result_key_comes_from_the_identity_or_a_stage_record():
    import typing

    from harness.results import placeholder_result, result_fields
    from harness.stage_records import stage_records
    from tests.conftest import compose_config

    identity = placeholder_result(compose_config([]), "failed", "never ran", started_at=0.0, sweep_position=0,
                                  rerun_command="", log_file="train.log")
    from_records = {name for record in stage_records() for name in typing.get_type_hints(record)}
    from_identity = {*identity, "user_code"}  # user_code: only where the run calls the user's own functions
    assert set(result_fields()) - from_records - from_identity == set()
    written_before = read_result(WRITTEN_BEFORE / "ok.json")
    assert set(written_before) <= from_records | from_identity


def test_assemble_lays_records_over_the_result_in_order_and_leaves_out_what_does_not_apply():
    from harness.stage_records import EpochTimings, FolderFacts, ModelFacts, Outcome, assemble

    start = read_result(WRITTEN_BEFORE / "skipped.json")
    timings = EpochTimings(train_seconds=3.0, validation_seconds=1.0, first_epoch_seconds=2.0,
                           median_epoch_seconds=None, samples_per_second=None, median_step_seconds=None)
    result = assemble(start, Outcome("failed", "first"), FolderFacts(data_cache_hit=True),
                      ModelFacts("small_cnn", 0.001, 10, 0), timings, Outcome("ok", None))
    assert (result["status"], result["reason"]) == ("ok", None)  # the later record wins
    assert result["data_cache_hit"] is True and "data_streamed" not in result and "skipped_images" not in result
    assert "image_size" not in result  # None where the contract has no None: does not apply, left out
    assert result["median_epoch_seconds"] is None and result["median_step_seconds"] is None  # None the contract allows
    assert start["status"] == "skipped" and "train_seconds" not in start  # a new result: the start is unchanged


def test_one_content_key_serves_the_three_stores_and_keeps_the_keys_each_wrote():
    # The results store, the pretrained weights and the decoded folders each hashed their JSON their own way
    # before they shared content_key: what each store holds keeps its key (written out here as each did it).
    import hashlib

    basis = {"b": [1, 2.5, "x"], "a": {"z": None, "y": True}}

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    assert keys.content_key(basis) == sha(json.dumps(basis, sort_keys=True, separators=(",", ":")))  # run keys
    assert keys.content_key(basis, compact=False) == sha(json.dumps(basis, sort_keys=True))  # pretrained weights
    assert keys.content_key(basis, sort_keys=False, compact=False) == sha(json.dumps(basis))  # decoded folders
    assert len({keys.content_key(basis), keys.content_key(basis, compact=False),
                keys.content_key(basis, sort_keys=False, compact=False)}) == 3  # three encodings, three keys
