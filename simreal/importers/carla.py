"""A folder of CARLA frames: RGB images plus semantic images holding the raw CARLA tag per pixel.

The tag is the red channel of an RGB/RGBA PNG as CARLA's Raw converter saves it, or the value of a
single-channel PNG. Tags are returned raw: which CARLA tag scheme they follow is configured elsewhere.

Pairing, either
- glob mode: ``rgb_pattern`` (a glob relative to the root) finds the RGB files and ``label_pattern``
  names each one's label, with the fields {stem}, {name} (file name), {parent} (RGB directory relative
  to the root) and {split};
- regex mode: ``rgb_regex`` and ``label_regex`` match paths relative to the root (posix, whole path)
  and must capture a ``(?P<key>...)`` group; files pair by key.
A '{split}' in the patterns selects split directories; without it the folder is the single split
``single_split``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

import numpy as np

from simreal.importers.base import SamplePair, check_paired, require_dir
from simreal.importers.errors import AmbiguousFiles, EmptyDirectory, InvalidOption, UnpairedFiles
from simreal.importers.imageio import check_same_size, read_carla_tags, read_rgb
from simreal.importers.single_split import SPLIT_FIELD, check_split

_GLOB_CHARS = re.compile(r"[*?\[]")
_LABEL_FIELDS = {"stem", "name", "parent", "split"}


def _glob_base(pattern: str) -> str:
    """Directory part of a glob before its first wildcard; keys are taken relative to it."""
    fixed: list[str] = []
    for part in PurePosixPath(pattern).parts[:-1]:
        if _GLOB_CHARS.search(part):
            break
        fixed.append(part)
    return "/".join(fixed) or "."


def _provenance(root: Path, rgb: Path, label: Path) -> dict[str, str]:
    return {"rgb": rgb.relative_to(root).as_posix(), "label": label.relative_to(root).as_posix()}


def _compile(option: str, regex: str, split: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(regex.replace(SPLIT_FIELD, re.escape(split)))
    except re.error as error:
        raise InvalidOption(
            f"carla: {option} {regex!r} is not a valid regular expression ({error})"
        ) from error
    if "key" not in compiled.groupindex:
        raise InvalidOption(f"carla: {option} {regex!r} must capture a named group (?P<key>...)")
    return compiled


@dataclass(frozen=True)
class CarlaFolderFormat:
    name: ClassVar[str] = "carla"
    rgb_pattern: str = "rgb/*.png"
    label_pattern: str = "semantic/{stem}.png"
    rgb_regex: str | None = None
    label_regex: str | None = None
    single_split: str = "train"

    def __post_init__(self) -> None:
        if (self.rgb_regex is None) != (self.label_regex is None):
            raise InvalidOption("carla: rgb_regex and label_regex must be given together")
        unknown = {f for f in re.findall(r"{(\w*)}", self.label_pattern)} - _LABEL_FIELDS
        if unknown:
            raise InvalidOption(
                f"carla: label_pattern {self.label_pattern!r} uses unknown fields {sorted(unknown)}; "
                f"known: {sorted(_LABEL_FIELDS)}"
            )

    @property
    def _uses_regex(self) -> bool:
        return self.rgb_regex is not None

    def pairs(self, root: Path, split: str) -> list[SamplePair]:
        require_dir(self.name, root, "dataset root")
        if self._uses_regex:
            check_split(self.name, [self.rgb_regex or "", self.label_regex or ""], split, self.single_split)
            return self._pairs_by_regex(root, split)
        check_split(self.name, [self.rgb_pattern], split, self.single_split)
        return self._pairs_by_glob(root, split)

    def _pairs_by_glob(self, root: Path, split: str) -> list[SamplePair]:
        pattern = self.rgb_pattern.replace(SPLIT_FIELD, split)
        base = require_dir(
            self.name, root / _glob_base(pattern), f"base directory of rgb_pattern {pattern!r}"
        )
        rgb_files = sorted(p for p in root.glob(pattern) if p.is_file())
        if not rgb_files:
            raise EmptyDirectory(self.name, base, f"files matching rgb_pattern {pattern!r}")
        by_key: dict[str, SamplePair] = {}
        missing: list[str] = []
        for rgb in rgb_files:
            relative = rgb.relative_to(root)
            label = root / self.label_pattern.format(
                stem=rgb.stem, name=rgb.name, parent=relative.parent.as_posix(), split=split
            )
            if not label.is_file():
                missing.append(relative.as_posix())
                continue
            key = rgb.relative_to(base).with_suffix("").as_posix()
            if key in by_key:
                raise AmbiguousFiles(self.name, key, [by_key[key].image, rgb])
            by_key[key] = SamplePair(rgb, label, split, key, _provenance(root, rgb, label))
        if missing:
            raise UnpairedFiles(self.name, f"images without a label ({self.label_pattern!r})", missing, root)
        return [by_key[k] for k in sorted(by_key)]

    def _pairs_by_regex(self, root: Path, split: str) -> list[SamplePair]:
        rgb_regex = _compile("rgb_regex", self.rgb_regex or "", split)
        label_regex = _compile("label_regex", self.label_regex or "", split)
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        images = self._match(rgb_regex, files, root, "RGB files matching rgb_regex")
        labels = self._match(label_regex, files, root, "label files matching label_regex")
        keys = check_paired(self.name, images, labels, root, root)
        return [
            SamplePair(images[k], labels[k], split, k, _provenance(root, images[k], labels[k])) for k in keys
        ]

    def _match(self, regex: re.Pattern[str], files: list[str], root: Path, wanted: str) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for relative in files:
            match = regex.fullmatch(relative)
            if match is None:
                continue
            key = match.group("key")
            if key in found:
                raise AmbiguousFiles(self.name, key, [found[key], root / relative])
            found[key] = root / relative
        if not found:
            raise EmptyDirectory(self.name, root, wanted)
        return found

    def load(self, pair: SamplePair) -> tuple[np.ndarray, np.ndarray]:
        image = read_rgb(pair.image)
        tags = read_carla_tags(pair.label)
        check_same_size(image, tags, pair.image, pair.label)
        return image, tags
