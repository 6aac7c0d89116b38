"""uint8 frames: conversions to and from the [-1, 1] tensors every network here uses, and PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def uint8_to_tensor(rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [-1, 1] on ``device``."""
    # Ray hands batches over as read-only views; torch wants memory it may write to.
    rgb = np.ascontiguousarray(rgb) if rgb.flags.writeable else np.array(rgb)
    x = torch.from_numpy(rgb).to(device)
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] (B, 3, H, W) -> uint8 (B, H, W, 3) on the CPU (values outside the range are clipped)."""
    rgb = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return rgb.permute(0, 2, 3, 1).cpu().numpy()


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 (H, W, 3) RGB image as PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path
