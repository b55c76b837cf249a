"""Each cell of a sweep composed once in the sweep's process, and most of them derived rather than composed.

The harness composes every cell before the first trains (to check it), and Hydra's launchers compose each
again to run it (``load_sweep_config``), as do the harness's own Slurm and Ray launchers. A composition costs
about 0.1 s of CPU (Hydra's defaults tree, its files, deep copies): 14 s before the first run of a 144-cell
sweep. So the second composition is the first one, handed over; and a cell that differs from one already
composed only in plain values (``seed=3``, ``optimizer.learning_rate=0.01``; not a config group such as
``optimizer=sgd``, which changes the defaults tree) is that composition, copied, with those values set by
Hydra's own override code: about 5 ms.
"""

from __future__ import annotations

import copy
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import OmegaConf, open_dict

KEPT = 256
"""The most compositions held for the launcher at once (a large sweep's later cells are composed again)."""


def compose_once(loader: Any) -> None:
    """Make ``loader.load_sweep_config`` (Hydra's config loader, which the callbacks and the launcher share)
    hand the launcher the config composed while checking, for the same master config and overrides, rather than
    composing it again; and derive a cell that differs from a composed one only in plain values
    (``derivable``) from it. The check only reads what it composed; each composition is handed over once more,
    to the launcher, which then owns it (it writes the job's number and id into it). Idempotent."""
    if getattr(loader, "composed_once", False):
        return
    compose = loader.load_sweep_config
    parser = OverridesParser.create()
    kept: dict[tuple[int, tuple[str, ...]], tuple[Any, Any]] = {}
    templates: dict[tuple[Any, ...], tuple[Any, Any]] = {}

    def load_sweep_config(master_config: Any, sweep_overrides: list[str]) -> Any:
        key = (id(master_config), tuple(sweep_overrides))
        if key in kept:
            return kept.pop(key)[1]
        parsed = parser.parse_overrides(sweep_overrides)
        shape = (id(master_config), *(o.key_or_group if derivable(o, loader) else o.input_line for o in parsed))
        if shape in templates:
            composed = derived(templates[shape][1], master_config, parsed, loader)
        else:
            composed = compose(master_config, sweep_overrides)
            if len(templates) < KEPT:  # the master beside it, as below
                templates[shape] = (master_config, copy.deepcopy(composed))
        if len(kept) < KEPT:  # the master is kept beside it, so that its id is not reused meanwhile
            kept[key] = (master_config, composed)
        return composed

    loader.load_sweep_config = load_sweep_config
    loader.composed_once = True


def derivable(override: Override, loader: Any) -> bool:
    """Whether ``override`` sets a plain value (``seed=3``), which leaves the defaults tree as it is: not a
    config group (``optimizer=sgd``), not Hydra's own settings, no package, no addition or deletion."""
    return (override.type == OverrideType.CHANGE and override.package is None and not override.is_hydra_override()
            and not loader.repository.group_exists(override.key_or_group))


def derived(template: Any, master_config: Any, parsed: list[Override], loader: Any) -> Any:
    """The composition of ``parsed`` (sweep overrides), made from ``template``, the composition of overrides
    that differ from them only in ``derivable`` values: a copy with those values set as Hydra sets them
    (``_apply_overrides_to_config``), and what Hydra records of the overrides (``hydra.overrides.task``,
    ``hydra.job.override_dirname``) written as it writes them."""
    config = copy.deepcopy(template)
    ConfigLoaderImpl._apply_overrides_to_config([o for o in parsed if derivable(o, loader)], config)
    task = [o for o in parsed if not o.is_hydra_override()]
    dirname = config.hydra.job.config.override_dirname
    with open_dict(config.hydra):
        config.hydra.overrides.task = [o.input_line for o in task]
        config.hydra.job.override_dirname = get_overrides_dirname(
            overrides=task, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep, exclude_keys=dirname.exclude_keys)
    OmegaConf.copy_cache(from_config=master_config, to_config=config)
    return config
