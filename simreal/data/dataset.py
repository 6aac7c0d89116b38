"""A torch ``Dataset`` over a frame store, for the training methods."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from simreal.data.location import store_location
from simreal.data.store import FrameStore
from simreal.errors import ConfigError, StoreError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
NORMALIZATIONS = ("tanh", "imagenet", "unit")


def normalize_images(rgb: np.ndarray, mode: str) -> np.ndarray:
    """uint8 (..., H, W, 3) -> float32 with ``tanh`` = [-1, 1], ``unit`` = [0, 1], ``imagenet`` = mean/std."""
    x = rgb.astype(np.float32) / 255.0
    if mode == "tanh":
        return x * 2.0 - 1.0
    if mode == "imagenet":
        return (x - IMAGENET_MEAN) / IMAGENET_STD
    if mode == "unit":
        return x
    raise ConfigError(f"unknown normalisation {mode!r}; choose from {NORMALIZATIONS}")


def crop_hw(crop: Sequence[int] | None) -> tuple[int, int] | None:
    """A crop as people type it, ``[width, height]`` like a store's size, in FrameDataset's (height, width)."""
    if not crop:
        return None
    width, height = (int(v) for v in crop)
    return height, width


# (rgb uint8 (H, W, 3), label uint8 (H, W)) -> the same, e.g. an augmentation (see simreal.data.transforms)
PairTransform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class FrameDataset(Dataset):
    """Committed frames of a store as ``{"image": (3,h,w) float32, "label": (h,w) int64, "index": int}``.

    ``crop`` = (height, width) cuts a random window (``random_crop=True``) or the centre; ``hflip`` mirrors half of
    the samples; ``transform(rgb, label)`` then sees the uint8 frame and its labels and returns both (any size), before
    normalisation. Labels keep 255 as ignore. The store is opened lazily so the dataset pickles into workers.
    """

    def __init__(
        self,
        store_path: str | Path,
        crop: Sequence[int] | None = None,
        random_crop: bool = True,
        hflip: bool = True,
        normalize: str = "tanh",
        indices: Sequence[int] | None = None,
        transform: PairTransform | None = None,
    ) -> None:
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"unknown normalisation {normalize!r}; choose from {NORMALIZATIONS}")
        self.store_path = store_location(store_path)
        store = FrameStore.open(self.store_path)
        if len(store) == 0:
            raise StoreError(f"{self.store_path} holds no committed frames")
        self.height, self.width = store.height, store.width
        self.class_set = store.class_set
        self.evaluable_classes = store.evaluable_classes
        self.crop = tuple(crop) if crop is not None else None
        if self.crop is not None and (self.crop[0] > self.height or self.crop[1] > self.width):
            raise ConfigError(f"crop {self.crop} is larger than the store's frames ({self.height}, {self.width})")
        self.random_crop = random_crop
        self.hflip = hflip
        self.normalize = normalize
        self.indices = list(indices) if indices is not None else list(range(len(store)))
        self.transform = transform
        self._store: FrameStore | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_store"] = None
        return state

    def _open(self) -> FrameStore:
        if self._store is None:
            self._store = FrameStore.open(self.store_path)
        return self._store

    def __getitem__(self, item: int) -> dict:
        index = self.indices[item]
        store = self._open()
        rgb, label = store.rgb(index), store.label(index)
        if self.crop is not None:
            ch, cw = self.crop
            if self.random_crop:
                y0 = int(torch.randint(0, self.height - ch + 1, ()).item())
                x0 = int(torch.randint(0, self.width - cw + 1, ()).item())
            else:
                y0, x0 = (self.height - ch) // 2, (self.width - cw) // 2
            rgb, label = rgb[y0 : y0 + ch, x0 : x0 + cw], label[y0 : y0 + ch, x0 : x0 + cw]
        if self.hflip and bool(torch.rand(()) < 0.5):
            rgb, label = rgb[:, ::-1], label[:, ::-1]
        if self.transform is not None:
            rgb, label = self.transform(np.ascontiguousarray(rgb), np.ascontiguousarray(label))
            rgb, label = np.asarray(rgb, dtype=np.uint8), np.asarray(label)
            if rgb.ndim != 3 or rgb.shape[2] != 3 or label.shape != rgb.shape[:2]:
                raise ConfigError(f"transform returned rgb {rgb.shape} and label {label.shape}: want (H, W, 3), (H, W)")
        image = normalize_images(np.ascontiguousarray(rgb), self.normalize).transpose(2, 0, 1)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "label": torch.from_numpy(np.ascontiguousarray(label).astype(np.int64)),
            "index": index,
        }
