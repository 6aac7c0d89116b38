"""Which captured frames are worth keeping: enough traffic, not a near-copy of the last kept one, not broken.

Every rule can be switched off or tuned from ``configs/collect``; every drop is counted by reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

from simreal.errors import LabelError
from simreal.labels import LabelTable

KEPT = "kept"
LOW_TRAFFIC = "low_traffic"
NEAR_DUPLICATE = "near_duplicate"
UNIFORM_IMAGE = "uniform_image"
UNLABELLED = "unlabelled"
SIZE_MISMATCH = "size_mismatch"
REASONS = (LOW_TRAFFIC, NEAR_DUPLICATE, UNIFORM_IMAGE, UNLABELLED, SIZE_MISMATCH)
# what a CARLA source did after too many drops in a row (counted next to the verdicts, not captures themselves)
SOURCE_EVENTS = ("ego_respawns", "conditions_abandoned")


@dataclass
class FilterConfig:
    min_traffic_share: float = 0.005  # vehicle + person pixels over the whole frame
    min_traffic_blobs: int = 1  # connected vehicle/person regions of at least `min_blob_pixels`
    min_blob_pixels: int = 30
    duplicate_threshold: float = 0.015  # mean abs difference (0..1) of 64x32 greyscale thumbnails
    uniform_std: float = 2.0  # RGB standard deviation below which a frame is blank
    enabled: tuple[str, ...] = REASONS


# Class names that are traffic (road users: what CARLA tags as pedestrians, riders and vehicles) in any class set the
# label registry offers: shared16 merges them into vehicle and person, the Cityscapes sets keep them apart. The
# Cityscapes "ego vehicle" is the camera's own car, not traffic.
TRAFFIC_NAMES = frozenset(
    {"vehicle", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle", "caravan", "trailer"}
)


def traffic_ids(class_set: LabelTable) -> tuple[int, ...]:
    """The ids of ``class_set``'s traffic classes (what the low-traffic rule counts)."""
    return tuple(c.id for c in class_set.classes if c.name in TRAFFIC_NAMES)


def check_filter_fits(config: FilterConfig, class_set: LabelTable) -> None:
    """Refuse, before any frame is captured, a filter the class set cannot serve."""
    if LOW_TRAFFIC in config.enabled and not traffic_ids(class_set):
        raise LabelError(
            f"class set {class_set.name!r} has no traffic classes ({', '.join(sorted(TRAFFIC_NAMES))}) for the "
            f"{LOW_TRAFFIC} rule: leave it out of filter.rules or collect in another class set"
        )


@dataclass
class FrameFilter:
    """Stateful per stream: the near-duplicate rule compares with the last kept frame of the same stream."""

    config: FilterConfig
    traffic_ids: tuple[int, ...]
    ignore_index: int = 255
    counts: Counter = field(default_factory=Counter)
    _last_thumb: np.ndarray | None = None

    def check_sizes(self, rgb_hw: tuple[int, ...], label_hw: tuple[int, ...], expected_hw: tuple[int, int]) -> str:
        """First look at a raw capture: both cameras must deliver the configured size."""
        bad = SIZE_MISMATCH in self.config.enabled and not (tuple(rgb_hw) == tuple(label_hw) == tuple(expected_hw))
        reason = SIZE_MISMATCH if bad else KEPT
        if bad:
            self.counts[reason] += 1
        return reason

    def check(self, rgb: np.ndarray, label: np.ndarray) -> str:
        """The reason to drop a frame (already remapped to the class set), or ``KEPT``; the verdict is counted."""
        reason = self._reason(rgb, label)
        self.counts[reason] += 1
        if reason == KEPT:
            self._last_thumb = thumbnail(rgb)
        return reason

    def remember(self, rgb: np.ndarray) -> None:
        """Seed the near-duplicate rule with a frame kept earlier (when a collection resumes)."""
        self._last_thumb = thumbnail(rgb)

    def _reason(self, rgb: np.ndarray, label: np.ndarray) -> str:
        on = self.config.enabled
        if UNIFORM_IMAGE in on and float(rgb.std()) < self.config.uniform_std:
            return UNIFORM_IMAGE
        if UNLABELLED in on and bool(np.all(label == self.ignore_index)):
            return UNLABELLED
        if LOW_TRAFFIC in on and not self._enough_traffic(label):
            return LOW_TRAFFIC
        if NEAR_DUPLICATE in on and self._last_thumb is not None:
            if float(np.abs(thumbnail(rgb) - self._last_thumb).mean()) < self.config.duplicate_threshold:
                return NEAR_DUPLICATE
        return KEPT

    def _enough_traffic(self, label: np.ndarray) -> bool:
        traffic = np.isin(label, self.traffic_ids)
        if traffic.mean() < self.config.min_traffic_share:
            return False
        if self.config.min_traffic_blobs <= 0:
            return True
        blobs = 0
        for class_id in self.traffic_ids:
            n, _, stats, _ = cv2.connectedComponentsWithStats((label == class_id).astype(np.uint8), connectivity=8)
            blobs += int((stats[1:, cv2.CC_STAT_AREA] >= self.config.min_blob_pixels).sum())
        return blobs >= self.config.min_traffic_blobs


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (64, 32), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def captured_count(counts: Counter | dict[str, int]) -> int:
    """Captures behind a report: every verdict (kept or a drop reason), not the source events."""
    return sum(counts.get(key, 0) for key in (KEPT, *REASONS))


def merge_counts(*counts: Counter) -> dict[str, int]:
    total: Counter = Counter()
    for c in counts:
        total.update(c)
    return {k: int(v) for k, v in sorted(total.items())}
