"""The ``simreal score`` engine (core, no Ray): FID/KID against real images, label consistency under a held-out
segmenter, object-level KID/FID.

One process, batched inference on one device (CUDA when available): every store is read once in frame order and
each batch goes through Inception (whole frames and object crops) and the segmenter. Outputs in ``out``:
``scores.json``, ``report.md``, ``report.html``, ``grid_<store>.png`` and ``per_class_iou.png``.

``ScoreJob.fid`` decides what happens without Inception weights: ``require`` fails before any work, ``auto`` skips
FID/KID and object-level KID/FID (with the reason in every output), ``off`` skips them on purpose. A skipped FID never
builds Inception, so label consistency alone stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simreal.data.location import StoreLocation, store_location
from simreal.data.store import FrameStore, StoreError, source_frame_of
from simreal.device import pick_device
from simreal.errors import ScoringError
from simreal.inference import load_segmenter
from simreal.labels import list_class_sets
from simreal.metrics.consistency import (
    LabelConsistency,
    check_class_sets_match,
    eval_protocol,
    open_training_store,
    segment_images,
    segmenter_class_set,
    segmenter_training_store,
)
from simreal.metrics.fid import (
    InceptionWeightsError,
    fid_from_features,
    inception_features,
    kernel_inception_distance,
    load_inception,
    resolve_inception_weights,
)
from simreal.metrics.objects import FID_MIN_CROPS, ObjectCrop, ObjectCropSpec, object_crops, object_scores
from simreal.progress import progress_bar
from simreal.report import FID_MIN_IMAGES, image_grid, iou_bar_chart, save_png, write_report

SCORES_VERSION = 2  # 2: FID may be skipped (fid/kid/objects null, fid_skipped says why)
FID_MODES = ("require", "auto", "off")


class ScoreError(ScoringError):
    """Inputs that cannot be scored as asked."""


@dataclass(frozen=True)
class ScoreJob:
    stores: Sequence[str | Path]
    reference: str | Path
    segmenter: Path
    out: Path | None = None
    batch_size: int = 16
    device: str = "auto"
    inception_weights: Path | None = None
    inception_dims: int = 2048  # pytorch-fid's --dims; papers use 2048
    kid_subsets: int = 50
    min_object_crops: int = 50
    objects: ObjectCropSpec = field(default_factory=ObjectCropSpec)
    grid_rows: int = 4
    fid: str = "require"  # one of FID_MODES
    offline: bool = False  # never download the Inception weights (also: $SIMREAL_OFFLINE=1)
    # names of scored stores: the untranslated frames, and the floors (real frames held out of training, the same
    # sim frames in the real look) against which each translation's share of the FID gap closed is stated
    raw: str | None = None
    floors: Sequence[str] = ()


@dataclass
class StoreScan:
    """What one pass over a store yields (no features when FID is skipped)."""

    features: np.ndarray | None
    object_features: dict[str, np.ndarray]
    grid: list[list[np.ndarray]]


@dataclass
class InceptionSetup:
    """The Inception network and its weights file, or why FID/KID are skipped."""

    network: torch.nn.Module | None
    weights: Path | None
    skipped: str | None


def default_out_dir(first_store: StoreLocation) -> Path:
    """``<first store>.scores`` next to it (a ``.zarr`` suffix is dropped); in the working directory for a store
    on an object store (reports are local files)."""
    name = f"{first_store.name.removesuffix('.zarr')}.scores"
    return first_store.with_name(name) if isinstance(first_store, Path) else Path(name)


def run_score(job: ScoreJob) -> dict[str, Any]:
    """Score every store of ``job``; write the report files and return the ``scores.json`` content."""
    if not job.stores:
        raise ScoreError("give at least one store to score")
    if job.batch_size < 1 or job.grid_rows < 1:
        raise ScoreError("--batch-size and the grid rows must be at least 1")
    if job.fid not in FID_MODES:
        raise ScoreError(f"--fid must be one of {', '.join(FID_MODES)}, got {job.fid!r}")
    _check_object_classes(job.objects.class_names)
    device = pick_device(job.device)
    out = Path(job.out) if job.out is not None else default_out_dir(store_location(job.stores[0]))
    min_frames = 1 if job.fid == "off" else 2
    reference = _open_store(job.reference, "reference", min_frames)
    stores = [_open_store(path, "scored", min_frames) for path in job.stores]
    inception = _setup_inception(job, device)  # before any heavy work: "require" fails here
    segmenter = load_segmenter(job.segmenter, device)
    segmenter_set = segmenter_class_set(job.segmenter)
    for store in stores:
        check_class_sets_match(segmenter_set, store)
    training = open_training_store(job.segmenter)

    network = inception.network
    reference_scan = _scan(reference, "reference", job, network, None, device) if network is not None else None
    results, warnings = [], []
    for name, store in zip(_unique_names([store_location(p) for p in job.stores]), stores, strict=True):
        protocol = eval_protocol(store, training)
        consistency = LabelConsistency(segmenter.spec.num_classes, protocol, store.class_set.ignore_index, device)
        scan = _scan(store, name, job, network, (segmenter, consistency), device)
        results.append(_store_scores(name, store, scan, reference_scan, consistency, job, out, inception.skipped))
        if network is not None and min(len(store), len(reference)) < FID_MIN_IMAGES:
            warnings.append(
                f"{name}: FID/KID from {len(store)} scored and {len(reference)} reference images; FID on fewer "
                f"than {FID_MIN_IMAGES} images is biased upwards and not comparable to published numbers"
            )
    if training is None:
        recorded = segmenter_training_store(job.segmenter)
        where = f"{recorded} could not be opened" if recorded else "its run records no training store"
        warnings.append(f"segmenter's training store unknown ({where}): scored on each store's own classes")
    chart_classes = list(dict.fromkeys(c for r in results for c in r["consistency"]["classes"]))
    iou_by_store = {r["name"]: r["consistency"]["per_class_iou"] for r in results}
    save_png(iou_bar_chart(iou_by_store, chart_classes), out / "per_class_iou.png")
    object_classes = [reference.class_set.name_of(i) for i in job.objects.class_ids(reference.class_set)]
    scores = {
        "simreal_score_version": SCORES_VERSION,
        "out": str(out),
        "reference": {"path": str(reference.path), "images": len(reference)},
        "segmenter": {"path": str(job.segmenter), "training_store": str(training.path) if training else None},
        "settings": {
            "batch_size": job.batch_size,
            "device": str(device),
            "fid": job.fid,
            "inception_weights": str(inception.weights) if inception.weights is not None else None,
            "inception_dims": job.inception_dims,
            "kid_subsets": job.kid_subsets,
            "objects": {
                **asdict(job.objects),
                "classes": object_classes,
                "min_crops": job.min_object_crops,
                "fid_min_crops": FID_MIN_CROPS,
            },
        },
        "stores": results,
        "figures": {"iou_chart": "per_class_iou.png"},
        "fid_skipped": inception.skipped,
        "warnings": warnings,
        "gap": fid_gap(results, job.raw, job.floors),
    }
    write_report(scores, out)
    return scores


def _store_scores(
    name: str,
    store: FrameStore,
    scan: StoreScan,
    reference_scan: StoreScan | None,
    consistency: LabelConsistency,
    job: ScoreJob,
    out: Path,
    fid_skipped: str | None,
) -> dict[str, Any]:
    """One store's entry of ``scores.json``; writes its sample grid."""
    with_source = len(scan.grid[0]) == 4
    grid_columns = ["sim", "translated", "label", "prediction"] if with_source else ["image", "label", "prediction"]
    grid_file = f"grid_{name}.png"
    save_png(image_grid(scan.grid, grid_columns), out / grid_file)
    return {
        "name": name,
        "path": str(store.path),
        "images": len(store),
        **_realism_scores(scan, reference_scan, job, fid_skipped),
        "consistency": consistency.scores(store.class_set),
        "grid_columns": grid_columns,
        "figures": {"grid": grid_file},
    }


def _realism_scores(
    scan: StoreScan, reference_scan: StoreScan | None, job: ScoreJob, fid_skipped: str | None
) -> dict[str, Any]:
    """``fid``, ``kid``, ``objects`` (all ``None`` when FID is skipped) and ``fid_skipped`` (why, or ``None``)."""
    if scan.features is None or reference_scan is None or reference_scan.features is None:
        return {"fid": None, "kid": None, "objects": None, "fid_skipped": fid_skipped}
    kid_mean, kid_std, subset_size = kernel_inception_distance(
        scan.features, reference_scan.features, num_subsets=job.kid_subsets
    )
    return {
        "fid": fid_from_features(scan.features, reference_scan.features),
        "kid": {"mean": kid_mean, "std": kid_std, "subset_size": subset_size, "subsets": job.kid_subsets},
        "objects": object_scores(
            scan.object_features, reference_scan.object_features, job.min_object_crops, job.kid_subsets
        ),
        "fid_skipped": None,
    }


def _open_store(path: str | Path, role: str, min_frames: int) -> FrameStore:
    store = FrameStore.open(path)
    if len(store) < min_frames:
        need = "FID and KID need at least 2 (or use --fid off)" if min_frames == 2 else "scoring needs at least 1"
        raise ScoreError(f"{role} store {path} holds {len(store)} frame(s); {need}")
    return store


def _setup_inception(job: ScoreJob, device: torch.device) -> InceptionSetup:
    """Inception per ``job.fid``: ``require`` raises without weights, ``auto`` records why FID is skipped."""
    if job.fid == "off":
        return InceptionSetup(None, None, "FID/KID switched off (--fid off); use --fid auto or --fid require")
    try:
        weights = resolve_inception_weights(job.inception_weights, offline=job.offline)
        network = load_inception(weights, dims=job.inception_dims, device=device)
    except InceptionWeightsError as err:
        if job.fid == "require":
            raise
        return InceptionSetup(None, None, f"Inception weights unavailable (--fid auto): {err}")
    return InceptionSetup(network, weights, None)


def _check_object_classes(names: Sequence[str]) -> None:
    known = {name for table in list_class_sets() for name in table.names}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ScoreError(f"unknown object class(es) {unknown}; class sets define: {', '.join(sorted(known))}")


def fid_gap(results: Sequence[dict[str, Any]], raw: str | None, floors: Sequence[str]) -> dict[str, Any] | None:
    """Each other store's share of the FID gap closed, (FID_raw - FID) / (FID_raw - FID_floor), for every floor.

    1 reaches the floor, 0 is no better than the raw frames, below 0 worse. None without FID or a raw store.
    """
    fids = {r["name"]: r["fid"] for r in results}
    if raw is None or fids.get(raw) is None:
        return None
    missing = [name for name in (raw, *floors) if name not in fids]
    if missing:
        raise ScoreError(f"gap: no scored store named {', '.join(missing)} (scored: {', '.join(fids)})")
    closed = {
        name: {
            floor: (fids[raw] - fid) / (fids[raw] - fids[floor]) if fids[raw] != fids[floor] else None
            for floor in floors
        }
        for name, fid in fids.items()
        if name != raw and name not in floors and fid is not None
    }
    return {"raw": raw, "floors": list(floors), "closed": closed}


def _unique_names(paths: Sequence[StoreLocation]) -> list[str]:
    names: list[str] = []
    for path in paths:
        base = path.name.removesuffix(".zarr") or "store"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


@torch.no_grad()
def _scan(
    store: FrameStore,
    name: str,
    job: ScoreJob,
    inception: torch.nn.Module | None,
    segmentation: tuple[torch.nn.Module, LabelConsistency] | None,
    device: torch.device,
) -> StoreScan:
    """One pass in frame order: Inception features of frames and object crops (without ``inception``: none),
    segmentation, grid tiles."""
    n = len(store)
    grid_indices = set(np.linspace(0, n - 1, min(job.grid_rows, n)).round().astype(int).tolist())
    object_ids = job.objects.class_ids(store.class_set)
    features: list[np.ndarray] = []
    crop_features = CropFeatures(inception, job.batch_size, device) if inception is not None else None
    grid: list[list[np.ndarray]] = []
    sources = {i: _source_frame(store, i) for i in grid_indices} if segmentation is not None else {}
    if any(frame is None for frame in sources.values()):
        sources = {}  # one layout per grid: sim frames only when every row has one
    with progress_bar(f"score {name}", total=n) as bar:
        for start in range(0, n, job.batch_size):
            rgb, label = store.read_range(start, start + job.batch_size)
            if crop_features is not None:
                features.append(inception_features(crop_features.inception, rgb, device))
                for i in range(len(rgb)):
                    crop_features.add(object_crops(rgb[i], label[i], object_ids, job.objects))
            if segmentation is not None:
                net, consistency = segmentation
                predictions = segment_images(net, rgb, device)
                consistency.update(predictions, torch.from_numpy(label))
                predictions = predictions.cpu().numpy().astype(np.uint8)
                colours = store.class_set
                for i in (i for i in range(len(rgb)) if start + i in grid_indices):
                    row = [rgb[i], colours.colorize(label[i]), colours.colorize(predictions[i])]
                    source = sources.get(start + i)
                    grid.append([source, *row] if source is not None else row)
            bar.advance(len(rgb))
    if crop_features is None:
        return StoreScan(None, {}, grid)
    return StoreScan(np.concatenate(features), crop_features.finish(), grid)


class CropFeatures:
    """Inception features of object crops per size bucket, computed in full batches."""

    def __init__(self, inception: torch.nn.Module, batch_size: int, device: torch.device) -> None:
        self.inception, self.batch_size, self.device = inception, batch_size, device
        self.pending: list[tuple[str, np.ndarray]] = []
        self.features: dict[str, list[np.ndarray]] = {}

    def add(self, crops: Sequence[ObjectCrop]) -> None:
        self.pending.extend((crop.bucket, crop.image) for crop in crops)
        while len(self.pending) >= self.batch_size:
            self._flush(self.batch_size)

    def finish(self) -> dict[str, np.ndarray]:
        if self.pending:
            self._flush(len(self.pending))
        return {bucket: np.concatenate(parts) for bucket, parts in self.features.items()}

    def _flush(self, count: int) -> None:
        batch, self.pending = self.pending[:count], self.pending[count:]
        feats = inception_features(self.inception, np.stack([image for _, image in batch]), self.device)
        for (bucket, _), row in zip(batch, feats, strict=True):
            self.features.setdefault(bucket, []).append(row[None])


def _source_frame(store: FrameStore, index: int) -> np.ndarray | None:
    """The simulator frame a translated frame was made from, when its provenance names an existing one."""
    source = source_frame_of(store.path, store.provenance(index))
    if source is None:
        return None
    try:
        return FrameStore.open(source[0]).rgb(source[1])
    except (StoreError, IndexError, ValueError):
        return None


def scores_summary(scores: dict[str, Any]) -> str:
    """One line per store for the terminal, then why FID/KID were skipped (if they were)."""
    lines = []
    for store in scores["stores"]:
        c = store["consistency"]
        realism = "FID not computed  KID not computed"
        if store["fid"] is not None:
            realism = f"FID {store['fid']:.2f}  KID {store['kid']['mean']:.4f}"
        lines.append(
            f"{store['name']}: {store['images']} images  {realism}  "
            f"pixel acc {_fmt(c['pixel_acc'])}  mean acc {_fmt(c['mean_acc'])}  mIoU {_fmt(c['miou'])}"
        )
    if scores["fid_skipped"]:
        lines.append(f"FID/KID and object-level KID/FID skipped: {scores['fid_skipped']}")
    gap = scores.get("gap")
    for name, shares in (gap or {}).get("closed", {}).items():
        parts = [f"{100 * v:.1f}% to {floor}" for floor, v in shares.items() if v is not None]
        if parts:
            lines.append(f"{name}: FID gap to {gap['raw']} closed {', '.join(parts)}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
