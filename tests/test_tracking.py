"""Comet tracking, for real: offline archives read back with Comet's own reader (`comet offline --csv`).

Comet's servers cannot be reached from here; the online-to-offline fallback is exercised for real by
pointing Comet at a local port where nothing listens (COMET_URL_OVERRIDE), with a sentinel API key.
Nothing is mocked.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tests.conftest import harness_env, read_archive, results_under, run_harness

SENTINEL = "SENTINEL-KEY-3f9a1c77"


def metric_steps(archive: Path, name: str) -> list[tuple[int, int]]:
    """(step, epoch) of each logged value of metric ``name``, from the archive's messages."""
    with zipfile.ZipFile(archive) as zf:
        lines = zf.read("messages.json").decode().splitlines()
    steps = []
    for line in lines:
        message = json.loads(line)
        metric = message.get("payload", {}).get("metric")
        if message.get("type") == "metric_msg" and metric and metric["metricName"] == name:
            steps.append((metric["step"], metric["epoch"]))
    return steps


@pytest.fixture(scope="module")
def offline_sweep(tmp_path_factory):
    """A 2-cell offline sweep: one cell trains, one fails on a corrupt dataset file."""
    import numpy as np
    from sklearn.datasets import load_digits

    cwd = tmp_path_factory.mktemp("offline")
    digits = load_digits()
    np.savez(cwd / "good.npz", x=digits.images, y=digits.target)
    (cwd / "corrupt.npz").write_bytes(b"not numpy")
    done = run_harness(["-m", "epochs=3", "tracking=offline", "dataset=npz", "dataset.source_classes=[0,1,2,3,4]",
                        f"dataset.path={cwd / 'good.npz'},{cwd / 'corrupt.npz'}"], cwd=cwd)
    assert done.returncode == 1, done.stderr  # one cell failed (on purpose)
    return cwd, done


def test_each_run_leaves_an_archive_with_its_curves_params_tags_and_status(offline_sweep):
    cwd, done = offline_sweep
    results = {Path(r["config"]["dataset"]["path"]).name: r for r in results_under(cwd / "multirun")}
    ok, failed = results["good.npz"], results["corrupt.npz"]
    assert ok["status"] == "ok" and failed["status"] == "failed"

    archive = Path(ok["comet"]["archive"])
    assert archive.is_file() and ok["comet"]["mode"] == "offline"
    seen = read_archive(archive)
    assert seen["metrics"]["val_accuracy"] == pytest.approx([e["val_accuracy"] for e in ok["history"]])
    assert len(seen["metrics"]["val_accuracy"]) == 3
    assert metric_steps(archive, "val_accuracy") == [(1, 1), (2, 2), (3, 3)]
    for logged, recorded in (("epoch_seconds", "epoch_seconds"), ("epoch_train_seconds", "train_seconds"),
                             ("epoch_val_seconds", "val_seconds")):  # the epoch timer's seconds, passed in logs
        assert seen["metrics"][logged] == pytest.approx([e[recorded] for e in ok["history"]]), logged
    assert seen["metrics"]["test_accuracy"] == pytest.approx([ok["test_accuracy"]])
    assert seen["params"]["optimizer.name"] == "adam"
    assert seen["params"]["optimizer.beta_1"] == "0.9"
    for tag in ("optimizer:adam", "transfer:off", "early_stopping:off", "device:cpu", "seed:0"):
        assert tag in seen["tags"]
    assert seen["others"]["status"] == "ok"
    assert seen["others"]["run_key"] == ok["run_key"]
    assert seen["others"]["backbone"] == "small_cnn" and seen["others"]["transfer_mode"] == "from scratch"
    assert seen["metrics"]["trainable_params"] == [ok["trainable_params"]]
    assert seen["metrics"]["data_seconds"] == pytest.approx([ok["data_seconds"]])

    failed_seen = read_archive(Path(failed["comet"]["archive"]))
    assert failed_seen["others"]["status"] == "failed"
    # The swept setting (dataset.path) is a factor: in each name, in the tags and in the parameters.
    for result, archive_seen in ((ok, seen), (failed, failed_seen)):
        path = result["config"]["dataset"]["path"]
        assert archive_seen["others"]["Name"] == \
            f"optimizer=adam transfer=off early_stopping=off device=cpu dataset.path={path} seed=0"
        assert f"dataset.path:{path}" in archive_seen["tags"]
        assert archive_seen["params"]["dataset.path"] == path
    assert seen["others"]["Name"] != failed_seen["others"]["Name"]
    assert failed_seen["others"]["reason"] == failed["reason"] != ""


def test_sweep_and_report_name_the_upload_command(offline_sweep):
    cwd, done = offline_sweep
    lines = done.stdout.splitlines()
    assert any("comet upload" in line and "/comet/*.zip" in line for line in lines[-3:])
    report = Path(lines[-1].removeprefix("report: ")).with_name("report.md").read_text()
    assert "comet upload" in report


def test_unreachable_comet_falls_back_to_offline_once_and_never_leaks_the_key(tmp_path):
    # A key is configured, so tracking=auto means online; Comet's server is "down" (nothing listens on
    # 127.0.0.1:9). The sweep must warn once, write archives, finish, and never write the key anywhere.
    env = harness_env(tmp_path, COMET_API_KEY=SENTINEL, COMET_URL_OVERRIDE="http://127.0.0.1:9/clientlib/")
    done = run_harness(["-m", "epochs=2", "optimizer=adam,rmsprop", "report=false"], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("cannot reach Comet") == 1
    results = results_under(tmp_path / "multirun")
    assert [r["status"] for r in results] == ["ok", "ok"]
    for result in results:
        assert result["comet"]["mode"] == "offline"
        assert "cannot reach Comet" in result["comet"]["fallback"]
        assert len(read_archive(Path(result["comet"]["archive"]))["metrics"]["val_accuracy"]) == 2
    assert SENTINEL not in done.stdout + done.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "cache" not in p.parts]
    assert len(written) > 10
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                data = b"".join(zf.read(name) for name in zf.namelist())
        assert SENTINEL.encode() not in data, path


def test_comet_failing_costs_the_run_its_tracking_not_its_result(tmp_path):
    # An archive folder that cannot be created (a file stands in its way) makes Comet fail for real.
    (tmp_path / "blocked").write_text("a file, not a folder")
    done = run_harness(["epochs=2", "tracking=offline", f"tracking.offline_dir={tmp_path / 'blocked' / 'comet'}"],
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [result] = results_under(tmp_path / "outputs")
    assert result["status"] == "ok" and result["epochs_run"] == 2
    assert result["comet"]["error"].startswith(("FileExistsError", "NotADirectoryError"))


def _message_types(archive: Path) -> set[str]:
    """The kinds of message an offline archive holds (metrics, others, system details, ...)."""
    import json
    import zipfile

    with zipfile.ZipFile(archive) as opened:
        lines = opened.read("messages.json").decode().splitlines()
    return {json.loads(line).get("type") for line in lines if line.strip()}


def test_comets_system_metrics_are_logged_only_when_asked_for(offline_sweep, tmp_path, monkeypatch):
    # by default a run's archive has no system details (Comet's sampling threads would run inside the timed
    # epochs); a real offline experiment with tracking.system_metrics=true has them
    cwd, _ = offline_sweep
    ok = next(r for r in results_under(cwd / "multirun") if r["status"] == "ok")
    assert "metric_msg" in _message_types(Path(ok["comet"]["archive"]))
    assert "system_details" not in _message_types(Path(ok["comet"]["archive"]))
    monkeypatch.setenv("COMET_DISABLE_AUTO_LOGGING", "1")
    from harness.run import comet

    tracking = {"mode": "offline", "offline_dir": str(tmp_path), "project_name": None, "workspace": None,
                "system_metrics": True}
    comet.start_experiment(tracking, {"factors": {"optimizer": "adam"}, "seed": 0, "sweep_name": "s"}).end()
    (archive,) = tmp_path.glob("*.zip")
    assert "system_details" in _message_types(archive)
