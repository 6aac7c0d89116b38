"""A generic image folder + label folder, paired by file stem.

Labels are single-channel id PNGs, or RGB colour-coded PNGs when ``colour_map`` is given (see colour_map.py).
Directories are relative to the dataset root and may contain '{split}' (e.g. "{split}/images").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from simreal.importers.base import (
    IMAGE_SUFFIXES,
    SamplePair,
    check_paired,
    files_by_key,
    require_dir,
    stem_key,
)
from simreal.importers.colour_map import Colour, parse_colour_map
from simreal.importers.imageio import check_same_size, read_colour_ids, read_ids, read_rgb
from simreal.importers.single_split import check_split


@dataclass(frozen=True)
class FolderFormat:
    name: ClassVar[str] = "folder"
    image_dir: str = "images"
    label_dir: str = "labels"
    colour_map: str | Path | Mapping[object, object] | None = None
    single_split: str = "train"
    _colours: dict[Colour, int] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        # Parse the colour map now so that a bad map fails at configuration time, not mid-import.
        if self.colour_map is not None:
            object.__setattr__(self, "_colours", parse_colour_map(self.colour_map))

    def pairs(self, root: Path, split: str) -> list[SamplePair]:
        require_dir(self.name, root, "dataset root")
        check_split(self.name, [self.image_dir, self.label_dir], split, self.single_split)
        image_dir = require_dir(self.name, root / self.image_dir.format(split=split), "image_dir")
        label_dir = require_dir(self.name, root / self.label_dir.format(split=split), "label_dir")
        images = files_by_key(self.name, image_dir, stem_key(IMAGE_SUFFIXES), "images (.png/.jpg/.jpeg)")
        labels = files_by_key(self.name, label_dir, stem_key([".png"]), "*.png labels")
        keys = check_paired(self.name, images, labels, image_dir, label_dir)
        return [SamplePair(images[k], labels[k], split, k, {}) for k in keys]

    def load(self, pair: SamplePair) -> tuple[np.ndarray, np.ndarray]:
        image = read_rgb(pair.image)
        ids = read_ids(pair.label) if self._colours is None else read_colour_ids(pair.label, self._colours)
        check_same_size(image, ids, pair.image, pair.label)
        return image, ids
