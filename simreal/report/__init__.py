"""Score reports: ``scores.json`` rendered as Markdown and HTML next to the PNG figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simreal.data.images import save_png
from simreal.report.document import FID_MIN_IMAGES, build_sections
from simreal.report.images import image_grid, iou_bar_chart
from simreal.report.render import to_html, to_markdown

REPORT_TITLE = "simreal score report"

__all__ = ["FID_MIN_IMAGES", "image_grid", "iou_bar_chart", "save_png", "write_report"]


def write_report(scores: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``scores.json``, ``report.md`` and ``report.html`` into ``out_dir`` (figures are written by the
    caller beforehand; the report links them by the relative paths recorded in ``scores``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = build_sections(scores)
    paths = {"json": out / "scores.json", "markdown": out / "report.md", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(scores, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(to_markdown(REPORT_TITLE, sections), encoding="utf-8")
    paths["html"].write_text(to_html(REPORT_TITLE, sections), encoding="utf-8")
    return paths
