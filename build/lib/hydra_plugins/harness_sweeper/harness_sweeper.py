"""Hydra sweeper plugin ``hydra/sweeper=harness`` (the harness's default): Hydra's basic sweeper whose
cells run in the order ``harness.sweep.order`` gives (``order=shuffled``, seeded, by default).

A thin plugin class, as Hydra's own plugins are: the ordering itself is a pure function in
``harness.sweep.order``. It lives in the ``hydra_plugins`` namespace package because Hydra instantiates
sweepers only from there; its structured config is registered in the ConfigStore on import, which
Hydra's plugin discovery does before it composes any config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from harness.sweep.order import ordered_batches


@dataclass
class HarnessSweeperConf:
    """``order``: ``shuffled`` or ``grid`` (the top-level ``order`` setting by default); ``seed``: the
    shuffle's seed; ``max_batch_size`` and ``params`` as for Hydra's basic sweeper."""

    _target_: str = "hydra_plugins.harness_sweeper.harness_sweeper.HarnessSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None
    order: str = "${order}"
    seed: int = 0


ConfigStore.instance().store(group="hydra/sweeper", name="harness", node=HarnessSweeperConf, provider="harness")


class HarnessSweeper(Sweeper):
    """Hydra's basic sweeper, with its cells in ``order`` (see ``harness.sweep.order``).

    It wraps a ``BasicSweeper`` built at ``setup`` rather than subclassing it: Hydra's plugin scan
    re-executes the module that defines ``BasicSweeper``, so a subclass made at import time can end up
    deriving from a stale copy of the class.
    """

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None,
                 order: str = "shuffled", seed: int = 0) -> None:
        super().__init__()
        self.max_batch_size, self.params, self.order, self.seed = max_batch_size, params, order, seed
        self.basic: Any = None
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        self.basic = BasicSweeper(max_batch_size=self.max_batch_size, params=self.params)
        self.basic.split_arguments = lambda overrides, max_batch_size: ordered_batches(
            overrides, max_batch_size, self.order, self.seed)  # the cells' order
        # Hydra composes each batch's jobs here only to fail early; the harness's on_multirun_start has already
        # composed and checked every cell of the sweep, so a second composition per cell would only cost time.
        self.basic.validate_batch_is_legal = lambda batch: None
        self.basic.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.config = config

    def sweep(self, arguments: list[str]) -> Any:
        from harness.sweep.faults import stop_when_disk_full, sweep_places

        with stop_when_disk_full(sweep_places(self.config)):  # Hydra's own writes, too: one line, not a traceback
            return self.basic.sweep(arguments)


def register() -> None:
    """Make the sweeper known to Hydra in this process. Hydra's plugin discovery walks the
    ``hydra_plugins`` folders on ``sys.path``, which finds it in a wheel install but not in an editable
    one (setuptools serves those through an import hook that discovery cannot list)."""
    from hydra.core.plugins import Plugins

    Plugins.instance().register(HarnessSweeper)
