"""FrameDataset's transform hook: the frame and its labels change together, with torchvision v2 and with an
albumentations-style callable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from simreal.data.dataset import FrameDataset
from simreal.data.store import FrameStore
from simreal.data.transforms import albumentations_pair, torchvision_pair
from simreal.errors import ConfigError


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    rgb = np.zeros((1, 16, 32, 3), np.uint8)
    label = np.zeros((1, 16, 32), np.uint8)
    rgb[0, :, :8], label[0, :, :8] = 255, 3  # a white band on the left, class 3
    FrameStore.create(tmp_path / "s.zarr", height=16, width=32).append(rgb, label, [{}])
    return tmp_path / "s.zarr"


def test_torchvision_v2_moves_the_labels_with_the_pixels(store: Path) -> None:
    flip = torchvision_pair(v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.Resize((8, 16))]))
    sample = FrameDataset(store, hflip=False, normalize="unit", transform=flip)[0]
    assert sample["image"].shape == (3, 8, 16) and sample["label"].shape == (8, 16)
    white = sample["image"][0] > 0.5
    assert white[:, -4:].all() and not white[:, :-4].any()  # the band is now on the right...
    assert torch.equal(sample["label"] == 3, white)  # ... and so are its labels, still integer class ids


def test_an_albumentations_style_callable_is_adapted(store: Path) -> None:
    def like_albumentations(image: np.ndarray, mask: np.ndarray) -> dict:
        return {"image": image[:, ::-1].copy(), "mask": mask[:, ::-1].copy()}

    sample = FrameDataset(store, hflip=False, transform=albumentations_pair(like_albumentations))[0]
    assert (sample["label"][:, -8:] == 3).all() and (sample["label"][:, :-8] == 0).all()


def test_a_transform_that_loses_the_pairing_is_refused(store: Path) -> None:
    dataset = FrameDataset(store, hflip=False, transform=lambda rgb, label: (rgb[:8], label))
    with pytest.raises(ConfigError, match="transform returned rgb"):
        dataset[0]
