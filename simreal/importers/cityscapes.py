"""Cityscapes: leftImg8bit/<split>/<city>/<key>_leftImg8bit.png
+ gtFine/<split>/<city>/<key>_gtFine_labelIds.png.

Ids are Cityscapes labelIds (0-33). Other gtFine files (color, instanceIds, labelTrainIds, polygons)
are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from simreal.importers.base import (
    IdLabelFormat,
    SamplePair,
    check_paired,
    files_by_key,
    require_dir,
    suffix_key,
)

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"


def _meta(key: str) -> dict[str, str]:
    # Keys look like <city>_<sequence>_<frame>; city names themselves contain no underscore.
    city, _, rest = key.partition("_")
    sequence, _, frame = rest.partition("_")
    return {"city": city, "sequence": sequence, "frame": frame}


@dataclass(frozen=True)
class CityscapesFormat(IdLabelFormat):
    name: ClassVar[str] = "cityscapes"

    def pairs(self, root: Path, split: str) -> list[SamplePair]:
        require_dir(self.name, root, "dataset root")
        image_dir = require_dir(self.name, root / "leftImg8bit" / split, f"images of split {split!r}")
        label_dir = require_dir(self.name, root / "gtFine" / split, f"fine labels of split {split!r}")
        images = files_by_key(
            self.name, image_dir, suffix_key(IMAGE_SUFFIX), f"*{IMAGE_SUFFIX}", recursive=True
        )
        labels = files_by_key(
            self.name, label_dir, suffix_key(LABEL_SUFFIX), f"*{LABEL_SUFFIX}", recursive=True
        )
        keys = check_paired(self.name, images, labels, image_dir, label_dir)
        return [SamplePair(images[k], labels[k], split, k, _meta(k)) for k in keys]
