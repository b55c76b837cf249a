"""The datasets users have: Keras' MNIST, Fashion-MNIST and CIFAR-10 (read from Keras' cache, in Keras'
own file formats) and a folder of their own images. No network here: the Keras files are made locally
in the right formats and put into a temporary Keras cache (``KERAS_HOME``), which is what Keras'
download would have left there."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace

import numpy as np
import pytest

from harness.config.schema import DatasetConfig
from harness.config.validate import ConfigError, validate
from harness.keras_cache import dataset_files
from harness.run.data import load_image_folder, load_tasks
from harness.stage_records import FolderFacts
from tests.conftest import (
    REPO,
    compose_config,
    harness_env,
    report_of,
    results_under,
    run_harness,
    write_image_folder,
    write_keras_cache,
)


@pytest.mark.parametrize(("name", "shape"), [("mnist", (28, 28, 1)), ("fashion_mnist", (28, 28, 1)),
                                             ("cifar10", (32, 32, 3))])
def test_keras_datasets_load_from_keras_cache_as_8_bit_images(tmp_path, monkeypatch, name, shape):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    write_keras_cache(tmp_path / "keras")
    cfg = compose_config([f"dataset={name}", "dataset.limit=100"])
    assert all(path.is_file() for path in dataset_files(name))  # where Keras looks under KERAS_HOME
    validate(cfg)  # cached: no network needed
    task, _ = load_tasks(cfg.dataset, tmp_path)
    examples = len(task.train.y) + len(task.val.y) + len(task.test.y)
    assert task.input_shape == shape and task.train.x.dtype == np.uint8 and task.pixel_max == 255
    if name == "mnist":  # digits 5-9 of 100 examples (limit) drawn from 120 (train and test joined)
        assert task.classes == (5, 6, 7, 8, 9) and examples == 50
    else:
        assert task.num_classes == 10 and examples == 100
        assert np.bincount(task.train.y).tolist() == [8] * 10  # stratified: every class keeps its share


def test_a_keras_dataset_neither_cached_nor_downloadable_is_one_line_before_training(tmp_path):
    env = harness_env(tmp_path, KERAS_HOME=str(tmp_path / "keras"), HARNESS_OFFLINE="1")
    (tmp_path / "keras").mkdir()
    done = run_harness(["dataset=fashion_mnist", "tracking=disabled"], cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"{tmp_path / 'keras' / 'datasets' / 'fashion-mnist' / 'train-labels-idx1-ubyte.gz'} is not in Keras' " \
           "cache" in line and "cannot be downloaded here (no network)" in line
    assert not list(tmp_path.rglob("result.json"))


def test_cifar10_trains_from_the_cache_with_data_time_apart_from_training_time(tmp_path):
    write_keras_cache(tmp_path / "keras")
    env = harness_env(tmp_path, KERAS_HOME=str(tmp_path / "keras"), HARNESS_OFFLINE="1")
    done = run_harness(["-m", "epochs=2", "tracking=disabled", "dataset=cifar10", "dataset.limit=100", "report=false"],
                       cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    (run,) = results_under(tmp_path / "multirun")
    assert run["status"] == "ok" and run["image_shape"] == [32, 32, 3] and run["train_examples"] == 80
    assert run["data_seconds"] == run["phase_seconds"]["data"] > 0
    assert "data_seconds" in (report_of(done.stdout, tmp_path) / "runs.csv").read_text().splitlines()[0]


def test_an_image_folder_is_decoded_once_made_rgb_and_resized_to_a_common_size(tmp_path):
    root = write_image_folder(tmp_path / "images")
    cfg = compose_config(["dataset=folder", f"dataset.path={root}"]).dataset
    x, y = load_image_folder(cfg)
    assert x.shape == (36, 40, 40, 3) and x.dtype == np.uint8  # one grey, one 48x36 image among them
    assert np.bincount(y).tolist() == [12, 12, 12]
    x, y = load_image_folder(replace(cfg, image_size=16, class_folders=["class_2", "class_0"]))
    assert x.shape == (24, 16, 16, 3) and y[:12].tolist() == [0] * 12  # class_2 is label 0: the order given
    assert x[:12, ..., 2].mean() > x[:12, ..., 0].mean()  # ...and its images are class_2's (blue)


def test_too_few_examples_to_split_is_a_clear_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    write_keras_cache(tmp_path / "keras")
    cfg = compose_config(["dataset=cifar10", "dataset.limit=20"])  # 2 per class: 20 % held out is 4 in all
    with pytest.raises(ValueError, match="dataset 'cifar10': too few examples to split train/validation/test "
                                         "with every class in each \\(the smallest class has 2; 20% held out\\)"):
        load_tasks(cfg.dataset, tmp_path)


def test_big_photos_are_scaled_down_keeping_their_aspect_unless_a_size_is_given():
    from harness.run.data import common_size

    assert common_size([(40, 40), (40, 40), (48, 36)]) == (40, 40)
    assert common_size([(4000, 3000), (4000, 3000), (3000, 4000)]) == (256, 192)  # a phone's photos
    assert common_size([(30, 20), (20, 30)]) == (20, 30)  # a tie: the smaller (width first)


def test_a_photo_taken_sideways_is_turned_upright_by_its_exif_orientation(tmp_path):
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        photo = Image.new("RGB", (40, 20), (200, 0, 0))  # stored 40 wide, 20 high...
        exif = photo.getexif()
        exif[0x0112] = 6  # ...and shown rotated by 90 degrees: 20 wide, 40 high
        photo.save(tmp_path / label / "photo.jpg", exif=exif)
    x, _ = load_image_folder(DatasetConfig(name="folder", path=str(tmp_path)))
    assert x.shape == (2, 40, 20, 3)


def test_big_sideways_photos_are_decoded_small_and_upright(tmp_path):
    """Phone-sized JPEGs are decoded at a reduced scale (libjpeg's draft mode) straight to the size they
    are resized to, turned upright first: the pixels match a full decode's, the shape the shown one."""
    from PIL import Image, ImageOps

    gradient = np.linspace(0, 255, 1600, dtype="uint8")
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        photo = Image.fromarray(np.stack([np.tile(gradient, (1200, 1))] * 3, axis=-1))  # 1600 wide, 1200 high
        exif = photo.getexif()
        exif[0x0112] = 6  # shown turned: 1200 wide, 1600 high
        photo.save(tmp_path / label / "photo.jpg", exif=exif, quality=95)
    x, _ = load_image_folder(DatasetConfig(name="folder", path=str(tmp_path)))
    assert x.shape == (2, 256, 192, 3)  # scaled down to 256 on the longer side, upright
    with Image.open(tmp_path / "a" / "photo.jpg") as image:
        full = np.asarray(ImageOps.exif_transpose(image).convert("RGB").resize((192, 256), Image.BILINEAR))
    assert np.abs(x[0].astype(int) - full.astype(int)).mean() < 2  # the same picture as a full decode gives


def test_a_limit_on_a_folder_decodes_only_the_images_it_keeps(tmp_path):
    from harness.run.data import limit_examples, limited_indices

    root = write_image_folder(tmp_path / "images")
    cfg = compose_config(["dataset=folder", f"dataset.path={root}", "dataset.image_size=16"]).dataset
    x_all, y_all = load_image_folder(cfg)
    limited = replace(cfg, limit=9)
    x, y = load_image_folder(limited)
    x_expected, y_expected = limit_examples(x_all, y_all, 9, cfg.split_seed)  # what any other dataset gets
    assert np.array_equal(x, x_expected) and np.array_equal(y, y_expected) and np.bincount(y).tolist() == [3, 3, 3]
    kept = set(limited_indices(y_all, 9, cfg.split_seed).tolist())
    paths = sorted(root.glob("class_*/*.png"))  # the loader's order: class folders, then names
    left_out = next(path for i, path in enumerate(paths) if i not in kept)
    left_out.write_bytes(b"no longer an image")  # never opened: only the kept images are read
    assert np.array_equal(load_image_folder(limited)[0], x_expected)
    with pytest.raises(ValueError, match=f"1 image cannot be read: {re.escape(str(left_out))}"):
        load_image_folder(cfg)


def test_a_folder_too_big_for_memory_is_streamed_from_disk_or_refused_in_one_line(tmp_path, monkeypatch):
    """A machine with little memory left cannot be made here: its ``available_memory`` is stood in for."""
    import harness.run.data as data

    root = write_image_folder(tmp_path / "images")
    cfg = compose_config(["dataset=folder", f"dataset.path={root}"]).dataset
    x_in_memory, _ = load_image_folder(cfg, tmp_path / "cache")
    monkeypatch.setattr(data, "available_memory", lambda: 100_000)  # 36 images at 40x40 take 172,800 bytes
    facts = FolderFacts()
    x, y = load_image_folder(cfg, tmp_path / "cache", facts)  # load=auto: more than half the memory, so streamed
    assert isinstance(x, data.DiskRows) and x.shape == (36, 40, 40, 3) and x.dtype == np.uint8
    assert facts == FolderFacts(data_cache_hit=True, data_streamed=True)
    assert np.array_equal(x.rows(np.array([0, 5, 35])), x_in_memory[[0, 5, 35]])
    message = (f"dataset.path: the 36 images of {root} take 0.17 MB decoded at 40x40, more than the 0.10 MB of "
               "memory available; use dataset.load=stream (batches read from disk), dataset.limit=N or a smaller "
               "dataset.image_size (e.g. 21)")
    with pytest.raises(ValueError, match=re.escape(message)):
        load_image_folder(replace(cfg, load="memory"), tmp_path / "cache")
    with pytest.raises(ValueError, match=re.escape(message)):  # no cache to stream from: refused before decoding
        load_image_folder(cfg)
    assert len(load_image_folder(replace(cfg, limit=18, load="memory"), tmp_path / "cache")[1]) == 18  # 86,400 B fit


def test_bad_image_folders_are_named_clearly(tmp_path):
    root = write_image_folder(tmp_path / "images")
    cfg = compose_config(["dataset=folder", f"dataset.path={root}"])
    (root / "class_1" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=f"1 image cannot be read: {root / 'class_1' / 'broken.png'} "):
        load_image_folder(cfg.dataset)
    (root / "class_3").mkdir()
    with pytest.raises(ConfigError, match=f"class folder {root / 'class_3'} has no images"):
        validate(cfg)
    with pytest.raises(ConfigError, match=r"has 1 class folder\(s\) \['class_0'\]; a classification needs at least 2"):
        validate(replace(cfg, dataset=replace(cfg.dataset, class_folders=["class_0"])))
    with pytest.raises(ConfigError, match="dataset.class_folders: roses is not a folder in .*; valid: class_0, "):
        validate(replace(cfg, dataset=replace(cfg.dataset, class_folders=["roses", "class_0"])))


def test_a_folder_is_decoded_once_then_read_from_the_cache_until_its_files_change(tmp_path):
    root = write_image_folder(tmp_path / "images")
    cfg = compose_config(["dataset=folder", f"dataset.path={root}"]).dataset
    first, second = FolderFacts(), FolderFacts()
    x, y = load_image_folder(cfg, tmp_path / "cache", first)
    assert first == FolderFacts(data_cache_hit=False, data_streamed=False)
    assert len(list((tmp_path / "cache" / "folders").glob("*.npy"))) == 1
    image = root / "class_1" / "005.png"
    stat = image.stat()
    image.write_bytes(b"x" * stat.st_size)  # same size and (below) same time: the cache cannot tell...
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    x_again, y_again = load_image_folder(cfg, tmp_path / "cache", second)
    assert second == FolderFacts(data_cache_hit=True, data_streamed=False)  # ...so nothing was decoded: it went unread
    assert np.array_equal(x_again, x) and np.array_equal(y_again, y)
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # a changed file: decoded again
    with pytest.raises(ValueError, match=f"1 image cannot be read: {image} "):
        load_image_folder(cfg, tmp_path / "cache")
    image.unlink()
    smaller = FolderFacts()
    assert load_image_folder(replace(cfg, image_size=16), tmp_path / "cache", smaller)[0].shape == (35, 16, 16, 3)
    assert smaller == FolderFacts(data_cache_hit=False, data_streamed=False)  # another size, one file fewer: decoded


def test_streamed_batches_cover_every_example_once_per_epoch_shuffled_anew_and_seeded(tmp_path):
    from harness.run.data import DiskRows, Split
    from harness.run.streaming import DiskBatches, inputs

    images = np.arange(10, dtype="uint8").reshape(10, 1, 1, 1) * np.ones((1, 2, 2, 3), dtype="uint8")
    np.save(tmp_path / "decoded.npy", images)
    on_disk = DiskRows(np.load(tmp_path / "decoded.npy", mmap_mode="r"), np.arange(10))
    split = Split(on_disk.subset(np.arange(2, 9)), np.arange(2, 9))  # 7 examples, labelled by their pixel value

    def epoch(batches: DiskBatches) -> list[list[int]]:
        seen = []
        for i in range(len(batches)):
            x, y = batches[i]
            assert x.shape[1:] == (2, 2, 3) and x[:, 0, 0, 0].tolist() == y.tolist()  # images with their labels
            seen.append(y.tolist())
        batches.on_epoch_end()
        return seen

    shuffled = DiskBatches(split, batch_size=3, seed=0)
    first, second = epoch(shuffled), epoch(shuffled)
    assert [len(b) for b in first] == [3, 3, 1] and sorted(sum(first, [])) == list(range(2, 9))
    assert sorted(sum(second, [])) == list(range(2, 9)) and second != first  # anew each epoch
    assert epoch(DiskBatches(split, batch_size=3, seed=0)) == first  # seeded
    assert epoch(DiskBatches(split, batch_size=3)) == [[2, 3, 4], [5, 6, 7], [8]]  # no seed: in order
    assert set(inputs(split, 3, seed=1)) == {"x"} and set(inputs(Split(images, np.arange(10)), 3)) == {"x", "y",
                                                                                                    "batch_size"}


def test_a_streamed_folder_trains_in_a_real_sweep_beside_the_same_folder_in_memory(tmp_path):
    images = write_image_folder(tmp_path / "images")
    batches = tmp_path / "batches.jsonl"
    env = harness_env(tmp_path, PYTHONPATH=str(REPO), HARNESS_BATCHES_FILE=str(batches))
    done = run_harness(["-m", "dataset=folder", f"dataset.path={images}", "dataset.load=memory,stream", "epochs=2",
                        "tracking=disabled", "batch_size=8", "callbacks=[tests.hang:CountBatches]", "report=false"],
                       cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    # observed in the real runs: each epoch goes through the 21 training examples once, in 3 batches of 8
    # (8 + 8 + 5), streamed or in memory alike
    assert [json.loads(line) for line in batches.read_text().splitlines()] == [[3, 3], [3, 3]]
    runs = {run["config"]["dataset"]["load"]: run for run in results_under(tmp_path / "multirun")}
    assert runs["stream"]["status"] == "ok" and runs["memory"]["status"] == "ok", done.stdout
    assert (runs["stream"]["data_streamed"], runs["memory"]["data_streamed"]) == (True, False)
    assert runs["stream"]["epochs_run"] == 2 and np.isfinite(runs["stream"]["test_loss"])
    assert runs["stream"]["train_examples"] == runs["memory"]["train_examples"] == 21  # the same split
    assert "dataset.load=stream" in done.stdout  # a factor of the sweep, named in its lines
    page = (report_of(done.stdout, tmp_path) / "index.html").read_text()
    assert "1 of 2 folder runs read their images already decoded from the cache; 1 run streamed its images " \
           "from disk batch by batch, reading inside the timed epochs." in page


def test_a_decoded_copy_half_written_by_a_killed_run_is_removed_by_the_next_one(tmp_path):
    import platform
    import subprocess
    import sys

    from harness.run.data import decoded_folder_key, folder_images

    root = write_image_folder(tmp_path / "images")
    cfg = compose_config(["dataset=folder", f"dataset.path={root}"]).dataset
    key = decoded_folder_key(folder_images(cfg)[0], None)
    folder = tmp_path / "cache" / "folders"
    folder.mkdir(parents=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = platform.node().replace(".", "-")
    abandoned = folder / f".{key}.{host}.{gone.stdout.strip()}.1.npy"  # its process has ended
    live = folder / f".{key}.{host}.{os.getpid()}.2.npy"  # this process: still decoding, as far as it knows
    elsewhere = folder / f".{key}.other-host.1.3.npy"  # another host's, on a shared cache: not ours to judge
    for partial in (abandoned, live, elsewhere):
        partial.write_bytes(b"half")
    load_image_folder(cfg, tmp_path / "cache")
    assert not abandoned.exists() and live.exists() and elsewhere.exists()
    assert (folder / f"{key}.npy").is_file()


def test_a_long_decoding_says_how_far_it_got(tmp_path, monkeypatch):
    import harness.run.data as data

    root = write_image_folder(tmp_path / "images")
    cfg = compose_config(["dataset=folder", f"dataset.path={root}"]).dataset
    monkeypatch.setattr(data, "DECODE_REPORT_S", 0.0)  # every image, rather than every second
    told = []
    data.load_tasks(cfg, tmp_path / "cache", on_decoded=lambda done, total: told.append((done, total)))
    assert told == [(done, 36) for done in range(36)]
    told.clear()
    data.load_tasks(cfg, tmp_path / "cache", on_decoded=lambda done, total: told.append((done, total)))
    assert told == []  # decoded already: read from the cache


def test_each_dataset_brings_its_own_target_and_the_command_line_still_wins():
    from tests.conftest import compose_config

    # digits keeps the harness's target; MNIST and CIFAR-10 take AlgoPerf's published ones (conf/dataset_target)
    assert compose_config([]).target.value == 0.9
    assert compose_config(["dataset=mnist"]).target.value == 0.97
    assert compose_config(["dataset=cifar10"]).target.value == 0.85
    assert compose_config(["dataset=mnist", "target_accuracy=0.95"]).target.value == 0.95
    assert compose_config(["dataset=cifar10", "target.value=0.6"]).target.value == 0.6
