"""KITTI semantics (KITTI-2015 benchmark): training/image_2/<name>.png + training/semantic/<name>.png.

Ids are Cityscapes labelIds. Only ``training`` is labelled (200 images), so by default the whole pool is the
split "train" (alias "training"); other splits (e.g. a val hold-out) come from ``split_lists``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from simreal.importers.base import IdLabelFormat, SamplePair, pair_by_stem, require_dir
from simreal.importers.splits import SplitLists, select_split

WHOLE_POOL_SPLITS = ("train", "training")


@dataclass(frozen=True)
class KittiFormat(IdLabelFormat):
    name: ClassVar[str] = "kitti"
    split_lists: SplitLists | None = None

    def pairs(self, root: Path, split: str) -> list[SamplePair]:
        require_dir(self.name, root, "dataset root")
        image_dir = require_dir(self.name, root / "training" / "image_2", "labelled images")
        label_dir = require_dir(self.name, root / "training" / "semantic", "labelId masks")
        images, labels, paired = pair_by_stem(self.name, image_dir, label_dir, label_kind="masks")
        keys = select_split(self.name, root, split, paired, self.split_lists, WHOLE_POOL_SPLITS)
        return [SamplePair(images[k], labels[k], split, k, {}) for k in keys]
