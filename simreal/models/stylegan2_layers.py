"""StyleGAN2 building blocks in plain PyTorch (no custom CUDA kernels).

Equalised learning rate (weights stored at unit variance, scaled at run time), fused leaky ReLU written as
ordinary ops, an FIR filter (``upfirdn2d``) for antialiased resampling, and the modulated convolution of
the swapping autoencoder: the style is multiplied into the activations and the *unmodulated* weight is
demodulated, so every convolution is an ordinary (non-grouped) ``conv2d``. That keeps the layers friendly to
bf16 autocast and channels_last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.2
ACTIVATION_GAIN = math.sqrt(2.0)


def make_fir_kernel(taps: Sequence[int]) -> torch.Tensor:
    """Separable 2-D FIR kernel from 1-D taps, normalised to sum 1."""
    k1 = torch.as_tensor(list(taps), dtype=torch.float32)
    if k1.ndim != 1 or k1.numel() == 0:
        raise ValueError(f"FIR taps must be a non-empty 1-D sequence, got {taps!r}")
    k2 = torch.outer(k1, k1)
    return k2 / k2.sum()


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Upsample by zero insertion, pad, filter with ``kernel`` (depthwise) and downsample by striding."""
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    pad0, pad1 = pad
    if pad0 or pad1:
        x = F.pad(x, [pad0, pad1, pad0, pad1])
    weight = torch.flip(kernel, [0, 1]).to(dtype=x.dtype, device=x.device)
    weight = weight[None, None].expand(channels, 1, *kernel.shape)
    return F.conv2d(x, weight, stride=down, groups=channels)


class Blur(nn.Module):
    """FIR low-pass filter used around strided/transposed convolutions (antialiasing)."""

    def __init__(self, taps: Sequence[int], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        kernel = make_fir_kernel(taps) * (upsample_factor**2)
        self.register_buffer("kernel", kernel, persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU(0.2) + gain sqrt(2), the StyleGAN2 activation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return F.leaky_relu(x + self.bias.to(x.dtype).view(shape), LEAKY_SLOPE) * ACTIVATION_GAIN


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate and optional fused leaky ReLU."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_features)
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            out = F.linear(x, self.weight * self.scale)
            return F.leaky_relu(out + self.bias.to(out.dtype), LEAKY_SLOPE) * ACTIVATION_GAIN
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualConv2d(nn.Module):
    """2-D convolution with equalised learning rate."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class ConvLayer(nn.Module):
    """Equalised conv with optional antialiased 2x downsampling and fused activation.

    ``downsample`` with ``blur_taps`` blurs then convolves with stride 2 (StyleGAN2); with ``blur_taps=None``
    it is a plain stride-2 convolution with ``padding`` (the encoder's texture branch, which uses none).
    ``pad_mode="reflect"`` replaces zero padding by reflection padding (the encoder).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        downsample: bool = False,
        blur_taps: Sequence[int] | None = (1, 3, 3, 1),
        bias: bool = True,
        activate: bool = True,
        padding: int | None = None,
        pad_mode: str = "zeros",
    ) -> None:
        super().__init__()
        if pad_mode not in ("zeros", "reflect"):
            raise ValueError(f"pad_mode must be 'zeros' or 'reflect', got {pad_mode!r}")
        self.blur: Blur | None = None
        self.pad_mode = pad_mode
        self.explicit_pad: tuple[int, int] = (0, 0)
        stride = 1
        if downsample and blur_taps is not None:
            # Total FIR padding so that blur + stride-2 conv exactly halves the size.
            total = (len(blur_taps) - 2) + (kernel_size - 1)
            pad = ((total + 1) // 2, total // 2)
            if pad_mode == "reflect":
                self.explicit_pad = pad
                pad = (0, 0)
            self.blur = Blur(blur_taps, pad)
            stride, conv_padding = 2, 0
        elif downsample:
            stride, conv_padding = 2, 0 if padding is None else padding
        else:
            conv_padding = kernel_size // 2 if padding is None else padding
        if pad_mode == "reflect" and self.blur is None and conv_padding > 0:
            self.explicit_pad = (conv_padding, conv_padding)
            conv_padding = 0
        self.conv = EqualConv2d(
            in_channels, out_channels, kernel_size, stride, conv_padding, bias=bias and not activate
        )
        self.act = FusedLeakyReLU(out_channels) if activate else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.explicit_pad != (0, 0):
            pad0, pad1 = self.explicit_pad
            x = F.pad(x, [pad0, pad1, pad0, pad1], mode="reflect")
        if self.blur is not None:
            x = self.blur(x)
        x = self.conv(x)
        return self.act(x) if self.act is not None else x


class DownResBlock(nn.Module):
    """Residual block (conv, conv[+downsample]) with a 1x1 skip; output scaled by 1/sqrt(2).

    ``pad_mode`` applies to the 3x3 main path only: the skip (blur + linear 1x1 conv) always zero-pads, as in the
    reference SAE encoder, whose residual blocks pass reflection padding to the main convs but not to the skip.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        blur_taps: Sequence[int] = (1, 3, 3, 1),
        downsample: bool = True,
        pad_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, pad_mode=pad_mode)
        self.conv2 = ConvLayer(
            in_channels, out_channels, 3, downsample=downsample, blur_taps=blur_taps, pad_mode=pad_mode
        )
        self.skip = ConvLayer(
            in_channels,
            out_channels,
            1,
            downsample=downsample,
            blur_taps=blur_taps,
            bias=False,
            activate=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


class UpsampleConvLayer(nn.Module):
    """Equalised stride-2 transposed conv + [1,3,3,1] blur + fused activation (an unmodulated learned x2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        blur_taps: Sequence[int] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.blur = Blur(blur_taps, upsample_blur_pad(len(blur_taps), kernel_size), upsample_factor=2)
        self.act = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv_transpose2d(x, (self.weight * self.scale).transpose(0, 1), stride=2)
        return self.act(self.blur(x))


def upsample_blur_pad(n_taps: int, kernel_size: int) -> tuple[int, int]:
    """Blur padding after a stride-2 transposed conv so that the output is exactly twice the input."""
    total = (n_taps - 2) - (kernel_size - 1)
    return (total + 1) // 2 + 1, total // 2 + 1


class ModulatedConv2d(nn.Module):
    """Modulated convolution, swapping-autoencoder variant.

    The style (affine of the texture code, bias init 1) is RMS-normalised and multiplied into the input
    activations; with ``demodulate`` the weight is normalised per output channel from its unmodulated values.
    ``upsample`` uses a stride-2 transposed convolution followed by a [1,3,3,1] blur.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_taps: Sequence[int] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate = demodulate
        self.upsample = upsample
        self.padding = kernel_size // 2
        self.blur: Blur | None = None
        if upsample:
            self.blur = Blur(blur_taps, upsample_blur_pad(len(blur_taps), kernel_size), upsample_factor=2)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        style = self.modulation(style)
        if self.demodulate:
            style = style * torch.rsqrt(style.float().square().mean(dim=1, keepdim=True) + 1e-8).to(style.dtype)
        x = x * style[:, :, None, None].to(x.dtype)
        weight = self.weight * self.scale
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        if self.upsample:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
            return self.blur(x)
        return F.conv2d(x, weight, padding=self.padding)


class NoiseInjection(nn.Module):
    """Adds per-pixel Gaussian noise scaled by a learned scalar (initialised to 0).

    Noise comes from the global RNG, or with ``generators`` (one CPU ``torch.Generator`` per sample) from each
    sample's own stream, so that a sample's noise does not depend on the rest of its batch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, generators: Sequence[torch.Generator] | None = None) -> torch.Tensor:
        batch, _, height, width = x.shape
        if generators is None:
            noise = torch.randn(batch, 1, height, width, device=x.device, dtype=x.dtype)
        else:
            if len(generators) != batch:
                raise ValueError(f"{len(generators)} noise generators for a batch of {batch}")
            noise = torch.cat([torch.randn(1, 1, height, width, generator=g) for g in generators])
            noise = noise.to(device=x.device, dtype=x.dtype)
        return x + self.weight.to(x.dtype) * noise


class StyledConv(nn.Module):
    """Modulated conv + optional noise + fused leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        use_noise: bool = True,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, upsample=upsample)
        self.noise = NoiseInjection() if use_noise else None
        self.act = FusedLeakyReLU(out_channels)

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, noise_generators: Sequence[torch.Generator] | None = None
    ) -> torch.Tensor:
        x = self.conv(x, style)
        if self.noise is not None:
            x = self.noise(x, noise_generators)
        return self.act(x)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation, plus a learned bias (no output non-linearity)."""

    def __init__(self, in_channels: int, style_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        out = self.conv(x, style)
        return out + self.bias.to(out.dtype)
