"""Composing a method's training config, with named presets.

``configs/train/<method>.yaml`` holds the defaults, a ``preset`` key and a ``presets`` mapping of named bundles of
overrides (``tiny``, ``outer``, ...). A preset is applied as overrides *before* the user's, so
``preset=tiny model.decoder_channels=64`` takes the tiny preset but keeps the explicit decoder width.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from simreal.config import ConfigError, compose_config
from simreal.training.registry import get_method


def compose_training_config(method: str, overrides: list[str] | None = None) -> DictConfig:
    """``configs/train/<method>.yaml`` + the selected preset + ``overrides`` (Hydra ``key=value`` grammar)."""
    spec = get_method(method)
    overrides = list(overrides or [])
    cfg = compose_config(spec.config_name, overrides)
    if cfg.get("method") != spec.name:
        raise ConfigError(f"{spec.config_name}.yaml must set method: {spec.name}, found {cfg.get('method')!r}")
    presets = cfg.get("presets") or {}
    preset = cfg.get("preset")
    if preset is None:
        return cfg
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r} for {spec.name}; choose one of: {', '.join(presets)}")
    bundle = OmegaConf.to_container(presets[preset], resolve=False)
    return compose_config(spec.config_name, preset_overrides(bundle) + overrides)


def preset_overrides(bundle: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Flatten a nested mapping into Hydra overrides: ``{"model": {"depth": 3}}`` -> ``["model.depth=3"]``.

    Values are written as JSON, which Hydra's override grammar reads back unchanged (quoted strings, null, lists).
    """
    overrides = []
    for key, value in bundle.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            overrides.extend(preset_overrides(value, prefix=f"{dotted}."))
        else:
            overrides.append(f"{dotted}={json.dumps(value)}")
    return overrides
