"""The run config as typed objects: the schema's dataclasses, built once from the resolved config.

Hydra composes and resolves the config; everything after that (the cell's checks, the run process,
the result's identity) reads ``RunConfig`` attributes, not string keys. The resolved mapping it was built
from stays with it (``RunConfig.resolved``): the run key hashes it and the result stores it as composed.
No Hydra here: the run process builds one too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import MISSING

from harness.config.schema import (
    SCHEMAS,
    Config,
    CustomDatasetConfig,
    CustomModelConfig,
    DatasetConfig,
    DeviceConfig,
    EarlyStoppingConfig,
    ModelConfig,
    OptimizerConfig,
    TargetConfig,
    TrackingConfig,
    TransferConfig,
)
from harness.user_code import HARNESS_SETTINGS, TARGET


@dataclass
class UserModelConfig(CustomModelConfig):
    """``model=custom``: the harness's settings, and the user function's own keywords apart."""

    keywords: dict[str, Any] = field(default_factory=dict)
    """Every other ``model.*`` setting (``+model.units=64``): keywords of the user's function."""


@dataclass
class UserDatasetConfig(CustomDatasetConfig):
    """``dataset=custom``: the harness's settings, and the user function's own keywords apart."""

    keywords: dict[str, Any] = field(default_factory=dict)
    """Every other ``dataset.*`` setting: keywords of the user's function."""


@dataclass
class RunConfig(Config):
    """One cell's resolved config, typed: each group its option's schema dataclass."""

    optimizer: OptimizerConfig = MISSING
    transfer: TransferConfig = MISSING
    early_stopping: EarlyStoppingConfig = MISSING
    device: DeviceConfig = MISSING
    dataset: DatasetConfig | UserDatasetConfig = MISSING
    model: ModelConfig | UserModelConfig = MISSING
    tracking: TrackingConfig = MISSING
    resolved: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The resolved config this was built from, as Hydra composed it (the run key and the stored result's
    ``config``)."""


_USER_OPTIONS = {"model": UserModelConfig, "dataset": UserDatasetConfig}


def run_config(resolved: Mapping[str, Any], sweep_name: str | None = None) -> RunConfig:
    """The typed run config of ``resolved`` (``OmegaConf.to_container(cfg, resolve=True)``); ``sweep_name``:
    the sweep's one name, fixed when it started, in place of the one each job resolved for itself.

    Raises:
        ValueError: a group whose settings match none of its schema's options (a config not composed by
            the harness's schema).
    """
    if sweep_name:
        resolved = {**resolved, "sweep_name": sweep_name}
    groups = {group: _option(group, resolved[group]) for group in SCHEMAS}
    top = {f.name: resolved[f.name] for f in fields(Config) if f.name not in SCHEMAS and f.name in resolved}
    top["target"] = TargetConfig(**resolved["target"])
    return RunConfig(**groups, **top, resolved=dict(resolved))


def _option(group: str, settings: Mapping[str, Any]) -> Any:
    """The schema dataclass of ``group``'s option holding ``settings``: the option whose fields are
    exactly its keys, or the user's option (``_target_``) with the other keys as its keywords."""
    if group in _USER_OPTIONS and TARGET in settings:
        option, own = _USER_OPTIONS[group], HARNESS_SETTINGS[group]
        return option(**{k: v for k, v in settings.items() if k in own},
                      keywords={k: v for k, v in settings.items() if k not in own})
    for option in SCHEMAS[group].values():
        if {f.name for f in fields(option)} == set(settings):
            return option(**settings)
    raise ValueError(f"{group} settings {sorted(settings)} match none of its options "
                     f"({', '.join(SCHEMAS[group])}); compose the config with the harness's schema")


def settings_of(option: Any, leaving_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """An option's settings as keywords (Keras' ``EarlyStopping(**...)``), ``leaving_out`` some."""
    return {f.name: getattr(option, f.name) for f in fields(option) if f.name not in leaving_out}
