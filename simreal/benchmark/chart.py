"""A horizontal bar chart of one score per mix with ± std error bars, drawn with Pillow (no plotting library)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

ROW_HEIGHT = 34
BAR_AREA_WIDTH = 520
MARGIN = 16
BAR_COLOUR = (70, 120, 190)
BASELINE_COLOUR = (150, 150, 150)


def draw_score_chart(
    summaries: Sequence[Mapping[str, Any]],
    path: Path,
    metric: str = "miou",
    title: str = "mIoU on the evaluation store (%), mean ± std over seeds",
    baselines: Sequence[str] = (),
) -> Path:
    """One bar per mix (label, mean bar, ± std whisker, value); mixes named in ``baselines`` are grey."""
    font = ImageFont.load_default(size=14)
    label_width = max((_text_width(font, s["label"]) for s in summaries), default=0)
    left = MARGIN + label_width + 12
    width = left + BAR_AREA_WIDTH + 110
    top = MARGIN + 30
    height = top + ROW_HEIGHT * len(summaries) + 40
    stats = [s[metric] for s in summaries]
    highest = max((100 * (st["mean"] + st["std"]) for st in stats if st["mean"] is not None), default=0.0)
    tick_step = 10 if highest <= 60 else 20
    scale_max = max(tick_step, tick_step * math.ceil(highest / tick_step))
    scale = BAR_AREA_WIDTH / scale_max

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), title, fill="black", font=font)
    axis_y = top + ROW_HEIGHT * len(summaries) + 4
    for tick in range(0, scale_max + 1, tick_step):
        x = left + tick * scale
        draw.line([(x, top - 4), (x, axis_y)], fill=(225, 225, 225))
        draw.text((x - _text_width(font, str(tick)) / 2, axis_y + 4), str(tick), fill="black", font=font)
    draw.line([(left, top - 4), (left, axis_y)], fill="black")

    for row, (summary, stat) in enumerate(zip(summaries, stats, strict=True)):
        y = top + row * ROW_HEIGHT
        middle = y + ROW_HEIGHT / 2
        draw.text((left - 12 - _text_width(font, summary["label"]), middle - 8), summary["label"], "black", font)
        if stat["mean"] is None:
            draw.text((left + 6, middle - 8), "no score", fill="black", font=font)
            continue
        mean, std = 100 * stat["mean"], 100 * stat["std"]
        colour = BASELINE_COLOUR if summary["name"] in baselines else BAR_COLOUR
        draw.rectangle([left, y + 6, left + mean * scale, y + ROW_HEIGHT - 6], fill=colour)
        low, high = left + max(mean - std, 0) * scale, left + (mean + std) * scale
        draw.line([(low, middle), (high, middle)], fill="black", width=2)
        for x in (low, high):
            draw.line([(x, middle - 6), (x, middle + 6)], fill="black", width=2)
        draw.text((high + 8, middle - 8), f"{mean:.1f} ± {std:.1f}", fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _text_width(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> float:
    box = font.getbbox(text)
    return box[2] - box[0]
