"""BDD100K semantic segmentation (10K images): images/10k/<split>/<name>.jpg +
labels/sem_seg/masks/<split>/<name>.png. Mask pixels are trainIds (Cityscapes 19 classes, 0-18) and 255.

Downloads made before June 2021 hold a few images without a mask and masks without an image
(bdd100k/bdd100k#103); ``skip_unpaired=True`` drops those with a warning instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from simreal.importers.base import IdLabelFormat, SamplePair, pair_by_stem, require_dir


@dataclass(frozen=True)
class Bdd100kFormat(IdLabelFormat):
    name: ClassVar[str] = "bdd100k"
    skip_unpaired: bool = False

    def pairs(self, root: Path, split: str) -> list[SamplePair]:
        require_dir(self.name, root, "dataset root")
        image_dir = require_dir(self.name, root / "images" / "10k" / split, f"images of split {split!r}")
        label_dir = require_dir(
            self.name, root / "labels" / "sem_seg" / "masks" / split, f"sem_seg masks of split {split!r}"
        )
        images, labels, keys = pair_by_stem(
            self.name, image_dir, label_dir, (".jpg", ".jpeg"), "masks", skip_unpaired=self.skip_unpaired
        )
        return [SamplePair(images[k], labels[k], split, k, {}) for k in keys]
