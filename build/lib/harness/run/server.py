"""The run server: a process that has imported Keras, its backend and comet_ml once, and forks one clean
child per run (``run_process=fork``, the default). ``python -m harness.run.server``; started and spoken to by
``harness.sweep.run_process``, one server per set of start-up settings (device, backend, ...).

Why forking: a fresh Python process per run pays ~5 s of imports (TensorFlow, Keras, scikit-learn,
comet_ml) before it trains; a child forked from a process that has imported them but run no operation
starts in milliseconds and is still its own process: its own PID (a crash or the OOM killer costs that run
only), its memory returned when it exits, its device fixed by the server's environment before the backend
initialised, and nothing carried from one run to the next (every child starts from the same untouched
parent, never from an earlier run). The server must therefore never run a backend operation itself.

Protocol: JSON lines. Requests: ``{"op": "run", "run_dir", "env", "cwd"}`` and ``{"op": "drain"}``.
Replies: ``{"pid"}`` when a child started, ``{"ready": pid}`` when its ``result.json`` is written (it may
still be ending its Comet experiment: that is off the sweep's critical path), ``{"exited": pid, "code"}``
when it ended (negative: killed by that signal), and ``{"drained": true}`` once none of that sweep's
children is left. When a sweep is gone (it ended, or was killed), its children still training are
killed and those only ending their Comet experiment are left to finish it.

A server serves the one sweep that started it, on its stdin and stdout, and exits with it; or, with
``--listen SOCKET``, every sweep run with ``HARNESS_RUN_SERVER=SOCKET`` whose runs start with the same
settings and code (it greets each with ``{"started", "startup", "code"}``), until Ctrl-C or SIGTERM: a
warm server for a day of sweeps, whose runs then start at once.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from harness.config.schema import BACKENDS
from harness.results import LOG_FILE
from harness.startup import code_fingerprint, startup_env, startup_settings

FINISHING_GRACE_S = 120.0  # how long a child may take to end its Comet experiment after the sweep is gone


def preload() -> None:
    """Import what every run imports, without running any backend operation."""
    import keras  # noqa: F401  (imports the backend: TensorFlow by default)

    try:
        import comet_ml  # noqa: F401
    except ImportError:  # tracking=disabled runs need no comet_ml: a machine without it still forks them
        pass
    else:
        import harness.run.comet  # noqa: F401
    import harness.run.data  # noqa: F401
    import harness.run.models  # noqa: F401
    import harness.run.optimizers  # noqa: F401
    import harness.run.timing  # noqa: F401
    import harness.run.train  # noqa: F401


def python_path(env: dict[str, str]) -> list[str]:
    return [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]


SERVER_PATH_HEAD = [sys.path[0], *python_path(dict(os.environ))]
"""What this server's own start put first on ``sys.path`` (its folder, its ``PYTHONPATH``): a run gets its
sweep's instead, as a fresh ``python -m harness.run.train`` started by that sweep would (a user's module
beside the sweep imports)."""


def child(request: dict[str, Any], ready_fd: int) -> int:
    """In the forked child: become the run's process (its log, environment, folder) and do the run."""
    from harness.run import train

    log = os.open(Path(request["run_dir"]) / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C records the run as interrupted
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.path[:] = [request["cwd"], *python_path(request["env"]), *(p for p in sys.path if p not in SERVER_PATH_HEAD)]
    outcome = train.run(Path(request["run_dir"]), on_result=lambda: os.write(ready_fd, b"r"))
    return train.exit_code(outcome)


class Client:
    """One sweep spoken to: the pipes of the sweep that started this server, or a connection to its socket."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self.pending = b""
        self.drain_asked = False
        self.gone = False

    def reply(self, message: dict[str, Any]) -> None:
        if not self.gone:
            try:
                os.write(self.write_fd, (json.dumps(message) + "\n").encode())
            except OSError:
                self.gone = True  # the sweep has gone: its children's news is for nobody


class Server:
    """The server's state: its children (pid → how to watch them, and whose they are) and its clients.

    Args:
        listener: the socket that sweeps connect to (``--listen``); ``None`` for a server that serves the
            one sweep that started it, on its stdin and stdout, and exits when that sweep is gone.
    """

    def __init__(self, listener: socket.socket | None = None) -> None:
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, dict[str, Any]] = {}
        self.listener = listener
        self.stopping = False
        if listener is None:
            self.add_client(Client(0, 1))
        else:
            self.selector.register(listener, selectors.EVENT_READ, ("accept", None))
            self.code = code_fingerprint()  # of the code imported: sweeps with other code are told to go
            self.wakeup_read, wakeup_write = socket.socketpair()  # a signal wakes select() to be seen
            wakeup_write.setblocking(False)
            signal.set_wakeup_fd(wakeup_write.fileno())
            self.wakeup_write = wakeup_write
            self.selector.register(self.wakeup_read, selectors.EVENT_READ, ("signal", None))

    def add_client(self, client: Client) -> None:
        self.selector.register(client.read_fd, selectors.EVENT_READ, ("request", client))

    def accept(self) -> None:
        connection, _ = self.listener.accept()  # type: ignore[union-attr]
        fd = connection.detach()
        client = Client(fd, fd)
        self.add_client(client)
        client.reply({"started": os.getpid(), "startup": startup_env(dict(os.environ)), "code": self.code})

    def own_fds(self) -> list[int]:
        """The descriptors a forked run must not keep: while a run held a sweep's connection, that sweep
        would not see this server die."""
        fds = [key.fd for key in self.selector.get_map().values()]
        if self.listener is not None:
            fds.append(self.wakeup_write.fileno())
        return [fd for fd in fds if fd > 2]

    def fork(self, request: dict[str, Any], client: Client) -> None:
        ready_read, ready_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the run's process
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                for fd in [ready_read, *self.own_fds()]:
                    os.close(fd)
                code = child(request, ready_write)
            except BaseException:  # noqa: BLE001  (anything: it is recorded by the parent as a failed run)
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(ready_write)
        pidfd = os.pidfd_open(pid)
        self.children[pid] = {"pidfd": pidfd, "ready": ready_read, "training": True, "client": client,
                              "deadline": None}
        self.selector.register(pidfd, selectors.EVENT_READ, ("exited", pid))
        self.selector.register(ready_read, selectors.EVENT_READ, ("ready", pid))
        client.reply({"pid": pid})

    def on_ready(self, pid: int) -> None:
        child = self.children[pid]
        self.selector.unregister(child["ready"])
        if os.read(child["ready"], 1):  # the child wrote its result (EOF without a byte: it died first)
            child["training"] = False
            child["client"].reply({"ready": pid})
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
        child["client"].reply({"exited": pid, "code": os.waitstatus_to_exitcode(status)})
        self.answer_drain(child["client"])

    def answer_drain(self, client: Client) -> None:
        if client.drain_asked and not any(c["client"] is client for c in self.children.values()):
            client.drain_asked = False
            client.reply({"drained": True})

    def on_request(self, client: Client) -> None:
        try:
            data = os.read(client.read_fd, 65536)
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return
        client.pending += data
        while b"\n" in client.pending:
            line, client.pending = client.pending.split(b"\n", 1)
            request = json.loads(line)
            if request["op"] == "run":
                self.fork(request, client)
            elif request["op"] == "drain":
                client.drain_asked = True
                self.answer_drain(client)

    def drop(self, client: Client) -> None:
        """The sweep ``client`` has gone: kill its children still training, give those ending their Comet
        experiment ``FINISHING_GRACE_S``. A server that served only that sweep then stops."""
        self.selector.unregister(client.read_fd)
        if client.read_fd > 2:
            os.close(client.read_fd)
        client.gone = True
        for pid, child in self.children.items():
            if child["client"] is client:
                if child["training"]:
                    os.kill(pid, signal.SIGKILL)
                child["deadline"] = time.monotonic() + FINISHING_GRACE_S
        if self.listener is None:
            self.stopping = True

    def kill_overdue(self) -> None:
        for pid, child in self.children.items():
            if child["deadline"] is not None and time.monotonic() > child["deadline"]:
                os.kill(pid, signal.SIGKILL)

    def serve(self) -> None:
        """Serve until the sweep that started this server has gone (or, listening, until told to stop),
        then until the children of gone sweeps have ended."""
        while not (self.stopping and not self.children):
            for key, _ in self.selector.select(timeout=1.0 if self.stopping or self.children else None):
                kind, what = key.data
                if kind == "accept" and not self.stopping:
                    self.accept()
                elif kind == "signal":
                    self.wakeup_read.recv(512)
                elif kind == "request":
                    self.on_request(what)
                elif kind == "ready" and what in self.children:
                    self.on_ready(what)
                elif kind == "exited" and what in self.children:
                    self.on_exit(what)
            self.kill_overdue()

    def stop(self, *_: Any) -> None:
        """Stop listening (SIGTERM, or Ctrl-C on a listening server): every sweep is dropped as if gone."""
        if self.stopping:
            return
        if self.listener is not None:
            self.selector.unregister(self.listener)
            Path(self.listener.getsockname()).unlink(missing_ok=True)  # no new sweep finds it from now on
            self.listener.close()
        for key in list(self.selector.get_map().values()):
            if key.data[0] == "request":
                self.drop(key.data[1])
        self.stopping = True


def options_parser() -> argparse.ArgumentParser:
    """The command line's options (also read by the docs' generated reference)."""
    options = argparse.ArgumentParser(prog="python -m harness.run.server", description=__doc__.split("\n\n")[0])
    options.add_argument("--listen", metavar="SOCKET", type=Path,
                         help="serve every sweep run with HARNESS_RUN_SERVER=SOCKET whose runs start like this "
                              "server's, until Ctrl-C or SIGTERM (without it: the sweep that started it)")
    options.add_argument("--backend", choices=sorted(BACKENDS), default="tensorflow",
                         help="with --listen: the Keras backend of the runs it serves (default: tensorflow)")
    options.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                         help="with --listen: the device of the runs it serves (default: cpu)")
    options.add_argument("--threads", type=int, default=0, help="with --listen and --backend jax: the runs' "
                         "threads setting (default 0: the backend's own)")
    options.add_argument("--detach", action="store_true",
                         help="with --listen: return once the server listens, leaving it in the background "
                              "(its log: SOCKET.log)")
    options.add_argument("--stop", metavar="SOCKET", type=Path, help="stop the server listening on SOCKET")
    return options


def main(argv: list[str] | None = None) -> None:
    parser = options_parser()
    args = parser.parse_args(argv)
    if args.stop is not None:
        sys.exit(stop_listening(args.stop))
    if args.detach:
        if args.listen is None:
            parser.error("--detach needs --listen SOCKET")
        sys.exit(detach([a for a in (argv if argv is not None else sys.argv[1:]) if a != "--detach"], args.listen))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the runs and the sweep, not for the server
    if args.listen is not None:  # set as a sweep sets them for its runs, before the backend is imported
        os.environ.update(startup_settings(dict(os.environ), backend=args.backend, device=args.device,
                                           quiet=True, threads=args.threads))
    preload()
    gc.freeze()  # keep the preloaded objects' pages shared with the children (copy-on-write)
    if args.listen is None:
        print(json.dumps({"started": os.getpid()}), flush=True)
        Server().serve()
    else:
        listen(args.listen)


def listen(socket_path: Path) -> None:
    """Serve the sweeps that connect to ``socket_path`` (for this user only) until stopped."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    old_umask = os.umask(0o077)  # the socket starts runs as this user: for this user only
    try:
        listener.bind(str(socket_path))
    finally:
        os.umask(old_umask)
    listener.listen()
    server = Server(listener)
    signal.signal(signal.SIGTERM, server.stop)
    signal.signal(signal.SIGINT, server.stop)
    print(json.dumps({"listening": str(socket_path), "pid": os.getpid()}), flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing more for stdout: whoever read that line may be gone
    try:
        server.serve()
    finally:
        socket_path.unlink(missing_ok=True)


def detach(args: list[str], socket_path: Path) -> int:
    """Start ``python -m harness.run.server ARGS`` in a session of its own; return once it listens."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    log_path = socket_path.with_name(socket_path.name + ".log")
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "harness.run.server", *args], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    line = server.stdout.readline()  # type: ignore[union-attr]  (its imports first: ~10 s)
    server.stdout.close()  # type: ignore[union-attr]
    if b'"listening"' not in line:
        server.wait()
        last = (log_path.read_text().strip().splitlines() or [f"exit status {server.returncode}"])[-1]
        print(f"harness: error: the run server did not start: {last} (log: {log_path})", file=sys.stderr)
        return 1
    print(f"run server {server.pid} listening on {socket_path} (log: {log_path}); "
          f"stop it with: python -m harness.run.server --stop {socket_path}")
    return 0


def stop_listening(socket_path: Path) -> int:
    """Stop the server listening on ``socket_path`` (it takes its sweeps' training runs down) and wait until
    it has gone."""
    try:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(60)  # a listening server greets at once
        connection.connect(str(socket_path))
        pid = json.loads(connection.makefile("rb").readline())["started"]
    except (OSError, ValueError, KeyError) as err:
        print(f"harness: error: no run server answers on {socket_path} ({err})", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGTERM)
    connection.close()
    while True:  # it removes its socket as it exits
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if not socket_path.exists():
            break
        time.sleep(0.1)
    print(f"run server {pid} stopped")
    return 0


if __name__ == "__main__":
    main()
