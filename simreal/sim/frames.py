"""Procedural frames as plain arrays, labels already in a class set: for tests, benchmarks and demos."""

from __future__ import annotations

from itertools import islice

import numpy as np

from simreal.collect.decode import decode_sensor_frame
from simreal.labels import get_mapping
from simreal.sim.source import ProceduralSource


def render_labelled_frames(
    count: int,
    width: int = 512,
    height: int = 256,
    look: str = "flat",
    seed: int = 1,
    capture_every: int = 3,
    town: str = "Town10HD",
    class_set: str = "shared16",
) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 (N,H,W,3), label uint8 (N,H,W)) of ``count`` consecutive frames of one procedural stream."""
    lut = get_mapping("carla-0.9.14", class_set).lut
    rgbs, labels = [], []
    source = ProceduralSource(town=town, width=width, height=height, look=look, capture_every=capture_every, seed=seed)
    with source:
        for frame in islice(source.frames(), count):
            rgb, tags = decode_sensor_frame(frame)
            rgbs.append(rgb)
            labels.append(lut[tags])
    return np.stack(rgbs), np.stack(labels)
