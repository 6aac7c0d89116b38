"""What a camera source hands to the collection pipeline, identical for CARLA and the procedural world."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class SensorFrame:
    """One synchronised capture of the RGB and semantic cameras, exactly as CARLA delivers them.

    Both images are BGRA uint8 (H, W, 4), the layout of ``carla.Image.raw_data``; the semantic tag sits in
    the red channel (index 2). ``meta`` carries provenance: backend, town, weather, frame id, server
    version, tag scheme, stream id.
    """

    rgb_bgra: np.ndarray
    semantic_bgra: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


class FrameSource(Protocol):
    """A stream of sensor frames. Used as a context manager so that cleanup always runs."""

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...

    def frames(self) -> Iterator[SensorFrame]: ...

    def reject(self) -> None:
        """The consumer dropped the frame just yielded (filters); a CARLA source then does not count it."""
