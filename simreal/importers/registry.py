"""Format registry: name -> importer class, and construction with options checked up front."""

from __future__ import annotations

import inspect
from typing import Any

from simreal.importers.base import DatasetFormat
from simreal.importers.bdd100k import Bdd100kFormat
from simreal.importers.camvid import CamVidFormat
from simreal.importers.carla import CarlaFolderFormat
from simreal.importers.cityscapes import CityscapesFormat
from simreal.importers.errors import InvalidOption, UnknownFormat
from simreal.importers.folder import FolderFormat
from simreal.importers.gta5 import Gta5Format
from simreal.importers.kitti import KittiFormat

FORMATS: dict[str, type] = {
    cls.name: cls
    for cls in (
        CityscapesFormat,
        CamVidFormat,
        KittiFormat,
        Bdd100kFormat,
        Gta5Format,
        CarlaFolderFormat,
        FolderFormat,
    )
}


def get_format(name: str, **options: Any) -> DatasetFormat:
    """The importer registered as ``name``, configured with ``options`` (unknown options are an error)."""
    if name not in FORMATS:
        raise UnknownFormat(name, list(FORMATS))
    cls = FORMATS[name]
    accepted = [p for p in inspect.signature(cls).parameters]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InvalidOption(f"format {name!r} has no option(s) {unknown}; accepted: {accepted or 'none'}")
    return cls(**options)
