"""The importer contract (SamplePair, DatasetFormat) and the directory/pairing checks all formats share."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from simreal.importers.errors import AmbiguousFiles, EmptyDirectory, LayoutError, UnpairedFiles
from simreal.importers.imageio import check_same_size, read_ids, read_rgb

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class SamplePair:
    """One image and its raw source label; ``key`` is a stable id unique within the split."""

    image: Path
    label: Path
    split: str
    key: str
    meta: dict[str, Any] = field(default_factory=dict, hash=False)


@runtime_checkable
class DatasetFormat(Protocol):
    """Reads one on-disk dataset layout into (image, raw source ids) pairs."""

    name: ClassVar[str]

    def pairs(self, root: Path, split: str) -> list[SamplePair]:
        """All pairs of a split, sorted by key; pairing problems raise before any pixel is read."""
        ...

    def load(self, pair: SamplePair) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 (H, W, 3) and raw source ids uint8 (H, W)."""
        ...


class IdLabelFormat:
    """Formats whose labels are single-channel id PNGs share this loader."""

    def load(self, pair: SamplePair) -> tuple[np.ndarray, np.ndarray]:
        image = read_rgb(pair.image)
        ids = read_ids(pair.label)
        check_same_size(image, ids, pair.image, pair.label)
        return image, ids


def require_dir(dataset: str, directory: Path, detail: str = "") -> Path:
    if not directory.is_dir():
        raise LayoutError(dataset, directory, detail)
    return directory


def files_by_key(
    dataset: str,
    directory: Path,
    key_of: Callable[[Path], str | None],
    wanted: str,
    recursive: bool = False,
) -> dict[str, Path]:
    """Map sample key -> file for the files in ``directory`` that ``key_of`` accepts (returns a key)."""
    candidates = directory.rglob("*") if recursive else directory.iterdir()
    found: dict[str, Path] = {}
    for path in sorted(candidates):
        key = key_of(path) if path.is_file() else None
        if key is None:
            continue
        if key in found:
            raise AmbiguousFiles(dataset, key, [found[key], path])
        found[key] = path
    if not found:
        raise EmptyDirectory(dataset, directory, wanted)
    return found


def suffix_key(suffix: str) -> Callable[[Path], str | None]:
    """Key function: the file name without ``suffix`` (e.g. '_leftImg8bit.png'), None for other files."""

    def key_of(path: Path) -> str | None:
        return path.name[: -len(suffix)] if path.name.endswith(suffix) and path.name != suffix else None

    return key_of


def stem_key(suffixes: Iterable[str]) -> Callable[[Path], str | None]:
    """Key function: the stem of files whose suffix (case-insensitive) is one of ``suffixes``."""
    allowed = {s.lower() for s in suffixes}

    def key_of(path: Path) -> str | None:
        return path.stem if path.suffix.lower() in allowed else None

    return key_of


def pair_by_stem(
    dataset: str,
    image_dir: Path,
    label_dir: Path,
    image_suffixes: Sequence[str] = (".png",),
    label_kind: str = "labels",
    skip_unpaired: bool = False,
) -> tuple[dict[str, Path], dict[str, Path], list[str]]:
    """Images and ``*.png`` labels in two folders, paired by file stem: (images, labels, sorted common keys)."""
    images = files_by_key(dataset, image_dir, stem_key(image_suffixes), f"*{image_suffixes[0]} images")
    labels = files_by_key(dataset, label_dir, stem_key([".png"]), f"*.png {label_kind}")
    return images, labels, check_paired(dataset, images, labels, image_dir, label_dir, skip_unpaired)


def check_paired(
    dataset: str,
    images: Mapping[str, Path],
    labels: Mapping[str, Path],
    image_dir: Path,
    label_dir: Path,
    skip_unpaired: bool = False,
) -> list[str]:
    """Sorted keys present on both sides. A one-sided file is an UnpairedFiles error, or with
    ``skip_unpaired`` a logged warning (for releases known to ship a few orphans)."""
    problems = [
        ("images without a label", [images[k].name for k in images.keys() - labels.keys()], label_dir),
        ("labels without an image", [labels[k].name for k in labels.keys() - images.keys()], image_dir),
    ]
    for kind, names, where in problems:
        if names and not skip_unpaired:
            raise UnpairedFiles(dataset, kind, names, where)
        if names:
            log.warning("%s", UnpairedFiles(dataset, f"{kind} skipped", names, where))
    return sorted(images.keys() & labels.keys())
