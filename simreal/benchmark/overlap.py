"""Frames an evaluation store shares with training stores: a benchmark scored on frames it trained on is inflated.

A frame is known by several identities: its place (store path and index), the dataset file it was imported from,
the hash of its pixels, and, for a translated or synthesized frame, every identity of the frame it was made from
(its provenance names the source store and index). Two frames that share any identity are the same frame.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from simreal.data.store import FrameStore, source_frame_of
from simreal.errors import StoreError

IMAGE_FILE_KEY = "image"  # provenance of imported frames: the dataset file
_MAX_DERIVATION_DEPTH = 4  # translated from translated from ... : deeper chains are not followed


@dataclass
class FrameIdentities:
    """Identities of every frame of the stores looked at so far (a store's are computed once)."""

    progress: Callable[[int], None] | None = None  # called with the frames read, for a progress bar
    _by_store: dict[Path, list[frozenset[str]]] = field(default_factory=dict)

    def of_store(self, path: Path, depth: int = 0) -> list[frozenset[str]]:
        path = path.expanduser().resolve()
        if path not in self._by_store:
            self._by_store[path] = self._compute(path, depth)
        return self._by_store[path]

    def _compute(self, path: Path, depth: int) -> list[frozenset[str]]:
        store = FrameStore.open(path)
        provenance = store.provenance_table()
        identities = []
        for index, record in enumerate(provenance):
            ids = {f"frame:{path}#{index}", f"pixels:{hashlib.sha1(store.rgb(index).tobytes()).hexdigest()}"}
            if record.get(IMAGE_FILE_KEY):
                ids.add(f"file:{Path(str(record[IMAGE_FILE_KEY])).expanduser().resolve()}")
            ids |= self._source_identities(path, record, depth)
            identities.append(frozenset(ids))
            if self.progress is not None:
                self.progress(1)
        return identities

    def _source_identities(self, path: Path, record: dict, depth: int) -> set[str]:
        source = source_frame_of(path, record)
        if source is None or depth >= _MAX_DERIVATION_DEPTH:
            return set()
        try:
            frames = self.of_store(source[0], depth + 1)
        except StoreError:  # the source store is gone: what is left to compare is pixels and files
            return set()
        return set(frames[source[1]]) if 0 <= source[1] < len(frames) else set()


@dataclass(frozen=True)
class Overlap:
    role: str
    store: Path
    frames: int  # training frames that are evaluation frames
    example: tuple[int, int]  # (training index, evaluation index)
    same_store: bool


def find_overlaps(
    eval_path: Path, training: dict[str, Path], identities: FrameIdentities | None = None
) -> list[Overlap]:
    """Every training store (by role) that shares frames with the evaluation store."""
    identities = identities or FrameIdentities()
    eval_frames = identities.of_store(eval_path)
    owner = {identity: index for index, ids in enumerate(eval_frames) for identity in ids}
    overlaps = []
    for role, path in training.items():
        shared = [
            (index, next(owner[i] for i in ids if i in owner))
            for index, ids in enumerate(identities.of_store(path))
            if not ids.isdisjoint(owner)
        ]
        if shared:
            same = path.expanduser().resolve() == eval_path.expanduser().resolve()
            overlaps.append(Overlap(role, path, len(shared), shared[0], same))
    return overlaps


def describe(overlap: Overlap, eval_path: Path) -> str:
    if overlap.same_store:
        return f"{overlap.role}={overlap.store} is the evaluation store itself"
    train_index, eval_index = overlap.example
    return (
        f"{overlap.role}={overlap.store} shares {overlap.frames} frame(s) with the evaluation store {eval_path} "
        f"(e.g. its frame {train_index} is evaluation frame {eval_index}, by source file, pixels or provenance)"
    )
