"""Hydra launcher plugin behind ``hydra/launcher=slurm``: hydra-submitit-launcher's Slurm launcher with
resources per cell, failed jobs recorded instead of raised, and quiet polling (``harness.sweep.slurm``).

A thin plugin class, as Hydra's own plugins are: it keeps submitit's ``SlurmLauncher`` (whose settings it
takes unchanged, ``conf/hydra/launcher/slurm.yaml``) as the callable each Slurm job runs, and hands the
submitting and the waiting to ``harness.sweep.slurm.launch_cells``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class HarnessSlurmLauncher(Launcher):
    """Submits each cell as a Slurm job (through submitit) and waits for them; see ``harness.sweep.slurm``.

    Args:
        **params: hydra-submitit-launcher's Slurm settings (``partition``, ``cpus_per_task``, ``mem_gb``,
            ``gpus_per_node`` (for ``device=gpu`` cells only), ``timeout_min``, ``array_parallelism``, ...).
    """

    def __init__(self, **params: Any) -> None:
        super().__init__()
        self.params = params
        self.slurm: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

        self.slurm = SlurmLauncher(**self.params)
        self.slurm.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        logging.getLogger("submitit").setLevel(logging.ERROR)  # its per-poll warnings; our lines say what happens

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from harness.sweep.slurm import launch_cells

        return launch_cells(self.slurm, job_overrides, initial_job_idx)


def register() -> None:
    """Make the launcher known to Hydra in this process (see ``harness_sweeper.register`` for why)."""
    from hydra.core.plugins import Plugins

    Plugins.instance().register(HarnessSlurmLauncher)
