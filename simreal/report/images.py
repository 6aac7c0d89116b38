"""Report figures drawn with PIL: titled image grids and a grouped per-class IoU bar chart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)
GRID_LINE = (215, 215, 215)
# Distinguishable bar colours, one per scored store (cycled beyond ten).
STORE_COLOURS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
PAD = 4
TITLE_HEIGHT = 16


def image_grid(rows: Sequence[Sequence[np.ndarray]], column_titles: Sequence[str]) -> np.ndarray:
    """Rows of equally many uint8 (H, W, 3) tiles under one title per column; tiles are scaled to the first
    tile's height so that frames of different sizes (a source frame and its translation) line up."""
    if not rows or any(len(row) != len(column_titles) for row in rows):
        raise ValueError(f"every grid row needs {len(column_titles)} tiles (one per column title)")
    tile_h = rows[0][0].shape[0]
    scaled = [[_fit_height(tile, tile_h) for tile in row] for row in rows]
    column_w = [max(row[c].shape[1] for row in scaled) for c in range(len(column_titles))]
    width = sum(column_w) + PAD * (len(column_w) + 1)
    height = TITLE_HEIGHT + len(rows) * (tile_h + PAD) + PAD
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    x = PAD
    for c, title in enumerate(column_titles):
        draw.text((x, 2), title, fill=INK, font=font)
        for r, row in enumerate(scaled):
            canvas.paste(Image.fromarray(row[c]), (x, TITLE_HEIGHT + r * (tile_h + PAD)))
        x += column_w[c] + PAD
    return np.asarray(canvas)


def iou_bar_chart(per_store: Mapping[str, Mapping[str, float | None]], class_names: Sequence[str]) -> np.ndarray:
    """Grouped bars: per class, one bar per store (IoU in [0, 1]); undefined IoU is marked "n/a"."""
    if not class_names or not per_store:
        raise ValueError("an IoU chart needs at least one class and one store")
    font = ImageFont.load_default()
    bar_w, group_gap = 10, 12
    group_w = bar_w * len(per_store) + group_gap
    left, top, plot_h, label_h = 44, 28 + 14 * len(per_store), 220, 110
    width = left + group_w * len(class_names) + PAD * 2
    height = top + plot_h + label_h
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((PAD, PAD), "per-class IoU", fill=INK, font=font)
    for i, name in enumerate(per_store):
        y = 20 + 14 * i
        draw.rectangle((left, y, left + 10, y + 10), fill=STORE_COLOURS[i % len(STORE_COLOURS)])
        draw.text((left + 16, y - 1), name, fill=INK, font=font)
    bottom = top + plot_h
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = bottom - round(tick * plot_h)
        draw.line((left, y, width - PAD, y), fill=GRID_LINE)
        draw.text((PAD, y - 6), f"{tick:.2f}", fill=INK, font=font)
    for c, class_name in enumerate(class_names):
        x0 = left + c * group_w + group_gap // 2
        for s, values in enumerate(per_store.values()):
            value = values.get(class_name)
            x = x0 + s * bar_w
            if value is None:
                draw.text((x, bottom - 12), "-", fill=INK, font=font)
                continue
            y = bottom - round(min(max(value, 0.0), 1.0) * plot_h)
            draw.rectangle((x, y, x + bar_w - 2, bottom), fill=STORE_COLOURS[s % len(STORE_COLOURS)])
        canvas.paste(_vertical_text(class_name, font, label_h - PAD), (x0, bottom + PAD))
    draw.line((left, bottom, width - PAD, bottom), fill=INK)
    return np.asarray(canvas)


def _vertical_text(text: str, font: ImageFont.ImageFont, length: int) -> Image.Image:
    strip = Image.new("RGB", (length, 12), BACKGROUND)
    ImageDraw.Draw(strip).text((0, 0), text, fill=INK, font=font)
    return strip.rotate(-90, expand=True)  # reads downwards from the axis


def _fit_height(tile: np.ndarray, height: int) -> np.ndarray:
    if tile.shape[0] == height:
        return tile
    width = max(1, round(tile.shape[1] * height / tile.shape[0]))
    return np.asarray(Image.fromarray(tile).resize((width, height), Image.Resampling.BILINEAR))
