"""SPADE / GauGAN (Park et al., CVPR 2019): SPADE residual generator, multi-scale PatchGAN D, optional VAE encoder.

Generator: from a latent ``2 ** num_upsamplings`` times smaller than the image (the label map nearest-downsampled
and convolved, or with the VAE a linear map of a 256-d style code), blocks head_0, G_middle_0, G_middle_1
(16 x base), up_0..up_3 (8, 4, 2, 1 x base) [+ up_4 (base/2) for ``most``], x2 nearest upsampling between them
(5 ups for ``normal``, 6 for ``more`` = the Cityscapes setting, 7 for ``most``); every SPADE reads the one-hot
label map (N+1 channels, channel 0 = don't-care). Without the VAE the generator is deterministic: it takes no
noise. Discriminator: ``num_d`` PatchGANs (k4, SN + InstanceNorm) on concat(one-hot labels, image), each scale
seeing the input average-pooled once more; every layer's output is returned for feature matching. Spectral-norm
convolutions keep PyTorch's init for their raw weights, as the reference ends up with (``SN_INIT_DEFAULT``; see
``simreal.models.spade_blocks``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from simreal.errors import ModelError
from simreal.models.patchgan import MultiscalePatchGAN, PatchGAN
from simreal.models.spade_blocks import SN_INIT_DEFAULT, SPADEResBlock, check_divisible, conv2d, linear

UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}
ENCODER_WIDTHS = (1, 2, 4, 8, 8, 8)


@dataclass(frozen=True)
class SPADEGeneratorSpec:
    num_classes: int
    base_channels: int = 64
    num_upsampling: str = "more"
    use_vae: bool = False
    z_dim: int = 256
    #: (height, width) of the images the VAE generator paints; its linear input layer is fixed to that size
    vae_image_size: tuple[int, int] | None = None
    encoder_size: int = 256  # the VAE encoder's square input side

    def __post_init__(self) -> None:
        if self.num_upsampling not in UPSAMPLINGS:
            raise ModelError(f"num_upsampling must be one of {sorted(UPSAMPLINGS)}, got {self.num_upsampling!r}")
        if self.use_vae and self.vae_image_size is None:
            raise ModelError("a VAE SPADE generator needs vae_image_size=(height, width)")

    @property
    def downsampling(self) -> int:
        return 2 ** UPSAMPLINGS[self.num_upsampling]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["vae_image_size"] = list(self.vae_image_size) if self.vae_image_size else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SPADEGeneratorSpec:
        data = dict(data)
        if data.get("vae_image_size") is not None:
            data["vae_image_size"] = tuple(data["vae_image_size"])
        return cls(**data)


class SPADEGenerator(nn.Module):
    def __init__(self, spec: SPADEGeneratorSpec) -> None:
        super().__init__()
        self.spec = spec
        nf, label_channels = spec.base_channels, spec.num_classes + 1
        if spec.use_vae:
            height, width = spec.vae_image_size  # type: ignore[misc]
            check_divisible(height, width, spec.downsampling, "this SPADE generator")
            self.latent = (height // spec.downsampling, width // spec.downsampling)
            self.fc: nn.Module = linear(spec.z_dim, 16 * nf * self.latent[0] * self.latent[1])
        else:
            self.fc = conv2d(label_channels, 16 * nf)
        widths = [16 * nf, 16 * nf, 16 * nf, 16 * nf, 8 * nf, 4 * nf, 2 * nf, nf]
        if spec.num_upsampling == "most":
            widths.append(nf // 2)
        self.body = nn.ModuleList(
            SPADEResBlock(fin, fout, label_channels, sn_init=SN_INIT_DEFAULT)
            for fin, fout in zip(widths[:-1], widths[1:], strict=True)
        )
        self.conv_img = conv2d(widths[-1], 3)

    @property
    def stochastic(self) -> bool:
        return self.spec.use_vae

    def _upsample_after(self, block_index: int) -> bool:
        # head_0 up, G_middle_0 [up if more/most], G_middle_1 up, up_0 up, ..., the last block no up
        if block_index == 1:
            return self.spec.num_upsampling != "normal"
        return block_index < len(self.body) - 1

    def forward(self, segmap: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """One-hot ``segmap`` (B, N+1, H, W) [and a (B, z_dim) style code with the VAE] -> images in [-1, 1]."""
        batch, _, height, width = segmap.shape
        check_divisible(height, width, self.spec.downsampling, "this SPADE generator")
        if self.spec.use_vae:
            if (height // self.spec.downsampling, width // self.spec.downsampling) != self.latent:
                raise ModelError(f"this VAE SPADE generator paints {self.spec.vae_image_size} images only")
            if z is None:
                z = torch.randn(batch, self.spec.z_dim, device=segmap.device, dtype=segmap.dtype)
            if z.shape != (batch, self.spec.z_dim):
                raise ModelError(f"style code must be (B={batch}, {self.spec.z_dim}), got {tuple(z.shape)}")
            x = self.fc(z.to(segmap)).view(batch, -1, *self.latent)
        else:
            if z is not None:
                raise ModelError("this SPADE generator has no VAE and takes no noise (train with model.use_vae=true)")
            latent = (height // self.spec.downsampling, width // self.spec.downsampling)
            x = self.fc(F.interpolate(segmap, size=latent, mode="nearest"))
        for i, block in enumerate(self.body):
            x = block(x, segmap)
            if self._upsample_after(i):
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


class SPADEEncoder(nn.Module):
    """The VAE style encoder: image resized to ``size``², stride-2 convs (SN + IN) down to 4x4, mu and log-var."""

    def __init__(self, spec: SPADEGeneratorSpec) -> None:
        super().__init__()
        self.size = spec.encoder_size
        depth = (spec.encoder_size // 4).bit_length() - 1
        if 4 * 2**depth != spec.encoder_size or not 1 <= depth <= len(ENCODER_WIDTHS):
            raise ModelError(f"encoder_size must be 4 * 2^k with 1 <= k <= 6, got {spec.encoder_size}")
        widths = [3] + [m * spec.base_channels for m in ENCODER_WIDTHS[:depth]]
        layers: list[nn.Module] = []
        for fin, fout in zip(widths[:-1], widths[1:], strict=True):
            layers += [
                conv2d(fin, fout, stride=2, sn=True, sn_init=SN_INIT_DEFAULT),
                nn.InstanceNorm2d(fout),
                nn.LeakyReLU(0.2),
            ]
        self.net = nn.Sequential(*layers)
        self.fc_mu = linear(widths[-1] * 16, spec.z_dim)
        self.fc_logvar = linear(widths[-1] * 16, spec.z_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.shape[-2:] != (self.size, self.size):
            image = F.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)
        features = self.net(image).flatten(1)
        return self.fc_mu(features), self.fc_logvar(features)


@dataclass(frozen=True)
class PatchGANSpec:
    num_classes: int
    base_channels: int = 64
    num_d: int = 2
    n_layers: int = 4
    extra_input_channels: int = 0  # e.g. the reference's instance-edge channel (parameter-count checks)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _spade_patch_conv(in_channels: int, out_channels: int, stride: int, middle: bool) -> nn.Module:
    """SPADE's discriminator convs: spectral norm on the middle ones, their raw weights as PyTorch inits them."""
    return conv2d(in_channels, out_channels, 4, stride=stride, padding=2, sn=middle, sn_init=SN_INIT_DEFAULT)


class MultiscalePatchDiscriminator(MultiscalePatchGAN):
    """``forward(segmap, image)`` -> per scale, the list of layer outputs (the last one is the patch logits)."""

    def __init__(self, spec: PatchGANSpec) -> None:
        in_channels = spec.num_classes + 1 + spec.extra_input_channels + 3
        # the reference's n_layers_D counts the first conv
        super().__init__(
            PatchGAN(in_channels, spec.base_channels, spec.n_layers - 1, _spade_patch_conv) for _ in range(spec.num_d)
        )
        self.spec = spec
