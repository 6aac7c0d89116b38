"""CARLA camera images (BGRA) -> RGB image and tag map."""

from __future__ import annotations

import numpy as np

from simreal.collect.frame import SensorFrame
from simreal.errors import CollectionError


def decode_sensor_frame(frame: SensorFrame) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (H,W,3) uint8, tags (H,W) uint8). The tag is the red channel, index 2 of BGRA."""
    for name, img in (("rgb", frame.rgb_bgra), ("semantic", frame.semantic_bgra)):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 4:
            raise CollectionError(f"{name} camera image must be BGRA uint8 (H, W, 4), got {img.dtype} {img.shape}")
    rgb = np.ascontiguousarray(frame.rgb_bgra[:, :, 2::-1])
    tags = np.ascontiguousarray(frame.semantic_bgra[:, :, 2])
    return rgb, tags
