"""Each cell of a sweep composed once in the sweep's process.

The harness composes every cell before the first trains (to check it), and Hydra's launchers compose each
again to run it (``load_sweep_config``), as do the harness's own Slurm and Ray launchers. Composition costs
about 0.1 s of CPU per cell; the second one is the first one, handed over.
"""

from __future__ import annotations

from typing import Any

KEPT = 256
"""The most compositions held for the launcher at once (a large sweep's later cells are composed again)."""


def compose_once(loader: Any) -> None:
    """Make ``loader.load_sweep_config`` (Hydra's config loader, which the callbacks and the launcher share)
    hand the launcher the config composed while checking, for the same master config and overrides, rather than
    composing it again. The check only reads what it composed; each composition is handed over once more, to
    the launcher, which then owns it (it writes the job's number and id into it). Idempotent."""
    if getattr(loader, "composed_once", False):
        return
    compose = loader.load_sweep_config
    kept: dict[tuple[int, tuple[str, ...]], tuple[Any, Any]] = {}

    def load_sweep_config(master_config: Any, sweep_overrides: list[str]) -> Any:
        key = (id(master_config), tuple(sweep_overrides))
        if key in kept:
            return kept.pop(key)[1]
        composed = compose(master_config, sweep_overrides)
        if len(kept) < KEPT:  # the master is kept beside it, so that its id is not reused meanwhile
            kept[key] = (master_config, composed)
        return composed

    loader.load_sweep_config = load_sweep_config
    loader.composed_once = True
