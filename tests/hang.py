"""A Keras callback that never returns, for tests of what happens to a run that hangs (a run past its
timeout): the run hangs on purpose, so the test does not depend on how fast the machine is."""

from __future__ import annotations

import threading

import keras


class HangForever(keras.callbacks.Callback):
    """Blocks in ``on_train_begin`` until the process is killed."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        print("hanging on purpose", flush=True)
        threading.Event().wait()
