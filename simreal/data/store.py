"""The simreal frame store: a versioned zarr v3 group of RGB frames, labels and per-frame provenance.

Layout (format version 1, documented for users in docs/store-format.md)::

    store.zarr/
      zarr.json          group attributes under "simreal": format_version, committed_frames, height, width,
                         shard_size, class_set {name, ignore_index, classes}, source, evaluable_classes, ...
      rgb/               uint8 (N, H, W, 3)   one frame per chunk, `shard_size` frames per shard, zstd
      label/             uint8 (N, H, W)      target-class ids, 255 = ignore
      source_label/      uint8 (N, H, W)      optional: the raw ids of the source scheme
      trust/             float32 (N, 4)       optional (translated stores): label consistency under a scorer,
                                              TRUST_FIELDS = pixel_acc, miou, source_pixel_acc, source_miou
      provenance/        string (N,)          one JSON object per frame, one chunk per shard

Only the first ``committed_frames`` frames exist for readers. Writers put frame data first and advance the count
afterwards, and every file is replaced as a whole (zarr's local store writes a temporary file and renames it; an
object store's PUT is atomic per object), so a writer killed at any point leaves the committed frames intact; rows
past the count are leftovers that the next append overwrites. A store has one writing job at a time (the lock of
``simreal.data.lock``, taken by every pipeline that writes), and inside a job a shard is never written by two
processes: parallel writers are handed whole shards (see ``shard_ranges``).

A store lives in a local folder or under any fsspec URL (``s3://bucket/carla.zarr``; see ``simreal.data.location``).
Where there is no rename, a store that must not be read before a job completes carries an ``unfinished`` attribute,
which the job removes with its last write (:meth:`FrameStore.finish`).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from simreal.data.location import (
    StoreLocation,
    StoreURL,
    file_exists,
    holds_anything,
    read_file,
    remove,
    store_location,
    zarr_target,
)
from simreal.data.lock import check_writer
from simreal.errors import StoreError
from simreal.labels import IGNORE, LabelTable, get_class_set

FORMAT_VERSION = 1
ATTRS_KEY = "simreal"
DEFAULT_SHARD_SIZE = 32
_ZSTD = ZstdCodec(level=3)
# Provenance keys by which a derived (translated, synthesized) frame names the frame it was made from.
SOURCE_STORE_KEY, SOURCE_INDEX_KEY = "source_store", "source_index"
# Attribute of a store that readers must not use yet: the job still writing it ("import"), or "creation" while the
# arrays of a store on an object store are being made (there is no folder to build aside and rename).
UNFINISHED_KEY, CREATION = "unfinished", "creation"
# The per-frame label-consistency scores of a translated store under a named scorer segmenter (optional array).
TRUST, TRUST_FIELDS = "trust", ("pixel_acc", "miou", "source_pixel_acc", "source_miou")
# What a location holds (see store_state).
ABSENT, STORE, LEFTOVER, FOREIGN = "absent", "store", "leftover", "foreign"


@dataclass
class Frame:
    rgb: np.ndarray  # (H, W, 3) uint8
    label: np.ndarray  # (H, W) uint8, target ids
    provenance: dict[str, Any]
    source_label: np.ndarray | None = None


class FrameStore:
    """Reading and appending frames. Open with :meth:`create` or :meth:`open`."""

    def __init__(self, path: StoreLocation, group: zarr.Group, writable: bool) -> None:
        self.path = path
        self._group = group
        self.writable = writable
        self._attrs: dict[str, Any] = dict(group.attrs[ATTRS_KEY])
        unfinished = self._attrs.get(UNFINISHED_KEY)
        if unfinished == CREATION:
            raise StoreError(f"{path}: the creation of this store stopped half-way; rerun the command that makes it")
        if unfinished and not writable:
            raise StoreError(
                f"{path}: the {unfinished} writing this store did not finish (stopped or failed); rerun it, it starts "
                "over"
            )
        self._arrays: dict[str, zarr.Array] = {}
        self._has_source_label = "source_label" in group
        self._has_trust = TRUST in group
        version = self._attrs.get("format_version")
        if version != FORMAT_VERSION:
            raise StoreError(f"{path}: store format version {version}, this simreal reads {FORMAT_VERSION}")
        self.class_set = LabelTable.from_dict(self._attrs["class_set"])
        if "rgb" not in group:
            raise StoreError(f"{path}: the rgb array is missing; the store is damaged, re-create it")
        rows = self.array("rgb").shape[0]
        if len(self) > rows:
            raise StoreError(
                f"{path}: committed_frames is {len(self)} but the arrays hold {rows} rows; the store is damaged "
                "(its attributes were edited or its arrays truncated), re-create it"
            )

    # ---------------------------------------------------------------- opening
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        height: int,
        width: int,
        class_set: str | LabelTable = "shared16",
        shard_size: int = DEFAULT_SHARD_SIZE,
        with_source_label: bool = False,
        with_trust: bool = False,
        source: str = "",
        attrs: dict[str, Any] | None = None,
        overwrite: bool = False,
        unfinished: str | None = None,
    ) -> FrameStore:
        """A new empty store at ``path`` (a folder or an fsspec URL). ``unfinished`` (the job's name) keeps readers
        out until :meth:`finish` is called."""
        location = store_location(path)
        state = store_state(location)
        if state in (STORE, FOREIGN) and not overwrite:
            raise StoreError(f"{location} already exists; choose another --out or remove it first")
        table = get_class_set(class_set) if isinstance(class_set, str) else class_set
        meta = {
            "format_version": FORMAT_VERSION,
            "committed_frames": 0,
            "height": int(height),
            "width": int(width),
            "shard_size": int(shard_size),
            "class_set": table.to_attrs(),
            "source": source,
            "evaluable_classes": table.ids,
            "eval_merge": {},
        }
        meta.update(attrs or {})
        if unfinished:
            meta[UNFINISHED_KEY] = unfinished
        layout = _Layout(height, width, shard_size, with_source_label, with_trust)
        with _writing(location, "creating"):
            if state != ABSENT:
                remove(location)
            if isinstance(location, Path):
                _create_local(location, layout, meta)
            else:
                _create_remote(location, layout, meta)
        return cls.open(location, mode="a")

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> FrameStore:
        """Open an existing store (a folder or an fsspec URL); ``mode="a"`` to append."""
        path = store_location(path)
        if not file_exists(path, "zarr.json"):
            raise StoreError(
                f"{path} is not a simreal frame store (no zarr.json); create one with an import or collect"
            )
        try:
            group = zarr.open_group(zarr_target(path), mode="r" if mode == "r" else "r+", use_consolidated=False)
        except Exception as err:  # zarr raises several types for broken metadata
            raise StoreError(f"{path}: cannot open as zarr group: {err}") from err
        if ATTRS_KEY not in group.attrs:
            raise StoreError(f"{path} is a zarr group but not a simreal frame store (no '{ATTRS_KEY}' attributes)")
        return cls(path, group, writable=mode != "r")

    # ---------------------------------------------------------------- metadata
    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._attrs)

    @property
    def height(self) -> int:
        return int(self._attrs["height"])

    @property
    def width(self) -> int:
        return int(self._attrs["width"])

    @property
    def shard_size(self) -> int:
        return int(self._attrs["shard_size"])

    @property
    def evaluable_classes(self) -> list[int]:
        return [int(c) for c in self._attrs.get("evaluable_classes", self.class_set.ids)]

    @property
    def has_source_label(self) -> bool:
        return self._has_source_label

    @property
    def has_trust(self) -> bool:
        return self._has_trust

    def array(self, name: str) -> zarr.Array:
        # Opening an array reads its metadata from disk: do it once per store object (random reads for training).
        if name not in self._arrays:
            self._arrays[name] = self._group[name]  # type: ignore[assignment]
        return self._arrays[name]

    def __len__(self) -> int:
        return int(self._attrs["committed_frames"])

    def update_attrs(self, **values: Any) -> None:
        """Merge JSON-able values into the store attributes (e.g. a filter report)."""
        self._require_writable()
        check_writer(self.path)
        fresh = dict(self._group.attrs[ATTRS_KEY])
        fresh.update(values)
        with _writing(self.path, "updating the attributes of"):
            self._group.attrs[ATTRS_KEY] = fresh
        self._attrs = fresh

    # ---------------------------------------------------------------- reading
    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"frame {index} out of range: {self.path} holds {n} committed frames")
        return index % n

    def rgb(self, index: int) -> np.ndarray:
        return self.array("rgb")[self._check_index(index)]

    def label(self, index: int) -> np.ndarray:
        return self.array("label")[self._check_index(index)]

    def trust(self, index: int) -> np.ndarray:
        """The frame's label-consistency scores (``TRUST_FIELDS``); StoreError when the store keeps none."""
        if not self.has_trust:
            raise StoreError(f"{self.path} keeps no trust scores (translate with --scorer to make them)")
        return self.array(TRUST)[self._check_index(index)]

    def provenance(self, index: int) -> dict[str, Any]:
        return json.loads(str(self.array("provenance")[self._check_index(index)]))

    def provenance_table(self) -> list[dict[str, Any]]:
        """Provenance of every committed frame, in frame order."""
        n = len(self)
        return [json.loads(str(s)) for s in self.array("provenance")[:n]] if n else []

    def select(self, **criteria: Any) -> list[int]:
        """Indices of frames whose provenance matches every ``key=value`` (e.g. ``town="Town10HD"``)."""
        return [i for i, p in enumerate(self.provenance_table()) if all(p.get(k) == v for k, v in criteria.items())]

    def __getitem__(self, index: int) -> Frame:
        index = self._check_index(index)
        source = self.array("source_label")[index] if self.has_source_label else None
        return Frame(self.rgb(index), self.label(index), self.provenance(index), source)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self[i]

    def read_range(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(rgb, label) of committed frames [start, stop) in one read per array."""
        stop = min(stop, len(self))
        return self.array("rgb")[start:stop], self.array("label")[start:stop]

    # ---------------------------------------------------------------- writing
    def _require_writable(self) -> None:
        if not self.writable:
            raise StoreError(f"{self.path} was opened read-only")

    def reserve(self, capacity: int) -> None:
        """Grow every frame array to hold at least ``capacity`` rows, in whole shards. One process only."""
        self._require_writable()
        capacity = -(-capacity // self.shard_size) * self.shard_size
        for name in ("rgb", "label", "source_label", TRUST, "provenance"):
            if name in self._group:
                arr = self.array(name)
                if arr.shape[0] < capacity:
                    with _writing(self.path, "growing"):
                        arr.resize((capacity, *arr.shape[1:]))

    def write_frames(
        self,
        start: int,
        rgb: np.ndarray,
        label: np.ndarray,
        provenance: Sequence[dict[str, Any]],
        source_label: np.ndarray | None = None,
        trust: np.ndarray | None = None,
    ) -> None:
        """Write frames at rows [start, start+k) without committing them. Rows must already be reserved.

        Parallel writers must each own whole shards; a single writer may write anywhere past the committed count.
        """
        self._require_writable()
        k = len(rgb)
        self._validate(rgb, label, provenance, source_label)
        stop = start + k
        if start < len(self):
            raise StoreError(f"refusing to overwrite committed frames {start}..{len(self) - 1} of {self.path}")
        if self.array("rgb").shape[0] < stop:
            raise StoreError(f"rows {start}..{stop - 1} not reserved in {self.path}")
        if self.has_source_label and source_label is None:
            raise StoreError(f"{self.path} keeps source labels: pass source_label")
        if self.has_trust != (trust is not None):
            raise StoreError(f"{self.path} {'keeps' if self.has_trust else 'keeps no'} trust scores: trust must match")
        if trust is not None and np.shape(trust) != (k, len(TRUST_FIELDS)):
            raise StoreError(f"trust must be ({k}, {len(TRUST_FIELDS)}), got {np.shape(trust)}")
        texts = np.array([json.dumps(p, sort_keys=True, default=str) for p in provenance], dtype=object)
        with _writing(self.path, f"writing frames {start}..{stop - 1} of"):
            self.array("rgb")[start:stop] = rgb
            self.array("label")[start:stop] = label
            if self.has_source_label:
                self.array("source_label")[start:stop] = source_label
            if trust is not None:
                self.array(TRUST)[start:stop] = np.asarray(trust, np.float32)
            self.array("provenance")[start:stop] = texts

    def finish(self) -> None:
        """Open a store created ``unfinished`` to readers: the last write of a job that must complete as a whole."""
        self._require_writable()
        fresh = dict(self._group.attrs[ATTRS_KEY])
        fresh.pop(UNFINISHED_KEY, None)
        with _writing(self.path, "finishing"):
            self._group.attrs[ATTRS_KEY] = fresh
        self._attrs = fresh

    def commit(self, count: int) -> None:
        """Publish frames [0, count) to readers. Only the one coordinating process calls this."""
        self._require_writable()
        if count < len(self):
            raise StoreError(f"commit count {count} is below the committed {len(self)} frames")
        self.update_attrs(committed_frames=int(count))

    def append(
        self,
        rgb: np.ndarray,
        label: np.ndarray,
        provenance: Sequence[dict[str, Any]],
        source_label: np.ndarray | None = None,
        trust: np.ndarray | None = None,
    ) -> None:
        """Write and commit frames after the last committed one (single-writer convenience)."""
        start = len(self)
        self.reserve(start + len(rgb))
        self.write_frames(start, rgb, label, provenance, source_label, trust)
        self.commit(start + len(rgb))

    def _validate(
        self,
        rgb: np.ndarray,
        label: np.ndarray,
        provenance: Sequence[dict[str, Any]],
        source_label: np.ndarray | None,
    ) -> None:
        h, w = self.height, self.width
        if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[1:] != (h, w, 3):
            raise StoreError(f"rgb must be uint8 (k, {h}, {w}, 3), got {rgb.dtype} {rgb.shape}")
        if label.dtype != np.uint8 or label.shape != rgb.shape[:3]:
            raise StoreError(f"label must be uint8 {rgb.shape[:3]}, got {label.dtype} {label.shape}")
        if source_label is not None and source_label.shape != label.shape:
            raise StoreError(f"source_label must be {label.shape}, got {source_label.shape}")
        if len(provenance) != len(rgb):
            raise StoreError(f"{len(rgb)} frames but {len(provenance)} provenance records")
        allowed = np.zeros(256, bool)
        allowed[self.class_set.ids] = True
        allowed[self.class_set.ignore_index] = True
        present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
        bad = [int(i) for i in present if not allowed[i]]
        if bad:
            raise StoreError(f"label ids {bad} are not in class set {self.class_set.name!r}")


@dataclass(frozen=True)
class _Layout:
    height: int
    width: int
    shard_size: int
    with_source_label: bool
    with_trust: bool = False

    def build(self, group: zarr.Group) -> None:
        """The empty frame arrays of a store."""
        frame_arrays = {"rgb": (self.height, self.width, 3), "label": (self.height, self.width)}
        if self.with_source_label:
            frame_arrays["source_label"] = (self.height, self.width)
        for name, frame_shape in frame_arrays.items():
            group.create_array(
                name,
                shape=(0, *frame_shape),
                dtype="uint8",
                chunks=(1, *frame_shape),
                shards=(self.shard_size, *frame_shape),
                compressors=_ZSTD,
                fill_value=IGNORE if name != "rgb" else 0,
                dimension_names=("frame", "h", "w", "c")[: 1 + len(frame_shape)],
            )
        group.create_array("provenance", shape=(0,), dtype=str, chunks=(self.shard_size,), compressors=_ZSTD)
        if self.with_trust:
            group.create_array(TRUST, shape=(0, len(TRUST_FIELDS)), dtype="float32",
                               chunks=(self.shard_size, len(TRUST_FIELDS)), fill_value=float("nan"))  # fmt: skip


def _create_local(path: Path, layout: _Layout, meta: dict[str, Any]) -> None:
    # Built beside its final place and renamed into it: nobody ever sees a half-created store.
    building = path.with_name(f".{path.name}.creating-{uuid.uuid4().hex[:8]}")
    try:
        group = zarr.open_group(building, mode="w", zarr_format=3)
        layout.build(group)
        group.attrs[ATTRS_KEY] = meta
        os.rename(building, path)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _create_remote(url: StoreURL, layout: _Layout, meta: dict[str, Any]) -> None:
    # No rename on an object store: the group's zarr.json is written first marked as a creation in progress, the
    # arrays next, and the full attributes last, in one PUT of zarr.json. A creation stopped half-way leaves a
    # leftover that readers refuse and the next create replaces (store_state).
    group = zarr.open_group(str(url), mode="w", zarr_format=3, attributes={ATTRS_KEY: {UNFINISHED_KEY: CREATION}})
    layout.build(group)
    group.attrs[ATTRS_KEY] = meta


def store_state(path: str | Path) -> str:
    """What ``path`` holds: ABSENT (nothing), STORE (a simreal store), LEFTOVER (an unfinished store: a creation or
    a job stopped half-way, replaced by the next job that makes a store there) or FOREIGN (anything else, never
    replaced without overwrite)."""
    location = store_location(path)
    if not holds_anything(location):
        return ABSENT
    try:
        group_meta = json.loads(read_file(location, "zarr.json"))
    except (OSError, ValueError):
        return FOREIGN
    attrs = (group_meta.get("attributes") or {}).get(ATTRS_KEY) if isinstance(group_meta, dict) else None
    if not isinstance(attrs, dict):
        return FOREIGN
    return LEFTOVER if attrs.get(UNFINISHED_KEY) else STORE


@contextmanager
def _writing(path: StoreLocation, doing: str) -> Iterator[None]:
    """Report a failed disk write (full disk, lost permission, gone mount) as a store error; the frames committed
    before it stay readable because the committed count is only advanced after the data is written."""
    try:
        yield
    except OSError as err:
        reason = err.strerror or str(err)
        raise StoreError(
            f"{doing} {path} failed: {reason}; frames committed before are kept, free space or fix the path and "
            "rerun the same command to continue"
        ) from err


def open_derived(
    path: str | Path,
    source: FrameStore,
    *,
    role: str,
    settings: dict[str, Any],
    description: str,
    shard_size: int | None = None,
    with_source_label: bool = False,
    with_trust: bool = False,
) -> FrameStore:
    """A store made frame by frame from ``source`` (same size, class set and scoring classes), or the one a
    previous run started, to continue it.

    ``settings`` (what decides the frames' pixels) are recorded under ``attrs[role]``; an existing store is only
    continued when its recorded settings are the same, else the error names every difference.
    """
    path = store_location(path)
    if store_state(path) == STORE:
        out = FrameStore.open(path, mode="a")
        recorded = out.attrs.get(role) or {}
        changed = [key for key, value in settings.items() if recorded.get(key) != value]
        if changed:
            listing = ", ".join(f"{key}: {recorded.get(key)!r} there, {settings[key]!r} now" for key in changed)
            raise StoreError(
                f"{path} was not made by this job ({listing}); rerun with the same settings to continue it, "
                "or choose another --out"
            )
        return out
    return FrameStore.create(
        path,
        height=source.height,
        width=source.width,
        class_set=source.class_set,
        shard_size=shard_size or source.shard_size,
        with_source_label=with_source_label,
        with_trust=with_trust,
        source=description,
        attrs={
            role: settings,
            "evaluable_classes": source.evaluable_classes,
            "eval_merge": source.attrs.get("eval_merge", {}),
        },
    )


def shard_ranges(start: int, stop: int, shard_size: int) -> list[tuple[int, int]]:
    """Split rows [start, stop) at shard boundaries, so that each piece can go to a different writer."""
    ranges = []
    row = start
    while row < stop:
        end = min(stop, (row // shard_size + 1) * shard_size)
        ranges.append((row, end))
        row = end
    return ranges


def source_frame_of(store_path: StoreLocation, provenance: dict[str, Any]) -> tuple[StoreLocation, int] | None:
    """(store, index) of the frame a derived frame was made from, or None for a frame made from nothing stored.

    A relative source path that does not exist from the working directory is read relative to the derived store's
    folder, where it was recorded.
    """
    source, index = provenance.get(SOURCE_STORE_KEY), provenance.get(SOURCE_INDEX_KEY)
    if source is None or index is None:
        return None
    path = store_location(str(source))
    if isinstance(path, Path) and not path.is_absolute() and not path.exists():
        path = store_path.parent / path
    return path, int(index)
