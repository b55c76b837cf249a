"""Faults said plainly (#24): a full disk, unreadable images and a sweep folder of the user's choosing.

The full disk is real: a small tmpfs mounted under the test's folder (root only, as in CI; skipped with
the reason elsewhere). The images are real files broken on purpose; the sweeps are real multiruns.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.run.data import UnreadableImages, load_image_folder
from harness.stage_records import FolderFacts
from harness.sweep.faults import disk_full
from tests.conftest import compose_config, report_of, results_under, run_harness, write_image_folder

TINY = ["epochs=1", "tracking=disabled", "batch_size=8"]


def test_a_full_disk_is_found_in_what_caused_an_error():
    full = OSError(errno.ENOSPC, "No space left on device", "/x/run_spec.json")
    try:
        try:
            raise full
        except OSError as err:
            raise RuntimeError("Hydra's wrapping") from err
    except RuntimeError as wrapped:
        assert disk_full(wrapped) is full
    assert disk_full(OSError(errno.EDQUOT, "Disk quota exceeded")) is not None
    assert disk_full(OSError(errno.EACCES, "Permission denied")) is None
    assert disk_full(ValueError("no")) is None


@pytest.fixture
def tiny_disk(tmp_path):
    """A 160 kB tmpfs at ``tmp_path/tiny`` (unmounted afterwards)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs",
                                                        str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root, as in CI) to fill a disk for real")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_ends_the_sweep_with_one_line_keeping_every_finished_run(tmp_path, tiny_disk):
    command = ["-m", "optimizer=adam,sgd", "seed=0,1", *TINY, f"hydra.sweep.dir={tiny_disk / 'sweep'}",
               f"results_dir={tiny_disk / 'results'}", f"reports_dir={tmp_path / 'reports'}"]
    done = run_harness(command, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1 and "no space left on the disk (" in errors[0], done.stderr
    assert str(tiny_disk) in errors[0].split(";")[0]  # where: the file, or the sweep folder, on the full disk
    finished = [r for r in results_under(tiny_disk / "sweep") if r["status"] == "ok"]
    assert 1 <= len(finished) < 4, done.stdout  # some runs finished before the disk filled, not all
    stored = {path.stem for path in (tiny_disk / "results").glob("*.json")}
    assert {r["run_key"] for r in finished} <= stored  # each finished run is in the store: it will be reused
    assert f"{len(finished)} finished run" in errors[0] and "run the same command again to resume" in errors[0]
    assert "Report of the finished runs: " in errors[0]  # the reports' folder is on another disk: written

    subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_disk)], check=True)  # space freed
    again = run_harness(command, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("reused from sweep") == len(finished)  # what finished is not trained again
    assert again.stdout.count(" ok ") + again.stdout.count("reused from sweep") >= 4


def _broken_folder(root: Path) -> tuple[Path, Path]:
    """An image folder with a truncated JPEG and an empty PNG among good images."""
    from PIL import Image

    write_image_folder(root, per_class=6)
    truncated = root / "class_0" / "truncated.jpg"
    Image.fromarray(np.full((40, 40, 3), 200, dtype="uint8")).save(truncated, quality=90)
    truncated.write_bytes(truncated.read_bytes()[:300])
    empty = root / "class_2" / "empty.png"
    empty.write_bytes(b"")
    return truncated, empty


def test_unreadable_images_are_found_at_the_first_decoding_then_refused_at_once_or_left_out(tmp_path, monkeypatch):
    import harness.run.data as data

    truncated, empty = _broken_folder(tmp_path / "images")
    cfg = compose_config(["dataset=folder", f"dataset.path={tmp_path / 'images'}"]).dataset
    facts = FolderFacts()
    with pytest.raises(UnreadableImages) as refused:
        load_image_folder(cfg, tmp_path / "cache", facts)
    assert set(refused.value.unreadable) == {str(truncated), str(empty)} and facts.data_cache_hit is False
    assert str(refused.value).startswith("dataset.path: 2 images cannot be read: ")
    assert str(refused.value).endswith("fix or remove them, or set dataset.skip_unreadable=true to train without them")

    def no_second_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data, "decode_images", no_second_decoding)
    with pytest.raises(UnreadableImages, match="2 images cannot be read"):  # from the record beside the copy
        load_image_folder(cfg, tmp_path / "cache")
    kept = FolderFacts()
    x, y = load_image_folder(replace(cfg, skip_unreadable=True), tmp_path / "cache", kept)
    assert len(x) == len(y) == 18 and np.bincount(y).tolist() == [6, 6, 6]  # the 18 good images
    assert kept.skipped_images == sorted([str(truncated), str(empty)]) and kept.data_cache_hit is True
    assert x.reshape(len(x), -1).max(axis=1).min() > 0  # no black row of a skipped image left in


def test_a_sweep_over_a_folder_with_a_truncated_jpeg_decodes_it_once_and_can_train_without_it(tmp_path):
    truncated, empty = _broken_folder(tmp_path / "images")
    empty.unlink()
    command = ["-m", "dataset=folder", f"dataset.path={tmp_path / 'images'}", "optimizer=adam,sgd", "seed=0,1", *TINY]
    done = run_harness(command, cwd=tmp_path)
    assert done.returncode == 1  # no cell could train
    failed = results_under(tmp_path / "multirun")
    assert [r["status"] for r in failed] == ["failed"] * 4
    assert sorted(r["data_cache_hit"] for r in failed) == [False, True, True, True]  # decoded by one run only
    assert {r["reason"] for r in failed} == {f"UnreadableImages: dataset.path: 1 image cannot be read: {truncated} "
                                             f"({failed[0]['reason'].split(' (', 1)[1]}"}
    assert "dataset.skip_unreadable=true" in failed[0]["reason"]

    shutil.rmtree(tmp_path / "multirun")
    done = run_harness([*command[:-1], "seed=0", "dataset.skip_unreadable=true", "report=false"],
                       cwd=tmp_path)  # 2 cells suffice
    assert done.returncode == 0, done.stdout + done.stderr
    runs = results_under(tmp_path / "multirun")
    assert [r["status"] for r in runs] == ["ok"] * 2 and all(r["skipped_images"] == [str(truncated)] for r in runs)
    page = (report_of(done.stdout, tmp_path) / "index.html").read_text()
    assert f"1 unreadable image left out (dataset.skip_unreadable=true): {truncated}" in page
