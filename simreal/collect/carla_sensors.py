"""Camera images from CARLA's streaming threads, matched to the frame the world was ticked to."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from simreal.errors import CollectionError


class FrameBuffer:
    """Thread-safe per-sensor buffer of images keyed by server frame id.

    Sensor callbacks run on the client's streaming threads and may arrive late or out of order, so images
    are kept by frame id instead of in arrival order. Asking for a frame drops everything older: those
    images are stale (counted in ``discarded``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.discarded = 0
        self._images: dict[int, Any] = {}
        self._ready = threading.Condition()

    def put(self, image: Any) -> None:
        """Sensor callback (any thread)."""
        with self._ready:
            self._images[image.frame] = image
            self._ready.notify_all()

    def delivered(self, since: int) -> set[int]:
        """Frame ids at or after ``since`` whose image is here (does not wait)."""
        with self._ready:
            return {f for f in self._images if f >= since}

    def take(self, frame: int, timeout_s: float) -> Any | None:
        """The image of exactly ``frame``, or None if it did not arrive within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._ready:
            for stale in [f for f in self._images if f < frame]:
                del self._images[stale]
                self.discarded += 1
            while frame not in self._images:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._ready.wait(remaining)
            return self._images.pop(frame)


def decode_bgra(image: Any, width: int, height: int) -> np.ndarray:
    """Copy a raw ``carla.Image`` into an (H, W, 4) BGRA uint8 array.

    Reads ``raw_data`` as delivered (ColorConverter.Raw): for the semantic camera the tag is channel 2.
    Never ``convert(CityScapesPalette)`` first, it overwrites the tags with palette colours in place.
    """
    if (image.width, image.height) != (width, height):
        raise CollectionError(
            f"camera image is {image.width}x{image.height}, expected {width}x{height} "
            "(was the blueprint's image_size_x/image_size_y ignored by the server?)"
        )
    raw = np.frombuffer(image.raw_data, dtype=np.uint8)
    if raw.size != height * width * 4:
        raise CollectionError(
            f"camera image has {raw.size} bytes, expected {height * width * 4} for BGRA {width}x{height}"
        )
    return raw.reshape(height, width, 4).copy()
