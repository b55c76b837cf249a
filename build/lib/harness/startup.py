"""What a run's process has fixed before its first line of training, shared by the sweep that starts runs
(``harness.sweep.run_process``) and the run server that forks them (``harness.run.server``): the
environment read when the backend is imported, and the code that is then in memory. A server serves only
runs that agree with it on both."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path

STARTUP_KEYS = ("CUDA_VISIBLE_DEVICES", "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "COMET_DISABLE_AUTO_LOGGING",
                "COMET_ERROR_TRACKING_ENABLE", "XLA_FLAGS", "JAX_PLATFORMS")
"""Environment variables read when the backend (or comet_ml) is imported: a server serves only runs that
agree on all of them."""

PACKAGES = ("keras", "tensorflow", "jax", "torch", "comet_ml", "scikit-learn", "numpy")
"""The installed packages a server imports once for all its runs."""

SHARED_SERVER_VARIABLE = "HARNESS_RUN_SERVER"
"""Names the socket of a run server started with ``python -m harness.run.server --listen SOCKET``, which
every sweep with this variable set uses (where it agrees) instead of starting its own."""


def startup_settings(env: dict[str, str], *, backend: str, device: str, quiet: bool,
                     threads: int) -> dict[str, str]:
    """``env`` with what a run's process needs set before its backend is imported.

    Args:
        env: the environment to start from (a value the user set for the log level or Comet's error
            reports is kept).
        backend: the Keras backend (``KERAS_BACKEND``, read when Keras is imported).
        device: ``cpu`` hides the GPUs before the backend starts (a clean CPU measurement; JAX would
            otherwise look for CUDA and warn); any other device leaves them visible.
        quiet: TensorFlow's C++ logs off unless the user set their level.
        threads: for JAX, its CPU threads (set at import, unlike TensorFlow's and PyTorch's, which the run
            sets itself); 0: the backend's default.

    Comet's auto-logging is off (metrics come from the harness's own callback), and its error reports
    unless asked for.
    """
    env = dict(env)
    env["KERAS_BACKEND"] = backend
    if backend == "jax" and threads:
        env["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
        env["JAX_PLATFORMS"] = "cpu"
    if quiet:
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["COMET_DISABLE_AUTO_LOGGING"] = "1"
    env.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    return env


def startup_env(env: dict[str, str]) -> tuple[tuple[str, str | None], ...]:
    """The part of a run's environment ``env`` that must be fixed before the backend is imported."""
    return tuple((key, env.get(key)) for key in STARTUP_KEYS)


def code_fingerprint() -> str:
    """A digest of the code a run would execute: the interpreter, the versions of ``PACKAGES`` and the
    harness's own sources (their names, sizes and modification times; cheap to read, and an edited file
    changes them)."""
    harness_dir = Path(__file__).resolve().parent
    sources = sorted((str(path.relative_to(harness_dir)), path.stat().st_mtime_ns, path.stat().st_size)
                     for path in harness_dir.rglob("*.py"))
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return hashlib.sha256(json.dumps([sys.executable, versions, sources]).encode()).hexdigest()
