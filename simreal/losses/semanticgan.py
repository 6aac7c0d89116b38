"""Losses of SemanticGAN that the other synthesizers lack: pix2pixHD's least-squares GAN and the SIPL.

Feature matching and the VGG19 perceptual loss are pix2pixHD's too and come from ``simreal.losses.synthesis``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from simreal.losses.label_consistency import cross_entropy_loss


def lsgan_d_loss(real_scores: Sequence[torch.Tensor], fake_scores: Sequence[torch.Tensor]) -> torch.Tensor:
    """pix2pixHD's D loss: ``0.5 * (MSE(D(real), 1) + MSE(D(fake), 0))``, summed over the scales."""
    terms = [
        F.mse_loss(real.float(), torch.ones_like(real, dtype=torch.float32))
        + F.mse_loss(fake.float(), torch.zeros_like(fake, dtype=torch.float32))
        for real, fake in zip(real_scores, fake_scores, strict=True)
    ]
    return 0.5 * torch.stack(terms).sum()


def lsgan_g_loss(fake_scores: Sequence[torch.Tensor]) -> torch.Tensor:
    """pix2pixHD's G loss: ``MSE(D(fake), 1)``, summed over the scales."""
    return torch.stack([F.mse_loss(s.float(), torch.ones_like(s, dtype=torch.float32)) for s in fake_scores]).sum()


def semantic_information_preserved_loss(
    segmenter: nn.Module, images: torch.Tensor, labels: torch.Tensor, ignore_index: int
) -> torch.Tensor:
    """SIPL: per-pixel cross-entropy of a frozen segmenter's prediction on ``images`` against ``labels``.

    The paper's Eq. 2 sums the log-softmax over the pixels; this is its mean over the labelled pixels, so the
    weight λ2 = 1 does not scale with the frame size. Logits of another size are upsampled bilinearly.
    """
    logits = segmenter(images)
    if tuple(logits.shape[-2:]) != tuple(labels.shape[-2:]):
        logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return cross_entropy_loss(logits, labels.long(), ignore_index)
