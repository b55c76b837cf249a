"""Serve the YAML files of the top-level ``experiments/`` folder as Hydra config group ``experiment``.

Hydra names a group after its folder, so ``experiments/seed_grid.yaml`` would be group ``experiments``
and could not live beside ``conf/``. Registering each file in the ConfigStore under ``experiment``
works on any checkout (no symlinks) and from any working directory.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from harness.config.files import EXPERIMENTS_DIR


def register_experiments(folder: Path = EXPERIMENTS_DIR) -> list[str]:
    """Store every ``*.yaml`` in ``folder`` as option ``experiment=<stem>``; return the names."""
    store = ConfigStore.instance()
    names = []
    for path in sorted(folder.glob("*.yaml")):
        store.store(group="experiment", name=path.stem, node=OmegaConf.load(path), package="_global_")
        names.append(path.stem)
    return names
