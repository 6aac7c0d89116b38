"""Object-level realism (DP-GAN supplementary): KID (and, with enough crops, FID) of object crops per size bucket.

Objects are connected components (8-connectivity) of one object class in the label map; without instance labels,
touching objects of one class (a row of parked cars) form one component. Each is cut with a context margin around
its bounding box, clipped to the image, padded (black) to a square so that its aspect ratio survives, and resized to
``crop_size``. Components whose box is shorter than ``min_side`` pixels on its long side are dropped whatever the
frame size: upsampled many times over they would compare blur with blur.

Size buckets follow DP-GAN's thresholds on the label-mask area, defined on 512x256 Cityscapes frames and scaled to
the store's frame area: small < 2500 px, large > 10000 px, medium in between. Every bucket reports its crop counts
and KID (unbiased, so meaningful at small n) with its spread over random subsets once both sides have ``min_crops``
crops; FID, whose 2048-d covariance needs many more samples, only where both sides have ``FID_MIN_CROPS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from simreal.labels import LabelTable
from simreal.metrics.fid import fid_from_features, kernel_inception_distance

# Cityscapes' "human", "vehicle" and (without the thin poles) "object" groups, under the names class sets use.
DEFAULT_OBJECT_CLASSES = (
    "person",
    "rider",
    "vehicle",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
    "traffic_light",
    "traffic_sign",
)
BUCKETS = ("small", "medium", "large")
ALL = "all"
REFERENCE_AREA = 512 * 256
# FID's covariance of 2048-d Inception features has full rank only from 2048 samples on; with fewer it measured
# 676 +- 699 (16 crops) and 557 +- 428 (32 crops) between two halves of one distribution.
FID_MIN_CROPS = 2048


@dataclass(frozen=True)
class ObjectCropSpec:
    """Which components become crops, how they are cut and bucketed (bucket thresholds in pixels at 512x256)."""

    class_names: tuple[str, ...] = DEFAULT_OBJECT_CLASSES
    crop_size: int = 128
    min_side: int = 24  # absolute: the long side of the component's box, in pixels of the store's frames
    context: float = 0.1  # margin around the box on each side, as a fraction of the box's long side
    small_below: int = 2500
    large_above: int = 10000

    def scaled_thresholds(self, height: int, width: int) -> tuple[float, float]:
        """(small, large) bucket thresholds in pixels for frames of this size."""
        scale = height * width / REFERENCE_AREA
        return self.small_below * scale, self.large_above * scale

    def class_ids(self, class_set: LabelTable) -> list[int]:
        """Ids of the object classes this class set has (others are skipped)."""
        names = set(class_set.names)
        return [class_set.id_of(name) for name in self.class_names if name in names]


@dataclass(frozen=True)
class ObjectCrop:
    class_id: int
    bucket: str
    area: int
    box: tuple[int, int, int, int]  # y0, x0, y1, x1 of the cut (box plus context, inside the image)
    image: np.ndarray  # (crop_size, crop_size, 3) uint8


def size_bucket(area: float, small_below: float, large_above: float) -> str:
    if area < small_below:
        return "small"
    return "large" if area > large_above else "medium"


def object_crops(
    rgb: np.ndarray, label: np.ndarray, class_ids: Iterable[int], spec: ObjectCropSpec
) -> list[ObjectCrop]:
    """Crops of every large-enough connected component of the given classes in one frame."""
    height, width = label.shape
    small_below, large_above = spec.scaled_thresholds(height, width)
    crops = []
    for class_id in class_ids:
        mask = (label == class_id).astype(np.uint8)
        if not mask.any():
            continue
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for component in range(1, count):  # 0 is the background
            x, y, w, h, area = (int(v) for v in stats[component])
            if max(w, h) < spec.min_side:
                continue
            box = _context_box(y, x, h, w, spec.context, height, width)
            y0, x0, y1, x1 = box
            crops.append(
                ObjectCrop(
                    class_id,
                    size_bucket(area, small_below, large_above),
                    area,
                    box,
                    _square(rgb[y0:y1, x0:x1], spec.crop_size),
                )
            )
    return crops


def object_scores(
    scored: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    min_crops: int,
    kid_subsets: int = 50,
) -> dict[str, dict[str, Any]]:
    """Per bucket (and ``all``): crop counts, KID (mean, std or None, subset size) from ``min_crops`` crops on
    both sides, and FID from ``FID_MIN_CROPS``; what was not computed carries a note saying why."""
    results = {}
    for bucket in (ALL, *BUCKETS):
        ours, theirs = _bucket_features(scored, bucket), _bucket_features(reference, bucket)
        fewest = min(len(ours), len(theirs))
        entry: dict[str, Any] = {"crops": len(ours), "reference_crops": len(theirs), "kid": None, "fid": None}
        notes = []
        if fewest < max(min_crops, 2):
            notes.append(f"KID not computed: fewer than {max(min_crops, 2)} crops on one side")
        else:
            mean, std, subset_size = kernel_inception_distance(ours, theirs, num_subsets=kid_subsets)
            entry["kid"] = {"mean": mean, "std": std, "subset_size": subset_size}
        if fewest < FID_MIN_CROPS:
            notes.append(f"FID not computed: fewer than {FID_MIN_CROPS} crops on one side")
        else:
            entry["fid"] = fid_from_features(ours, theirs)
        if notes:
            entry["note"] = "; ".join(notes)
        results[bucket] = entry
    return results


def _bucket_features(features: dict[str, np.ndarray], bucket: str) -> np.ndarray:
    if bucket == ALL:
        parts = [features[b] for b in BUCKETS if b in features and len(features[b])]
        return np.concatenate(parts) if parts else np.zeros((0, 0))
    return features.get(bucket, np.zeros((0, 0)))


def _context_box(y: int, x: int, h: int, w: int, context: float, height: int, width: int) -> tuple[int, int, int, int]:
    """The box grown by ``context`` times its long side on every side, clipped to the image."""
    margin = int(round(context * max(h, w)))
    return max(y - margin, 0), max(x - margin, 0), min(y + h + margin, height), min(x + w + margin, width)


def _square(patch: np.ndarray, size: int) -> np.ndarray:
    """The patch centred on a black square of its long side, resized to ``size``: shapes are never squashed."""
    h, w = patch.shape[:2]
    side = max(h, w)
    canvas = np.zeros((side, side, 3), np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = patch
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interpolation)
