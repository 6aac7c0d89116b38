"""Building blocks shared by the label-to-image generators (SPADE, OASIS, DP-GAN) and their discriminators.

Conventions shared by the three models:

- Label maps hold class ids ``0..N-1`` and 255 for don't-care. Generators take them one-hot with ``N + 1``
  channels: channel 0 is don't-care, channel ``c + 1`` is class ``c`` (``one_hot_labels``).
- Convolutions are initialised Xavier-normal with gain 0.02 and zero bias, as in the references. Under spectral
  norm the raw weight (``parametrizations.weight.original``, the references' ``weight_orig``) is what the init
  sets, and which init it gets differs between the references (``sn_init``): OASIS and DP-GAN run their init pass
  on the CPU before ``.cuda()``, where the old ``torch.nn.utils.spectral_norm`` hook's ``weight`` still shares
  storage with ``weight_orig``, so Xavier(0.02) lands in ``weight_orig`` (std about 2e-4 for a 1024-wide 3x3
  conv); SPADE runs it after ``.cuda()``, when ``weight`` is a stale copy, so ``weight_orig`` keeps PyTorch's
  default init (std about 6e-3 there). The biases are zeroed in both. The normalised weight is the same either
  way (std about 1 / (sqrt(rows) + sqrt(cols)) of the weight matrix); the raw scale sets how far Adam moves it.
- Spatial sizes are free: generators derive their latent size from the label map, so one network paints any
  size divisible by ``2 ** num_upsamplings``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from simreal.errors import ModelError

IGNORE_LABEL = 255
INIT_GAIN = 0.02
SN_INIT_XAVIER = "xavier"  # OASIS, DP-GAN: Xavier(0.02) reaches the raw weight under spectral norm
SN_INIT_DEFAULT = "default"  # SPADE: the raw weight keeps PyTorch's default init
SPADE_HIDDEN = 128


class LabelMapError(ModelError):
    """A label map that a synthesizer cannot paint (bad ids or a size the network cannot produce)."""


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    stride: int = 1,
    padding: int | None = None,
    bias: bool = True,
    sn: bool = False,
    sn_init: str = SN_INIT_XAVIER,
) -> nn.Module:
    """A conv, 'same' padding by default, zero bias, Xavier(0.02) weight; with ``sn`` spectral-normalised, its raw
    weight initialised as ``sn_init`` says (``SN_INIT_XAVIER`` or ``SN_INIT_DEFAULT``; see the module docstring)."""
    if sn_init not in (SN_INIT_XAVIER, SN_INIT_DEFAULT):
        raise ValueError(f"sn_init must be {SN_INIT_XAVIER!r} or {SN_INIT_DEFAULT!r}, got {sn_init!r}")
    conv = nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2 if padding is None else padding,
        bias=bias,
    )
    if bias:
        nn.init.zeros_(conv.bias)
    if not sn or sn_init == SN_INIT_XAVIER:
        nn.init.xavier_normal_(conv.weight, gain=INIT_GAIN)
    # registering spectral norm after the init: its power iterations start from the weight as initialised
    return spectral_norm(conv) if sn else conv


def linear(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_normal_(layer.weight, gain=INIT_GAIN)
    nn.init.zeros_(layer.bias)
    return layer


def batch_norm(channels: int, affine: bool = True) -> nn.BatchNorm2d:
    """BatchNorm with the references' init: weight ~ N(1, 0.02), zero bias."""
    norm = nn.BatchNorm2d(channels, affine=affine)
    if affine:
        nn.init.normal_(norm.weight, 1.0, INIT_GAIN)
        nn.init.zeros_(norm.bias)
    return norm


def one_hot_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, H, W) ids in ``0..N-1`` or 255 -> float (B, N+1, H, W); channel 0 is don't-care."""
    if labels.ndim != 3:
        raise LabelMapError(f"label maps must be (B, H, W), got shape {tuple(labels.shape)}")
    labels = labels.long()
    bad = (labels != IGNORE_LABEL) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        found = sorted(int(v) for v in torch.unique(labels[bad])[:8])
        raise LabelMapError(
            f"label ids {found} are outside the network's {num_classes} classes "
            f"(0..{num_classes - 1}, 255 = don't-care)"
        )
    shifted = torch.where(labels == IGNORE_LABEL, torch.zeros_like(labels), labels + 1)
    return F.one_hot(shifted, num_classes + 1).permute(0, 3, 1, 2).float()


def check_divisible(height: int, width: int, factor: int, what: str) -> None:
    if height % factor or width % factor:
        raise LabelMapError(
            f"{what} paints sizes divisible by {factor}; got {height}x{width}: resize or crop the labels"
        )


def generator_channels(base: int, num_blocks: int) -> list[int]:
    """Widths of the SPADE residual trunk: 16,16,16,8,4,2,1 x base for the references' 6 blocks."""
    if num_blocks < 4:
        raise ModelError(f"num_blocks must be >= 4, got {num_blocks}")
    return [16 * base] * (num_blocks - 3) + [8 * base, 4 * base, 2 * base, base]


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: parameter-free BatchNorm, then ``x̂ (1 + γ) + β`` from a condition map.

    With ``hidden`` set, the condition is first embedded by a shared 3x3 conv + ReLU (SPADE, OASIS); with
    ``hidden=None`` the condition is already an embedding (DP-GAN's pyramid features) and γ, β read it directly.
    """

    def __init__(self, channels: int, condition_channels: int, hidden: int | None = SPADE_HIDDEN) -> None:
        super().__init__()
        self.norm = batch_norm(channels, affine=False)
        self.shared = (
            nn.Sequential(conv2d(condition_channels, hidden), nn.ReLU()) if hidden is not None else nn.Identity()
        )
        width = hidden if hidden is not None else condition_channels
        self.gamma = conv2d(width, channels)
        self.beta = conv2d(width, channels)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        if condition.shape[-2:] != x.shape[-2:]:
            condition = F.interpolate(condition, size=x.shape[-2:], mode="nearest")
        embedding = self.shared(condition)
        return self.norm(x) * (1 + self.gamma(embedding)) + self.beta(embedding)


class SPADEResBlock(nn.Module):
    """Two (SPADE, LeakyReLU 0.2, SN conv 3x3) stages plus a learned 1x1 shortcut when the width changes."""

    def __init__(
        self,
        fin: int,
        fout: int,
        condition_channels: int,
        hidden: int | None = SPADE_HIDDEN,
        sn_init: str = SN_INIT_XAVIER,
    ) -> None:
        super().__init__()
        fmiddle = min(fin, fout)
        self.norm_0 = SPADE(fin, condition_channels, hidden)
        self.conv_0 = conv2d(fin, fmiddle, sn=True, sn_init=sn_init)
        self.norm_1 = SPADE(fmiddle, condition_channels, hidden)
        self.conv_1 = conv2d(fmiddle, fout, sn=True, sn_init=sn_init)
        self.learned_shortcut = fin != fout
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, condition_channels, hidden)
            self.conv_s = conv2d(fin, fout, 1, bias=False, sn=True, sn_init=sn_init)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, condition)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, condition), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, condition), 0.2))
        return shortcut + dx


class ResBlockD(nn.Module):
    """Residual block of the OASIS/DP-GAN U-Net discriminator: SN convs, LeakyReLU 0.2, x2 down or up.

    ``direction`` -1 halves (average pooling after the convs), +1 doubles (nearest, before the convs).
    The first encoder block sees raw pixels, so it starts with a conv instead of an activation.
    """

    def __init__(self, fin: int, fout: int, direction: int, first: bool = False) -> None:
        super().__init__()
        self.direction, self.first = direction, first
        self.conv1 = conv2d(fin, fout, sn=True)
        self.conv2 = conv2d(fout, fout, sn=True)
        self.conv_s = conv2d(fin, fout, 1, sn=True) if fin != fout else None

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.direction < 0 else F.interpolate(x, scale_factor=2.0, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.direction > 0 or self.first:  # cheaper: resample before the 1x1 conv when it commutes
            shortcut = self._resample(shortcut)
        if self.conv_s is not None:
            shortcut = self.conv_s(shortcut)
        if self.direction < 0 and not self.first:
            shortcut = self._resample(shortcut)
        dx = x if self.first else F.leaky_relu(x, 0.2)
        if self.direction > 0:
            dx = self._resample(dx)
        dx = self.conv2(F.leaky_relu(self.conv1(dx), 0.2))
        if self.direction < 0:
            dx = self._resample(dx)
        return shortcut + dx


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def reestimate_batch_norm(module: nn.Module, condition_batches: list[tuple]) -> None:
    """Recompute every BatchNorm's running statistics as the plain average over ``condition_batches``.

    An averaged (EMA) generator has weights no single training step produced, so the statistics tracked during
    training do not fit it; the references re-run ~50 training batches through it before sampling or saving.
    Each entry of ``condition_batches`` is the positional arguments of one forward call.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or not condition_batches:
        return
    momenta = [m.momentum for m in norms]
    was_training = module.training
    module.eval()  # only the norms collect statistics; spectral-norm vectors etc. stay as they are
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: every batch counts equally
        norm.train()
    try:
        for args in condition_batches:
            module(*args)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        module.train(was_training)
