"""Sample grids: titled uint8 RGB images tiled into one PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from simreal.data.images import save_png

TITLE_HEIGHT = 14


def make_grid(samples: Sequence[tuple[str, np.ndarray]], columns: int | None = None) -> np.ndarray:
    """Tile ``(title, uint8 HxWx3)`` images row by row, each under its title, on a black background."""
    if not samples:
        raise ValueError("make_grid needs at least one image")
    for title, image in samples:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"sample {title!r}: expected uint8 HxWx3, got {image.dtype} {image.shape}")
    columns = columns or math.ceil(math.sqrt(len(samples)))
    rows = math.ceil(len(samples) / columns)
    cell_h = max(image.shape[0] for _, image in samples) + TITLE_HEIGHT
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_w = max(int(draw.textlength(title)) + 4 for title, _ in samples)  # titles must not overlap
    cell_w = max(title_w, *(image.shape[1] for _, image in samples))
    canvas = Image.new("RGB", (columns * cell_w, rows * cell_h))
    draw = ImageDraw.Draw(canvas)
    for i, (title, image) in enumerate(samples):
        x, y = (i % columns) * cell_w, (i // columns) * cell_h
        draw.text((x + 2, y + 1), title, fill=(255, 255, 255))
        canvas.paste(Image.fromarray(image), (x, y + TITLE_HEIGHT))
    return np.asarray(canvas)


def save_grid(samples: Sequence[tuple[str, np.ndarray]], path: Path, columns: int | None = None) -> np.ndarray:
    grid = make_grid(samples, columns)
    save_png(grid, path)
    return grid
