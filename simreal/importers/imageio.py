"""Decoding images and label maps into the importers' contract: RGB uint8 (H, W, 3) and ids uint8 (H, W).

Choices for unusual inputs:
- alpha is dropped; a greyscale image becomes three equal channels;
- a 16-bit image is scaled to 8 bits (v * 255 / 65535, rounded), so 16-bit exports of 8-bit data are exact;
- a palette (indexed) label PNG is read as its palette indices: OpenCV would expand it to colours, which is
  wrong for GTA5-style labels whose indices are the class ids;
- 16-bit id labels are accepted only when every value fits in uint8.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from simreal.importers.errors import (
    InvalidLabel,
    NotSingleChannel,
    SizeMismatch,
    UnmappedColour,
    UnreadableImage,
)

# CARLA writes the semantic tag into the red channel; OpenCV decodes to BGR(A), so red is index 2.
_RED_IN_BGR = 2


def _decode(path: Path) -> np.ndarray:
    # imdecode on bytes instead of imread: imread silently returns None for paths with non-ASCII names.
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise UnreadableImage(path, f"cannot be opened ({error.strerror})") from error
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if decoded is None:
        raise UnreadableImage(path)
    return decoded


def _to_uint8(pixels: np.ndarray, path: Path) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    raise UnreadableImage(path, f"unsupported pixel type {pixels.dtype} (expected 8- or 16-bit)")


def read_rgb(path: Path) -> np.ndarray:
    """Read a photo as RGB uint8 (H, W, 3)."""
    pixels = _to_uint8(_decode(path), path)
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    raise UnreadableImage(path, f"unsupported image shape {pixels.shape} (expected grey, BGR or BGRA)")


def _palette_indices(path: Path) -> np.ndarray | None:
    with Image.open(path) as image:
        if image.mode != "P":
            return None
        return np.array(image, dtype=np.uint8)


def _ids_as_uint8(ids: np.ndarray, path: Path) -> np.ndarray:
    if ids.dtype == np.uint8:
        return ids
    if ids.dtype == np.uint16 and int(ids.max(initial=0)) <= 255:
        return ids.astype(np.uint8)
    raise InvalidLabel(path, f"ids must fit in uint8, got {ids.dtype} with maximum {ids.max()}")


def read_ids(path: Path) -> np.ndarray:
    """Read a single-channel id label (H, W) uint8; a palette PNG yields its indices."""
    decoded = _decode(path)
    if decoded.ndim == 2:
        return _ids_as_uint8(decoded, path)
    indices = _palette_indices(path)
    if indices is None:
        raise NotSingleChannel(path, decoded.shape)
    return indices


def read_carla_tags(path: Path) -> np.ndarray:
    """Read a CARLA semantic image: the red channel of an RGB/RGBA PNG, or a single-channel tag PNG."""
    decoded = _decode(path)
    if decoded.dtype != np.uint8:
        raise InvalidLabel(path, f"CARLA tag image must be 8-bit, got {decoded.dtype}")
    if decoded.ndim == 2:
        return decoded
    if decoded.ndim == 3 and decoded.shape[2] in (3, 4):
        return np.ascontiguousarray(decoded[:, :, _RED_IN_BGR])
    raise InvalidLabel(path, f"CARLA tag image must be grey, RGB or RGBA, got shape {decoded.shape}")


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def read_colour_ids(path: Path, colour_to_id: Mapping[tuple[int, int, int], int]) -> np.ndarray:
    """Read an RGB colour-coded label and translate every colour to its id; unknown colours are an error."""
    decoded = _decode(path)
    if decoded.dtype != np.uint8 or decoded.ndim != 3 or decoded.shape[2] not in (3, 4):
        raise InvalidLabel(
            path, f"colour label must be 8-bit RGB or RGBA, got {decoded.dtype} {decoded.shape}"
        )
    packed = _pack_rgb(decoded[:, :, 2::-1])
    keys = np.array(sorted(_pack_rgb(np.array(c)) for c in colour_to_id), dtype=np.uint32)
    by_key = {int(_pack_rgb(np.array(c))): i for c, i in colour_to_id.items()}
    ids_in_key_order = np.array([by_key[int(k)] for k in keys], dtype=np.uint8)
    position = np.searchsorted(keys, packed).clip(max=len(keys) - 1)
    known = keys[position] == packed
    if not known.all():
        unknown = np.unique(packed[~known])
        colours = [(int(k) >> 16, (int(k) >> 8) & 255, int(k) & 255) for k in unknown]
        raise UnmappedColour(path, colours, int((~known).sum()))
    return ids_in_key_order[position]


def check_same_size(image: np.ndarray, ids: np.ndarray, image_path: Path, label_path: Path) -> None:
    """Raise SizeMismatch when image and label of one sample differ in height or width."""
    if image.shape[:2] != ids.shape[:2]:
        size = (image.shape[1], image.shape[0])
        raise SizeMismatch(image_path, label_path, size, (ids.shape[1], ids.shape[0]))
