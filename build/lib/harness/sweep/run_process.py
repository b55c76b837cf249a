"""How the sweep starts a run's process and waits for it: forked from a run server (``run_process=fork``,
the default) or started fresh (``run_process=fresh``: ``python -m harness.run.train RUN_DIR``).

Both give each run its own process, its device fixed before the backend starts, and a ``result.json``; a
forked one skips the ~5 s of imports (``harness.run.server`` says why that is safe). One server serves
every run with the same start-up settings (``startup_env``: device, backend, log level) in this
process, and stops when this process ends (if this process is killed, the server sees its requests
end and stops too, killing any run still training). Where ``HARNESS_RUN_SERVER`` names the socket of a
warm server (``python -m harness.run.server --listen SOCKET``) that agrees with a run's start-up settings
and code, that server forks the run instead; it outlives the sweep.

The handle a launch returns says when the run's result is there (``wait``) and can interrupt or kill it.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.results import LOG_FILE
from harness.startup import SHARED_SERVER_VARIABLE, code_fingerprint, startup_env


def fork_available() -> bool:
    """Forking needs ``os.fork`` and ``os.pidfd_open`` (Linux); elsewhere runs start fresh."""
    return hasattr(os, "fork") and hasattr(os, "pidfd_open")


class RunServerError(RuntimeError):
    """The run server died or could not start."""


class FreshRun:
    """A run in a fresh ``python -m harness.run.train RUN_DIR`` process."""

    failure: str | None = None  # its exit status says how it ended

    def __init__(self, run_dir: Path, env: dict[str, str], python: str = sys.executable) -> None:
        self.log = open(run_dir / LOG_FILE, "w")  # noqa: SIM115  (closed in wait)
        self.process = subprocess.Popen([python, "-m", "harness.run.train", str(run_dir)],
                                        stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.process.pid

    def wait(self, timeout: float | None = None) -> int:
        """Wait until the run's result is there; its exit status (0 for a result written by a live run)."""
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.returncode is not None:
                self.log.close()

    def signal(self, signum: int) -> None:
        try:
            self.process.send_signal(signum)
        except OSError:
            pass


class ForkedRun:
    """A run forked by a ``RunServer``; ``wait`` returns as soon as its result is written."""

    def __init__(self, server: RunServer, run_dir: Path, env: dict[str, str]) -> None:
        self.server = server
        self.pid = server.start(run_dir, env)
        self.failure: str | None = None  # why the run ended without its server telling how

    def wait(self, timeout: float | None = None) -> int:
        """0 once the run wrote its result (it may still be ending its Comet experiment), else its exit
        status when it died first (negative: the signal); ``subprocess.TimeoutExpired`` after ``timeout``.
        If the server itself dies, the run is killed too (``failure`` says why; the next run starts a
        new server)."""
        try:
            return self.server.wait_for(self.pid, timeout)
        except RunServerError as err:
            self.signal(signal.SIGKILL)
            self.failure = f"{err}; the run was stopped with it"
            return -signal.SIGKILL

    def signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except OSError:
            pass


class RunServer:
    """The client side of one ``python -m harness.run.server`` process in the interpreter ``python``,
    started by this process for its runs; ``SharedRunServer`` speaks to one that listens on a socket."""

    def __init__(self, env: dict[str, str], python: str = sys.executable) -> None:
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115  (the server's own stderr: read if it dies)
        self.process = subprocess.Popen([python, "-m", "harness.run.server"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.errors, env=env)
        self._listen(started=False)  # read lazily: a server started ahead imports while the sweep gets ready

    def _listen(self, started: bool) -> None:
        """The state of reading the server's messages, from none read."""
        self.buffer = b""
        self.events: dict[int, dict[str, Any]] = {}  # pid -> what the server said of it
        self.started = started
        self.startup_wait_s = 0.0  # how long a run waited for the server's imports (not yet reported)

    def alive(self) -> bool:
        return self.process.poll() is None

    def fileno(self) -> int:
        return self.process.stdout.fileno()  # type: ignore[union-attr]

    def _write(self, data: bytes) -> None:
        self.process.stdin.write(data)  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]

    def _ensure_started(self) -> None:
        if not self.started:
            waiting = time.monotonic()
            self._read_until(lambda message: "started" in message, None)
            self.started = True
            self.startup_wait_s = time.monotonic() - waiting

    def _send(self, request: dict[str, Any]) -> None:
        try:
            self._write((json.dumps(request) + "\n").encode())
        except (BrokenPipeError, OSError):
            raise self._died() from None

    def _died(self) -> RunServerError:
        self.process.wait()
        self.errors.seek(0)
        errors = self.errors.read().decode(errors="replace").strip().splitlines()
        return RunServerError(f"the run server exited ({self.process.returncode})"
                              + (f": {errors[-1]}" if errors else ""))

    def _read_until(self, done: Any, timeout: float | None) -> dict[str, Any]:
        """Read the server's messages until ``done(message)``; record every message by pid on the way."""
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" in self.buffer:
                    line, self.buffer = self.buffer.split(b"\n", 1)
                    try:
                        message = json.loads(line)
                    except ValueError:
                        continue  # not ours: something the server's imports printed
                    for key in ("pid", "ready", "exited"):
                        if key in message:
                            self.events.setdefault(message[key], {}).update(message)
                    if done(message):
                        return message
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired("run", timeout or 0)
                if selector.select(left):
                    try:
                        data = os.read(fd, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        raise self._died()
                    self.buffer += data

    def start(self, run_dir: Path, env: dict[str, str]) -> int:
        self._ensure_started()
        self._send({"op": "run", "run_dir": str(run_dir), "env": env, "cwd": os.getcwd()})
        return self._read_until(lambda message: "pid" in message and "exited" not in message, None)["pid"]

    def wait_for(self, pid: int, timeout: float | None) -> int:
        def known(_: dict[str, Any]) -> bool:
            event = self.events.get(pid, {})
            return "ready" in event or "exited" in event

        if not known({}):
            self._read_until(known, timeout)
        event = self.events[pid]
        return 0 if "ready" in event else int(event["code"])

    def drain(self) -> None:
        """Wait until every run this server forked for this process has ended (their Comet archives are
        written)."""
        if self.alive() and self.started:
            self._send({"op": "drain"})
            self._read_until(lambda message: "drained" in message, None)

    def close(self) -> None:
        """Stop the server: it lets runs ending their Comet experiment finish, then exits. A server that
        never ran anything (started ahead for a sweep whose cells were all reused) is just killed."""
        if self.process.poll() is None and not self.events:
            self.process.kill()
        if self.process.poll() is None:
            try:
                self.process.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            self.process.wait()
        self.errors.close()


class SharedRunServer(RunServer):
    """A run server listening on ``socket_path`` (``python -m harness.run.server --listen``), already warm:
    connected, it greets with its start-up settings and the fingerprint of its code."""

    def __init__(self, socket_path: str) -> None:  # no process of ours: the server outlives this one
        self.path = socket_path
        self.connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.connection.connect(socket_path)
        self.gone = False
        self._listen(started=True)  # it imported before it listened
        self.greeting = self._read_until(lambda message: "started" in message, SHARED_GREETING_TIMEOUT_S)

    def alive(self) -> bool:
        return not self.gone

    def fileno(self) -> int:
        return self.connection.fileno()

    def _write(self, data: bytes) -> None:
        self.connection.sendall(data)

    def _died(self) -> RunServerError:
        self.gone = True
        return RunServerError(f"the run server at {self.path} closed the connection")

    def close(self) -> None:
        """Leave the server: it kills this process's runs still training and serves on."""
        self.connection.close()
        self.gone = True


SHARED_GREETING_TIMEOUT_S = 60.0  # a listening server greets at once; one that does not is wedged


def disagreement(greeting: dict[str, Any], env: dict[str, str]) -> str | None:
    """Why runs with ``env`` cannot be forked by the server that sent ``greeting`` (``None``: they can):
    other start-up settings, or other code than it imported."""
    theirs = dict(tuple(pair) for pair in greeting.get("startup", []))
    differ = [key for key, value in startup_env(env) if theirs.get(key) != value]
    if differ:
        return ("it serves runs started with " + ", ".join(f"{k}={theirs.get(k)}" for k in differ)
                + "; these runs need " + ", ".join(f"{k}={env.get(k)}" for k in differ))
    if greeting.get("code") != code_fingerprint():
        return "it runs other code than this sweep (the harness or a package changed since it started): restart it"
    return None


def shared_server(env: dict[str, str]) -> SharedRunServer | None:
    """The run server named by ``HARNESS_RUN_SERVER``, if it answers and can fork runs with ``env``; else
    ``None`` (the sweep then starts its own, saying why)."""
    path = env.get(SHARED_SERVER_VARIABLE)
    if not path:
        return None
    try:
        server = SharedRunServer(path)
    except (OSError, RunServerError, subprocess.TimeoutExpired) as err:
        why = f"no run server answers there ({err})"
    else:
        why = disagreement(server.greeting, env)
        if why is None:
            return server
        server.close()
    print(f"harness: note: {SHARED_SERVER_VARIABLE}={path}: {why}; this sweep starts its own", file=sys.stderr)
    return None


_servers: dict[tuple[str, tuple[tuple[str, str | None], ...]], RunServer] = {}


def server_for(env: dict[str, str], python: str = sys.executable) -> RunServer:
    """This process's run server for runs in the interpreter ``python`` with ``env``'s start-up settings
    (started on first use). A warm shared server serves only runs in this process's own interpreter."""
    key = (python, startup_env(env))
    server = _servers.get(key)
    if server is None or not server.alive():
        server_env = {k: v for k, v in env.items() if k != "COMET_API_KEY"}  # a run gets the key, not the server
        shared = shared_server(env) if python == sys.executable else None
        server = _servers[key] = shared or RunServer(server_env, python)
    return server


def effective_mode(mode: str) -> str:
    """``mode``, or ``fresh`` where forking cannot pay or work: not on Linux, or inside a submitit job (Slurm
    or submitit's local executor), which is itself a new process per cell, so a server there would serve
    one run only and add its own start to the fresh process's."""
    if mode == "fork" and (not fork_available() or os.environ.get("SUBMITIT_EXECUTOR")):
        return "fresh"
    return mode


def prestart(mode: str, env: dict[str, str], python: str = sys.executable) -> None:
    """Start the run server for runs in ``python`` with ``env`` now (``mode`` permitting), so that its
    imports overlap with the sweep's own preparations; the first run then finds it ready."""
    if effective_mode(mode) == "fork":
        server_for(env, python)


def start_run(mode: str, run_dir: Path, env: dict[str, str], python: str = sys.executable) -> FreshRun | ForkedRun:
    """Start the run in ``run_dir`` (its ``run_spec.json`` written) in a process of ``mode`` in the
    interpreter ``python``."""
    if effective_mode(mode) == "fork":
        try:
            return ForkedRun(server_for(env, python), run_dir, env)
        except RunServerError as err:
            print(f"harness: warning: {err}; this run starts a fresh process instead", file=sys.stderr)
    return FreshRun(run_dir, env, python)


def finish_runs() -> None:
    """Wait until every forked run has ended, its Comet experiment included (before the sweep's summary)."""
    for server in list(_servers.values()):
        try:
            server.drain()
        except RunServerError:
            pass


def take_startup_wait() -> float:
    """The seconds runs have waited for a run server to start since this was last asked: the start-up
    that a sweep's first run would otherwise seem to take (the console shows it apart)."""
    waited = sum(server.startup_wait_s for server in _servers.values())
    for server in _servers.values():
        server.startup_wait_s = 0.0
    return waited


@atexit.register
def stop_servers() -> None:
    for server in _servers.values():
        server.close()
    _servers.clear()


def stop_run(run: FreshRun | ForkedRun, grace_s: float) -> None:
    """Let an interrupted run record itself (SIGINT), then make sure it is gone."""
    run.signal(signal.SIGINT)
    try:
        run.wait(timeout=grace_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        run.signal(signal.SIGKILL)
        run.wait()
