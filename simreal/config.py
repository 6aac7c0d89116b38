"""Locating the project's Hydra configs and composing them with a user's ``key=value`` overrides."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from simreal.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def config_dir() -> Path:
    """`configs/` of the checkout, or ``$SIMREAL_CONFIG_DIR`` for installs outside one."""
    path = Path(os.environ.get("SIMREAL_CONFIG_DIR", PROJECT_ROOT / "configs")).resolve()
    if not path.is_dir():
        raise ConfigError(f"config directory {path} not found; set SIMREAL_CONFIG_DIR to simreal's configs/ folder")
    return path


def compose_config(name: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose ``configs/<name>.yaml`` (``name`` may contain a group path like ``train/lcsae``).

    Overrides use Hydra's grammar (``steps=20``, ``model.width=32``, ``+new.key=1``); misspelt keys are refused.
    """
    root = config_dir()
    if not (root / f"{name}.yaml").is_file():
        choices = sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))
        raise ConfigError(f"no config named {name!r} in {root}; available: {', '.join(choices)}")
    try:
        with initialize_config_dir(config_dir=str(root), version_base=None):
            cfg = compose(config_name=name, overrides=list(overrides or []))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"config {name!r} with overrides {overrides or []}: {err}") from err
    OmegaConf.set_struct(cfg, True)
    return cfg


def compose_with_preset(name: str, overrides: list[str] | None = None, what: str = "") -> DictConfig:
    """Compose ``configs/<name>.yaml`` with its selected ``preset`` applied before the user's overrides.

    A config with presets has a ``preset`` key and a ``presets`` mapping of named bundles of overrides (``tiny``,
    ``full``, ...), so ``preset=tiny steps=50`` takes the tiny bundle but keeps the explicit step count.
    """
    overrides = list(overrides or [])
    cfg = compose_config(name, overrides)
    preset = cfg.get("preset")
    if preset is None:
        return cfg
    presets = cfg.get("presets") or {}
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r} for {what or name}; choose one of: {', '.join(presets)}")
    bundle = OmegaConf.to_container(presets[preset], resolve=False)
    return compose_config(name, preset_overrides(bundle) + overrides)


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
