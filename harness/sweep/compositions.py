"""Each cell of a sweep composed once in the sweep's process, and most of them derived rather than composed.

The harness composes every cell before the first trains (to check it), and Hydra's launchers compose each
again to run it (``load_sweep_config``), as do the harness's own Slurm and Ray launchers. A composition costs
about 0.1 s of CPU (Hydra's defaults tree, its files, deep copies): 14 s before the first run of a 144-cell
sweep. So the second composition is the first one, handed over; and a cell is derived from compositions
already made where it can be: about 5 ms.

- A plain value (``seed=3``, ``optimizer.learning_rate=0.01``) is set on a copy by Hydra's own override code.
- A config group whose options each fill only their own node (``optimizer=sgd``: a schema and the file's
  values, nothing elsewhere, no other group) takes that node from a composition that chose the same option.
  A preset, a workload or ``hparams_search`` reaches beyond its node, so a cell that changes one is composed.
"""

from __future__ import annotations

import copy
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra._internal.hydra import Hydra
from hydra.core.default_element import ConfigDefault
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import OmegaConf, open_dict

KEPT = 256
"""The most compositions held for the launcher at once (a large sweep's later cells are composed again)."""


def mode_from_command_line() -> None:
    """For a command with ``-m``: let Hydra take the mode from the command line rather than compose the whole
    config first to read ``hydra.mode`` from it (``Hydra.get_mode``). With ``-m`` Hydra runs a multirun
    whatever the config says, so that composition decides nothing, and it was a fifth of a ``plan=true``'s
    CPU. Hydra then adds ``hydra.mode=MULTIRUN`` to the overrides itself, as for a config that sets no mode."""
    Hydra.get_mode = _no_mode_from_config  # type: ignore[method-assign]


def _no_mode_from_config(self: Hydra, config_name: str | None, overrides: list[str]) -> None:
    return None


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
    choices: dict[tuple[Any, ...], Any] = {}  # (shape, group, option) -> a composition that chose it
    own_node = _OwnNodeOptions(loader)

    def load_sweep_config(master_config: Any, sweep_overrides: list[str]) -> Any:
        key = (id(master_config), tuple(sweep_overrides))
        if key in kept:
            return kept.pop(key)[1]
        parsed = parser.parse_overrides(sweep_overrides)
        swapped = [o for o in parsed if own_node(o)]
        shape = (id(master_config), *(o.key_or_group if derivable(o, loader) or o in swapped else o.input_line
                                      for o in parsed))
        donors = [choices.get((shape, o.key_or_group, o.value())) for o in swapped]
        if shape in templates and all(donor is not None for donor in donors):
            composed = derived(templates[shape][1], master_config, parsed, loader,
                               {o.key_or_group: (o.value(), donor) for o, donor in zip(swapped, donors, strict=True)})
        else:
            composed = compose(master_config, sweep_overrides)
            if len(templates) < KEPT:  # the master beside it, as below
                snapshot = copy.deepcopy(composed)
                templates.setdefault(shape, (master_config, snapshot))
                for o in swapped:
                    choices.setdefault((shape, o.key_or_group, o.value()), snapshot)
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


class _OwnNodeOptions:
    """Whether an override chooses a config group's option that fills only its own node (``optimizer=sgd``):
    no package header, and a defaults list of ``_self_`` and configs merged into the same node, themselves
    such configs. Anything else (``@package _global_``, ``override /dataset: custom``) changes the defaults
    tree beyond the node, and only Hydra composes that. Each option is read once."""

    def __init__(self, loader: Any) -> None:
        self.repository = loader.repository
        self.known: dict[str, bool] = {}

    def __call__(self, override: Override) -> bool:
        if override.type != OverrideType.CHANGE or override.package is not None or override.is_hydra_override():
            return False
        group, option = override.key_or_group, override.value()
        return (isinstance(option, str) and "/" not in group and self.repository.group_exists(group)
                and self._fills_own_node(f"{group}/{option}"))

    def _fills_own_node(self, path: str) -> bool:
        if path not in self.known:
            found = self.repository.load_config(path)
            self.known[path] = found is not None and found.header.get("package") is None and all(
                isinstance(entry, ConfigDefault) and (entry.path == "_self_" or (
                    entry.package == "" and self._fills_own_node(entry.path.lstrip("/"))))
                for entry in found.defaults_list or [])
        return self.known[path]


def derived(template: Any, master_config: Any, parsed: list[Override], loader: Any,
            swapped: dict[str, tuple[str, Any]] | None = None) -> Any:
    """The composition of ``parsed`` (sweep overrides), made from ``template``, the composition of overrides
    that differ from them only in ``derivable`` values and in the options of ``swapped`` groups (group ->
    (option, a composition that chose it)): a copy with each such group's node taken from its donor and
    recorded as chosen, the values set as Hydra sets them (``_apply_overrides_to_config``), and what Hydra
    records of the overrides (``hydra.overrides.task``, ``hydra.job.override_dirname``) written as it writes
    them."""
    config = copy.deepcopy(template)
    for group, (option, donor) in (swapped or {}).items():
        with open_dict(config), open_dict(config.hydra):
            config[group] = copy.deepcopy(donor[group])
            config.hydra.runtime.choices[group] = option
    ConfigLoaderImpl._apply_overrides_to_config([o for o in parsed if derivable(o, loader)], config)
    task = [o for o in parsed if not o.is_hydra_override()]
    dirname = config.hydra.job.config.override_dirname
    with open_dict(config.hydra):
        config.hydra.overrides.task = [o.input_line for o in task]
        config.hydra.job.override_dirname = get_overrides_dirname(
            overrides=task, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep, exclude_keys=dirname.exclude_keys)
    OmegaConf.copy_cache(from_config=master_config, to_config=config)
    return config
