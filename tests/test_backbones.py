"""The article's own experiment: ImageNet backbones (VGG16 first), frozen or fine-tuned, on the user's
images. No network here, so ImageNet weights are stand-ins: weights saved from randomly initialised
``keras.applications`` models, passed as a file or placed in a temporary Keras cache under the name
Keras downloads them to (the download itself is what cannot happen here). Images are tiny (32 px)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from harness.keras_cache import imagenet_weights_file
from tests.conftest import (
    REPO,
    WeightSnapshots,
    compose_config,
    harness_env,
    report_of,
    results_under,
    run_harness,
    run_in_process,
    save_application_weights,
    write_image_folder,
)

SMALL = ["epochs=2", "tracking=disabled", "model.image_size=32", "batch_size=8"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("model", "options", "head"), [
    ("vgg16", [], 512 * 3 + 3),  # the article's head: Flatten (1x1x512 at 32 px) -> Dense(3, softmax)
    # an average-pooled head (MobileNetV2's) is checked on a folder by the fine-tuning and ImageNet-cache tests
])
def test_the_articles_experiment_frozen_vs_from_scratch_on_a_folder_of_images(tmp_path, model, options, head):
    images = write_image_folder(tmp_path / "flowers3")
    alpha = {"alpha": 0.35} if options else {}
    weights = save_application_weights(model, tmp_path / f"{model}_notop.weights.h5", **alpha)
    done = run_harness(["-m", *SMALL, f"model={model}", *options, "transfer=on,off", "dataset=folder",
                        f"dataset.path={images}", f"transfer.weights={weights}", "report=false"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = {r["factors"]["transfer"]: r for r in results_under(tmp_path / "multirun")}
    frozen, scratch = runs["on"], runs["off"]
    for run in (frozen, scratch):
        assert run["status"] == "ok", run["reason"]
        assert run["backbone"] == model and run["image_size"] == 32 and run["dataset"] == "folder"
        assert run["image_shape"] == [40, 40, 3]  # the size most images have; grey made RGB
        assert run["train_examples"] == 21  # 60 % of 36, stratified
    # the same architecture: frozen, only the head trains; from scratch, everything but BatchNorm statistics
    assert frozen["trainable_params"] == head
    assert frozen["frozen_params"] == scratch["trainable_params"] + scratch["frozen_params"] - head
    assert scratch["trainable_params"] > 10 * scratch["frozen_params"]
    assert frozen["transfer_mode"] == "frozen" and frozen["weights_sha256"] == sha256(weights)
    assert scratch["transfer_mode"] == "from scratch"
    assert {e["stage"] for e in frozen["history"]} == {"head"}
    first, second = sorted((frozen, scratch), key=lambda run: run["sweep_position"])
    assert (first["data_cache_hit"], second["data_cache_hit"]) == (False, True)  # decoded once, by the first
    for progress in (tmp_path / "multirun").rglob("progress.json"):  # what the sweep's live line read
        assert json.loads(progress.read_text())["epoch"] == 2
    page = (report_of(done.stdout, tmp_path) / "index.html").read_text()
    assert f"Transfer learning (on vs off; {model} on folder)" in page
    assert "Data loading and decoding, outside training time: median " in page
    assert "1 of 2 folder runs read their images already decoded from the cache" in page


def test_imagenet_weights_come_from_keras_cache_and_the_run_records_which_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    cached = imagenet_weights_file("mobilenet_v2", 0.35, 32)
    assert cached.name == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"  # Keras' name
    save_application_weights("mobilenet_v2", cached, alpha=0.35)  # Keras' legacy layout, as downloaded
    write_image_folder(tmp_path / "images")
    result = run_in_process(tmp_path, [*SMALL, "model=mobilenet_v2", "model.alpha=0.35", "transfer=on",
                                       "dataset=folder", f"dataset.path={tmp_path / 'images'}"])
    assert result["status"] == "ok", result["reason"]
    assert result["pretrained_weights"] == "imagenet" and result["weights_file"] == str(cached)
    assert result["weights_sha256"] == sha256(cached)
    assert result["frozen_params"] > 0 and result["trainable_params"] == 1280 * 3 + 3  # avg-pooled head


def test_imagenet_weights_offline_and_not_cached_fail_at_once_with_one_line(tmp_path):
    env = harness_env(tmp_path, KERAS_HOME=str(tmp_path / "empty_keras_home"), HARNESS_OFFLINE="1")
    (tmp_path / "empty_keras_home").mkdir()
    done = run_harness(["-m", "model=vgg16,resnet50", "transfer=on", "tracking=disabled"], cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in line
    assert str(tmp_path / "empty_keras_home" / "models") in line and "transfer.weights=FILE" in line
    assert not list(tmp_path.rglob("result.json"))


def test_fine_tuning_trains_the_head_then_the_top_layers_with_batchnorm_kept_frozen(tmp_path):
    weights = save_application_weights("mobilenet_v2", tmp_path / "mobilenet.weights.h5", alpha=0.35)
    write_image_folder(tmp_path / "images")
    WeightSnapshots.taken.clear()
    result = run_in_process(tmp_path, [*SMALL, "epochs=3", "model=mobilenet_v2", "model.alpha=0.35", "transfer=on",
                                       f"transfer.weights={weights}", "transfer.fine_tune_layers=4",
                                       "transfer.head_epochs=1", "dataset=folder",
                                       f"dataset.path={tmp_path / 'images'}",
                                       "callbacks=[tests.conftest:WeightSnapshots]"])
    assert result["status"] == "ok", result["reason"]
    # observed: weights before and after each stage (head: 1 epoch, then fine-tuning: 2)
    head_begin, head_end, tune_begin, tune_end = WeightSnapshots.taken
    assert [s["when"] for s in WeightSnapshots.taken] == ["begin", "end", "begin", "end"]

    def moved(before: dict, after: dict) -> set[str]:
        return {path for path, value in before["weights"].items() if not np.array_equal(value, after["weights"][path])}

    head_moved, tune_moved = moved(head_begin, head_end), moved(tune_begin, tune_end)
    layer = {path: path.split("/")[0] for path in head_begin["weights"]}  # Keras' paths: layer/weight
    backbone = {path for path, name in layer.items() if not name.startswith("head")}
    assert len(backbone) > 200 and head_moved == set(layer) - backbone  # the head trains, the backbone is frozen
    top = {path for path in backbone if layer[path] in ("block_16_project", "Conv_1")}
    assert top and top <= tune_moved  # the top layers really train in the second stage...
    assert not (tune_moved & backbone) - top  # ...and nothing else of the backbone does
    batchnorm = {path for path in backbone if "bn" in layer[path].lower()}
    assert batchnorm and not batchnorm & tune_moved  # gamma, beta and moving statistics unchanged
    assert head_begin["learning_rate"] == pytest.approx(0.001)  # Adam's
    assert tune_begin["learning_rate"] == pytest.approx(1e-5)  # transfer.fine_tune_learning_rate, as the stage used
    assert [e["stage"] for e in result["history"]] == ["head", "fine_tune", "fine_tune"]
    assert result["transfer_mode"] == "fine-tuned"
    assert result["trainable_params"] == 1280 * 3 + 3  # the head stage: average-pooled, then Dense(3, softmax)
    # MobileNetV2's top 4 layers with weights: block_16_project, its BN, Conv_1, its BN; the BNs stay frozen
    assert result["fine_tuned_layers"] == ["block_16_project", "Conv_1"]
    assert result["fine_tune_params"] > result["trainable_params"]
    assert result["train_seconds"] == pytest.approx(sum(e["train_seconds"] for e in result["history"]))


def test_a_weights_file_of_another_backbone_fails_the_run_with_a_clear_reason(tmp_path):
    weights = save_application_weights("vgg16", tmp_path / "vgg16.weights.h5")
    result = run_in_process(tmp_path, [*SMALL, "model=resnet50", "transfer=on", f"transfer.weights={weights}"])
    assert result["status"] == "failed"
    assert result["reason"].startswith(f"ValueError: weights {weights} do not fit model=resnet50 at image_size 32")


def test_a_folder_of_images_streams_into_a_backbone_under_jax_without_tensorflow(tmp_path):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed here (pip install -e '.[jax]')")
    images = write_image_folder(tmp_path / "images")
    modules = tmp_path / "modules.json"
    env = harness_env(tmp_path, PYTHONPATH=str(REPO), HARNESS_MODULES_FILE=str(modules))
    done = run_harness(["-m", *SMALL, "backend=jax", "model=vgg16", "dataset=folder", f"dataset.path={images}",
                        "dataset.load=stream", "jit_compile=true",  # XLA: one compiled step, not each op apart
                        "callbacks=[tests.hang:RecordModules]", "report=false"], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    # the data path (decoding, the cache, batches streamed from disk) and VGG16's preprocessing need no TensorFlow
    assert json.loads(modules.read_text()) == ["jax"]
    (run,) = results_under(tmp_path / "multirun")
    assert run["status"] == "ok" and run["environment"]["backend"] == "jax" and run["data_streamed"]
    assert np.isfinite(run["test_loss"])


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "mobilenet_v2", "efficientnet_b0"])
def test_every_backbone_builds_frozen_and_trains_a_step_and_one_from_scratch(name, tmp_path):
    """Frozen for every backbone (the article's case); from scratch for VGG16 only (the article's backbone, and the
    quickest to build): the same ``build_classifier`` path, and building the others twice would only double the
    suite's time."""
    import keras

    from harness.run.backbones import parameter_counts
    from harness.run.data import load_tasks
    from harness.run.models import build_classifier, build_feature_extractor

    cfg = compose_config([f"model={name}", "model.image_size=32", "dataset.train_size=16"])
    task = load_tasks(cfg.dataset, tmp_path)[0]  # digits: 8x8 grey, resized and made RGB in the model
    for frozen in (True, False) if name == "vgg16" else (True,):
        extractor = build_feature_extractor(task.input_shape, cfg.model, pixel_max=task.pixel_max)
        model = build_classifier(extractor, task.num_classes, cfg.model, frozen=frozen)
        # eagerly: for the one step, tracing a graph would cost nine tenths of the test (EfficientNet: 9 of 10 s);
        # the step is the same train_step, and the sweeps' runs train as graphs (test_the_articles_experiment_...)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
        before = [w.copy() for w in extractor.get_weights()]
        loss = model.fit(task.train.x, task.train.y, epochs=1, batch_size=16, verbose=0).history["loss"][0]
        assert np.isfinite(loss) and model.output_shape == (None, task.num_classes)
        unchanged = all(np.array_equal(a, b) for a, b in zip(before, extractor.get_weights(), strict=True))
        assert unchanged is frozen  # frozen: BatchNorm statistics too (inference mode)
        counts = parameter_counts(model)
        assert (counts["frozen_params"] > counts["trainable_params"]) is frozen
        keras.backend.clear_session()
