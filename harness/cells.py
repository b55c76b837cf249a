"""A cell of the grid: its factors (what varies across the sweep) and the one way to describe it.

The settings a sweep names in its ``factors`` setting (the article's four by default,
``config.schema.Config.factors``) are always factors. Any other setting whose value differs between the
cells of a sweep is one too, found from the composed run configs (never from folder
names): a config-group choice is labelled by its option name (``model=mobilenet_v2``), any other value
by its dotted key (``optimizer.learning_rate=0.01``). ``seed`` is the repeat index, never a factor; nor
are settings that do not change what a run computes (``config.schema.NON_SEMANTIC_KEYS``).

Every result carries its cell's ``factors`` (a mapping, key to level) and ``factor_baselines`` (the
level each swept setting is compared against), so the report needs no knowledge of the config. The
progress lines, Comet's experiment names and tags, and the report's re-run commands all describe a
cell with ``describe``/``overrides`` below. Never imports TensorFlow.
"""

from __future__ import annotations

import json
import numbers
import os
import shlex
from collections.abc import Iterable
from typing import Any

from harness import user_code

WORKLOAD_FACTORS = ("dataset", "model")
"""Factors that make another workload, with any setting under them (``dataset._target_``, ``model.alpha``): a
verdict across workloads judges within each, and each may have its own target."""

NON_SEMANTIC_KEYS = (
    "sweep_name", "reports_dir", "results_dir", "cache_dir", "tracking", "run_timeout_s", "quiet_tensorflow", "rerun",
    "order", "optimized_metric", "run_process", "plan", "report", "factors",
)
"""Settings that do not change what a run computes: left out of its run key, and never factors."""

NOT_FACTORS = ("seed", *NON_SEMANTIC_KEYS, "experiment", "hparams_search")
"""Never factors: the repeat index, what does not change what a run computes, and preset choices."""

_ABSENT = object()


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"beta_1": 0.9}}`` -> ``{"optimizer.beta_1": 0.9}`` (lists kept as values)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _groups(config: dict[str, Any]) -> list[str]:
    """The config groups of a run config: its sub-configs that carry an option ``name``."""
    return [key for key, value in config.items() if isinstance(value, dict) and "name" in value]


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _text(value: Any) -> str:
    """A comparable text of a level: ``0.1`` and ``np.float64(0.1)`` alike, ``2`` and ``2.0`` too (pandas
    turns integer columns with gaps into floats)."""
    if _is_number(value):
        return repr(float(value))
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else repr(value)


def swept_factors(configs: list[dict[str, Any]]) -> list[str]:
    """The factors of a sweep of ``configs`` (resolved run configs, one per cell): the ones its
    ``factors`` setting names, then every group whose option differs between cells, then every other setting that
    differs, in config order (settings under ``WORKLOAD_FACTORS`` first). A setting counts only where it
    differs between cells that picked the same option in every group and agree on every setting found
    before it: ``optimizer=adam,sgd`` changes the learning rate with the option (that is the optimizer
    factor, not a learning-rate one), ``model=small_cnn,vgg16 transfer=on`` changes where the weights come
    from with the model, and a workload (``conf/workload/``) brings its target and loss with its
    ``dataset._target_``.

    Example: ``optimizer=adam,sgd optimizer.learning_rate=0.1,0.01`` gives ``[optimizer, transfer,
    early_stopping, device, optimizer.learning_rate]`` (``factors`` as it is by default).
    """
    if not configs:
        return []
    groups = [g for g in _groups(configs[0]) if g not in NOT_FACTORS]
    found = list(configs[0].get("factors") or [])
    found += [g for g in groups if g not in found and len({c[g]["name"] for c in configs}) > 1]
    flat = [flatten(c) for c in configs]
    keys = list(dict.fromkeys(key for f in flat for key in f))
    order = {top: rank for rank, top in enumerate(WORKLOAD_FACTORS)}  # what the workload is, before what it sets
    keys.sort(key=lambda key: order.get(key.split(".")[0], len(order)))
    for key in keys:
        top = key.split(".")[0]
        if key in found or top in NOT_FACTORS or (top in groups and key.endswith(".name")):
            continue
        cells_by_option: dict[tuple[str, ...], set[str]] = {}
        for config, values in zip(configs, flat, strict=True):
            options = tuple(config[group]["name"] for group in groups)
            settings = tuple(_text(values.get(other, _ABSENT)) for other in found if other not in groups)
            cells_by_option.setdefault((*options, *settings), set()).add(_text(values.get(key, _ABSENT)))
        if any(len(seen) > 1 for seen in cells_by_option.values()):
            found.append(key)
    return found


def searched_factors(named: Iterable[str], search_space: Iterable[str]) -> list[str]:
    """The factors of a sweep that cannot list its cells ahead (a search such as Optuna's): the ones its
    ``factors`` setting ``named``, then every setting of its search space (``optimizer.lr_scale``)."""
    return list(dict.fromkeys([*named, *(key for key in search_space if key.split(".")[0] not in NOT_FACTORS)]))


def level(config: dict[str, Any], key: str) -> Any:
    """The level of factor ``key`` in ``config``: a group's option name, else the setting's value (a
    JSON scalar; a list or mapping as its JSON text); ``None`` where the config lacks it."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict):
        return node.get("name")
    return json.dumps(node) if isinstance(node, list) else node


def cell_factors(config: dict[str, Any], factors: Iterable[str]) -> dict[str, Any]:
    """``{factor: level}`` of the run ``config`` for each of ``factors``."""
    return {key: level(config, key) for key in factors}


BASELINE_LISTED_FIRST = ("python",)
"""Settings whose levels have no order of their own: interpreters, listed as before, then after."""


def baselines(default: dict[str, Any], configs: list[dict[str, Any]], factors: Iterable[str],
              first_listed: dict[str, Any] | None = None) -> dict[str, Any]:
    """The level each factor is compared against: for
    ``BASELINE_LISTED_FIRST``, its level in ``first_listed`` (the sweep's cell of every first-listed level);
    else its value in the ``default`` config where the sweep has it, else the sweep's first level in
    sorted order (numbers numerically). The report compares the article's factors its own way
    (``report.stats.factor_levels``)."""
    chosen = {}
    for key in factors:
        if key in BASELINE_LISTED_FIRST and first_listed is not None:
            chosen[key] = level(first_listed, key)
            continue
        levels = {_text(level(c, key)): level(c, key) for c in configs}
        preferred = level(default, key)
        chosen[key] = preferred if _text(preferred) in levels else sorted_levels(levels.values())[0]
    return chosen


def sorted_levels(levels: Iterable[Any]) -> list[Any]:
    """Levels in order: numbers numerically (before anything else), the rest as text."""
    unique = list({_text(v): v for v in levels}.values())
    return sorted((v for v in unique if _is_number(v)), key=float) + sorted(
        (v for v in unique if not _is_number(v)), key=str)


def read_back(value: Any) -> Any:
    """A factor level as a table gives it back (runs.csv, a DataFrame): ``None`` for NaN, where the cell lacks
    the setting (a workload without it), and a whole float as the int it was (a column with NaN is float)."""
    if isinstance(value, float) and value != value:
        return None
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _shown(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _worded(value: Any) -> str:
    """A value for a person: floats to 4 significant digits (a search draws ``1.252065381499947``; the
    result keeps the exact value, and ``overrides`` gives it in full)."""
    return f"{value:.4g}" if isinstance(value, float) else _shown(value)


def describe(factors: dict[str, Any], seed: Any) -> str:
    """The cell in words, the same in progress lines, Comet and the report: each factor's level, then the
    seed: ``optimizer=adam transfer=off early_stopping=off device=cpu optimizer.learning_rate=0.01 seed=0``."""
    return " ".join([*(f"{key}={_worded(value)}" for key, value in factors.items()), f"seed={seed}"])


def rerun_command(cfg: dict[str, Any], task_overrides: Iterable[str]) -> str:
    """The shell command that runs the cell ``cfg`` again, alone, as it ran: every override its job had
    (the command line's fixed settings and the sweep's values), from the folder the sweep runs in, with
    this ``PYTHONPATH`` where the user's own code (a ``_target_``, a callback) needs it:
    ``cd DIR && python -m harness optimizer=adam ...``."""
    pythonpath = os.environ.get("PYTHONPATH") if user_code.targets(cfg) or cfg.get("callbacks") else None
    env = f"PYTHONPATH={shlex.quote(pythonpath)} " if pythonpath else ""
    settings = " ".join(shlex.quote(override) for override in task_overrides)
    return f"cd {shlex.quote(os.getcwd())} && {env}python -m harness {settings}".rstrip()


def overrides(factors: dict[str, Any], seed: Any) -> list[str]:
    """Command-line overrides that select this cell: ``optimizer=adam ... optimizer.learning_rate=0.01 seed=0``."""
    return [f"{key}={_shown(value)}" for key, value in factors.items()] + [f"seed={seed}"]
