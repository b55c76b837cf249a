"""Comet experiment tracking for one run (used by the training process only).

Each run gets a new experiment (``mode="create"``), ended in a ``finally`` by the caller, so one run's
data never leaks into the next. Metrics come from our own Keras callback, not Comet's import-order
auto-logging. Nothing that can carry secrets or code is sent: no command-line arguments, no code, no
git patch, no environment or host details (our own environment facts are logged as "others").
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import keras

from harness.cells import describe, flatten
from harness.results import Result
from harness.stage_records import Tracking

# Set before comet_ml is imported: no auto-logging, no error reports to Comet's own servers.
os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")
os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")

import comet_ml  # noqa: E402

DEFAULT_PROJECT = "harness"
"""Comet project when neither the config, ``COMET_PROJECT_NAME`` nor Comet's config file names one."""


def experiment_name(result: Result) -> str:
    """The run's cell as every part of the harness describes it (``harness.cells.describe``):
    ``optimizer=adam transfer=on early_stopping=off device=cpu optimizer.learning_rate=0.01 seed=0``; unique
    per cell."""
    return describe(result["factors"], result["seed"])


def experiment_tags(result: Result) -> list[str]:
    """One tag per factor level (``optimizer:adam``, ``optimizer.learning_rate:0.01``), the seed and the
    sweep, for grouping and filters on a Comet dashboard."""
    tags = [f"{factor}:{level}" for factor, level in result["factors"].items()]
    return [*tags, f"seed:{result['seed']}", f"sweep:{result['sweep_name']}"]


def start_experiment(tracking: dict[str, Any], result: Result) -> comet_ml.CometExperiment | None:
    """A new Comet experiment for the run in ``result`` (``None`` when tracking is disabled).

    ``tracking`` is what ``harness.sweep.comet_mode.resolve`` decided for the sweep. An online experiment
    that cannot talk to Comet (a bad key, the network gone since the sweep's probe) is replaced by an
    offline one, so the run's data is kept either way.
    """
    if tracking["mode"] == "disabled":
        return None
    system = bool(tracking["system_metrics"])  # Comet's sampling threads: off unless asked for
    settings = {
        "log_code": False, "log_graph": False, "parse_args": False, "log_git_metadata": False,
        "log_git_patch": False, "log_env_details": system, "log_env_gpu": system, "log_env_host": system,
        "log_env_cpu": system, "log_env_network": system, "log_env_disk": system,
        "auto_param_logging": False, "auto_metric_logging": False, "auto_log_co2": False,
        "auto_output_logging": None, "display_summary_level": 0,
        "name": experiment_name(result), "tags": experiment_tags(result),
    }
    os.makedirs(tracking["offline_dir"], exist_ok=True)
    config = comet_ml.get_config()
    names = {
        "project_name": tracking["project_name"] or config.get_string(None, "comet.project_name") or DEFAULT_PROJECT,
        "workspace": tracking["workspace"] or config.get_string(None, "comet.workspace"),
    }
    if tracking["mode"] == "online":
        experiment = comet_ml.start(
            mode="create", online=True, **names, experiment_config=comet_ml.ExperimentConfig(**settings)
        )
        if experiment.alive:
            return experiment
        experiment.end()
        print("harness: warning: Comet did not accept the online experiment; writing an offline archive",
              file=sys.stderr)
    return comet_ml.start(
        mode="create", online=False, **names,
        experiment_config=comet_ml.ExperimentConfig(offline_directory=tracking["offline_dir"], **settings),
    )


def experiment_location(experiment: comet_ml.CometExperiment, tracking: dict[str, Any]) -> dict[str, Any]:
    """Where the run's experiment lives, for the result file (never the API key)."""
    offline = isinstance(experiment, comet_ml.OfflineExperiment)
    return {"mode": "offline" if offline else "online", "experiment_key": experiment.get_key(),
            "offline_dir": tracking["offline_dir"] if offline else None, "fallback": tracking["fallback"],
            "url": None if offline else experiment.url}


def log_start(experiment: comet_ml.CometExperiment, result: Result) -> None:
    """Parameters (the flattened run config) and the run's identity: its run key, its sweep, and the SHA-256
    of each of the user's own ``_target_`` modules (``user_code.<target>``), which the run key includes."""
    experiment.log_parameters(flatten(result["config"]))
    code = {f"user_code.{target}": digest for target, digest in (result.get("user_code") or {}).items()}
    experiment.log_others({"run_key": result["run_key"], "sweep_name": result["sweep_name"], **code})


def log_end(experiment: comet_ml.CometExperiment, result: Result) -> None:
    """The run's outcome: final metrics, status and reason, device, the model's facts, versions and hardware."""
    finals = ("train_seconds", "time_to_target_seconds", "epochs_to_target", "best_val_accuracy",
              "test_accuracy", "test_loss", "epochs_run", "stopped_epoch", "first_epoch_seconds",
              "median_epoch_seconds", "samples_per_second", "data_seconds", "trainable_params", "frozen_params",
              "fit_cpu_seconds", "cores_used", "cpus_available", "peak_rss_bytes", "device_peak_memory_bytes",
              "cpu_energy_joules", "gpu_energy_joules")
    metrics = {k: result[k] for k in finals if isinstance(result.get(k), (int, float))
               and not isinstance(result.get(k), bool) and math.isfinite(result[k])}
    experiment.log_metrics(metrics)
    others = {"status": result["status"], "reason": result.get("reason") or "",
              "device_used": result.get("device_used") or ""}
    # which backbone and weights, and how the data was read, on the dashboard
    facts = ("backbone", "transfer_mode", "image_size", "weights_sha256", "data_cache_hit", "data_streamed")
    others.update({k: result[k] for k in facts if result.get(k) is not None})
    others.update({f"env.{k}": v for k, v in (result.get("environment") or {}).items()})
    experiment.log_others(others)


def _comet_failed(tracked: Tracking, err: Exception, when: str) -> None:
    """Tracking is a copy of the run's result, never a reason to lose it: note the error and go on."""
    print(f"harness: warning: Comet failed {when} ({type(err).__name__}: {err}); the run goes on, its "
          "result file holds everything", file=sys.stderr)
    tracked.comet["error"] = f"{type(err).__name__}: {err}"[:300]


def begin_experiment(tracking: dict[str, Any], result: Result) -> tuple[comet_ml.CometExperiment | None, Tracking]:
    """Start the run's experiment and log its parameters. Returns it (``None`` if Comet fails, which costs
    the run its tracking, not its result) and the ``Tracking`` record that says where it lives."""
    tracked = Tracking()
    try:
        experiment = start_experiment(tracking, result)
        if experiment is not None:
            log_start(experiment, result)
            tracked.comet.update(experiment_location(experiment, tracking))
        return experiment, tracked
    except Exception as err:  # any Comet error: the run must go on
        _comet_failed(tracked, err, "to start")
        return None, tracked


def log_outcome(experiment: comet_ml.CometExperiment, result: Result, tracked: Tracking) -> None:
    """Log the run's outcome, and note in ``tracked`` where its offline archive will be (the archive is
    written by ``end_experiment``, after the result; the sweep checks that it exists)."""
    try:
        log_end(experiment, result)
    except Exception as err:  # any Comet error: the result is written regardless
        _comet_failed(tracked, err, "to log the outcome")
    if tracked.comet.get("mode") == "offline":
        tracked.comet["archive"] = str(Path(tracked.comet["offline_dir"]) / f"{tracked.comet['experiment_key']}.zip")


def end_experiment(experiment: comet_ml.CometExperiment, tracked: Tracking) -> None:
    """End the experiment (an offline one writes its archive now); a failure is printed to the run's log."""
    try:
        experiment.end()
    except Exception as err:
        _comet_failed(tracked, err, "to finish")


EPOCH_TIME_NAMES = {"val_seconds": "epoch_val_seconds", "train_seconds": "epoch_train_seconds"}
"""The epoch timer's ``logs`` entries under their names in Comet (``epoch_seconds`` keeps its own)."""


class CometEpochLogger(keras.callbacks.Callback):
    """Logs each epoch's ``logs`` (loss, accuracy, val_loss, val_accuracy, and the seconds that the epoch
    timer, earlier in the list, put there) with step = epoch; the seconds as ``epoch_seconds``,
    ``epoch_train_seconds`` and ``epoch_val_seconds``.

    Args:
        experiment: the run's Comet experiment.
    """

    def __init__(self, experiment: comet_ml.CometExperiment) -> None:
        super().__init__()
        self.experiment = experiment

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        metrics = {EPOCH_TIME_NAMES.get(k, k): float(v) for k, v in (logs or {}).items()}
        self.experiment.log_metrics(metrics, step=epoch + 1, epoch=epoch + 1)
