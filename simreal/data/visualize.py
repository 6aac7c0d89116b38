"""Picture grids of frames and their labels."""

from __future__ import annotations

import numpy as np

from simreal.data.store import FrameStore
from simreal.errors import StoreError


def frame_indices(total: int, n: int) -> list[int]:
    """``n`` frames spread evenly over a store of ``total``."""
    if total <= 0:
        return []
    n = min(n, total)
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, n)})


def grid_rows(rows: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    """Tile rows of equally sized RGB images into one RGB image with white gaps."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = img
    return canvas


def store_grid(store: FrameStore, n: int = 8) -> np.ndarray:
    """One row per frame: image | colourised label."""
    indices = frame_indices(len(store), n)
    if not indices:
        raise StoreError(f"{store.path} holds no committed frames to show")
    return grid_rows([[store.rgb(i), store.class_set.colorize(store.label(i))] for i in indices])
