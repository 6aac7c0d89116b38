"""SemanticGAN losses: pix2pixHD's least-squares GAN terms and the SIPL through a frozen segmenter."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from simreal.losses.semanticgan import lsgan_d_loss, lsgan_g_loss, semantic_information_preserved_loss


def test_lsgan_terms_sum_over_scales() -> None:
    real = [torch.full((2, 1, 4, 4), 1.0), torch.full((2, 1, 2, 2), 0.5)]
    fake = [torch.full((2, 1, 4, 4), 0.0), torch.full((2, 1, 2, 2), 1.0)]
    # scale 1: real right, fake right -> 0; scale 2: (0.5 - 1)^2 + (1 - 0)^2 = 1.25; halved
    assert float(lsgan_d_loss(real, fake)) == pytest.approx(0.5 * 1.25)
    # G wants D(fake) = 1: scale 1 (0 - 1)^2 = 1, scale 2: 0
    assert float(lsgan_g_loss(fake)) == pytest.approx(1.0)


def test_lsgan_generator_gradient_pushes_scores_towards_one() -> None:
    scores = torch.zeros(1, 1, 3, 3, requires_grad=True)
    lsgan_g_loss([scores]).backward()
    assert bool((scores.grad < 0).all())  # descending raises the scores


class _PickChannels(nn.Module):
    """A 'segmenter' whose logits are the image channels, scaled: class c = channel c."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 10 * images


def test_sipl_is_the_mean_cross_entropy_over_labelled_pixels() -> None:
    images = torch.zeros(1, 3, 2, 2)
    images[0, 0] = 1.0  # every pixel looks like class 0
    labels = torch.tensor([[[0, 0], [1, 255]]])
    loss = semantic_information_preserved_loss(_PickChannels(), images, labels, ignore_index=255)
    right = -math.log(math.exp(10) / (math.exp(10) + 2))
    wrong = -math.log(1 / (math.exp(10) + 2))
    assert float(loss) == pytest.approx((2 * right + wrong) / 3, rel=1e-5)


def test_sipl_upsamples_coarse_logits_and_reaches_the_image() -> None:
    segmenter = nn.Conv2d(3, 4, 2, stride=2)  # half-resolution logits
    images = torch.randn(2, 3, 8, 8, requires_grad=True)
    labels = torch.randint(0, 4, (2, 8, 8))
    loss = semantic_information_preserved_loss(segmenter, images, labels, ignore_index=255)
    loss.backward()
    assert images.grad is not None and float(images.grad.abs().sum()) > 0


def test_sipl_of_a_frame_without_labels_is_zero() -> None:
    labels = torch.full((1, 4, 4), 255)
    assert float(semantic_information_preserved_loss(_PickChannels(), torch.randn(1, 3, 4, 4), labels, 255)) == 0
