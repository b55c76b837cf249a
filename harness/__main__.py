"""Entry point: ``python -m harness [overrides]`` (one run) or ``python -m harness -m ...`` (a grid).

Composes the config with Hydra, then hands off to ``harness.sweep.cell.run_cell``. Never imports TensorFlow.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from harness.config.files import CONF_DIR
from harness.config.presets import register_experiments
from harness.config.schema import register_configs
from harness.config.validate import ConfigError, check_arguments, scaffold_settings
from harness.sweep.cell import run_cell
from harness.sweep.compositions import mode_from_command_line
from hydra_plugins.harness_ray import harness_ray
from hydra_plugins.harness_slurm import harness_slurm
from hydra_plugins.harness_sweeper import harness_sweeper

register_configs()
harness_sweeper.register()
harness_slurm.register()
harness_ray.register()
EXPERIMENTS = register_experiments()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    return run_cell(cfg)  # a search sweeper (Optuna) optimises what the task returns


if __name__ == "__main__":
    try:
        check_arguments(sys.argv[1:], EXPERIMENTS)  # one clear line, before Hydra's longer messages
    except ConfigError as err:
        print(f"harness: error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = scaffold_settings(sys.argv[1:], EXPERIMENTS)  # model=vgg16,resnet50 model.image_size=96
    if "-m" in sys.argv[1:] or "--multirun" in sys.argv[1:]:
        mode_from_command_line()
    main()
