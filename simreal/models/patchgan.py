"""pix2pixHD's PatchGAN (``NLayerDiscriminator``) and its multi-scale stack: the one implementation that SPADE,
SemanticGAN and CUT / LC-CUT share.

A 4x4 stride-2 conv + LeakyReLU(0.2), then ``n_layers`` 4x4 convs with InstanceNorm (no affine) and LeakyReLU (all
stride 2 but the last, stride 1; widths doubling to 512), then a 4x4 conv to one logit map; padding 2 throughout.
``n_layers`` 3 is pix2pix's 70x70 patch (SPADE's ``n_layers_D`` 4 counts the first conv too). ``forward`` returns
every layer's output, the logits last (feature matching reads the others). ``make_conv(in, out, stride, middle)``
builds each conv, so a method keeps its reference's init and spectral norm; the default is a plain ``nn.Conv2d``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

ConvFactory = Callable[[int, int, int, bool], nn.Module]


def plain_conv(in_channels: int, out_channels: int, stride: int, middle: bool) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, 4, stride=stride, padding=2)


class PatchGAN(nn.Module):
    def __init__(
        self, in_channels: int, base_channels: int = 64, n_layers: int = 3, make_conv: ConvFactory = plain_conv
    ):
        super().__init__()
        layers = [nn.Sequential(make_conv(in_channels, base_channels, 2, False), nn.LeakyReLU(0.2))]
        width = base_channels
        for n in range(1, n_layers + 1):
            previous, width = width, min(width * 2, 512)
            layers.append(
                nn.Sequential(
                    make_conv(previous, width, 2 if n < n_layers else 1, True),
                    nn.InstanceNorm2d(width, affine=False),
                    nn.LeakyReLU(0.2),
                )
            )
        layers.append(nn.Sequential(make_conv(width, 1, 1, False)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs


class MultiscalePatchGAN(nn.Module):
    """``forward(segmap, image)`` -> per scale (x1, x1/2, x1/4, ...), every layer's output, the logits last."""

    def __init__(self, scales: Iterable[PatchGAN]) -> None:
        super().__init__()
        self.scales = nn.ModuleList(scales)

    def forward(self, segmap: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        x = torch.cat([segmap.to(image.dtype), image], 1)
        outputs = []
        for i, scale in enumerate(self.scales):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(x))
        return outputs
