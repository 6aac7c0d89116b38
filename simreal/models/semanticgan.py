"""SemanticGAN (Liu, Zou, Yang, ICASSP 2020): a pix2pixHD generator whose residual trunk is Correlated Residual Blocks.

SemanticGAN paints label maps, as pix2pixHD does (the paper's "semantic label map to photo-realistic image
translation"): ``G(one-hot label map) -> image``. Its discriminators see (label map, image) pairs. The paper also
feeds pix2pixHD's instance-edge map; simreal's stores hold no instance ids, so the input is the one-hot label map
alone (``extra_input_channels`` only serves the parameter-count checks against pix2pixHD's Cityscapes input).

Generator (paper §3.1, Johnson's naming): c7s1-64, d128, d256, d512, d1024, C1024 x ``num_blocks``, u512, u256, u128,
u64, c7s1-3, i.e. pix2pixHD's global generator (reflection padding, InstanceNorm without affine parameters, ReLU,
tanh) with ``num_downsampling`` = 4 and its residual blocks swapped for CRBs. The paper fixes neither the number of
CRBs nor their group count: pix2pixHD's ``n_blocks_global`` = 9 and Res2Net's scale s = 4 are the defaults.

Correlated Residual Block (§2.2, Fig. 4): a Res2Net block (1x1 conv, the channels split into s groups, hierarchical
3x3 convs, K_1(x_1), K_i(x_i + y_{i-1}), the last group passed through, concat, 1x1 conv, residual add) where the
1x1 conv's output is channel-shuffled (ShuffleNet) before the split, so every 3x3 group reads one sub-group of every
group. ``block="res2"`` is the same block without the shuffle and ``block="res"`` pix2pixHD's plain residual block
(the paper's ablation baselines). As in pix2pixHD's residual block, nothing follows the residual add.

Discriminator: ``num_d`` 70x70 PatchGANs (pix2pixHD ``n_layers_D`` = 3: D64 s2 without norm, D128 s2, D256 s2, D512
s1, 1-channel conv s1; 4x4 kernels, padding 2, InstanceNorm, LeakyReLU 0.2) on concat(one-hot labels, image), the
input average-pooled (3x3, stride 2) once more for each further scale; every layer's output is returned for
feature matching. All convolutions start from N(0, 0.02) weights (pix2pixHD's ``weights_init``); biases keep
PyTorch's default init.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from simreal.errors import ModelError
from simreal.models.patchgan import MultiscalePatchGAN, PatchGAN
from simreal.models.spade_blocks import check_divisible

BLOCKS = ("crb", "res2", "res")
INIT_STD = 0.02


@dataclass(frozen=True)
class SemanticGANGeneratorSpec:
    num_classes: int
    base_channels: int = 64  # pix2pixHD ngf
    num_downsampling: int = 4  # pix2pixHD n_downsample_global
    num_blocks: int = 9  # pix2pixHD n_blocks_global
    block: str = "crb"  # crb | res2 | res
    groups: int = 4  # CRB / Res2Net scale s
    extra_input_channels: int = 0  # e.g. pix2pixHD's instance-edge channel (parameter-count checks)

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise ModelError(f"block must be one of {', '.join(BLOCKS)}, got {self.block!r}")
        if self.num_downsampling < 1 or self.num_blocks < 0 or self.base_channels < 1:
            raise ModelError("num_downsampling must be >= 1, num_blocks >= 0 and base_channels >= 1")
        width = self.trunk_channels
        if self.block != "res" and (self.groups < 2 or width % (self.groups * self.groups)):
            raise ModelError(
                f"a {self.block} block splits its {width} channels into {self.groups} groups of {self.groups} "
                "sub-groups: groups must be >= 2 and groups^2 must divide base_channels * 2^num_downsampling"
            )

    @property
    def input_channels(self) -> int:
        return self.num_classes + 1 + self.extra_input_channels

    @property
    def trunk_channels(self) -> int:
        return self.base_channels * 2**self.num_downsampling

    @property
    def downsampling(self) -> int:
        return 2**self.num_downsampling

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MultiscalePatchGANSpec:
    num_classes: int
    base_channels: int = 64  # pix2pixHD ndf
    num_d: int = 3  # the paper's three scales (pix2pixHD's default is 2)
    n_layers: int = 3  # pix2pixHD n_layers_D: the 70x70 PatchGAN
    extra_input_channels: int = 0

    def __post_init__(self) -> None:
        if self.num_d < 1 or self.n_layers < 1 or self.base_channels < 1:
            raise ModelError("num_d, n_layers and base_channels must be >= 1")

    @property
    def input_channels(self) -> int:
        return self.num_classes + 1 + self.extra_input_channels + 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def init_weights(module: nn.Module) -> None:
    """pix2pixHD's init: every (transposed) convolution weight ~ N(0, 0.02); biases keep PyTorch's default."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, INIT_STD)


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False)  # pix2pixHD's norm: no affine parameters


def reflect_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """A stride-1 'same' convolution behind reflection padding, as pix2pixHD pads."""
    return nn.Sequential(nn.ReflectionPad2d(kernel_size // 2), nn.Conv2d(in_channels, out_channels, kernel_size))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's shuffle: (B, g*n, H, W) -> channel ``c*g + i`` holds channel ``i*n + c`` (group i, member c).

    Cut into g equal chunks afterwards, chunk j holds the j-th sub-group (n/g channels) of every one of the g groups.
    """
    batch, channels, height, width = x.shape
    return x.view(batch, groups, channels // groups, height, width).transpose(1, 2).reshape(x.shape)


class ResidualBlock(nn.Module):
    """pix2pixHD's residual block: x + (conv3x3, IN, ReLU, conv3x3, IN), reflection padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            reflect_conv(channels, channels, 3),
            instance_norm(channels),
            nn.ReLU(),
            reflect_conv(channels, channels, 3),
            instance_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CorrelatedResidualBlock(nn.Module):
    """Res2Net block with a channel shuffle between the 1x1 conv and the hierarchical 3x3 groups (``shuffle``)."""

    def __init__(self, channels: int, groups: int, shuffle: bool = True) -> None:
        super().__init__()
        self.groups = groups
        self.shuffle = shuffle
        width = channels // groups
        self.reduce = nn.Sequential(nn.Conv2d(channels, channels, 1), instance_norm(channels), nn.ReLU())
        # Res2Net convolves all groups but the last one, which passes through
        self.convs = nn.ModuleList(
            nn.Sequential(reflect_conv(width, width, 3), instance_norm(width), nn.ReLU()) for _ in range(groups - 1)
        )
        self.expand = nn.Sequential(nn.Conv2d(channels, channels, 1), instance_norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.reduce(x)
        if self.shuffle:
            features = channel_shuffle(features, self.groups)
        splits = features.chunk(self.groups, dim=1)
        outputs: list[torch.Tensor] = []
        for i, conv in enumerate(self.convs):
            outputs.append(conv(splits[i] if i == 0 else splits[i] + outputs[-1]))
        outputs.append(splits[-1])
        return x + self.expand(torch.cat(outputs, dim=1))


def _trunk_block(spec: SemanticGANGeneratorSpec) -> nn.Module:
    if spec.block == "res":
        return ResidualBlock(spec.trunk_channels)
    return CorrelatedResidualBlock(spec.trunk_channels, spec.groups, shuffle=spec.block == "crb")


class SemanticGANGenerator(nn.Module):
    """``forward(segmap)``: one-hot label map (B, N+1, H, W), H and W divisible by 2^num_downsampling -> [-1, 1]."""

    stochastic = False  # no noise input: one label map, one image

    def __init__(self, spec: SemanticGANGeneratorSpec) -> None:
        super().__init__()
        self.spec = spec
        ngf = spec.base_channels
        layers: list[nn.Module] = [reflect_conv(spec.input_channels, ngf, 7), instance_norm(ngf), nn.ReLU()]
        for i in range(spec.num_downsampling):
            fin, fout = ngf * 2**i, ngf * 2 ** (i + 1)
            layers += [nn.Conv2d(fin, fout, 3, stride=2, padding=1), instance_norm(fout), nn.ReLU()]
        layers += [_trunk_block(spec) for _ in range(spec.num_blocks)]
        for i in range(spec.num_downsampling, 0, -1):
            fin, fout = ngf * 2**i, ngf * 2 ** (i - 1)
            layers += [
                nn.ConvTranspose2d(fin, fout, 3, stride=2, padding=1, output_padding=1),
                instance_norm(fout),
                nn.ReLU(),
            ]
        layers += [reflect_conv(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, segmap: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if z is not None:
            raise ModelError("the SemanticGAN generator takes no noise")
        if segmap.shape[1] != self.spec.input_channels:
            raise ModelError(f"expected a {self.spec.input_channels}-channel label map, got {segmap.shape[1]}")
        check_divisible(segmap.shape[-2], segmap.shape[-1], self.spec.downsampling, "this SemanticGAN generator")
        return self.model(segmap)


class SemanticGANDiscriminator(MultiscalePatchGAN):
    """pix2pixHD's multi-scale PatchGAN on concat(labels, image), pix2pixHD's init."""

    def __init__(self, spec: MultiscalePatchGANSpec) -> None:
        super().__init__(PatchGAN(spec.input_channels, spec.base_channels, spec.n_layers) for _ in range(spec.num_d))
        self.spec = spec
        init_weights(self)
