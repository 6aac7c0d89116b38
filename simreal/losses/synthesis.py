"""Losses of the label-to-image synthesizers (OASIS, DP-GAN, SPADE).

Label maps hold ids ``0..N-1`` with 255 = don't-care; segmentation discriminators predict N+1 logits where channel
0 is "fake" and channel ``c + 1`` is class ``c``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from simreal.errors import ModelError
from simreal.models.spade_blocks import IGNORE_LABEL
from simreal.training.checkpoint import read_torch_file

VGG_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1


# ------------------------------------------------------------------------------------------ N+1 (OASIS, DP-GAN)
def class_balance_map(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-pixel weights ``w_c = B*H*W / (K * count_c)`` for the batch's pixels of class c; 0 on don't-care.

    ``count_c`` is the pixel count of class c in this batch and K the number of classes present (don't-care not
    counted), so rare classes weigh more and a batch's weights average to 1 over its labelled pixels' classes.
    """
    labelled = labels != IGNORE_LABEL
    ids = torch.where(labelled, labels, torch.zeros_like(labels)).long()
    counts = torch.bincount(ids[labelled], minlength=num_classes).float()
    present = int((counts > 0).sum())
    if present == 0:
        return torch.zeros_like(labels, dtype=torch.float32)
    coefficients = torch.where(counts > 0, labels.numel() / (present * counts.clamp(min=1)), torch.zeros_like(counts))
    return coefficients[ids] * labelled.float()


def n_plus_one_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, target_is_real: bool, balance: bool = True
) -> torch.Tensor:
    """Per-pixel cross-entropy over N+1 classes: real pixels -> class+1 (class-balanced), fake -> 0 (plain)."""
    logits = logits.float()
    if not target_is_real:
        return F.cross_entropy(logits, torch.zeros_like(labels, dtype=torch.long))
    labelled = labels != IGNORE_LABEL
    target = torch.where(labelled, labels.long() + 1, torch.zeros_like(labels, dtype=torch.long))
    per_pixel = F.cross_entropy(logits, target, reduction="none")
    weights = class_balance_map(labels, logits.shape[1] - 1) if balance else labelled.float()
    return (per_pixel * weights).mean()


def labelmix_mask(labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 1, H, W) float mask: every id present in the batch (don't-care included) is 1 or 0, at random.

    The references draw one bit per class for the whole batch; they reassign ids in place one class after the
    other, so a class drawn 1 can swallow earlier regions; here every class keeps its own bit.
    """
    bits = torch.randint(0, 2, (256,), generator=generator, device="cpu").to(labels.device)
    return bits[labels.long()].unsqueeze(1).float()


def labelmix_loss(
    mask: torch.Tensor, d_mixed: torch.Tensor, d_real: torch.Tensor, d_fake: torch.Tensor
) -> torch.Tensor:
    """MSE between D(LabelMix(real, fake)) and LabelMix(D(real), D(fake)) on the logits (not detached)."""
    target = mask * d_real.float() + (1 - mask) * d_fake.float()
    return F.mse_loss(d_mixed.float(), target)


# ------------------------------------------------------------------------------------------ hinge / matching
def hinge_d_loss(real_scores: Sequence[torch.Tensor], fake_scores: Sequence[torch.Tensor]) -> torch.Tensor:
    """``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``, averaged over the score maps."""
    terms = [
        F.relu(1 - real.float()).mean() + F.relu(1 + fake.float()).mean()
        for real, fake in zip(real_scores, fake_scores, strict=True)
    ]
    return torch.stack(terms).mean()


def hinge_g_loss(fake_scores: Sequence[torch.Tensor]) -> torch.Tensor:
    """``-mean(D(fake))``, averaged over the score maps."""
    return torch.stack([-fake.float().mean() for fake in fake_scores]).mean()


def feature_alignment_loss(fake: Sequence[torch.Tensor], real: Sequence[torch.Tensor]) -> torch.Tensor:
    """DP-GAN's decoder feature alignment: the sum over layers of MSE(fake features, real features detached)."""
    return torch.stack([F.mse_loss(f.float(), r.detach().float()) for f, r in zip(fake, real, strict=True)]).sum()


def multiscale_feature_matching(
    fake: Sequence[Sequence[torch.Tensor]], real: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """SPADE / pix2pixHD feature matching: L1 over every layer but the logits, each scale weighted 1/num_scales."""
    total = torch.zeros((), device=fake[0][0].device)
    for fake_layers, real_layers in zip(fake, real, strict=True):
        for f, r in zip(fake_layers[:-1], real_layers[:-1], strict=True):
            total = total + F.l1_loss(f.float(), r.detach().float())
    return total / len(fake)


def kld_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL divergence of N(mu, exp(logvar)) from N(0, I), summed as in SPADE's VAE."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


# ------------------------------------------------------------------------------------------ VGG perceptual
class VGGWeightsUnavailable(ModelError):
    """VGG19 ImageNet weights are neither local nor downloadable."""


def _vgg19_features_from_file(path: Path) -> nn.Module:
    from torchvision.models import vgg19

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = read_torch_file(path, "VGG19 weights file")
    if not isinstance(state, dict):
        raise VGGWeightsUnavailable(f"{path} holds a {type(state).__name__}, not VGG19 weights")
    model = vgg19(weights=None)
    features_only = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    try:
        model.features.load_state_dict(features_only or state)
    except RuntimeError as err:
        raise VGGWeightsUnavailable(f"{path} does not hold torchvision VGG19 weights: {str(err)[:200]}") from err
    return model.features


def load_vgg19_features(weights: str | None) -> nn.Module:
    """VGG19 ``features`` with ImageNet weights.

    ``weights``: a ``.pth``/``.safetensors`` file of torchvision's ``vgg19`` state dict, or ``"imagenet"``:
    ``$SIMREAL_WEIGHTS_DIR/vgg19.{safetensors,pth}`` if present, else torchvision's download (or its cache).
    """
    if weights is None:
        raise VGGWeightsUnavailable("no VGG19 weights requested")
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise VGGWeightsUnavailable(f"VGG19 weights file {path} does not exist")
        return _vgg19_features_from_file(path)
    weights_dir = os.environ.get("SIMREAL_WEIGHTS_DIR")
    if weights_dir:
        for name in ("vgg19.safetensors", "vgg19.pth"):
            if (Path(weights_dir) / name).is_file():
                return _vgg19_features_from_file(Path(weights_dir) / name)
    from torchvision.models import VGG19_Weights, vgg19

    try:
        return vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features
    except Exception as err:  # any network / hub failure: the caller decides whether to go on without
        raise VGGWeightsUnavailable(
            f"could not load VGG19 ImageNet weights ({type(err).__name__}: {str(err)[:200]}); put vgg19.pth "
            "(torchvision's state dict) into $SIMREAL_WEIGHTS_DIR or pass a file"
        ) from err


class VGGPerceptualLoss(nn.Module):
    """L1 between VGG19 relu1_1..relu5_1 features of fake and real, weighted 1/32 .. 1 (SPADE, pix2pixHD).

    Fed as the reference feeds it (NVlabs/SPADE ``VGGLoss``): the generator's [-1, 1] output and the [-1, 1] real
    image go straight into torchvision's ImageNet VGG19, without the ImageNet mean/std normalisation.
    """

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.slices = nn.ModuleList(nn.Sequential(*list(features)[a:b]) for a, b in VGG_SLICES)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        return super().train(False)  # a fixed feature extractor

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        x, y = fake.float(), real.float()
        total = torch.zeros((), device=fake.device)
        for weight, block in zip(VGG_LAYER_WEIGHTS, self.slices, strict=True):
            x, y = block(x), block(y)
            total = total + weight * F.l1_loss(x, y.detach())
        return total
