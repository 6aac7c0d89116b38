"""The dataset registry: ``datasets.yaml`` names the datasets a user has, where they live and how to read them.

Roots may use ``${VAR}`` or ``${VAR:-default}``; relative roots are taken from the registry file's folder.
``$SIMREAL_DATASETS`` points at another registry file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from simreal.config import PACKAGE_DIR
from simreal.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class RegistryError(ConfigError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    format: str
    root: Path
    scheme: str
    splits: tuple[str, ...]
    size: str = "512x256"
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def registry_path() -> Path:
    """``$SIMREAL_DATASETS``, else a ``datasets.yaml`` in the working directory, else the one simreal ships (the
    checkout's, or its copy in an installed wheel); relative roots are read from the file's real folder."""
    if "SIMREAL_DATASETS" in os.environ:
        return Path(os.environ["SIMREAL_DATASETS"])
    here = Path.cwd() / "datasets.yaml"
    return (here if here.is_file() else PACKAGE_DIR / "_datasets.yaml").resolve()


def expand_vars(text: str) -> str:
    """``${VAR}`` and ``${VAR:-default}`` from the environment; an unset variable without a default is an error."""

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise RegistryError(f"environment variable {name} is not set (used in {text!r})")
        return default

    return _VAR.sub(substitute, text)


def load_registry(path: Path | None = None) -> dict[str, DatasetEntry]:
    path = path or registry_path()
    if not path.is_file():
        raise RegistryError(f"dataset registry {path} not found (set SIMREAL_DATASETS to your datasets.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    entries = {}
    for name, item in (data.get("datasets") or {}).items():
        try:
            root = Path(expand_vars(str(item["root"]))).expanduser()
            entries[name] = DatasetEntry(
                name=name,
                format=str(item["format"]),
                root=root if root.is_absolute() else (path.parent / root).resolve(),
                scheme=str(item["scheme"]),
                splits=tuple(item.get("splits", ("train",))),
                size=str(item.get("size", "512x256")),
                options=dict(item.get("options") or {}),
                description=str(item.get("description", "")),
            )
        except KeyError as err:
            raise RegistryError(f"{path}: dataset {name!r} lacks the key {err.args[0]!r}") from err
    return entries


def get_dataset(name: str, path: Path | None = None) -> DatasetEntry:
    entries = load_registry(path)
    if name not in entries:
        raise RegistryError(f"no dataset {name!r} in {path or registry_path()}; known: {', '.join(sorted(entries))}")
    return entries[name]
