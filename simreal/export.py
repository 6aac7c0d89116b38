"""``simreal export``: a store's frames in the directory layouts segmentation trainers read, with a manifest.

Layouts (``LAYOUTS``):

- ``cityscapes``: ``leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`` and ``gtFine/<split>/<city>/<name>_gtFine_
  labelIds.png`` + ``_gtFine_labelTrainIds.png``, as the Cityscapes scripts and ``torchvision.datasets.Cityscapes``
  read them (``<city>`` is the frame's town, ``<name>`` ``<city>_000000_<frame:06d>``). Only from a store whose
  classes each come from one Cityscapes labelId (``cityscapes19``, ``cityscapes-labelids``): a merged class such as
  shared16's ``vehicle`` cannot be split back.
- ``mmseg``: ``img_dir/<split>/<name>.png``, ``ann_dir/<split>/<name>.png`` (class ids, 255 = ignore) and
  ``dataset_config.py`` (classes, palette, suffixes, prefixes) for mmsegmentation's ``BaseSegDataset``.
- ``folder``: ``images/``, ``labels/`` (class ids), ``labels_color/`` and ``classes.json`` (names, ids, palette).

Every export ends with ``manifest.json``: the source store and what made it (collector, translator run and
checkpoint digest), and per frame its store index, source frame ids, files and trust score (when the store has one).
Files are written whole (temporary file + rename), so an export that is killed resumes on rerun, skipping the files
it finished, and ends with the same files as one that was not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from simreal.data.store import SOURCE_INDEX_KEY, SOURCE_STORE_KEY, TRUST, TRUST_FIELDS, Frame, FrameStore
from simreal.errors import StoreError
from simreal.labels import LabelTable, get_mapping
from simreal.progress import progress_bar

LAYOUTS = ("cityscapes", "mmseg", "folder")
MARKER, MANIFEST = ".simreal-export.json", "manifest.json"
EXPORT_FORMAT = 1
CITYSCAPES_SPLITS = ("train", "val", "test")


class ExportError(StoreError):
    """A store that cannot be exported as asked, or an output folder that is not free."""


@dataclass(frozen=True)
class ExportJob:
    store: str
    out: Path
    layout: str
    split: str = "train"
    frames: int | None = None  # the first N committed frames; None = all
    overwrite: bool = False
    min_consistency: float | None = None  # keep frames whose trust mIoU is at least this (translate --scorer)


@dataclass
class ExportResult:
    out: Path
    frames: int
    written: int  # frames written now (the rest were there from an interrupted run)
    manifest: Path
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- writing one file whole
def write_png(path: Path, image: np.ndarray) -> None:
    """``image`` (RGB (H, W, 3) or ids (H, W), uint8) as a PNG, replacing ``path`` only once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = image[..., ::-1] if image.ndim == 3 else image  # cv2 writes BGR
    ok, data = cv2.imencode(".png", np.ascontiguousarray(pixels))
    if not ok:
        raise ExportError(f"cannot encode {path.name} as PNG")
    _write_whole(path, data.tobytes())


def _write_whole(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_whole(path, text.encode("utf-8"))


# ---------------------------------------------------------------- layouts
def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", text) or "simreal"


class Layout:
    """Where a frame's files go and what they hold; ``finish`` writes the layout's own description files."""

    def __init__(self, store: FrameStore, split: str) -> None:
        self.store, self.split, self.classes = store, split, store.class_set

    def files(self, index: int, frame: Frame) -> dict[str, tuple[str, np.ndarray]]:
        raise NotImplementedError

    def finish(self, out: Path) -> None:
        """Nothing beyond the frames by default."""


class CityscapesLayout(Layout):
    def __init__(self, store: FrameStore, split: str) -> None:
        super().__init__(store, split)
        if split not in CITYSCAPES_SPLITS:
            raise ExportError(f"the cityscapes layout has splits {', '.join(CITYSCAPES_SPLITS)}, not {split!r}")
        self.to_label_id = cityscapes_label_ids(store.class_set)
        self.to_train_id = get_mapping("cityscapes", "cityscapes19").lut

    def files(self, index: int, frame: Frame) -> dict[str, tuple[str, np.ndarray]]:
        city = _safe(str(frame.provenance.get("town", "simreal"))).lower()
        name = f"{city}_000000_{index:06d}"
        label_ids = self.to_label_id[frame.label]
        return {
            "image": (f"leftImg8bit/{self.split}/{city}/{name}_leftImg8bit.png", frame.rgb),
            "label_ids": (f"gtFine/{self.split}/{city}/{name}_gtFine_labelIds.png", label_ids),
            "train_ids": (f"gtFine/{self.split}/{city}/{name}_gtFine_labelTrainIds.png", self.to_train_id[label_ids]),
        }


class MMSegLayout(Layout):
    def files(self, index: int, frame: Frame) -> dict[str, tuple[str, np.ndarray]]:
        name = f"{index:06d}"
        return {
            "image": (f"img_dir/{self.split}/{name}.png", frame.rgb),
            "label": (f"ann_dir/{self.split}/{name}.png", frame.label),
        }

    def finish(self, out: Path) -> None:
        classes = sorted(self.classes.classes, key=lambda c: c.id)
        if [c.id for c in classes] != list(range(len(classes))):
            raise ExportError(f"class set {self.classes.name!r} has gaps in its ids: mmseg needs ids 0..N-1")
        config = (
            "# mmsegmentation dataset settings written by `simreal export` (BaseSegDataset reads these keys)\n"
            f"metainfo = dict(\n    classes={tuple(c.name for c in classes)!r},\n"
            f"    palette={[list(c.color) for c in classes]!r},\n)\n"
            "img_suffix = '.png'\nseg_map_suffix = '.png'\nreduce_zero_label = False\nignore_index = 255\n"
            f"data_prefix = dict(img_path='img_dir/{self.split}', seg_map_path='ann_dir/{self.split}')\n"
        )
        _write_text(out / "dataset_config.py", config)


class FolderLayout(Layout):
    def files(self, index: int, frame: Frame) -> dict[str, tuple[str, np.ndarray]]:
        name = f"{index:06d}"
        return {
            "image": (f"images/{name}.png", frame.rgb),
            "label": (f"labels/{name}.png", frame.label),
            "label_color": (f"labels_color/{name}.png", self.classes.colorize(frame.label)),
        }

    def finish(self, out: Path) -> None:
        classes = [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self.classes.classes]
        table = {"class_set": self.classes.name, "ignore_index": self.classes.ignore_index, "classes": classes}
        _write_text(out / "classes.json", json.dumps(table, indent=1))


LAYOUT_CLASSES: dict[str, type[Layout]] = {"cityscapes": CityscapesLayout, "mmseg": MMSegLayout, "folder": FolderLayout}


def cityscapes_label_ids(class_set: LabelTable) -> np.ndarray:
    """A 256-entry table from the class set's ids to Cityscapes labelIds (ignore -> 0, unlabeled); refused unless
    every class comes from exactly one labelId."""
    try:
        lut = get_mapping("cityscapes", class_set.name).lut
    except Exception as err:  # no mapping from Cityscapes to this class set at all
        raise ExportError(_not_cityscapes(class_set, "it has no mapping from Cityscapes labelIds")) from err
    table = np.zeros(256, np.uint8)
    merged = []
    for c in class_set.classes:
        sources = [label_id for label_id in range(256) if lut[label_id] == c.id and label_id != 255]
        if len(sources) != 1:
            merged.append(f"{c.name} ({len(sources)} labelIds)")
        elif sources:
            table[c.id] = sources[0]
    if merged:
        raise ExportError(_not_cityscapes(class_set, f"these classes merge Cityscapes classes: {', '.join(merged)}"))
    return table


def _not_cityscapes(class_set: LabelTable, why: str) -> str:
    return (
        f"a {class_set.name} store cannot be exported in the cityscapes layout: {why}. Collect with "
        "store.class_set=cityscapes19 (CARLA 0.9.14-0.9.16 and the procedural world tag car, truck, bus, ... apart) "
        "or store.class_set=cityscapes-labelids (any CARLA version; before 0.9.14 every vehicle is one tag and "
        "becomes car), or use --layout mmseg or folder, which keep the store's own classes"
    )


# ---------------------------------------------------------------- the job
def _settings(job: ExportJob, store: FrameStore, count: int) -> dict[str, Any]:
    return {"store": str(store.path), "layout": job.layout, "split": job.split, "frames": count,
            "min_consistency": job.min_consistency}  # fmt: skip


def _prepare(out: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """A fresh OUT, or the unfinished (or finished) export of the same settings to continue; else refused."""
    marker = out / MARKER
    if out.exists() and any(out.iterdir()):
        recorded = json.loads(marker.read_text()) if marker.is_file() else None
        finished = json.loads((out / MANIFEST).read_text()).get("settings") if (out / MANIFEST).is_file() else None
        if settings in (recorded, finished) and not overwrite:
            _write_text(marker, json.dumps(settings))
            return
        if not overwrite:
            raise ExportError(f"{out} already exists and is not this export; choose another OUT or pass --overwrite")
        shutil.rmtree(out)
    _write_text(marker, json.dumps(settings))


def _origin(store: FrameStore) -> dict[str, Any]:
    """What made the store: its description, collector settings or the translator run and checkpoint digest."""
    attrs = store.attrs
    origin: dict[str, Any] = {"source": attrs.get("source", ""), "class_set": store.class_set.name}
    for role in ("translate", "synthesize", "collect", "import"):
        if role in attrs:
            origin[role] = attrs[role]
    return origin


def _source_ids(provenance: dict[str, Any]) -> dict[str, Any]:
    keys = (SOURCE_STORE_KEY, SOURCE_INDEX_KEY, "variant", "town", "weather", "frame", "stream", "checkpoint")
    return {key: provenance[key] for key in keys if key in provenance}


def run_export(job: ExportJob, on_frame: Callable[[int], None] | None = None) -> ExportResult:
    """Write the job's frames (skipping finished files of an interrupted run) and the manifest last; ``on_frame``
    is called with each frame's index once its files are written."""
    if job.layout not in LAYOUTS:
        raise ExportError(f"unknown layout {job.layout!r}; choose from {', '.join(LAYOUTS)}")
    store = FrameStore.open(job.store)
    if job.frames is not None and job.frames < 1:
        raise ExportError(f"--frames must be >= 1, got {job.frames}")
    count = min(len(store), job.frames) if job.frames is not None else len(store)
    if count == 0:
        raise ExportError(f"{store.path} holds no committed frames to export")
    layout = LAYOUT_CLASSES[job.layout](store, job.split)
    keep = _gate(store, count, job.min_consistency)
    out = Path(job.out).expanduser()
    settings = _settings(job, store, count)
    _prepare(out, settings, job.overwrite)
    records, written = [], 0
    with progress_bar(f"export ({job.layout})", total=count) as bar:
        for index in range(count):
            if not keep[index]:
                bar.advance(1)
                continue
            frame = store[index]
            files = layout.files(index, frame)
            if not all((out / relative).is_file() for relative, _ in files.values()):
                for relative, pixels in files.values():
                    write_png(out / relative, pixels)
                written += 1
            records.append({
                "index": index,
                "files": {role: relative for role, (relative, _) in files.items()},
                "source": _source_ids(frame.provenance),
                "trust": frame.provenance.get("trust"),
            })  # fmt: skip
            bar.advance(1)
            if on_frame is not None:
                on_frame(index)
    layout.finish(out)
    manifest = {"format": EXPORT_FORMAT, "settings": settings, "origin": _origin(store), "frames": records}
    _write_text(out / MANIFEST, json.dumps(manifest, indent=1, default=str))
    (out / MARKER).unlink(missing_ok=True)
    notes = [f"{count - int(keep.sum())} of {count} frames below trust mIoU {job.min_consistency} left out"]
    return ExportResult(out, int(keep.sum()), written, out / MANIFEST, notes if job.min_consistency is not None else [])


def _gate(store: FrameStore, count: int, threshold: float | None) -> np.ndarray:
    """Which of the first ``count`` frames to export: all, or those whose trust mIoU reaches ``threshold``."""
    if threshold is None:
        return np.ones(count, bool)
    if not 0.0 <= threshold <= 1.0:
        raise ExportError(f"--min-consistency must be in [0, 1], got {threshold}")
    if not store.has_trust:
        raise ExportError(f"{store.path} has no trust scores to gate on: translate it with --scorer HELD_OUT_SEGMENTER")
    miou = store.array(TRUST)[:count][:, TRUST_FIELDS.index("miou")]
    return np.nan_to_num(miou, nan=-1.0) >= threshold
