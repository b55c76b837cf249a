"""How training time is measured. These rules are applied here and nowhere else.

- The clock is ``time.perf_counter`` (monotonic wall clock), read in Keras callbacks. Keras calls
  ``on_epoch_end`` after the epoch's metrics have been fetched to the host, so the device's work for
  the epoch is finished when the clock is read.
- An epoch's *training seconds* are its wall time minus the validation pass inside it
  (``on_test_begin`` .. ``on_test_end``): validation is not training.
- A run's *train seconds* are the sum of its epochs' training seconds. Data loading, model building,
  pretraining, compilation set-up before ``fit``, Comet start/end and the final test evaluation are
  outside it. The first epoch includes graph tracing/compilation, so it is reported on its own
  (``first_epoch_seconds``) beside the median of the later epochs (``median_epoch_seconds``).
- Fine-tuning trains in two ``fit`` calls (head, then top layers): both stages' epochs are training
  seconds; the recompilation between them is in ``fit_seconds`` only.
- A *step* is one batch: ``median_step_seconds`` is the median epoch's training seconds divided by
  the steps per epoch (``ceil(train examples / batch size)``); under a few milliseconds the framework's
  overhead, not the model's compute, is what gets timed.
- *Time to target* is the training seconds up to and including the first epoch whose target metric
  (``target.metric``, ``val_accuracy`` by default) reaches ``target.value`` (at least it for accuracies,
  at most it for losses and errors); ``None`` if no epoch does. It is counted by
  ``harness.targets.time_to_target``, which the report also uses to judge a finished sweep for another target.

Changing what any of these means? Bump ``harness.run_key.TIMING_VERSION``: results timed by the old
rules are then not reused as if they were timed by the new ones.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import keras

from harness.stage_records import EpochTimings

EPOCH_TIMES = ("epoch_seconds", "val_seconds", "train_seconds")
"""What ``EpochTimer`` adds to each epoch's ``logs``."""


class EpochTimer(keras.callbacks.Callback):
    """Records, per epoch, its wall seconds, validation seconds and training seconds.

    It writes them into the epoch's ``logs`` (``EPOCH_TIMES``), as Keras' own callbacks pass values on
    (``ReduceLROnPlateau`` writes ``logs["learning_rate"]``), so that the callbacks after it (the progress
    file, the Comet logger) read them there; after ``fit``, ``timer.epochs`` holds them too, one dict per
    finished epoch. Pass it to ``fit`` only (``evaluate`` would count as validation), first in the list.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[dict[str, float]] = []
        self._epoch_start = 0.0
        self._val_start = 0.0
        self._val_seconds = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._val_seconds = 0.0
        self._epoch_start = time.perf_counter()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._val_start = time.perf_counter()

    def on_test_end(self, logs: dict | None = None) -> None:
        self._val_seconds += time.perf_counter() - self._val_start

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        total = time.perf_counter() - self._epoch_start
        times = dict(zip(EPOCH_TIMES, (total, self._val_seconds, total - self._val_seconds), strict=True))
        self.epochs.append(times)
        if logs is not None:
            logs.update(times)


def summarize_epochs(history: list[dict[str, Any]], train_examples: int, *,
                     steps_per_epoch: int | None = None) -> EpochTimings:
    """Timing figures of a run from its per-epoch ``history`` (its time to target is ``TargetFacts``').

    Args:
        history: one dict per epoch with ``train_seconds`` and ``val_seconds``.
        train_examples: examples per epoch, for throughput.
        steps_per_epoch: batches per epoch, for the step time.

    Returns:
        Its ``EpochTimings``: ``train_seconds``, ``validation_seconds``, ``first_epoch_seconds``,
        ``median_epoch_seconds`` (of epochs after the first; ``None`` with one epoch), ``samples_per_second``
        (later epochs if any, else the first) and ``median_step_seconds`` (the same epoch time per step;
        ``None`` without ``steps_per_epoch``).
    """
    train = [epoch["train_seconds"] for epoch in history]
    later = train[1:]
    steady = statistics.median(later) if later else (train[0] if train else None)
    return EpochTimings(
        train_seconds=sum(train),
        validation_seconds=sum(epoch["val_seconds"] for epoch in history),
        first_epoch_seconds=train[0] if train else None,
        median_epoch_seconds=statistics.median(later) if later else None,
        samples_per_second=train_examples / steady if steady else None,
        median_step_seconds=steady / steps_per_epoch if steady and steps_per_epoch else None,
    )


class PhaseClock:
    """Seconds spent in each phase of a run (start-up, data, model, Comet, fit, evaluation): what the
    harness costs beside the timed training, recorded as the result's ``phase_seconds``.

    ``lap(name)`` charges the time since the previous lap (or since the clock was made) to ``name``, in
    ``seconds`` (a dict given to the clock, so that the result holds it from the start).
    """

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now
