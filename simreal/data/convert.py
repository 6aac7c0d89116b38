"""Source frame -> store frame: remap ids to the target class set, then bring both to the store's size.

Shared by every importer and by collection, so a frame lands in a store the same way whatever its origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simreal.data.resize import resize_pair
from simreal.errors import ImporterError
from simreal.labels import LabelMapping, RemapReport


@dataclass(frozen=True)
class FrameSpec:
    """How frames are written: target size (width, height), aspect policy, image interpolation, unknown-id rule."""

    size: tuple[int, int] = (512, 256)
    policy: str = "crop"
    interpolation: str = "lanczos"
    unknown: str = "error"
    keep_source_label: bool = False


def prepare_frame(
    rgb: np.ndarray, source_ids: np.ndarray, mapping: LabelMapping, spec: FrameSpec, where: str = ""
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, RemapReport]:
    """(rgb, target label, source label or None, unknown-id report) at the store's resolution."""
    if rgb.shape[:2] != source_ids.shape[:2]:
        raise ImporterError(
            f"image is {rgb.shape[1]}x{rgb.shape[0]} but label is {source_ids.shape[1]}x{source_ids.shape[0]}"
            f"{' in ' + where if where else ''}"
        )
    label, report = mapping.remap(source_ids, unknown=spec.unknown, where=where)
    extra = (source_ids,) if spec.keep_source_label else ()
    out_rgb, out_label, out_extra = resize_pair(rgb, label, spec.size, spec.policy, spec.interpolation, extra)
    return out_rgb, out_label, (out_extra[0] if out_extra else None), report
