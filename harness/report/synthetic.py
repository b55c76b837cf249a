"""Synthetic result records, shaped like real ``result.json`` files, for the report's benchmark and for
tests of the report that need many runs. Nothing here trains; the numbers are made up (seeded)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

OPTIMIZER_SPEED = {"sgd": 1.6, "momentum": 1.1, "nag": 1.0, "adagrad": 1.4, "rmsprop": 0.9, "adam": 1.0}


def synthetic_results(n_runs: int, epochs: int = 10, seed: int = 0) -> list[dict[str, Any]]:
    """``n_runs`` ok results over the full grid (6 optimizers x transfer x early stopping x cpu/gpu),
    repeating seeds until there are enough, each with an ``epochs``-long history."""
    rng = np.random.default_rng(seed)
    cells = list(itertools.product(OPTIMIZER_SPEED, ("on", "off"), ("on", "off"), ("cpu", "gpu")))
    results = []
    for i in range(n_runs):
        optimizer, transfer, early_stopping, device = cells[i % len(cells)]
        run_seed = i // len(cells)
        epoch_seconds = 0.1 * (0.3 if device == "gpu" else 1.0) * rng.lognormal(0, 0.1)
        speed = OPTIMIZER_SPEED[optimizer] * (0.6 if transfer == "on" else 1.0)
        accuracies = 1 - 0.9 * np.exp(-np.arange(1, epochs + 1) / (2.0 * speed)) - rng.uniform(0, 0.03, epochs)
        run_epochs = epochs // 2 + 1 if early_stopping == "on" else epochs
        history = [{"train_seconds": epoch_seconds * (3 if e == 0 else 1), "val_seconds": 0.01,
                    "val_accuracy": float(accuracies[e]), "loss": float(1 - accuracies[e])} for e in range(run_epochs)]
        elapsed = np.cumsum([h["train_seconds"] for h in history])
        reached = [k for k, h in enumerate(history) if h["val_accuracy"] >= 0.9]
        results.append({
            "run_key": f"synthetic{i:06d}", "sweep_name": "synthetic", "seed": run_seed,
            "factors": {"optimizer": optimizer, "transfer": transfer, "early_stopping": early_stopping,
                        "device": device}, "dataset": "digits",
            "model": "small_cnn", "status": "ok", "reason": None, "epochs_run": run_epochs,
            "early_stopped": early_stopping == "on", "train_seconds": float(elapsed[-1]),
            "first_epoch_seconds": history[0]["train_seconds"], "median_epoch_seconds": epoch_seconds,
            "steps_per_epoch": 7, "median_step_seconds": epoch_seconds / 7, "started_at": 1.8e9 + 5.0 * i,
            "sweep_position": i,
            "time_to_target_seconds": float(elapsed[reached[0]]) if reached else None,
            "epochs_to_target": reached[0] + 1 if reached else None, "target_accuracy": 0.9,
            "best_val_accuracy": max(h["val_accuracy"] for h in history),
            "test_accuracy": float(accuracies[run_epochs - 1] + rng.normal(0, 0.005)),
            "test_loss": float(1 - accuracies[run_epochs - 1]),
            "history": history, "config": {"optimizer": {"name": optimizer},
                                             "device": {"name": device,
                                                        "price_per_hour": 0.35 if device == "gpu" else None}},
            "environment": {"cpu_model": "synthetic CPU", "cpu_count": 2, "gpu_names": ["synthetic GPU"],
                            "hostname": "synthetic", "backend": "tensorflow", "keras": "3", "python": "3.11",
                            "threads": 0, "parallel_jobs": 1, "jit_compile": False},
        })
    return results
