"""Installable anywhere: a wheel built from the sources, installed outside the repository, runs a sweep.

The wheel is installed without dependencies into a fresh virtual environment; the dependencies
(TensorFlow, Keras, Hydra, ...) come read-only from this test environment through a ``.pth`` file, so
the test needs no network and no second 2 GB install. The repository is not on that environment's
path, so ``conf/`` and ``experiments/`` must come from inside the installed package.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.conftest import REPO, harness_env

SOURCES = ("harness", "hydra_plugins", "conf", "experiments", "examples", "pyproject.toml", "README.md")


def build_wheel(tmp_path: Path) -> Path:
    """A wheel of the project, built from a copy of its sources (building writes beside them)."""
    source = tmp_path / "source"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True, text=True)
    [wheel] = (tmp_path / "dist").glob("harness-*.whl")
    return wheel


def test_a_wheel_installed_outside_the_repository_runs_a_sweep(tmp_path):
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = harness_env(work)
    env.pop("PYTHONPATH", None)
    where = subprocess.run([str(python), "-c", "import harness; print(harness.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(site), where  # the installed copy, not the repository's

    shown = subprocess.run([str(python), "-m", "harness", "--help"], cwd=work, env=env, capture_output=True,
                           text=True, timeout=1800)
    assert shown.returncode == 0, shown.stderr
    assert "seed_grid" in shown.stdout and "optimizer" in shown.stdout
    examples = subprocess.run([str(python), "-c", "import harness.examples.tabular as t; print(t.__file__)"],
                              cwd=work, env=env, capture_output=True, text=True)
    assert examples.stdout.startswith(site), examples.stderr  # experiment=tabular's functions ship in the wheel

    done = subprocess.run([str(python), "-m", "harness", "-m", "epochs=1", "tracking=disabled"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    [result_path] = work.glob("multirun/*/0/result.json")
    result = json.loads(result_path.read_text())
    assert result["status"] == "ok" and result["epochs_run"] == 1
    assert done.stdout.splitlines()[-1].startswith("report: ")
