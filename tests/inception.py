"""Test helpers for the FID Inception: random weights in pytorch-fid's format, and a guard against downloads."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import torch
import torchvision
from pytorch_fid import inception as pfid_inception


def make_random_inception_weights(path: Path, seed: int = 0) -> Path:
    """pytorch-fid's FID Inception with random weights (He-normal convolutions keep activations O(1))."""
    torch.manual_seed(seed)
    with (
        mock.patch.object(pfid_inception, "load_state_dict_from_url", return_value=None),
        mock.patch.object(torchvision.models.Inception3, "load_state_dict", return_value=None),
    ):
        net = pfid_inception.fid_inception_v3()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    return path


def no_download(*args: object, **kwargs: object) -> None:
    raise AssertionError("the Inception weights URL must never be fetched")
