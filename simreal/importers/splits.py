"""Split handling for datasets that are one labelled pool on disk (KITTI semantics, GTA5, plain folders).

Without split lists such a pool answers only to the names in ``whole_pool_names`` (e.g. "train"); any other
split is refused rather than silently returning the same images twice. With ``split_lists`` every split is
a list of sample keys: inline, or a text file with one key or file name per line ('#' starts a comment;
a relative file path is taken relative to the dataset root).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath

from simreal.importers.errors import InvalidOption, UnknownSplit, UnpairedFiles

SplitLists = Mapping[str, str | Path | Sequence[str]]


def _read_list(dataset: str, root: Path, source: str | Path) -> list[str]:
    path = Path(source)
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise InvalidOption(f"{dataset}: split list file {path} does not exist")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _as_key(entry: str) -> str:
    # A list may name files ("00001.png", "training/image_2/000000_10.png") or bare keys ("00001").
    name = PurePath(entry).name
    return PurePath(name).stem if PurePath(name).suffix else name


def select_split(
    dataset: str,
    root: Path,
    split: str,
    available: Sequence[str],
    split_lists: SplitLists | None,
    whole_pool_names: Sequence[str],
) -> list[str]:
    """Sorted keys of ``split`` among the ``available`` keys of the labelled pool."""
    if not split_lists:
        if split not in whole_pool_names:
            raise UnknownSplit(
                dataset,
                split,
                whole_pool_names,
                "the labelled data is one pool; pass split_lists to define other splits",
            )
        return sorted(available)
    if split not in split_lists:
        raise UnknownSplit(dataset, split, sorted(split_lists))
    source = split_lists[split]
    entries = _read_list(dataset, root, source) if isinstance(source, (str, Path)) else list(source)
    keys = sorted({_as_key(entry) for entry in entries})
    if not keys:
        raise InvalidOption(f"{dataset}: split list for {split!r} is empty")
    missing = sorted(set(keys) - set(available))
    if missing:
        raise UnpairedFiles(dataset, f"keys of split {split!r} without an image/label pair", missing, root)
    return keys
