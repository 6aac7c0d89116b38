"""Folders that may or may not be split on disk: a '{split}' placeholder in a path pattern names the split
directory; without one the folder is a single split, and asking for any other split is an error (so the
same images never land in two splits)."""

from __future__ import annotations

from collections.abc import Iterable

from simreal.importers.errors import UnknownSplit

SPLIT_FIELD = "{split}"


def check_split(dataset: str, patterns: Iterable[str], split: str, single_split: str) -> None:
    if any(SPLIT_FIELD in pattern for pattern in patterns):
        return
    if split != single_split:
        raise UnknownSplit(
            dataset,
            split,
            [single_split],
            "the folder holds one split; put '{split}' in the path patterns for split directories",
        )
