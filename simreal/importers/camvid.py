"""CamVid in the SegNet layout: <split>/<name>.png + <split>annot/<name>.png, ids 0-11 (11 = void)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from simreal.importers.base import IdLabelFormat, SamplePair, pair_by_stem, require_dir


@dataclass(frozen=True)
class CamVidFormat(IdLabelFormat):
    name: ClassVar[str] = "camvid"

    def pairs(self, root: Path, split: str) -> list[SamplePair]:
        require_dir(self.name, root, "dataset root")
        image_dir = require_dir(self.name, root / split, f"images of split {split!r}")
        label_dir = require_dir(self.name, root / f"{split}annot", f"labels of split {split!r}")
        images, labels, keys = pair_by_stem(self.name, image_dir, label_dir)
        # File names are <sequence>_<frame>, e.g. 0001TP_006690.
        return [SamplePair(images[k], labels[k], split, k, {"sequence": k.split("_")[0]}) for k in keys]
