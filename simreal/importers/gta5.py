"""GTA5 (Playing for Data): images/<name>.png + labels/<name>.png with Cityscapes labelIds.

The official labels are palette PNGs whose indices are the ids (read as indices, not colours). The release is
one pool: by default it is the split "train" (alias "all"); ``split_lists`` define other splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from simreal.importers.base import IdLabelFormat, SamplePair, pair_by_stem, require_dir
from simreal.importers.splits import SplitLists, select_split

WHOLE_POOL_SPLITS = ("train", "all")


@dataclass(frozen=True)
class Gta5Format(IdLabelFormat):
    name: ClassVar[str] = "gta5"
    split_lists: SplitLists | None = None

    def pairs(self, root: Path, split: str) -> list[SamplePair]:
        require_dir(self.name, root, "dataset root")
        image_dir = require_dir(self.name, root / "images", "images")
        label_dir = require_dir(self.name, root / "labels", "labelId masks")
        images, labels, paired = pair_by_stem(self.name, image_dir, label_dir)
        keys = select_split(self.name, root, split, paired, self.split_lists, WHOLE_POOL_SPLITS)
        return [SamplePair(images[k], labels[k], split, k, {}) for k in keys]
