"""CUT's ResNet generator (Park et al. 2020), made a residual editor, and PatchNCE's projection head.

Generator (the reference's ``resnet_9blocks`` with its defaults): reflect-padded 7x7 conv (ngf), two anti-aliased
down stages (stride-1 3x3 conv, InstanceNorm, ReLU, a fixed [1,2,1]^2 blur with stride 2; 2ngf then 4ngf),
``n_blocks`` residual blocks at 4ngf (reflect-padded 3x3 conv, IN, ReLU, 3x3 conv, IN, plain add), two anti-aliased
up stages (a fixed [1,3,3,1]^2 transposed upsample, 3x3 conv, IN, ReLU), a reflect-padded 7x7 conv to RGB. IN has
no affine parameters; convs have biases; weights are xavier-normal with gain 0.02. The blur filters are buffers,
so the parameter count is the reference's (11.38M at ngf 64 / 9 blocks).

Two changes make it an editor of the rendered frame rather than a painter:

- ``residual=True``: the output is ``clamp(input + last_conv(...), -1, 1)`` with the last conv zero-initialised,
  so at step 0 the translation *is* the input (CUT itself starts from flat grey) and training can only learn a
  change; ``residual=False`` is the reference's ``tanh`` output.
- The one-hot label map of the frame (``label_channels``, which the simulator gives for free) as extra input
  channels after the RGB ones.
- ``noise_channels`` maps of per-pixel N(0, 1) noise, added (through a learned 1x1 projection)
  to the features of the last up stage, at full resolution, before its InstanceNorm and ReLU (StyleGAN's noise
  inputs). A flat-shaded region is constant, so without noise a convolutional generator can only paint it
  constant, and noise fed at the input would not survive the anti-aliased down and up stages: fine texture needs
  it where the image is made. The ReLU after it lets the features gate its amplitude per class.
- ``grain``: sensor grain, per-pixel N(0, 1) noise in each RGB channel added to the output with an amplitude per
  class and channel (a 1x1 conv of the one-hot labels; one amplitude per channel without labels), zero at the
  start. Every camera adds it and a flat-shaded renderer never does; Inception features, and so FID, are very
  sensitive to it. ``forward(..., with_clean=True)`` also returns the frame before grain, which the content loss
  (PatchNCE) reads: grain is not content.

PatchNCE reads the generator's own encoder: ``encode(x, labels)`` returns the activations after the listed
indices of ``self.model`` (the reference's ``nce_layers`` 0,4,8,12,16: the padded input, the two down-stage convs,
residual blocks 1 and 5). Layer 0 keeps only the RGB channels, so the labels never make a patch trivially
recognisable. ``PatchProjection`` is the reference's ``mlp_sample`` netF: per layer Linear-ReLU-Linear to
``nc`` features, then L2 normalisation; the reference builds it on the first forward because only then does it
know the channel counts, here ``CUTGenerator.feature_channels`` gives them, so it is built with the generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from simreal.errors import ModelError

INIT_GAIN = 0.02
NOISE_INIT_STD = 0.1  # the noise projection's weights: noise reaches the (zero) head from the first step
NCE_LAYERS = (0, 4, 8, 12, 16)


@dataclass(frozen=True)
class CUTGeneratorSpec:
    """Everything needed to rebuild the generator (saved in checkpoints)."""

    ngf: int = 64
    n_blocks: int = 9
    label_channels: int = 0  # one-hot label map channels (num_classes + 1), 0 = the image alone
    noise_channels: int = 0  # noise maps added at the full-resolution decoder stage
    grain: bool = False  # per-class sensor grain added to the output (3 more noise maps)
    residual: bool = True
    nce_layers: tuple[int, ...] = field(default=NCE_LAYERS)

    def __post_init__(self) -> None:
        if self.ngf < 1 or self.n_blocks < 0 or self.label_channels < 0 or self.noise_channels < 0:
            raise ModelError(f"invalid CUT generator spec {self}")
        object.__setattr__(self, "nce_layers", tuple(int(i) for i in self.nce_layers))
        depth = 12 + self.n_blocks + 8 + 2  # stem + down stages, blocks, up stages, head
        bad = [i for i in self.nce_layers if not 0 <= i < depth]
        if bad:
            raise ModelError(f"nce_layers {bad} are outside the generator's {depth} layers")

    @property
    def input_channels(self) -> int:
        return 3 + self.label_channels

    @property
    def noise_inputs(self) -> int:
        """Noise maps ``forward`` takes: the decoder's, then three for the grain."""
        return self.noise_channels + (3 if self.grain else 0)

    @property
    def size_multiple(self) -> int:
        return 4  # two stride-2 stages

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["nce_layers"] = list(self.nce_layers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CUTGeneratorSpec:
        return cls(**{**data, "nce_layers": tuple(data.get("nce_layers", NCE_LAYERS))})


class BlurDownsample(nn.Module):
    """A fixed [1,2,1]^2 blur with stride 2 (the reference's anti-aliased ``Downsample``), reflect-padded."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum()).expand(channels, 1, 3, 3).clone())
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.kernel.to(x.dtype), stride=2, groups=self.channels)


class BlurUpsample(nn.Module):
    """A fixed [1,3,3,1]^2 transposed filter with stride 2 (the reference's anti-aliased ``Upsample``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum() * 4).expand(channels, 1, 4, 4).clone())
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        y = F.conv_transpose2d(x, self.kernel.to(x.dtype), stride=2, padding=2, groups=self.channels)
        return y[:, :, 1:-1, 1:-1]


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            instance_norm(channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            instance_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def xavier_init(module: nn.Module, gain: float = INIT_GAIN) -> None:
    """The reference's ``init_type=xavier``, ``init_gain=0.02``: xavier-normal conv/linear weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class CUTGenerator(nn.Module):
    """``forward(image, labels=None, noise=None)``: (B, 3, H, W) in [-1, 1] (+ one-hot labels, noise) -> image."""

    def __init__(self, spec: CUTGeneratorSpec) -> None:
        super().__init__()
        self.spec = spec
        ngf = spec.ngf
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(spec.input_channels, ngf, 7),
            instance_norm(ngf),
            nn.ReLU(True),
        ]
        for width in (ngf, 2 * ngf):
            layers += [nn.Conv2d(width, 2 * width, 3, padding=1), instance_norm(2 * width), nn.ReLU(True)]
            layers.append(BlurDownsample(2 * width))
        layers += [ResnetBlock(4 * ngf) for _ in range(spec.n_blocks)]
        for width in (4 * ngf, 2 * ngf):
            layers += [BlurUpsample(width), nn.Conv2d(width, width // 2, 3, padding=1)]
            layers += [instance_norm(width // 2), nn.ReLU(True)]
        self.head = nn.Conv2d(ngf, 3, 7)
        layers += [nn.ReflectionPad2d(3), self.head]
        self.model = nn.Sequential(*layers)
        self.noise_at = len(layers) - 4  # the last up stage's InstanceNorm: noise joins just before it
        self.noise = nn.Conv2d(spec.noise_channels, ngf, 1, bias=False) if spec.noise_channels else None
        xavier_init(self)
        self.grain = nn.Conv2d(max(spec.label_channels, 1), 3, 1) if spec.grain else None
        if self.noise is not None:  # not zero: with the head at zero too, neither would ever get a gradient
            nn.init.normal_(self.noise.weight, std=NOISE_INIT_STD)
        if self.grain is not None:  # no grain at the start
            nn.init.zeros_(self.grain.weight)
            nn.init.zeros_(self.grain.bias)
        if spec.residual:  # the identity at step 0
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    @property
    def feature_channels(self) -> list[int]:
        """Channels of the activations ``encode`` returns, per NCE layer."""
        channels, out = 3, []
        for index, layer in enumerate(self.model):
            if isinstance(layer, nn.Conv2d):
                channels = layer.out_channels
            if index in self.spec.nce_layers:
                out.append(channels)
        return out

    def _input(self, image: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        spec = self.spec
        if image.shape[1] != 3:
            raise ModelError(f"the CUT generator takes RGB images, got {image.shape[1]} channels")
        h, w = image.shape[-2:]
        if h % spec.size_multiple or w % spec.size_multiple:
            raise ModelError(f"frame sides must be multiples of {spec.size_multiple} for this generator, got {h}x{w}")
        _check_extra("label", labels, spec.label_channels, (h, w))
        return torch.cat([image, labels.to(image.dtype)], 1) if labels is not None else image

    def forward(
        self,
        image: torch.Tensor,
        labels: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        with_clean: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The translated frame; ``with_clean``: (frame, frame before grain)."""
        spec = self.spec
        x = self._input(image, labels)
        _check_extra("noise", noise, spec.noise_inputs, tuple(image.shape[-2:]))
        for index, layer in enumerate(self.model):
            if index == self.noise_at and self.noise is not None:
                x = x + self.noise(noise[:, : spec.noise_channels].to(x.dtype))
            x = layer(x)
        clean = (image + x).clamp(-1.0, 1.0) if spec.residual else torch.tanh(x)
        out = clean
        if self.grain is not None:
            amplitude_of = labels if labels is not None else torch.ones_like(image[:, :1])
            out = (clean + self.grain(amplitude_of.to(x.dtype)) * noise[:, spec.noise_channels :]).clamp(-1.0, 1.0)
        return (out, clean) if with_clean else out

    def encode(self, image: torch.Tensor, labels: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The activations after each of ``spec.nce_layers`` (layer 0: the RGB channels of the padded input)."""
        x = self._input(image, labels)
        feats, last = [], max(self.spec.nce_layers)
        for index, layer in enumerate(self.model):
            if index == self.noise_at and self.noise is not None and index <= last:
                raise ModelError("nce_layers must lie before the decoder's noise input")
            x = layer(x)
            if index in self.spec.nce_layers:
                feats.append(x[:, :3] if index == 0 else x)
            if index == last:
                break
        return feats


def _check_extra(name: str, tensor: torch.Tensor | None, channels: int, size: tuple[int, int]) -> None:
    if channels == 0:
        if tensor is not None:
            raise ModelError(f"this generator takes no {name} channels")
        return
    if tensor is None or tensor.shape[1] != channels or tuple(tensor.shape[-2:]) != tuple(size):
        got = None if tensor is None else tuple(tensor.shape)
        raise ModelError(f"this generator needs {channels} {name} channels at {size[0]}x{size[1]}, got {got}")


class PatchProjection(nn.Module):
    """PatchNCE's netF (``mlp_sample``): per layer Linear(C, nc)-ReLU-Linear(nc, nc), then L2 normalisation."""

    def __init__(self, channels: Sequence[int], nc: int = 256) -> None:
        super().__init__()
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)) for c in channels)
        xavier_init(self)

    def forward(self, feats: Sequence[torch.Tensor], patch_ids: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """(B, C, H, W) per layer, sampled at ``patch_ids`` (flat indices into H*W) -> (B, P, nc), unit length."""
        out = []
        for mlp, feat, ids in zip(self.mlps, feats, patch_ids, strict=True):
            flat = feat.flatten(2).transpose(1, 2)[:, ids]  # (B, P, C)
            out.append(F.normalize(mlp(flat), dim=-1, eps=1e-7))
        return out


def sample_patch_ids(feats: Sequence[torch.Tensor], num_patches: int, generator: torch.Generator | None = None):
    """Random locations per layer, shared by every image of the batch and by query and key (as the reference)."""
    ids = []
    for feat in feats:
        count = feat.shape[-2] * feat.shape[-1]
        ids.append(torch.randperm(count, generator=generator)[: min(num_patches, count)].to(feat.device))
    return ids
