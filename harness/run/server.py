"""The run server: a process that has imported Keras, its backend and comet_ml once, and forks one clean
child per run (``run_process=fork``, the default). ``python -m harness.run.server``; started and spoken to by
``harness.sweep.run_process``, one server per set of start-up settings (device, backend, ...).

Why forking: a fresh Python process per run pays ~5 s of imports (TensorFlow, Keras, scikit-learn,
comet_ml) before it trains; a child forked from a process that has imported them but run no operation
starts in milliseconds and is still its own process: its own PID (a crash or the OOM killer costs that run
only), its memory returned when it exits, its device fixed by the server's environment before the backend
initialised, and nothing carried from one run to the next (every child starts from the same untouched
parent, never from an earlier run). The server must therefore never run a backend operation itself.

Protocol: JSON lines. Requests on stdin: ``{"op": "run", "run_dir", "env", "cwd"}`` and ``{"op": "drain"}``.
Replies on stdout: ``{"pid"}`` when a child started, ``{"ready": pid}`` when its ``result.json`` is written
(it may still be ending its Comet experiment: that is off the sweep's critical path), ``{"exited": pid,
"code"}`` when it ended (negative: killed by that signal), and ``{"drained": true}`` once no child is left.
When stdin closes (the sweep ended, or was killed), children still training are killed, children only
ending their Comet experiment are left to finish it, and the server exits.
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from harness.results import LOG_FILE

FINISHING_GRACE_S = 120.0  # how long a child may take to end its Comet experiment after the sweep is gone


def preload() -> None:
    """Import what every run imports, without running any backend operation."""
    import keras  # noqa: F401  (imports the backend: TensorFlow by default)

    try:
        import comet_ml  # noqa: F401
    except ImportError:
        pass
    import harness.run.comet  # noqa: F401
    import harness.run.data  # noqa: F401
    import harness.run.models  # noqa: F401
    import harness.run.optimizers  # noqa: F401
    import harness.run.timing  # noqa: F401
    import harness.run.train  # noqa: F401


def child(request: dict[str, Any], ready_fd: int) -> int:
    """In the forked child: become the run's process (its log, environment, folder) and do the run."""
    from harness.run import train

    log = os.open(Path(request["run_dir"]) / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C records the run as interrupted
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    outcome = train.run(Path(request["run_dir"]), on_result=lambda: os.write(ready_fd, b"r"))
    return train.exit_code(outcome)


class Server:
    """The server's state: its children (pid → how to watch them) and the reply channel."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, dict[str, Any]] = {}
        self.pending = b""
        self.drain_asked = False

    def reply(self, message: dict[str, Any]) -> None:
        os.write(1, (json.dumps(message) + "\n").encode())

    def fork(self, request: dict[str, Any]) -> None:
        ready_read, ready_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the run's process
            code = 1
            try:
                os.close(ready_read)
                code = child(request, ready_write)
            except BaseException:  # noqa: BLE001  (anything: it is recorded by the parent as a failed run)
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(ready_write)
        pidfd = os.pidfd_open(pid)
        self.children[pid] = {"pidfd": pidfd, "ready": ready_read, "training": True}
        self.selector.register(pidfd, selectors.EVENT_READ, ("exited", pid))
        self.selector.register(ready_read, selectors.EVENT_READ, ("ready", pid))
        self.reply({"pid": pid})

    def on_ready(self, pid: int) -> None:
        child = self.children[pid]
        self.selector.unregister(child["ready"])
        if os.read(child["ready"], 1):  # the child wrote its result (EOF without a byte: it died first)
            child["training"] = False
            self.reply({"ready": pid})
        os.close(child["ready"])
        child["ready"] = None

    def on_exit(self, pid: int) -> None:
        child = self.children.pop(pid)
        if child["ready"] is not None:
            self.selector.unregister(child["ready"])
            os.close(child["ready"])
        self.selector.unregister(child["pidfd"])
        os.close(child["pidfd"])
        _, status = os.waitpid(pid, 0)
        self.reply({"exited": pid, "code": os.waitstatus_to_exitcode(status)})
        self.answer_drain()

    def answer_drain(self) -> None:
        if self.drain_asked and not self.children:
            self.drain_asked = False
            self.reply({"drained": True})

    def on_request(self) -> bool:
        """Read requests; ``False`` once stdin has closed."""
        data = os.read(0, 65536)
        if not data:
            return False
        self.pending += data
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            request = json.loads(line)
            if request["op"] == "run":
                self.fork(request)
            elif request["op"] == "drain":
                self.drain_asked = True
                self.answer_drain()
        return True

    def serve(self) -> None:
        self.selector.register(0, selectors.EVENT_READ, ("request", None))
        while True:
            for key, _ in self.selector.select():
                kind, pid = key.data
                if kind == "request" and not self.on_request():
                    self.shut_down()
                    return
                if kind == "ready" and pid in self.children:
                    self.on_ready(pid)
                elif kind == "exited" and pid in self.children:
                    self.on_exit(pid)

    def shut_down(self) -> None:
        """The sweep is gone: kill children still training; let those ending their Comet experiment end."""
        for pid, child in self.children.items():
            if child["training"]:
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + FINISHING_GRACE_S
        for pid in list(self.children):
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.05)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the runs and the sweep, not for the server
    preload()
    gc.freeze()  # keep the preloaded objects' pages shared with the children (copy-on-write)
    print(json.dumps({"started": os.getpid()}), flush=True)
    Server().serve()


if __name__ == "__main__":
    main()
