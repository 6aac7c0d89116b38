"""Object-level realism (DP-GAN supplementary): FID of object crops, overall and per size bucket.

Objects are connected components (8-connectivity) of one object class in the label map; without instance labels,
touching objects of one class (a row of parked cars) form one component. Each is cut as a square around its
bounding box (so that resizing does not distort it), clipped to the image, and resized to ``crop_size``.

Size buckets follow DP-GAN's thresholds on the label-mask area, defined on 512x256 Cityscapes frames and scaled to
the store's frame area: small < 2500 px, large > 10000 px, medium in between; components under 100 px are
dropped as too small to show an object. FID is computed per bucket only when both sides have ``min_crops`` crops.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from simreal.labels import LabelTable
from simreal.metrics.fid import fid_from_features

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


@dataclass(frozen=True)
class ObjectCropSpec:
    """Which components become crops and how they are bucketed (pixel thresholds at 512x256)."""

    class_names: tuple[str, ...] = DEFAULT_OBJECT_CLASSES
    crop_size: int = 128
    min_pixels: int = 100
    small_below: int = 2500
    large_above: int = 10000

    def scaled_thresholds(self, height: int, width: int) -> tuple[float, float, float]:
        """(min, small, large) pixel thresholds for frames of this size."""
        scale = height * width / REFERENCE_AREA
        return self.min_pixels * scale, self.small_below * scale, self.large_above * scale

    def class_ids(self, class_set: LabelTable) -> list[int]:
        """Ids of the object classes this class set has (others are skipped)."""
        names = set(class_set.names)
        return [class_set.id_of(name) for name in self.class_names if name in names]


@dataclass(frozen=True)
class ObjectCrop:
    class_id: int
    bucket: str
    area: int
    box: tuple[int, int, int, int]  # y0, x0, y1, x1 of the square cut
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
    min_area, small_below, large_above = spec.scaled_thresholds(height, width)
    crops = []
    for class_id in class_ids:
        mask = (label == class_id).astype(np.uint8)
        if not mask.any():
            continue
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for component in range(1, count):  # 0 is the background
            x, y, w, h, area = (int(v) for v in stats[component])
            if area < min_area:
                continue
            box = _square_box(y, x, h, w, height, width)
            y0, x0, y1, x1 = box
            crops.append(
                ObjectCrop(
                    class_id,
                    size_bucket(area, small_below, large_above),
                    area,
                    box,
                    _resize(rgb[y0:y1, x0:x1], spec.crop_size),
                )
            )
    return crops


def object_fid(
    scored: dict[str, np.ndarray], reference: dict[str, np.ndarray], min_crops: int
) -> dict[str, dict[str, Any]]:
    """FID per bucket (and ``all``) from crop features; a bucket with too few crops gets a note instead."""
    results = {}
    for bucket in (ALL, *BUCKETS):
        ours, theirs = _bucket_features(scored, bucket), _bucket_features(reference, bucket)
        entry: dict[str, Any] = {"crops": len(ours), "reference_crops": len(theirs), "fid": None}
        if min(len(ours), len(theirs)) < max(min_crops, 2):
            entry["note"] = f"not computed: fewer than {max(min_crops, 2)} crops on one side"
        else:
            entry["fid"] = fid_from_features(ours, theirs)
        results[bucket] = entry
    return results


def _bucket_features(features: dict[str, np.ndarray], bucket: str) -> np.ndarray:
    if bucket == ALL:
        parts = [features[b] for b in BUCKETS if b in features and len(features[b])]
        return np.concatenate(parts) if parts else np.zeros((0, 0))
    return features.get(bucket, np.zeros((0, 0)))


def _square_box(y: int, x: int, h: int, w: int, height: int, width: int) -> tuple[int, int, int, int]:
    """A square of side max(h, w) centred on the box, shifted (and if need be cut) to stay inside the image."""
    side_h, side_w = min(max(h, w), height), min(max(h, w), width)
    y0 = min(max(y + h // 2 - side_h // 2, 0), height - side_h)
    x0 = min(max(x + w // 2 - side_w // 2, 0), width - side_w)
    return y0, x0, y0 + side_h, x0 + side_w


def _resize(patch: np.ndarray, size: int) -> np.ndarray:
    shrinking = patch.shape[0] > size or patch.shape[1] > size
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
