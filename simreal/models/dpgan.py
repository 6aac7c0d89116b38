"""DP-GAN (Li et al., BMVC 2022): OASIS with a dual-pyramid generator and a scale-enhancement discriminator.

Generator: a *spatial-adaptation pyramid* (conv 3x3 + BatchNorm + ReLU stages) runs once over the full-resolution
label+noise map: two stride-1 stages (``p/2`` then ``p`` channels) and ``num_blocks - 1`` stride-2 stages of ``p``
channels. SPADE block ``i`` is conditioned on concat(the same-resolution pyramid level, the deepest level bilinearly
upsampled) = ``2p`` channels, read directly by γ/β convs (no shared MLP). The synthesis trunk is OASIS's.

Discriminator: the OASIS U-Net plus two patch heads on encoder blocks 4 and 6 (1-based), each
conv s2 -> LReLU -> 3 x [conv, BN, LReLU] -> conv to one score per patch. The decoder features feed the
generator's feature-alignment loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from simreal.models.oasis import UNetDiscriminator, UNetDiscriminatorSpec, make_noise_map
from simreal.models.spade_blocks import (
    SPADEResBlock,
    batch_norm,
    check_divisible,
    conv2d,
    generator_channels,
)

PATCH_HEAD_BLOCKS = (3, 5)  # 0-based encoder blocks 4 and 6 of the paper
PATCH_HEAD_WIDTH = 64


@dataclass(frozen=True)
class DPGANGeneratorSpec:
    num_classes: int
    z_dim: int = 64
    base_channels: int = 64
    num_blocks: int = 6
    pyramid_channels: int = 64

    @property
    def downsampling(self) -> int:
        """Factor between the label map and the trunk's first feature map: sizes must be multiples of it."""
        return 2 ** (self.num_blocks - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _conv_block(fin: int, fout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(conv2d(fin, fout, stride=stride), batch_norm(fout), nn.ReLU())


class DPGANGenerator(nn.Module):
    def __init__(self, spec: DPGANGeneratorSpec) -> None:
        super().__init__()
        self.spec = spec
        channels = generator_channels(spec.base_channels, spec.num_blocks)
        condition = spec.num_classes + 1 + spec.z_dim
        width = spec.pyramid_channels
        stages = [_conv_block(condition, width // 2, 1), _conv_block(width // 2, width, 1)]
        stages += [_conv_block(width, width, 2) for _ in range(spec.num_blocks - 1)]
        self.pyramid = nn.ModuleList(stages)
        self.fc = conv2d(condition, channels[0])
        self.body = nn.ModuleList(
            SPADEResBlock(fin, fout, 2 * width, hidden=None)
            for fin, fout in zip(channels[:-1], channels[1:], strict=True)
        )
        self.conv_img = conv2d(channels[-1], 3)

    def forward(self, segmap: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """One-hot ``segmap`` (B, N+1, H, W) and noise -> images (B, 3, H, W) in [-1, 1]."""
        batch, _, height, width = segmap.shape
        check_divisible(height, width, self.spec.downsampling, "this DP-GAN generator")
        condition = torch.cat([segmap, make_noise_map(z, batch, self.spec.z_dim, (height, width), segmap)], 1)
        levels = []
        x = condition
        for stage in self.pyramid:
            x = stage(x)
            levels.append(x)
        deepest = levels[-1]
        x = self.fc(F.interpolate(condition, size=deepest.shape[-2:], mode="nearest"))
        for i, block in enumerate(self.body):
            level = levels[len(levels) - 1 - i]
            upsampled = F.interpolate(deepest, size=level.shape[-2:], mode="bilinear", align_corners=False)
            x = block(x, torch.cat([upsampled, level], 1))
            if i < len(self.body) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


class PatchHead(nn.Module):
    """One score per patch from an encoder feature map (no spectral norm, as in the reference)."""

    def __init__(self, in_channels: int, width: int = PATCH_HEAD_WIDTH) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv2d(in_channels, width, stride=2), nn.LeakyReLU(0.2)]
        for _ in range(3):
            layers += [conv2d(width, width), batch_norm(width), nn.LeakyReLU(0.2)]
        layers.append(conv2d(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class DPGANOutput(NamedTuple):
    logits: torch.Tensor
    patch_scores: list[torch.Tensor]
    decoder_features: list[torch.Tensor]


class DPGANDiscriminator(nn.Module):
    def __init__(self, spec: UNetDiscriminatorSpec) -> None:
        super().__init__()
        self.spec = spec
        self.unet = UNetDiscriminator(spec)
        widths = [block.conv2.out_channels for block in self.unet.down]
        self.patch_heads = nn.ModuleList(PatchHead(widths[i]) for i in PATCH_HEAD_BLOCKS)

    def forward(self, image: torch.Tensor) -> DPGANOutput:
        out = self.unet(image)
        scores = [head(out.encoder_features[i]) for head, i in zip(self.patch_heads, PATCH_HEAD_BLOCKS, strict=True)]
        return DPGANOutput(out.logits, scores, out.decoder_features)
