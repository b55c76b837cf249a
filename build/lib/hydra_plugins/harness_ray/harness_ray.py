"""Hydra launcher plugin behind ``hydra/launcher=ray``: each cell a Ray task, on a local Ray started for the
sweep or on an existing Ray cluster, with resources per cell, honest parallelism and one line per cell
(``harness.sweep.ray``).

A thin plugin class, as Hydra's own plugins are; its structured config is registered in the ConfigStore as
``hydra/launcher/harness_ray``, which the preset ``conf/hydra/launcher/ray.yaml`` extends. The ``ray.init``
and ``ray.remote`` settings have the shape hydra-ray-launcher gives them, so its documentation applies; the
harness needs only Ray itself (``pip install -e '.[ray]'``).
"""

# No `from __future__ import annotations`: Hydra's plugin scan executes this module outside sys.modules, where
# dataclasses cannot resolve string annotations.
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class RayConf:
    """What is handed to Ray: ``init``, the arguments of ``ray.init`` (``address``: ``null`` starts a local
    Ray on this machine, ``auto`` joins the cluster this node belongs to, ``ray://HOST:10001`` connects
    through Ray Client; a ``null`` value is not passed); ``remote``, extra options of each cell's task
    (``ray.remote``: ``max_retries``, ``runtime_env``, ``resources``, ...)."""

    init: dict[str, Any] = field(default_factory=lambda: {"address": None, "num_cpus": None, "num_gpus": None})
    remote: dict[str, Any] = field(default_factory=dict)


@dataclass
class HarnessRayLauncherConf:
    """``cpus_per_cell``: the CPUs each cell's task asks for, and the run's threads (``null``: a whole node's
    CPUs, so one run at a time per node: clean timings); ``gpus_per_cell``: the GPUs each ``device=gpu`` cell
    asks for (``device=cpu`` cells ask for none)."""

    _target_: str = "hydra_plugins.harness_ray.harness_ray.HarnessRayLauncher"
    ray: RayConf = field(default_factory=RayConf)
    cpus_per_cell: int | None = None
    gpus_per_cell: int = 1


class HarnessRayLauncher(Launcher):
    """Runs each cell as a Ray task and waits for them; see ``harness.sweep.ray``.

    Args:
        ray: ``init`` (the arguments of ``ray.init``) and ``remote`` (extra options of each task).
        cpus_per_cell: CPUs per cell (``None``: a whole node's).
        gpus_per_cell: GPUs per ``device=gpu`` cell.
    """

    def __init__(self, ray: DictConfig | dict[str, Any], cpus_per_cell: int | None = None,
                 gpus_per_cell: int = 1) -> None:
        super().__init__()
        self.ray, self.cpus_per_cell, self.gpus_per_cell = ray, cpus_per_cell, gpus_per_cell
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from harness.sweep.ray import launch_jobs

        return launch_jobs(self, job_overrides, initial_job_idx)


def register() -> None:
    """Make the launcher and its config known to Hydra in this process (see ``harness_sweeper.register``
    for why the class is registered by hand)."""
    from hydra.core.plugins import Plugins

    ConfigStore.instance().store(group="hydra/launcher", name="harness_ray", node=HarnessRayLauncherConf,
                                 provider="harness")
    Plugins.instance().register(HarnessRayLauncher)
