"""Composing a method's training config, with named presets (see ``simreal.config.compose_with_preset``).

``configs/train/<method>.yaml`` holds the defaults, a ``preset`` key and a ``presets`` mapping of named bundles of
overrides (``tiny``, ``outer``, ...). A preset is applied as overrides *before* the user's, so
``preset=tiny model.decoder_channels=64`` takes the tiny preset but keeps the explicit decoder width.
"""

from __future__ import annotations

from omegaconf import DictConfig

from simreal.config import ConfigError, compose_with_preset
from simreal.training.registry import get_method


def compose_training_config(method: str, overrides: list[str] | None = None) -> DictConfig:
    """``configs/train/<method>.yaml`` + the selected preset + ``overrides`` (Hydra ``key=value`` grammar)."""
    spec = get_method(method)
    cfg = compose_with_preset(spec.config_name, overrides, what=spec.name)
    if cfg.get("method") != spec.name:
        raise ConfigError(f"{spec.config_name}.yaml must set method: {spec.name}, found {cfg.get('method')!r}")
    return cfg
