"""Bringing frames to the store's resolution: images smoothly, labels by nearest neighbour.

Aspect policy ``crop`` (default): scale so the frame covers the target, then cut the centre. ``stretch`` scales each
axis independently (distorts shapes, keeps all content).
"""

from __future__ import annotations

import cv2
import numpy as np

from simreal.errors import ConfigError

INTERPOLATIONS = {"lanczos": cv2.INTER_LANCZOS4, "area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}
POLICIES = ("crop", "stretch")


def parse_size(text: str) -> tuple[int, int]:
    """'512x256' -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise ConfigError(f"size must look like 512x256 (width x height), got {text!r}") from err
    if w <= 0 or h <= 0:
        raise ConfigError(f"size must be positive, got {text!r}")
    return w, h


def resize_pair(
    rgb: np.ndarray,
    label: np.ndarray,
    size: tuple[int, int],
    policy: str = "crop",
    interpolation: str = "lanczos",
    extra_labels: tuple[np.ndarray, ...] = (),
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Resize an RGB image and its label map(s) to ``size`` = (width, height) with one geometric transform."""
    if policy not in POLICIES:
        raise ConfigError(f"unknown resize policy {policy!r}; choose from {POLICIES}")
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"unknown interpolation {interpolation!r}; choose from {tuple(INTERPOLATIONS)}")
    tw, th = size
    h, w = label.shape[:2]
    if rgb.shape[:2] != (h, w):
        raise ConfigError(f"image is {rgb.shape[1]}x{rgb.shape[0]} but label is {w}x{h}")
    if (w, h) == (tw, th):
        return rgb, label, extra_labels
    if policy == "stretch":
        sw, sh = tw, th
    else:
        scale = max(tw / w, th / h)
        sw, sh = max(tw, round(w * scale)), max(th, round(h * scale))
    out_rgb = cv2.resize(rgb, (sw, sh), interpolation=INTERPOLATIONS[interpolation])
    # pixel centres (like PIL's NEAREST); plain INTER_NEAREST samples with a half-pixel offset towards the top-left
    labels = [cv2.resize(lab, (sw, sh), interpolation=cv2.INTER_NEAREST_EXACT) for lab in (label, *extra_labels)]
    x0, y0 = (sw - tw) // 2, (sh - th) // 2
    crop = (slice(y0, y0 + th), slice(x0, x0 + tw))
    return (
        np.ascontiguousarray(out_rgb[crop]),
        np.ascontiguousarray(labels[0][crop]),
        tuple(np.ascontiguousarray(lab[crop]) for lab in labels[1:]),
    )
