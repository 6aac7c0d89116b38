"""Finding label tables and mappings: YAML files shipped with simreal plus any directory a user adds.

A user adds a scheme, a class set or a mapping by dropping a YAML file into a directory named in
``$SIMREAL_LABELS_PATH`` (``os.pathsep``-separated), laid out like ``simreal/labels/data``:
``schemes/<name>.yaml``, ``sets/<name>.yaml``, ``mappings/<source>__<target>.yaml``.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import yaml

from simreal.errors import LabelError
from simreal.labels.tables import LabelMapping, LabelTable, build_mapping

BUILTIN_DIR = Path(__file__).parent / "data"
DEFAULT_CLASS_SET = "shared16"


def search_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("SIMREAL_LABELS_PATH", "").split(os.pathsep) if p]
    return [*extra, BUILTIN_DIR]


def _load_yaml(path: Path) -> dict:
    with open(path) as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise LabelError(f"{path}: expected a mapping at the top level")
    return data


@cache
def _tables(kind: str, dirs: tuple[Path, ...]) -> dict[str, LabelTable]:
    tables: dict[str, LabelTable] = {}
    for directory in reversed(dirs):  # earlier directories override later (built-in) ones
        for path in sorted((directory / kind).glob("*.yaml")):
            try:
                table = LabelTable.from_dict(_load_yaml(path))
            except (LabelError, KeyError, TypeError, ValueError) as err:
                raise LabelError(f"bad label table {path}: {err}") from err
            for key in (table.name, *table.aliases):
                tables[key] = table
    return tables


def _lookup(kind: str, name: str, what: str) -> LabelTable:
    tables = _tables(kind, tuple(search_dirs()))
    if name not in tables:
        raise LabelError(f"unknown {what} {name!r}; known: {', '.join(sorted(tables))}")
    return tables[name]


def get_scheme(name: str) -> LabelTable:
    """A source label scheme by name or alias (``carla-0.9.14``, ``cityscapes``, ``kitti``, ``camvid11`` ...)."""
    return _lookup("schemes", name, "label scheme")


def get_class_set(name: str = DEFAULT_CLASS_SET) -> LabelTable:
    """A target class set (``shared16``, ``cityscapes19``, or one a user added)."""
    return _lookup("sets", name, "class set")


def list_schemes() -> list[LabelTable]:
    return _unique(_tables("schemes", tuple(search_dirs())))


def list_class_sets() -> list[LabelTable]:
    return _unique(_tables("sets", tuple(search_dirs())))


def _unique(tables: dict[str, LabelTable]) -> list[LabelTable]:
    return sorted({t.name: t for t in tables.values()}.values(), key=lambda t: t.name)


def get_mapping(scheme: str, class_set: str = DEFAULT_CLASS_SET) -> LabelMapping:
    """Mapping from a source scheme (name or alias) to a class set; identity when they are the same table."""
    source = get_scheme(scheme) if scheme not in _tables("sets", tuple(search_dirs())) else get_class_set(scheme)
    target = get_class_set(class_set)
    if source.name == target.name:
        spec = {"map": {c.name: [c.id] for c in target.classes}, "ignore": []}
        return build_mapping(source, target, spec)
    for directory in search_dirs():
        path = directory / "mappings" / f"{source.name}__{target.name}.yaml"
        if path.is_file():
            spec = _load_yaml(path)
            try:
                return build_mapping(source, target, spec)
            except (LabelError, KeyError, ValueError) as err:
                raise LabelError(f"bad mapping {path}: {err}") from err
    raise LabelError(
        f"no mapping from {source.name!r} to {target.name!r}; add mappings/{source.name}__{target.name}.yaml "
        f"to a directory in SIMREAL_LABELS_PATH"
    )


def clear_cache() -> None:
    """Forget loaded tables (after a user adds files at run time, and in tests)."""
    _tables.cache_clear()
