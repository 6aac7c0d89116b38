"""Semantic-guided cGAN losses: every class weighs equally whatever its area; the semantic perceptual loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from simreal.losses.semguided import (
    class_balanced_patch_loss,
    patch_class_shares,
    semantic_discriminator_loss,
    semantic_generator_loss,
    semantic_perceptual_loss,
)


def two_class_labels(small_rows: int) -> torch.Tensor:
    """A 1x64x64 map: class 1 in the top ``small_rows`` rows, class 0 below (rows a multiple of the 8-pixel patch)."""
    labels = torch.zeros(1, 64, 64, dtype=torch.long)
    labels[:, :small_rows] = 1
    return labels


def test_shares_are_per_class_areas_on_the_score_grid() -> None:
    labels = two_class_labels(8)
    labels[0, 8:16, :32] = 255
    shares = patch_class_shares(labels, 3, (8, 8))
    assert shares.shape == (1, 3, 8, 8)
    assert torch.equal(shares[0, 1, 0], torch.ones(8))
    assert torch.equal(shares[0, 0, 1], torch.tensor([0.0] * 4 + [1.0] * 4))  # don't-care belongs to no class
    assert float(shares[0, 2].sum()) == 0


def test_each_class_contributes_equally_regardless_of_its_area() -> None:
    for small_rows in (8, 32, 56):  # class 1 covers 1/8, 1/2, 7/8 of the frame
        shares = patch_class_shares(two_class_labels(small_rows), 2, (8, 8))
        scores = torch.empty(1, 2, 8, 8)
        scores[:, 0], scores[:, 1] = 2.0, -1.0  # each class map scores its class's patches
        loss = class_balanced_patch_loss(scores, shares, target_is_real=True)
        expected = (F.softplus(torch.tensor(-2.0)) + F.softplus(torch.tensor(1.0))) / 2
        assert math.isclose(float(loss), float(expected), rel_tol=1e-6), small_rows

    # and the gradient mass on each class's patches is the same: a 1/8-area class pulls as hard as the rest
    shares = patch_class_shares(two_class_labels(8), 2, (8, 8))
    scores = torch.zeros(1, 2, 8, 8, requires_grad=True)
    class_balanced_patch_loss(scores, shares, target_is_real=False).backward()
    on_small = scores.grad[0, 1, :1].sum()
    on_large = scores.grad[0, 0, 1:].sum()
    assert math.isclose(float(on_small), float(on_large), rel_tol=1e-6)


def test_a_class_is_judged_by_its_own_score_map_only() -> None:
    shares = patch_class_shares(two_class_labels(16), 3, (8, 8))
    scores = torch.randn(1, 3, 8, 8)
    loss = class_balanced_patch_loss(scores, shares, target_is_real=True)
    scores[:, 2] = 100.0  # class 2 is absent
    scores[:, 0, :2] = 100.0  # class 0's map where class 1 is
    assert float(class_balanced_patch_loss(scores, shares, target_is_real=True)) == float(loss)
    scores[:, 1, :2] = 100.0  # class 1's map where class 1 is
    assert float(class_balanced_patch_loss(scores, shares, target_is_real=True)) < float(loss)


def test_images_average_and_unlabelled_images_add_nothing() -> None:
    labels = torch.cat([two_class_labels(8), torch.full((1, 64, 64), 255)])
    shares = patch_class_shares(labels, 2, (8, 8))
    scores = torch.zeros(2, 2, 8, 8)
    loss = class_balanced_patch_loss(scores, shares, target_is_real=True)
    assert math.isclose(float(loss), math.log(2), rel_tol=1e-6)  # log 2 / 2 if the unlabelled image counted


def test_adversarial_losses_by_hand() -> None:
    labels = two_class_labels(32)
    real = torch.full((1, 2, 6, 6), 3.0)
    fake = torch.full((1, 2, 6, 6), -2.0)
    d_loss = semantic_discriminator_loss(real, fake, labels, 2)
    expected = 0.5 * (math.log1p(math.exp(-3.0)) + math.log1p(math.exp(-2.0)))
    assert math.isclose(float(d_loss), expected, rel_tol=1e-6)
    assert math.isclose(float(semantic_generator_loss(fake, labels, 2)), math.log1p(math.exp(2.0)), rel_tol=1e-6)


def test_semantic_perceptual_loss_compares_class_probabilities_and_trains_the_fake_only() -> None:
    torch.manual_seed(0)
    task = nn.Conv2d(3, 4, 1).requires_grad_(False)
    real = torch.rand(2, 3, 8, 8) * 2 - 1
    assert float(semantic_perceptual_loss(task, real, real.clone())) == 0
    fake = (torch.rand(2, 3, 8, 8) * 2 - 1).requires_grad_(True)
    real.requires_grad_(True)
    loss = semantic_perceptual_loss(task, real, fake)
    expected = (task(fake).softmax(1) - task(real).softmax(1)).abs().sum(1).mean().detach()
    assert math.isclose(float(loss.detach()), float(expected), rel_tol=1e-6)
    loss.backward()
    assert real.grad is None and fake.grad.abs().sum() > 0
    # images of the same classes but other colours cost little: the loss reads semantics, not pixels
    logits_only = nn.Conv2d(3, 2, 1, bias=False).requires_grad_(False)
    logits_only.weight.copy_(torch.tensor([[100.0, 0, 0], [0, 100.0, 0]]).view(2, 3, 1, 1))
    red, redder = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    red[:, 0], redder[:, 0], redder[:, 2] = 0.5, 0.9, 0.9
    assert float(semantic_perceptual_loss(logits_only, red, redder)) < 1e-6
    assert float(F.l1_loss(red, redder)) > 0.1
