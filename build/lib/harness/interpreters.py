"""The Python interpreter a run uses (the ``python`` setting): the sweep's own by default, or another
environment's, so that one sweep can time the same cells under two sets of packages, interleaved.

A run in another interpreter is keyed by that interpreter's packages, asked of it once per process."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys

from harness.hardware import software_versions

VERSIONS_SCRIPT = ("import json, sys\nfrom harness.hardware import software_versions\n"
                   "print(json.dumps(software_versions(sys.argv[1])))")
"""What a run's interpreter is asked: the versions ``run_key`` keys a run by, as it sees them."""


class InterpreterError(ValueError):
    """The ``python`` setting names no interpreter that can run the harness."""


def interpreter_path(python: str | None) -> str:
    """The interpreter ``python`` names, as an absolute path: the sweep's own (``sys.executable``) for
    ``None``; a name without a slash is looked up on ``PATH``. Symlinks are kept, not resolved: a virtual
    environment's ``bin/python`` is a link to the base interpreter, and resolving it would leave the
    environment."""
    if python is None:
        return sys.executable
    path = os.path.expanduser(python)
    if os.sep not in path:
        path = shutil.which(path) or path
    return os.path.abspath(path)


def interpreter_versions(python: str | None, backend: str = "tensorflow") -> dict[str, str | None]:
    """``hardware.software_versions(backend)`` as the interpreter ``python`` sees them: this process's own
    where it is the one named, else asked of that interpreter once per process (``_asked_versions``);
    ``InterpreterError`` with one line if it cannot say."""
    path = interpreter_path(python)
    if path == sys.executable:
        return software_versions(backend)
    return _asked_versions(python, path, backend)


@functools.cache
def _asked_versions(python: str | None, path: str, backend: str) -> dict[str, str | None]:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise InterpreterError(f"python={python} is not an executable file; valid: a Python interpreter's path "
                               f"(e.g. /path/to/venv/bin/python), a command on PATH, or null (this one: "
                               f"{sys.executable})")
    try:
        answer = subprocess.run([path, "-c", VERSIONS_SCRIPT, backend], capture_output=True, text=True,
                                timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        raise InterpreterError(f"python={python} could not be started ({err})") from None
    if answer.returncode != 0:
        last = (answer.stderr.strip().splitlines() or [f"exit status {answer.returncode}"])[-1]
        raise InterpreterError(f"python={python} cannot run the harness ({last}); install it there: "
                               f"{path} -m pip install -e {harness_source()}")
    try:
        return json.loads(answer.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise InterpreterError(f"python={python} gave no package versions: {answer.stdout.strip()[-200:]!r}") from None


def harness_source() -> str:
    """The folder this harness is installed from (what ``pip install -e`` would take)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
