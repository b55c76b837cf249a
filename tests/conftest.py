"""Shared helpers: compose configs with Hydra's compose API, run the real CLI in a subprocess."""

from __future__ import annotations

import csv
import ctypes
import gzip
import inspect
import io
import itertools
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness.config.presets import register_experiments
from harness.config.run_config import RunConfig, run_config
from harness.config.schema import register_configs
from harness.keras_cache import KERAS_DATASETS
from harness.result_files import write_json_atomic
from harness.results import RESULT_FILE, SPEC_FILE
from harness.startup import SHARED_SERVER_VARIABLE
from harness.sweep.cell import Launch, run_spec
from hydra_plugins.harness_sweeper import harness_sweeper

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
FAST = ["epochs=2", "tracking=disabled"]
ARTICLE = ["optimizer", "transfer", "early_stopping", "device"]
"""The article's four factors: the default of the ``factors`` setting (``test_config`` checks it is)."""


SLOW_CALLS = ("run_harness(", "start_sweep(", "run_in_process(", "shell(", "subprocess.", "Popen(", ".fit(",
              "train.run(")
"""What makes a test slow: a real sweep or process (the CLI, a daemon, a browser) or real training."""


def _does_real_work(function: Any) -> bool:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return any(call in source for call in SLOW_CALLS)


HEAVIEST_FIRST = ("test_custom.py", "test_run_process.py", "test_backbones.py", "test_docs.py", "test_slurm.py",
                  "test_compare.py", "test_speed_factors.py", "test_report.py", "test_factors.py", "test_stats.py",
                  "test_ray_faults.py", "test_ray.py", "test_resilience.py", "test_profiles.py", "test_environments.py",
                  "test_sweep.py", "test_faults.py", "test_tuning.py", "test_tracking.py", "test_launchers.py")
"""The test files whose tests took longest (2 cores, 4 workers, 2026-12-05), started first: the workers take
whole files (``--dist loadfile``), and a heavy file taken last runs alone at the end while the others idle.
A stale list costs only time."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that, itself or through a fixture, starts a real sweep, process or training
    (``SLOW_CALLS``), so that ``pytest -m "not slow"`` is the fast tier and no test can forget its mark.
    Then start the heaviest files first (``HEAVIEST_FIRST``), the others after them in their own order."""
    for item in items:
        fixtures = [d.func for defs in item._fixtureinfo.name2fixturedefs.values() for d in defs]
        if any(_does_real_work(f) for f in [getattr(item, "function", None), *fixtures] if f is not None):
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def gpu_cell_status() -> str:
    """What a GPU cell of a sweep ends as on this machine: ``skipped`` where no GPU is visible (here, CI),
    ``ok`` where one is (the suite also runs on GPU machines)."""
    from harness.hardware import gpu_names

    return "ok" if gpu_names() else "skipped"


def compose_config(overrides: list[str]) -> RunConfig:
    """The run config that ``python -m harness <overrides>`` would train (``.resolved``: as a mapping)."""
    register_configs()
    register_experiments()
    harness_sweeper.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return run_config(OmegaConf.to_container(cfg, resolve=True))


SET_BY_IMPORTING_KERAS = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL")}
"""What this process's environment held before a test imported Keras: Keras imports JAX where it is installed,
and JAX sets ``TF_CPP_MIN_LOG_LEVEL=1`` in ``os.environ``. After a test that builds a model in the worker
(test_backbones, test_train, test_config), the worker's later sweeps would ask for another start-up than the
suite's warm server's, and each would start a server of its own."""


def outer_env() -> dict[str, str]:
    """This process's environment as a user's shell gives it to a sweep: no Comet settings of the developer's,
    nothing that importing Keras here set (``SET_BY_IMPORTING_KERAS``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    for key, value in SET_BY_IMPORTING_KERAS.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def harness_env(tmp_path: Path, warm_server: bool = True, **extra: str) -> dict[str, str]:
    """The environment of a real sweep in ``tmp_path`` (``outer_env``): its own cache, and (``warm_server``)
    the suite's warm run server (``warm_run_server``)."""
    env = outer_env()
    env.update(HARNESS_CACHE_DIR=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    if warm_server and os.environ.get("HARNESS_TEST_WARM_SERVER", "1") != "0":  # =0: every sweep starts its own
        env[SHARED_SERVER_VARIABLE] = str(warm_run_server())
    env.update(extra)
    return env


def stop_with_parent() -> None:
    """In a child about to start: ask Linux to send it SIGTERM when the test worker that started it dies
    (a worker killed before ``pytest_sessionfinish`` would otherwise leave its warm server behind)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_warm_run_server(socket_path: Path) -> subprocess.Popen:
    """``python -m harness.run.server --listen SOCKET`` (serving default CPU sweeps), once it listens; its
    stderr in ``run-server.log`` beside the socket."""
    env = outer_env()  # as harness_env gives a sweep
    with open(socket_path.with_name("run-server.log"), "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "harness.run.server", "--listen", str(socket_path)],
                                  cwd=socket_path.parent, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
                                  preexec_fn=stop_with_parent)
    greeting = server.stdout.readline()  # type: ignore[union-attr]
    assert '"listening"' in greeting, socket_path.with_name("run-server.log").read_text()
    return server


_warm: dict[str, Any] = {}
SHARED_WARM_SERVER = "HARNESS_TEST_SHARED_WARM_SERVER"
"""The folder of the warm run server that xdist's controller keeps for all its workers (``SharedWarmServer``)."""


class SharedWarmServer:
    """One warm run server for every xdist worker, kept by the controller: started when a worker first asks
    for it (a ``wanted`` file in ``folder``), stopped when the session ends. One thread of the controller
    starts it, waits and stops it, so that Linux also stops it with the controller (``stop_with_parent`` acts
    on the thread that started the child). One server instead of one per worker saves its imports three times.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="harness-warm-"))
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._keep, daemon=True)
        self.thread.start()

    def _keep(self) -> None:
        while not (self.folder / "wanted").exists():
            if self.ended.wait(0.2):
                return
        try:
            server = start_warm_run_server(self.folder / "run-server.sock")
        except BaseException as err:
            (self.folder / "failed").write_text(f"{err}")
            raise
        (self.folder / "ready").touch()
        self.ended.wait()
        server.terminate()
        server.wait()

    def stop(self) -> None:
        self.ended.set()
        self.thread.join()
        shutil.rmtree(self.folder, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    """In xdist's controller, where the workers may run slow tests: keep one warm run server for them all
    (``SharedWarmServer``; the workers inherit its folder in ``SHARED_WARM_SERVER``)."""
    if (hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None)
            or "not slow" in (config.option.markexpr or "") or os.environ.get("HARNESS_TEST_WARM_SERVER") == "0"):
        return
    _warm["shared"] = SharedWarmServer()
    os.environ[SHARED_WARM_SERVER] = str(_warm["shared"].folder)


def warm_run_server() -> Path:
    """The socket of a warm run server that the suite's sweeps with default start-up settings fork their runs
    from, instead of each paying ~9 CPU-s of imports for a server of its own: the controller's for all xdist
    workers (``SharedWarmServer``), else this process's own, started on first use and stopped when the session
    ends (``pytest_sessionfinish``). What only a sweep's own server shows is tested with
    ``harness_env(..., warm_server=False)`` (tests/test_run_process.py)."""
    shared = os.environ.get(SHARED_WARM_SERVER)
    if shared:
        folder = Path(shared)
        (folder / "wanted").touch()
        wait_for(lambda: (folder / "ready").exists() or (folder / "failed").exists())
        assert (folder / "ready").exists(), f"the shared warm server did not start: {(folder / 'failed').read_text()}"
        return folder / "run-server.sock"
    if "server" not in _warm:
        socket_path = Path(tempfile.mkdtemp(prefix="harness-warm-")) / "run-server.sock"
        _warm["server"], _warm["socket"] = start_warm_run_server(socket_path), socket_path
    return _warm["socket"]


def pytest_sessionfinish() -> None:
    """Stop the warm run server this process started (a test that starts a daemon stops it)."""
    if "server" in _warm:
        _warm["server"].terminate()
        _warm["server"].wait()
        shutil.rmtree(_warm["socket"].parent, ignore_errors=True)
    if "shared" in _warm:
        _warm.pop("shared").stop()


def run_harness(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800,
                module: str = "harness") -> subprocess.CompletedProcess:
    """Run ``python -m harness ARGS`` for real, in ``cwd``; output captured as text. ``timeout`` only
    guards against a hang (generous: CI machines may be slow and loaded); no test relies on speed."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env or harness_env(cwd),
                          capture_output=True, text=True, timeout=timeout)


def report_of(stdout: str, cwd: Path) -> Path:
    """The report folder (``report.md``, ``runs.csv``, ...) of a sweep run in ``cwd`` with ``report=false``,
    from what it printed (``stdout``): built here as its last line says (``python -m harness.report SWEEP``, by
    that command's ``main``). A sweep that builds its own report pays the report's imports (~3 CPU-s) in its
    own process; a test worker pays them once. Sweeps that build their own report are tested in test_sweep.py,
    test_docs.py, test_custom.py (the README's command), test_ray.py and test_tuning.py (Optuna)."""
    from harness.report.pages import main as report_main

    said = re.search(r"`python -m harness\.report (.+)`$", stdout.splitlines()[-1])
    assert said, stdout
    sweep_dir = cwd / said[1]
    out = cwd / "reports" / sweep_dir.name  # beside the sweep's own reports (reports_dir)
    assert report_main([str(sweep_dir), "--out", str(out)]) == 0
    return out


def wait_for(condition, timeout: float = 900, poll_s: float = 0.2) -> None:
    """Wait until ``condition()`` holds; ``timeout`` only guards against a hang, it is no speed limit."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(poll_s)


def overlapping(results: list[dict]) -> bool:
    """Whether some two runs' processes were alive at once: one started before the other wrote its result."""
    spans = sorted((r["started_at"], r["ended_at"]) for r in results)
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def meeting(tmp_path: Path, runs: int) -> tuple[dict[str, str], list[str]]:
    """The environment and overrides that hold each run of a sweep at the start of training until ``runs``
    of them are there (``tests.hang.MeetAtStart``): runs that a launcher runs at once then overlap however
    slow the machine is, so ``overlapping`` checks the launcher, not the machine's speed."""
    env = harness_env(tmp_path, PYTHONPATH=str(REPO), HARNESS_MEET_DIR=str(tmp_path / "meet"),
                      HARNESS_MEET_COUNT=str(runs))
    return env, ["callbacks=[tests.hang:MeetAtStart]"]


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


DOC_PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
"""Every page a user reads: the README and the documentation site's pages."""


def doc_block(starting: str, fence: str = "```") -> str:
    """The text of the docs' code block that starts with ``starting``, as the pages print it (where several
    pages show it, they must show the same text: a copy that drifted would go untested)."""
    blocks = {text[text.index(starting):text.index(fence, text.index(starting))]
              for text in (page.read_text() for page in DOC_PAGES) if starting in text}
    assert len(blocks) == 1, f"{starting!r} is shown {'differently on several pages' if blocks else 'nowhere'}"
    return blocks.pop()


def write_doc_lab(root: Path) -> Path:
    """The docs' own ``mylab`` package in ``root``, its code taken from the page as printed."""
    (root / "mylab").mkdir()
    (root / "mylab" / "__init__.py").write_text("")
    models, data = doc_block("# mylab/models.py").split("# mylab/data.py")
    (root / "mylab" / "models.py").write_text(models)
    (root / "mylab" / "data.py").write_text(data)
    return root


def shell(command: str, cwd: Path, warm_server: bool = True, **extra: str) -> subprocess.CompletedProcess:
    """``command`` as a user types it in bash, with this environment's ``python`` first on the PATH."""
    env = harness_env(cwd, warm_server, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                      **extra)
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


def start_sweep(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A real sweep in its own process group (so the test can signal the whole group)."""
    return subprocess.Popen([sys.executable, "-m", "harness", "-m", *args], cwd=cwd, env=env or harness_env(cwd),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=default_sigint)



def default_sigint() -> None:
    """Give the sweep Ctrl-C's usual meaning even where the tests run with SIGINT ignored (a background job
    of a non-interactive shell): Python turns SIGINT into KeyboardInterrupt only if it was not ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)



RNG = np.random.default_rng(0)


def fake_images(count: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    return RNG.integers(0, 256, (count, *shape), dtype=np.uint8), np.arange(count, dtype=np.uint8) % 10



def write_keras_cache(home: Path, per_file: int = 60) -> None:
    """MNIST's npz, Fashion-MNIST's gzipped IDX files and CIFAR-10's pickled batches, small."""
    mnist, fashion, cifar = ([home / "datasets" / relative for relative, _ in KERAS_DATASETS[name]]
                             for name in ("mnist", "fashion_mnist", "cifar10"))
    for path in (*mnist, *fashion, *cifar):
        path.parent.mkdir(parents=True, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = fake_images(per_file, (28, 28)), fake_images(per_file, (28, 28))
    np.savez(mnist[0], x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    for labels_path, images_path in (fashion[0:2], fashion[2:4]):
        x, y = fake_images(per_file, (28, 28))
        with gzip.open(labels_path, "wb") as file:
            file.write(b"\0" * 8 + y.tobytes())
        with gzip.open(images_path, "wb") as file:
            file.write(b"\0" * 16 + x.tobytes())
    for path in cifar:
        x, y = fake_images(per_file, (3, 32, 32))  # CIFAR stores channels first, rows flattened
        with open(path, "wb") as file:
            pickle.dump({b"data": x.reshape(per_file, -1), b"labels": y.tolist()}, file)



def run_in_process(tmp_path: Path, overrides: list[str]) -> dict:
    from harness.run import train

    cfg = compose_config(["tracking=disabled", f"cache_dir={tmp_path / 'cache'}", *overrides])
    run_dir = tmp_path / "run"
    write_json_atomic(run_dir / SPEC_FILE, run_spec(cfg, Launch(run_dir)))
    train.run(run_dir)
    return json.loads((run_dir / RESULT_FILE).read_text())



COMET_CLI = [sys.executable, "-c", "import sys; from comet_ml.scripts.comet import main; sys.exit(main())"]


def read_archive(archive: Path) -> dict:
    """An offline archive as Comet's reader sees it: metrics (name -> values), params, others, tags."""
    out = subprocess.run([*COMET_CLI, "offline", "--csv", str(archive)], capture_output=True, text=True, check=True)
    metrics, params, others, data = {}, {}, {}, {}
    pending_key = None
    for row in csv.DictReader(io.StringIO(out.stdout)):
        section, name, value = row["section"], row["name"], row["value"]
        if row["level"] != "detail":  # Comet adds summary rows (maximum, minimum)
            continue
        if section == "metric":
            metrics.setdefault(name, []).append(float(value))
        elif section == "param":
            params[name] = value
        elif name == "key":
            pending_key = value
        elif name == "value" and pending_key is not None:
            others[pending_key], pending_key = value, None
        else:
            data[name] = value
    return {"metrics": metrics, "params": params, "others": others, "tags": data.get("tags", "")}



class WeightSnapshots:
    """A Keras callback (``callbacks=[tests.conftest:WeightSnapshots]``, in an in-process run) that
    keeps, as each ``fit`` begins and ends, every weight of the model (by path; BatchNorm's moving statistics
    too) and the optimizer's learning rate, in ``WeightSnapshots.taken``: what the stages really trained."""

    taken: list[dict] = []

    def __new__(cls):
        import keras

        class Snapshots(keras.callbacks.Callback):
            def snapshot(self, when: str) -> None:
                WeightSnapshots.taken.append({
                    "when": when, "learning_rate": float(np.asarray(self.model.optimizer.learning_rate)),
                    "weights": {w.path: np.array(w) for w in self.model.weights}})

            def on_train_begin(self, logs=None):
                self.snapshot("begin")

            def on_train_end(self, logs=None):
                self.snapshot("end")

        return Snapshots()

