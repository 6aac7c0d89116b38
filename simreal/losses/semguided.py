"""Losses of the semantic-guided cGAN (Saadatnejad et al., STRC 2020, Eq. 1-2).

- **Class-balanced patch GAN loss** (the discriminator's semantic guidance). The discriminator gives one score map
  per class (``simreal.models.semguided``). Each class's map is read where that class is: the label map, one-hot
  and area-averaged onto the score grid, gives every patch its share of each class. Per image, class c's loss is
  the share-weighted mean of the per-patch loss over its patches; the image's loss is the plain mean over the
  classes present in it. So a class covering 1% of the frame weighs as much as the road ("equal weight to all
  classes", §4.1), where a plain PatchGAN mean weighs classes by their area. Don't-care pixels count for no class.
  The per-patch loss is pix2pix's ``vanilla`` GAN loss (binary cross-entropy on logits).
- **Semantic perceptual loss** ``L_s = |T_s(y) - T_s(ŷ)|``: L1 between the class probabilities that a frozen
  segmenter T_s (the task network) gives the real image y and the generated ŷ = G(s). Probabilities, not logits,
  because the paper matches images in the space the semantic description s lies in (one-hot maps). The per-pixel L1
  distance between the two probability vectors (0..2) is averaged over pixels, so its scale does not depend on the
  number of classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from simreal.models.spade_blocks import IGNORE_LABEL


def patch_class_shares(labels: torch.Tensor, num_classes: int, size: tuple[int, int]) -> torch.Tensor:
    """(B, N, h, w): the share of each patch's pixels that belong to each class (don't-care belongs to none).

    ``labels`` (B, H, W) hold class ids ``0..N-1`` and 255 = don't-care; shares are area averages onto the score
    grid ``size`` (adaptive average pooling, so grids that do not divide the frame work too).
    """
    labelled = labels != IGNORE_LABEL
    ids = torch.where(labelled, labels.long(), torch.full_like(labels, num_classes, dtype=torch.long))
    classes = F.one_hot(ids, num_classes + 1)[..., :num_classes]  # the extra id collects don't-care
    return F.adaptive_avg_pool2d(classes.permute(0, 3, 1, 2).float(), size)


def class_balanced_patch_loss(scores: torch.Tensor, shares: torch.Tensor, *, target_is_real: bool) -> torch.Tensor:
    """Binary cross-entropy of per-class score maps (B, N, h, w), every class present in an image weighing equally.

    ``shares`` from ``patch_class_shares``. Images are averaged; an image without labelled pixels adds nothing.
    """
    scores = scores.float()
    per_patch = F.softplus(-scores) if target_is_real else F.softplus(scores)  # -log D, -log(1 - D)
    area = shares.sum(dim=(2, 3))  # (B, N)
    per_class = (per_patch * shares).sum(dim=(2, 3)) / area.clamp(min=torch.finfo(area.dtype).tiny)
    present = (area > 0).float()
    classes_per_image = present.sum(1)
    per_image = (per_class * present).sum(1) / classes_per_image.clamp(min=1)
    labelled = (classes_per_image > 0).float()
    return (per_image * labelled).sum() / labelled.sum().clamp(min=1)


def semantic_discriminator_loss(
    real_scores: torch.Tensor, fake_scores: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """pix2pix's D loss, halved as there, with the class-balanced patch loss: (L(real, 1) + L(fake, 0)) / 2."""
    shares = patch_class_shares(labels, num_classes, tuple(real_scores.shape[-2:]))
    real = class_balanced_patch_loss(real_scores, shares, target_is_real=True)
    fake = class_balanced_patch_loss(fake_scores, shares, target_is_real=False)
    return 0.5 * (real + fake)


def semantic_generator_loss(fake_scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The generator's adversarial term: the non-saturating form of -L_D (fakes scored as real), as pix2pix trains."""
    shares = patch_class_shares(labels, num_classes, tuple(fake_scores.shape[-2:]))
    return class_balanced_patch_loss(fake_scores, shares, target_is_real=True)


def semantic_perceptual_loss(task_network: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``|T_s(y) - T_s(ŷ)|`` on class probabilities; ``task_network`` maps [-1, 1] RGB to logits and stays frozen.

    Gradients reach ``fake`` only; the real image's probabilities are a fixed target.
    """
    with torch.no_grad():
        target = task_network(real).float().softmax(1)
    predicted = task_network(fake).float().softmax(1)
    return (predicted - target).abs().sum(1).mean()
