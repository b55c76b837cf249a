"""Shared helpers: compose configs with Hydra's compose API, run the real CLI in a subprocess."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness.config.presets import register_experiments
from harness.config.schema import register_configs
from hydra_plugins.harness_sweeper import harness_sweeper

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
FAST = ["epochs=2", "tracking=disabled"]


SLOW_CALLS = ("run_harness(", "start_sweep(", "run_in_process(", "shell(", "subprocess.", "Popen(", ".fit(",
              "train.run(")
"""What makes a test slow: a real sweep or process (the CLI, a daemon, a browser) or real training."""


def _does_real_work(function: Any) -> bool:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return any(call in source for call in SLOW_CALLS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that, itself or through a fixture, starts a real sweep, process or training
    (``SLOW_CALLS``), so that ``pytest -m "not slow"`` is the fast tier and no test can forget its mark."""
    for item in items:
        fixtures = [d.func for defs in item._fixtureinfo.name2fixturedefs.values() for d in defs]
        if any(_does_real_work(f) for f in [getattr(item, "function", None), *fixtures] if f is not None):
            item.add_marker(pytest.mark.slow)


def gpu_cell_status() -> str:
    """What a GPU cell of a sweep ends as on this machine: ``skipped`` where no GPU is visible (here, CI),
    ``ok`` where one is (the suite also runs on GPU machines)."""
    from harness.hardware import gpu_names

    return "ok" if gpu_names() else "skipped"


def compose_config(overrides: list[str]) -> dict[str, Any]:
    """The resolved run config that ``python -m harness <overrides>`` would train."""
    register_configs()
    register_experiments()
    harness_sweeper.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def harness_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    env.update(HARNESS_CACHE_DIR=str(tmp_path / "cache"), PYTHONUNBUFFERED="1", **extra)
    return env


def run_harness(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800,
                module: str = "harness") -> subprocess.CompletedProcess:
    """Run ``python -m harness ARGS`` for real, in ``cwd``; output captured as text. ``timeout`` only
    guards against a hang (generous: CI machines may be slow and loaded); no test relies on speed."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env or harness_env(cwd),
                          capture_output=True, text=True, timeout=timeout)


def wait_for(condition, timeout: float = 900, poll_s: float = 0.2) -> None:
    """Wait until ``condition()`` holds; ``timeout`` only guards against a hang, it is no speed limit."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(poll_s)


def results_under(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("result.json"))]


@pytest.fixture
def digits_npz(tmp_path: Path) -> Path:
    """A locally made .npz dataset (digits 0-9 as uint8 images), to test the file-dataset loader."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path / "digits.npz"
    np.savez(path, x=(digits.images * 255 / 16).astype("uint8"), y=digits.target)
    return path


def write_image_folder(root: Path, classes: int = 3, per_class: int = 12, size: int = 40) -> Path:
    """A folder dataset made here: one sub-folder of PNGs per class, each class a colour with noise
    (learnable), one grey image and one of another size among them (both must be handled)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 80, (size, size, 3)) + np.eye(3, dtype=int)[label] * 170
            image = Image.fromarray(pixels.astype("uint8"))
            if i == 0 and label == 0:
                image = image.convert("L")
            if i == 1 and label == 1:
                image = image.resize((size + 8, size - 4))
            image.save(folder / f"{i:03d}.png")
        (folder / "notes.txt").write_text("not an image: ignored")
    return root


def save_application_weights(name: str, path: Path, image_size: int = 32, **options: Any) -> Path:
    """Weights of a randomly initialised headless ``keras.applications`` model (no network here): in
    Keras' legacy HDF5 layout when ``path`` ends in plain ``.h5`` (the layout of Keras' downloaded
    ImageNet files), else as ``save_weights`` writes them."""
    import keras

    from harness.keras_cache import APPLICATIONS

    model = getattr(keras.applications, APPLICATIONS[name].keras_name)(
        input_shape=(image_size, image_size, 3), include_top=False, weights=None, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".weights.h5"):
        model.save_weights(path)
    else:
        import h5py
        from keras.src.legacy.saving import legacy_h5_format

        with h5py.File(path, "w") as file:
            legacy_h5_format.save_weights_to_hdf5_group(file, model)
    return path
