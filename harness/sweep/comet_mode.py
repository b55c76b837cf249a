"""Decide, once per sweep and without importing comet_ml, how runs talk to Comet.

``auto`` is online when an API key is configured (``COMET_API_KEY`` or Comet's config file), else
offline. Online needs Comet's server: it is probed once per sweep with a short TCP connect, and when
it cannot be reached the sweep writes offline archives instead (one warning), so that a sweep of N
runs pays the wait at most once and loses nothing. The key itself is never read into the config.
"""

from __future__ import annotations

import configparser
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.config.schema import TrackingConfig

STATUS_FILE = "comet_connection.json"
DEFAULT_SERVER = "https://www.comet.com/clientlib/"


def api_key_configured() -> bool:
    """Whether Comet will find an API key: in the environment or in its config file."""
    if os.environ.get("COMET_API_KEY"):
        return True
    for path in (os.environ.get("COMET_CONFIG"), Path.home() / ".comet.config", Path.cwd() / ".comet.config"):
        if path and Path(path).is_file():
            parser = configparser.ConfigParser()
            try:
                parser.read(path)
            except configparser.Error:
                continue
            if parser.get("comet", "api_key", fallback=""):
                return True
    return False


def server_reachable(timeout_s: float) -> tuple[bool, str]:
    """Whether a TCP connection to Comet's server opens within ``timeout_s``; and why not."""
    url = urlparse(os.environ.get("COMET_URL_OVERRIDE") or DEFAULT_SERVER)
    host, port = url.hostname or "www.comet.com", url.port or (443 if url.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True, ""
    except OSError as err:
        return False, f"cannot reach Comet at {host}:{port} ({err.__class__.__name__}: {err})"


def resolve(cfg: TrackingConfig, sweep_dir: Path) -> dict[str, Any]:
    """The tracking settings a run gets: ``mode`` (online/offline/disabled), ``offline_dir``,
    ``project_name``, ``workspace``, ``fallback`` (why online became offline, or ``None``) and
    ``system_metrics`` (Comet's own sampling of CPU, GPU, host, network and disk)."""
    offline_dir = Path(cfg.offline_dir)
    if not offline_dir.is_absolute():
        offline_dir = Path(sweep_dir).resolve() / offline_dir
    mode, fallback = cfg.mode, None
    if mode == "auto":
        mode = "online" if api_key_configured() else "offline"
    elif mode == "online" and not api_key_configured():
        mode, fallback = "offline", "tracking=online but no COMET_API_KEY is configured"
    if mode == "online":
        ok, fallback = _connection_status(Path(sweep_dir), cfg.connect_timeout_s)
        if not ok:
            mode = "offline"
    return {"mode": mode, "offline_dir": str(offline_dir), "project_name": cfg.project_name,
            "workspace": cfg.workspace, "fallback": fallback, "system_metrics": cfg.system_metrics}


def _connection_status(sweep_dir: Path, timeout_s: float) -> tuple[bool, str | None]:
    """Probe Comet once per sweep; later cells read the answer from the sweep folder."""
    status_path = sweep_dir / STATUS_FILE
    try:
        status = json.loads(status_path.read_text())
        return status["reachable"], status["reason"] or None
    except (OSError, ValueError, KeyError):
        pass
    reachable, reason = server_reachable(timeout_s)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    status_path.write_text(json.dumps({"reachable": reachable, "reason": reason}))
    if not reachable:
        print(f"\nharness: warning: {reason}; writing Comet offline archives instead "
              f"(upload them later with `comet upload`)", file=sys.stderr, flush=True)
    return reachable, reason or None
