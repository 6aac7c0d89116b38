"""Composing a method's training config: ``configs/train/<method>.yaml``, typed by the method's ``config_class``
(``simreal.training.schema``), with its presets in the config group ``configs/train/<method>/preset/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from simreal.config import compose_config
from simreal.errors import ConfigError
from simreal.training.registry import get_method


def compose_training_config(method: str, overrides: list[str] | None = None) -> DictConfig:
    """``configs/train/<method>.yaml`` + the selected preset + ``overrides`` (Hydra ``key=value`` grammar)."""
    spec = get_method(method)
    cfg = compose_config(spec.config_name, overrides, what=spec.name)
    if cfg.method != spec.name:
        raise ConfigError(f"{spec.config_name}.yaml must set method: {spec.name}, found {cfg.method!r}")
    return cfg


def typed_training_config(values: Mapping[str, Any]) -> DictConfig:
    """A resolved config sent as plain values (to a Ray worker) typed again by its method's schema."""
    schema = OmegaConf.structured(get_method(values["method"]).cls.config_class)
    cfg = OmegaConf.merge(schema, values)
    OmegaConf.set_struct(cfg, True)
    return cfg
