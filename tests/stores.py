"""Small frame stores for tests, made from the procedural world (``flat`` stands in for sim, ``textured`` for real)."""

from __future__ import annotations

from pathlib import Path

from simreal.data.store import FrameStore
from simreal.sim.frames import render_labelled_frames


def make_procedural_store(path: Path, look: str, frames: int = 4, height: int = 64, width: int = 128) -> Path:
    rgb, label = render_labelled_frames(frames, width=width, height=height, look=look)
    store = FrameStore.create(path, height=height, width=width)
    store.append(rgb, label, [{"frame": i} for i in range(frames)])
    return path
