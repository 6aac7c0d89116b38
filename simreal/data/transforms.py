"""Adapters that make the augmentation libraries users already have into ``FrameDataset(transform=...)`` callables:
each takes and returns ``(rgb uint8 (H, W, 3), label (H, W))`` so geometric changes move the labels with the pixels.

    FrameDataset(store, transform=albumentations_pair(A.Compose([A.HorizontalFlip(), A.RandomBrightnessContrast()])))
    FrameDataset(store, transform=torchvision_pair(v2.Compose([v2.RandomResizedCrop(256), v2.ColorJitter(0.2)])))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from simreal.data.dataset import PairTransform


def albumentations_pair(transform: Callable[..., dict[str, Any]]) -> PairTransform:
    """An albumentations-style callable (``transform(image=..., mask=...) -> {"image", "mask"}``)."""

    def apply(rgb: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = transform(image=rgb, mask=label)
        return out["image"], out["mask"]

    return apply


def torchvision_pair(transform: Callable[..., Any]) -> PairTransform:
    """A ``torchvision.transforms.v2`` transform: the frame as an ``Image``, the labels as a ``Mask`` (so only
    geometric transforms touch them, with nearest-neighbour interpolation)."""
    from torchvision import tv_tensors

    def apply(rgb: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image = tv_tensors.Image(torch.from_numpy(rgb).permute(2, 0, 1))
        mask = tv_tensors.Mask(torch.from_numpy(label.astype(np.int64)))
        image, mask = transform(image, mask)
        return image.permute(1, 2, 0).numpy(), mask.numpy()

    return apply
