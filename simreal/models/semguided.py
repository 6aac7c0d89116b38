"""The semantic-guided cGAN (Saadatnejad et al., STRC 2020): pix2pix U-Net generator, per-class PatchGAN.

Generator: pix2pix's ``unet_256`` painting a one-hot label map (N+1 channels, channel 0 = don't-care) into RGB in
[-1, 1]: ``num_downs`` 4x4 stride-2 convolutions (64, 128, 256, 512, 512, ... channels; LeakyReLU 0.2, BatchNorm
but on the first and the innermost), mirrored by transposed convolutions (ReLU, BatchNorm, tanh at the end) with
skip concatenation, dropout 0.5 in the decoder of the ``num_downs - 5`` widest levels below the bottleneck (3 for
unet_256). It takes no noise: as in
pix2pix, dropout is its only randomness in training, and it paints deterministically in eval mode.

Discriminator: pix2pix's 70x70 PatchGAN (``n_layers=3``: 4x4 convolutions 64/s2, 128/s2, 256/s2, 512/s1, BatchNorm
but on the first, LeakyReLU 0.2) on concat(one-hot labels, image), whose last convolution gives one score map
**per class** instead of one: the paper's "different feature maps each focusing on a specific object". The losses
(``simreal.losses.semguided``) read each class's map only where that class is, and weigh every class equally.
This discriminator is also offered to the other label-to-image methods (``model.discriminator=semantic``).

Init: N(0, 0.02) convolution weights, N(1, 0.02) BatchNorm scales, zero biases (pix2pix's ``init_type=normal``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from simreal.models.spade_blocks import check_divisible

INIT_STD = 0.02


@dataclass(frozen=True)
class UNetGeneratorSpec:
    """Everything needed to rebuild the generator (saved in checkpoints)."""

    num_classes: int
    base_channels: int = 64
    num_downs: int = 8
    dropout: float = 0.5
    image_channels: int = 3

    def __post_init__(self) -> None:
        if self.num_downs < 5:
            raise ValueError(f"the pix2pix U-Net needs num_downs >= 5, got {self.num_downs}")

    @property
    def downsampling(self) -> int:
        """Frame sides must be multiples of this (the bottleneck is 1x1 for a 2^num_downs square)."""
        return 2**self.num_downs

    @property
    def input_channels(self) -> int:
        return self.num_classes + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class UNetLevel(nn.Module):
    """One U-Net level: down -> inner level -> up, the input concatenated to the output (except outermost)."""

    def __init__(
        self,
        outer: int,
        inner: int,
        submodule: nn.Module | None,
        *,
        in_channels: int | None = None,
        outermost: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        in_channels = outer if in_channels is None else in_channels
        innermost = submodule is None
        down_conv = nn.Conv2d(in_channels, inner, 4, 2, 1, bias=False)
        up_in = inner if innermost else 2 * inner
        if outermost:
            down: list[nn.Module] = [down_conv]
            up: list[nn.Module] = [nn.ReLU(True), nn.ConvTranspose2d(up_in, outer, 4, 2, 1), nn.Tanh()]
        else:
            down = [nn.LeakyReLU(0.2, True), down_conv] + ([] if innermost else [nn.BatchNorm2d(inner)])
            up = [nn.ReLU(True), nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
            if dropout > 0:
                up.append(nn.Dropout(dropout))
        self.down = nn.Sequential(*down)
        self.inner = submodule if submodule is not None else nn.Identity()
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.inner(self.down(x)))
        return y if self.outermost else torch.cat([x, y], 1)


class UNetGenerator(nn.Module):
    """pix2pix's U-Net generator on one-hot label maps; ``forward(segmap, z=None)`` like the other synthesizers."""

    stochastic = False  # takes no noise; ``synthesize`` paints one variant per label map

    def __init__(self, spec: UNetGeneratorSpec) -> None:
        super().__init__()
        self.spec = spec
        top = spec.base_channels
        widest = 8 * top
        level = UNetLevel(widest, widest, None)
        for _ in range(spec.num_downs - 5):  # the widest levels below the bottleneck carry the dropout
            level = UNetLevel(widest, widest, level, dropout=spec.dropout)
        for outer in (4 * top, 2 * top, top):
            level = UNetLevel(outer, 2 * outer, level)
        self.net = UNetLevel(spec.image_channels, top, level, in_channels=spec.input_channels, outermost=True)
        init_normal(self)

    def forward(self, segmap: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """One-hot ``segmap`` (B, N+1, H, W) -> images (B, 3, H, W) in [-1, 1]; ``z`` must be None."""
        if z is not None:
            raise ValueError("the semantic-guided U-Net generator takes no noise")
        check_divisible(segmap.shape[-2], segmap.shape[-1], self.spec.downsampling, "this U-Net generator")
        return self.net(segmap)


@dataclass(frozen=True)
class SemanticPatchDiscriminatorSpec:
    """A PatchGAN on concat(one-hot labels, image) with one score map per class."""

    num_classes: int
    base_channels: int = 64
    num_layers: int = 3  # 3 = the 70x70 receptive field
    image_channels: int = 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def patch_gan_layers(in_channels: int, out_channels: int, base: int, num_layers: int) -> nn.Sequential:
    """pix2pix's ``NLayerDiscriminator`` with BatchNorm: ``num_layers`` stride-2 convs, one stride-1, the head."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, base, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    width = base
    for n in range(1, num_layers + 1):
        wider = base * min(2**n, 8)
        stride = 2 if n < num_layers else 1
        layers += [nn.Conv2d(width, wider, 4, stride, 1, bias=False), nn.BatchNorm2d(wider), nn.LeakyReLU(0.2, True)]
        width = wider
    layers.append(nn.Conv2d(width, out_channels, 4, 1, 1))
    return nn.Sequential(*layers)


class SemanticPatchDiscriminator(nn.Module):
    """``forward(segmap, image)`` -> (B, N, h, w) real/fake logits, channel c judging the patches of class c."""

    def __init__(self, spec: SemanticPatchDiscriminatorSpec) -> None:
        super().__init__()
        self.spec = spec
        in_channels = spec.num_classes + 1 + spec.image_channels
        self.net = patch_gan_layers(in_channels, spec.num_classes, spec.base_channels, spec.num_layers)
        init_normal(self)

    def forward(self, segmap: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([segmap, image.to(segmap.dtype)], 1))


def init_normal(module: nn.Module) -> None:
    """pix2pix's ``normal`` init: N(0, 0.02) conv weights, N(1, 0.02) BatchNorm scales, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, INIT_STD)
            nn.init.zeros_(m.bias)
