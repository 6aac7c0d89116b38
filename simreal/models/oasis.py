"""OASIS (Schönfeld et al., ICLR 2021): a SPADE generator fed one-hot labels + noise, a U-Net segmentation D.

Generator: the label map (N+1 one-hot channels, channel 0 = don't-care) is concatenated with a noise map, nearest
downsampled to the latent size and convolved to ``16 * base`` channels; ``num_blocks`` SPADE residual blocks
(every SPADE conditioned on the full label+noise map) upsample x2 between blocks; LeakyReLU, 3x3 conv, tanh.
Unlike the reference, ``forward(segmap, z)`` uses the ``z`` it is given: a per-image vector ``(B, z_dim)``
(broadcast over the image, the references' "3D noise") or a per-pixel map ``(B, z_dim, H, W)`` for local edits.

Discriminator: a U-Net of residual blocks (encoder widths 2,2,4,4,8,8 x base with average pooling, decoder with
skip concatenation) predicting N+1 logits per pixel: channel 0 = fake, channel ``c + 1`` = class ``c``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from simreal.errors import ModelError
from simreal.models.spade_blocks import (
    ResBlockD,
    SPADEResBlock,
    check_divisible,
    conv2d,
    generator_channels,
)

D_WIDTH_MULTIPLIERS = (2, 2, 4, 4, 8, 8)


@dataclass(frozen=True)
class OASISGeneratorSpec:
    """Everything needed to rebuild an OASIS generator (saved in checkpoints)."""

    num_classes: int
    z_dim: int = 64
    base_channels: int = 64
    num_blocks: int = 6

    @property
    def downsampling(self) -> int:
        """Factor between the label map and the trunk's first feature map: sizes must be multiples of it."""
        return 2 ** (self.num_blocks - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_noise_map(
    z: torch.Tensor | None, batch: int, z_dim: int, size: tuple[int, int], like: torch.Tensor
) -> torch.Tensor:
    """The (B, z_dim, H, W) noise map from a per-image vector, a per-pixel map, or fresh N(0, I) when None."""
    if z is None:
        z = torch.randn(batch, z_dim, device=like.device, dtype=like.dtype)
    z = z.to(device=like.device, dtype=like.dtype)
    if z.ndim == 2 and z.shape == (batch, z_dim):
        return z[:, :, None, None].expand(batch, z_dim, *size)
    if z.ndim == 4 and z.shape[:2] == (batch, z_dim):
        return z if z.shape[-2:] == size else F.interpolate(z, size=size, mode="nearest")
    raise ModelError(f"noise must be (B={batch}, {z_dim}) or (B, {z_dim}, H, W), got {tuple(z.shape)}")


class OASISGenerator(nn.Module):
    def __init__(self, spec: OASISGeneratorSpec) -> None:
        super().__init__()
        self.spec = spec
        channels = generator_channels(spec.base_channels, spec.num_blocks)
        condition = spec.num_classes + 1 + spec.z_dim
        self.fc = conv2d(condition, channels[0])
        self.body = nn.ModuleList(
            SPADEResBlock(fin, fout, condition) for fin, fout in zip(channels[:-1], channels[1:], strict=True)
        )
        self.conv_img = conv2d(channels[-1], 3)

    def forward(self, segmap: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """One-hot ``segmap`` (B, N+1, H, W) and noise -> images (B, 3, H, W) in [-1, 1]."""
        batch, _, height, width = segmap.shape
        check_divisible(height, width, self.spec.downsampling, "this OASIS generator")
        condition = torch.cat([segmap, make_noise_map(z, batch, self.spec.z_dim, (height, width), segmap)], 1)
        latent = (height // self.spec.downsampling, width // self.spec.downsampling)
        x = self.fc(F.interpolate(condition, size=latent, mode="nearest"))
        for i, block in enumerate(self.body):
            x = block(x, condition)
            if i < len(self.body) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


@dataclass(frozen=True)
class UNetDiscriminatorSpec:
    num_classes: int
    base_channels: int = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class UNetOutput(NamedTuple):
    logits: torch.Tensor  # (B, N+1, H, W); channel 0 = fake
    encoder_features: list[torch.Tensor]  # after each down-block, finest first
    decoder_features: list[torch.Tensor]  # after up-blocks 1.. (the first one's output is not included)


class UNetDiscriminator(nn.Module):
    """The OASIS segmentation discriminator; input size divisible by 64."""

    def __init__(self, spec: UNetDiscriminatorSpec) -> None:
        super().__init__()
        self.spec = spec
        widths = [3] + [m * spec.base_channels for m in D_WIDTH_MULTIPLIERS]
        self.down = nn.ModuleList(
            ResBlockD(widths[i], widths[i + 1], -1, first=i == 0) for i in range(len(D_WIDTH_MULTIPLIERS))
        )
        up = [ResBlockD(widths[-1], widths[-2], 1)]
        for i in range(1, len(D_WIDTH_MULTIPLIERS) - 1):
            up.append(ResBlockD(2 * widths[-1 - i], widths[-2 - i], 1))
        up.append(ResBlockD(2 * widths[1], spec.base_channels, 1))
        self.up = nn.ModuleList(up)
        self.classifier = conv2d(spec.base_channels, spec.num_classes + 1, 1)

    def forward(self, image: torch.Tensor) -> UNetOutput:
        check_divisible(image.shape[-2], image.shape[-1], 2 ** len(self.down), "the U-Net discriminator")
        encoder = []
        x = image
        for block in self.down:
            x = block(x)
            encoder.append(x)
        x = self.up[0](x)
        decoder = []
        for i in range(1, len(self.up)):
            x = self.up[i](torch.cat([encoder[-1 - i], x], 1))
            decoder.append(x)
        return UNetOutput(self.classifier(x), encoder, decoder)
