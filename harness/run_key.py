"""The run key: the content hash under which the results store keeps a run's result, so that a sweep
reuses a result exactly when the same run would be trained again."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from harness.cells import NON_SEMANTIC_KEYS
from harness.config.schema import KEYED_PRICE_PER_HOUR, LATER_SETTING_DEFAULTS
from harness.hardware import machine_fingerprint
from harness.interpreters import interpreter_path, interpreter_versions
from harness.user_code import code_hashes

TIMING_VERSION = 1
"""The version of the timing rules (``harness.run.timing``; docs/explanation/timing.md): bump it with
any change to what a timing means, and stored results timed by the old rules are no longer reused (from 2
on it is part of every run key; at 1 it leaves the keys of results stored before it existed alone)."""



def run_key(cfg: dict[str, Any]) -> str:
    """A short, stable hash of what determines a run's result: its config minus non-semantic keys, the
    contents of the user's own modules that ``_target_`` names (``user_code.code_hashes``), the versions
    of harness, Keras, TensorFlow and the run's backend as the run's interpreter has them
    (``interpreters.interpreter_versions``; with ``python`` set, that interpreter's path too), the timing
    rules' version (``TIMING_VERSION``), and the machine (CPU model and count, GPUs): a result from other
    code, other software or another machine is not reused as this one's."""
    semantic = {k: v for k, v in cfg.items() if k not in NON_SEMANTIC_KEYS}
    for dotted, default in LATER_SETTING_DEFAULTS.items():
        *group, key = dotted.split(".")
        if not group:
            if key in semantic and semantic[key] == default:
                del semantic[key]
        elif isinstance(sub := semantic.get(group[0]), dict) and key in sub and sub[key] == default:
            semantic[group[0]] = {k: v for k, v in sub.items() if k != key}  # a copy: the caller's stays
    device = semantic.get("device")
    if isinstance(device, dict) and "price_per_hour" in device:  # a price re-costs a run: it is the same run
        semantic["device"] = {**device, "price_per_hour": KEYED_PRICE_PER_HOUR.get(device.get("name"))}
    target = semantic.get("target")
    if isinstance(target, dict) and target["metric"] == "val_accuracy" and target["mode"] in ("auto", "max"):
        semantic["target_accuracy"] = target["value"]  # time to an accuracy: keyed as before `target` existed
        del semantic["target"]
    if (cfg.get("tracking") or {}).get("system_metrics"):  # Comet's sampling threads shared the timed epochs
        semantic["comet_system_metrics"] = True
    code = code_hashes(cfg)
    if code:  # the user's own model or data: editing their module retrains
        semantic["code"] = code
    if semantic.get("python") is not None:  # another environment's run: never the same run as this one's
        semantic["python"] = interpreter_path(semantic["python"])
    semantic["software"] = interpreter_versions(cfg.get("python"), str(cfg.get("backend", "tensorflow")))
    if TIMING_VERSION > 1:  # from the first change of the timing rules on: results timed by older rules retrain
        semantic["timing_version"] = TIMING_VERSION
    semantic["machine"] = machine_fingerprint()
    return content_key(semantic)


def content_key(basis: Any, *, sort_keys: bool = True, compact: bool = True) -> str:
    """A short, stable hash of ``basis`` (JSON; anything else as its ``str``): the key of each content-addressed
    store, the results store (``run_key``), pretrained weights (``harness.run.models.pretrain_key``) and decoded
    folders (``harness.run.data.decoded_folder_key``). ``sort_keys`` and ``compact`` say how the JSON is
    written: as each store first wrote it, so that what it already holds keeps its key."""
    blob = json.dumps(basis, sort_keys=sort_keys, separators=(",", ":") if compact else None, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
