"""Keras callbacks that misbehave on purpose, for tests of what happens to a run that hangs (a run past its
timeout), that must be cancelled, or that crashes: nothing then depends on how fast the machine is."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import keras


class HangForever(keras.callbacks.Callback):
    """Blocks in ``on_train_begin`` until the process is killed."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        print("hanging on purpose", flush=True)
        threading.Event().wait()


class HangOnce(keras.callbacks.Callback):
    """Hangs like ``HangForever`` in the first run that starts training, and in no later one: the first
    creates the file ``$HARNESS_HANG_ONCE_FILE`` (exclusively) and writes its Slurm job id there, if any,
    so that a test knows which job to cancel; the runs after it find the file and train normally. With
    ``$HARNESS_HANG_SKIP=N``, the first N runs train normally (each takes a ticket file beside it) and the
    next one hangs."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        for ticket in range(int(os.environ.get("HARNESS_HANG_SKIP", "0"))):
            try:
                with open(f"{os.environ['HARNESS_HANG_ONCE_FILE']}.skip{ticket}", "x"):
                    return
            except FileExistsError:
                continue
        try:
            with open(os.environ["HARNESS_HANG_ONCE_FILE"], "x") as claim:
                claim.write(os.environ.get("SLURM_ARRAY_JOB_ID", "") + "_" + os.environ.get("SLURM_ARRAY_TASK_ID", ""))
        except FileExistsError:
            return
        print("hanging on purpose", flush=True)
        threading.Event().wait()


class CrashHard(keras.callbacks.Callback):
    """Kills its own process with SIGSEGV as training starts, as a crash in native code would."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)


class RecordModules(keras.callbacks.Callback):
    """Writes which backends' modules the run's process has imported (``tensorflow``, ``jax``, ``torch``)
    to the file ``$HARNESS_MODULES_FILE``, as training ends: a JAX run must never have imported TensorFlow."""

    def on_train_end(self, logs: dict | None = None) -> None:
        with open(os.environ["HARNESS_MODULES_FILE"], "w") as out:
            json.dump(sorted(name for name in ("tensorflow", "jax", "torch") if name in sys.modules), out)


class RecordJit(keras.callbacks.Callback):
    """Appends, as training begins, whether the model that ``fit`` trains compiles with XLA (Keras' own
    ``model.jit_compile``, which its trainer builds the train function from) to ``$HARNESS_JIT_FILE``, one
    JSON line per run: the setting as the backend got it, not as the harness echoes it."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        with open(os.environ["HARNESS_JIT_FILE"], "a") as out:
            out.write(json.dumps({"jit_compile": bool(self.model.jit_compile)}) + "\n")


class CountBatches(keras.callbacks.Callback):
    """Appends the number of training batches of each epoch of the run to ``$HARNESS_BATCHES_FILE``, one
    JSON line per run: how much data the run's epochs really went through."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.batches: list[int] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.batches.append(0)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.batches[-1] += 1

    def on_train_end(self, logs: dict | None = None) -> None:
        with open(os.environ["HARNESS_BATCHES_FILE"], "a") as out:
            out.write(json.dumps(self.batches) + "\n")


class MeetAtStart(keras.callbacks.Callback):
    """Holds each run at ``on_train_begin`` until ``$HARNESS_MEET_COUNT`` runs have arrived (each leaves a
    file in the folder ``$HARNESS_MEET_DIR``): runs a launcher really runs at once are then certainly alive
    together, however slow the machine, so a test of parallelism never depends on a timing window. Runs
    that are not run at once would wait for ever: after ``$HARNESS_MEET_GIVE_UP_S`` (default 300) a run
    goes on alone, and the test's check of overlap fails, as it should."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        folder = os.environ["HARNESS_MEET_DIR"]
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, str(os.getpid())), "w").close()
        give_up = time.monotonic() + float(os.environ.get("HARNESS_MEET_GIVE_UP_S", "300"))
        while len(os.listdir(folder)) < int(os.environ["HARNESS_MEET_COUNT"]) and time.monotonic() < give_up:
            threading.Event().wait(0.05)
