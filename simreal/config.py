"""The project's Hydra configs: locating them, their typed schemas, and composing them with ``key=value`` overrides.

Every config ``configs/<name>.yaml`` is typed by a dataclass registered here as a Hydra structured config
(``register_schema(name, cls)``; the YAML lists ``/schema/<name>@_here_`` first in its defaults). Hydra validates
and converts every value once, where it enters (the YAML, a preset, the command line), so the code reads typed
attributes and never casts. A config with presets has a config group ``configs/<name>/preset/`` whose options are
applied after the YAML's own values and before the user's overrides; ``preset=tiny`` selects one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from simreal.errors import ConfigError

# What simreal ships beside its code: the top-level configs/ and datasets.yaml, reached through the links
# simreal/_configs and simreal/_datasets.yaml in a checkout and carried as copies in the wheel.
PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR_ENV = "SIMREAL_CONFIG_DIR"
SCHEMA_GROUP = "schema"
PRESET_KEY = "preset"

T = TypeVar("T")


def config_dir() -> Path:
    """The configs: ``$SIMREAL_CONFIG_DIR`` (``simreal --config-dir``, a copy of configs/ with your changes), else
    the ones simreal ships (``configs/`` of the checkout, or its copy in an installed wheel)."""
    path = Path(os.environ.get(CONFIG_DIR_ENV, PACKAGE_DIR / "_configs")).resolve()
    if not path.is_dir():
        raise ConfigError(f"config directory {path} not found; point {CONFIG_DIR_ENV} (--config-dir) at a configs/")
    return path


def register_schema(name: str, schema: type) -> None:
    """Type ``configs/<name>.yaml`` with the dataclass ``schema`` (stored as Hydra's ``schema/<name>``)."""
    group, _, option = f"{SCHEMA_GROUP}/{name}".rpartition("/")
    ConfigStore.instance().store(group=group, name=option, node=schema)


def compose_config(name: str, overrides: list[str] | None = None, what: str = "") -> DictConfig:
    """Compose ``configs/<name>.yaml`` (``name`` may contain a group path like ``train/lcsae``).

    Overrides use Hydra's grammar (``steps=20``, ``model.width=32``); ``preset=NAME`` picks an option of the config's
    preset group. Misspelt keys and values of the wrong type are refused with a ``ConfigError``.
    """
    root = config_dir()
    if not (root / f"{name}.yaml").is_file():
        choices = sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.glob("**/*.yaml"))
        raise ConfigError(f"no config named {name!r} in {root}; available: {', '.join(choices)}")
    hydra_overrides = [_preset_override(root, name, item, what or name) for item in overrides or []]
    try:
        with initialize_config_dir(config_dir=str(root), version_base=None):
            cfg = compose(config_name=name, overrides=hydra_overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(
            f"config {what or name!r} with overrides {list(overrides or [])}: {_first_line(err)}"
        ) from err
    OmegaConf.set_struct(cfg, True)
    return cfg


def presets_of(name: str) -> list[str]:
    """The options of ``configs/<name>/preset/`` (empty when the config has no presets)."""
    group = config_dir() / name / PRESET_KEY
    return sorted(path.stem for path in group.glob("*.yaml"))


def to_object(cfg: DictConfig | Any, what: str = "config") -> Any:
    """The dataclass instance behind a structured ``cfg`` (or a sub-config), with interpolations resolved."""
    try:
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{what}: {_first_line(err)}") from err


def as_overrides(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Flatten a nested mapping into Hydra overrides: ``{"model": {"depth": 3}}`` -> ``["model.depth=3"]``.

    Values are written as JSON, which Hydra's override grammar reads back unchanged (quoted strings, null, lists).
    """
    overrides = []
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            overrides.extend(as_overrides(value, prefix=f"{dotted}."))
        else:
            overrides.append(f"{dotted}={json.dumps(value)}")
    return overrides


def _preset_override(root: Path, name: str, override: str, what: str) -> str:
    """``preset=tiny`` -> ``<name>/preset@_global_=tiny`` (Hydra's key for the config's preset group)."""
    key, sep, value = override.partition("=")
    value = value.strip("'\"")
    if key != PRESET_KEY or not sep or not (root / name / PRESET_KEY).is_dir():
        return override
    choices = presets_of(name)
    if value not in choices:
        raise ConfigError(f"unknown preset {value!r} for {what}; choose one of: {', '.join(choices)}")
    return f"{name}/{PRESET_KEY}@_global_={value}"


def _first_line(err: BaseException) -> str:
    """The first line of the error and of its cause (Hydra's own message names the override, the cause says why)."""
    lines = []
    while err is not None and len(lines) < 2:
        text = str(err).strip().splitlines() or [type(err).__name__]
        # "In 'bench/x': ConfigKeyError raised while composing config:" says which key on the next line
        lines.append(" ".join(text[:2]) if text[0].endswith(":") and len(text) > 1 else text[0])
        err = err.__cause__
    return ": ".join(lines)
