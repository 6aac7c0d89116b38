"""Integrity check of a frame store: what `simreal datasets verify` reports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simreal.data.location import StoreLocation, store_location
from simreal.data.store import FrameStore, StoreError, shard_ranges


@dataclass
class VerifyReport:
    path: StoreLocation
    frames: int = 0
    problems: list[str] = field(default_factory=list)
    label_histogram: dict[int, int] = field(default_factory=dict)
    # frames [start, stop) written past the committed count: a writer stopped before committing them (a crash, a
    # kill, a lost lease). Not a problem: readers never see them and the next job on the store overwrites them.
    uncommitted: list[tuple[int, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_store(path: str | Path) -> VerifyReport:
    """Check metadata, shapes, dtypes, label ids and provenance of every committed frame, shard by shard."""
    report = VerifyReport(store_location(path))
    try:
        store = FrameStore.open(path)
    except StoreError as err:
        report.problems.append(str(err))
        return report
    n = report.frames = len(store)
    expected = {
        "rgb": (store.height, store.width, 3),
        "label": (store.height, store.width),
        "provenance": (),
    }
    if store.has_source_label:
        expected["source_label"] = (store.height, store.width)
    for name, frame_shape in expected.items():
        try:
            arr = store.array(name)
        except KeyError:
            report.problems.append(f"array '{name}' is missing")
            continue
        if name != "provenance" and arr.dtype != np.uint8:
            report.problems.append(f"array '{name}' has dtype {arr.dtype}, expected uint8")
        if tuple(arr.shape[1:]) != frame_shape:
            report.problems.append(f"array '{name}' frames are {tuple(arr.shape[1:])}, expected {frame_shape}")
        if arr.shape[0] < n:
            report.problems.append(f"array '{name}' holds {arr.shape[0]} rows but {n} frames are committed")
    if report.problems:
        return report

    allowed = np.zeros(256, bool)
    allowed[store.class_set.ids] = True
    allowed[store.class_set.ignore_index] = True
    histogram = np.zeros(256, np.int64)
    for start in range(0, n, store.shard_size):
        stop = min(n, start + store.shard_size)
        try:
            store.array("rgb")[start:stop]
            labels = store.array("label")[start:stop]
            texts = store.array("provenance")[start:stop]
        except Exception as err:  # decoding errors surface as several exception types
            report.problems.append(f"frames {start}..{stop - 1}: unreadable data ({type(err).__name__}: {err})")
            continue
        counts = np.bincount(labels.ravel(), minlength=256)
        histogram += counts
        bad = np.flatnonzero((counts > 0) & ~allowed)
        if bad.size:
            report.problems.append(
                f"frames {start}..{stop - 1}: label ids {bad.tolist()} not in class set {store.class_set.name!r}"
            )
        for offset, text in enumerate(texts):
            try:
                if not isinstance(json.loads(str(text)), dict):
                    raise ValueError("not an object")
            except ValueError:
                report.problems.append(f"frame {start + offset}: provenance is not a JSON object: {str(text)[:60]!r}")
    report.label_histogram = {int(i): int(c) for i, c in enumerate(histogram) if c}
    report.uncommitted = uncommitted_ranges(store)
    return report


def uncommitted_ranges(store: FrameStore) -> list[tuple[int, int]]:
    """Frame ranges [start, stop) past the committed count that hold written data (a label that is not all ignore,
    or a provenance record), read shard by shard."""
    committed = len(store)
    # a writer killed while growing the arrays can leave them with different row counts
    rows = max(store.array("label").shape[0], store.array("provenance").shape[0])
    written = np.zeros(max(0, rows - committed), bool)
    for start, stop in shard_ranges(committed, rows, store.shard_size):
        labels = store.array("label")[start:stop]
        texts = store.array("provenance")[start:stop]
        has_label = (labels != store.class_set.ignore_index).reshape(len(labels), -1).any(axis=1)
        has_text = np.array([len(str(t)) > 0 for t in texts], bool)
        written[start - committed : start - committed + len(has_label)] |= has_label
        written[start - committed : start - committed + len(has_text)] |= has_text
    ranges: list[tuple[int, int]] = []
    for offset in np.flatnonzero(written):
        frame = committed + int(offset)
        if ranges and ranges[-1][1] == frame:
            ranges[-1] = (ranges[-1][0], frame + 1)
        else:
            ranges.append((frame, frame + 1))
    return ranges
