"""Swapping autoencoder (SAE) networks and the LC-SAE inner semantic branch.

Architecture follows the reference SAE at 256x256 (see specs/reference/models.md §1): a residual encoder that
yields an L2-normalised structure code (8 x H/16 x W/16) and texture code (2048), a StyleGAN2-style generator
modulated by the texture code, a StyleGAN2 image discriminator without minibatch-stddev and a patch
co-occurrence discriminator. ``SemanticHead`` is the LC-SAE inner semantic branch (report §3.1.1): it branches off
the encoder trunk just before the structure head (512 x H/16 x W/16 at full size), upsamples twice by learned x2
layers halving the channels (512 -> 256 -> 128) and predicts per-pixel class logits at 1/4 of the input resolution.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from simreal.errors import ModelError
from simreal.models.stylegan2_layers import (
    ConvLayer,
    DownResBlock,
    EqualLinear,
    StyledConv,
    ToRGB,
    UpsampleConvLayer,
)

ENCODER_BLUR = (1, 2, 1)
STYLEGAN_BLUR = (1, 3, 3, 1)


class SAEConfigError(ModelError):
    """A network configuration that cannot be built."""


class SAEInputError(ModelError):
    """A tensor passed to an SAE network has the wrong shape."""


@dataclass(frozen=True)
class EncoderConfig:
    base_channels: int = 32  # width after FromRGB; doubles per downsampling
    max_channels: int = 2048
    structure_downsamplings: int = 4  # structure code at 1/2**n of the input
    texture_downsamplings: int = 2  # extra unpadded stride-2 convs before the spatial mean
    structure_channels: int = 8
    texture_dim: int = 2048

    def width(self, level: int) -> int:
        return min(self.max_channels, self.base_channels * 2**level)


@dataclass(frozen=True)
class GeneratorConfig:
    base_channels: int = 128  # width at the output resolution; doubles per level towards the code
    max_channels: int = 512
    head_blocks: int = 2  # resolution-preserving residual blocks at the code resolution
    use_noise: bool = True

    def width(self, levels_below_output: int) -> int:
        return min(self.max_channels, self.base_channels * 2**levels_below_output)


@dataclass(frozen=True)
class DiscriminatorConfig:
    base_channels: int = 128  # width at the input resolution (reference: 64 x channel multiplier 2)
    max_channels: int = 512


@dataclass(frozen=True)
class PatchDiscriminatorConfig:
    patch_size: int = 128  # every crop is resampled to patch_size x patch_size
    base_channels: int = 32
    max_channels: int = 384
    classifier_widths: tuple[int, ...] = (2048, 2048, 1024)
    n_crops: int = 8
    crop_scale: tuple[float, float] = (1 / 8, 1 / 4)  # of the image side, drawn per axis
    aggregate_reference: bool = True  # average the reference-crop features per image


@dataclass(frozen=True)
class SemanticHeadConfig:
    n_classes: int = 16  # widths are not configurable: each x2 upsampling halves the encoder trunk's channels


@dataclass(frozen=True)
class SAEConfig:
    crop_size: int = 256  # square training crops (the image discriminator is built for this size)
    frame_size: tuple[int, int] = (256, 512)  # (H, W) of the full frames, for test-time translation
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    patch_discriminator: PatchDiscriminatorConfig = field(default_factory=PatchDiscriminatorConfig)
    semantic_head: SemanticHeadConfig = field(default_factory=SemanticHeadConfig)

    @classmethod
    def preset(cls, name: str, **overrides: object) -> SAEConfig:
        """``full``: the LC-SAE report (256 crops of 512x256 frames, reference widths); ``small``: about an eighth
        of the widths on 128 crops of 256x128 frames with the reference's structure grid, what trains to a useful
        point on a CPU; ``tiny``: tests."""
        if name == "full":
            cfg = cls()
        elif name == "small":
            cfg = cls(
                crop_size=128,
                frame_size=(128, 256),
                # One downsampling fewer keeps the reference's structure grid: 16x16 per crop, 32x16 per frame.
                encoder=EncoderConfig(base_channels=16, max_channels=256, structure_downsamplings=3, texture_dim=256),
                generator=GeneratorConfig(base_channels=32, max_channels=128),
                discriminator=DiscriminatorConfig(base_channels=32, max_channels=128),
                patch_discriminator=PatchDiscriminatorConfig(
                    patch_size=32, base_channels=16, max_channels=96, classifier_widths=(256, 256, 128)
                ),
            )
        elif name == "tiny":
            cfg = cls(
                crop_size=64,
                frame_size=(64, 128),
                encoder=EncoderConfig(base_channels=8, max_channels=128, texture_downsamplings=1, texture_dim=64),
                generator=GeneratorConfig(base_channels=16, max_channels=64),
                discriminator=DiscriminatorConfig(base_channels=16, max_channels=64),
                patch_discriminator=PatchDiscriminatorConfig(
                    patch_size=16, base_channels=8, max_channels=32, classifier_widths=(64, 32)
                ),
            )
        else:
            raise SAEConfigError(f"unknown SAE preset {name!r}; choose 'full', 'small' or 'tiny'")
        return replace(cfg, **overrides) if overrides else cfg

    @classmethod
    def from_dict(cls, data: dict) -> SAEConfig:
        """Inverse of ``dataclasses.asdict``: rebuild the config saved in a checkpoint."""
        sections = {
            "encoder": EncoderConfig,
            "generator": GeneratorConfig,
            "discriminator": DiscriminatorConfig,
            "patch_discriminator": PatchDiscriminatorConfig,
            "semantic_head": SemanticHeadConfig,
        }
        values = dict(data)
        try:
            for key, section in sections.items():
                fields_ = {k: tuple(v) if isinstance(v, list) else v for k, v in values[key].items()}
                values[key] = section(**fields_)
            values["frame_size"] = tuple(values["frame_size"])
            return cls(**values)
        except TypeError as err:  # e.g. semantic_head.channels, from before the branch read the encoder trunk
            raise SAEConfigError(
                f"this SAE configuration was saved by another simreal version ({err}); retrain the checkpoint"
            ) from err

    def validate(self) -> None:
        if self.encoder.structure_downsamplings < 1:
            raise SAEConfigError(f"structure_downsamplings must be >= 1, got {self.encoder.structure_downsamplings}")
        factor = 2**self.encoder.structure_downsamplings
        for side in (self.crop_size, *self.frame_size):
            if side % factor:
                raise SAEConfigError(f"image side {side} must be a multiple of {factor} (structure code stride)")
        if not _is_power_of_two(self.crop_size) or self.crop_size < 8:
            raise SAEConfigError(f"crop_size must be a power of two >= 8, got {self.crop_size}")
        patch = self.patch_discriminator.patch_size
        if not _is_power_of_two(patch) or patch < 8:
            raise SAEConfigError(f"patch_size must be a power of two >= 8, got {patch}")
        low, high = self.patch_discriminator.crop_scale
        if not 0 < low <= high <= 1:
            raise SAEConfigError(f"crop_scale must satisfy 0 < low <= high <= 1, got {(low, high)}")
        if self.encoder.width(self.encoder.structure_downsamplings) < 4:
            raise SAEConfigError("the encoder trunk needs >= 4 channels (the semantic branch halves them twice)")
        if self.semantic_head.n_classes < 2:
            raise SAEConfigError(f"n_classes must be >= 2, got {self.semantic_head.n_classes}")


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def l2_normalize(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Unit L2 norm along ``dim`` (per pixel for the structure code, per vector for the texture code)."""
    return x / x.float().square().sum(dim=dim, keepdim=True).add(1e-8).sqrt().to(x.dtype)


def _check_images(x: torch.Tensor, multiple: int, who: str) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise SAEInputError(f"{who} expects images of shape (B, 3, H, W), got {tuple(x.shape)}")
    if x.shape[2] % multiple or x.shape[3] % multiple:
        raise SAEInputError(f"{who} needs H and W divisible by {multiple}, got {tuple(x.shape[2:])}")


class Encoder(nn.Module):
    """Image -> (structure code B x C_s x H/16 x W/16, texture code B x D), both L2-normalised.

    ``return_trunk`` also returns the trunk features the structure and texture heads branch off (B x
    ``trunk_channels`` x H/16 x W/16), which feed the LC-SAE inner semantic branch.
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n_sp = cfg.structure_downsamplings
        self.from_rgb = ConvLayer(3, cfg.width(0), 1)
        self.down = nn.Sequential(
            *(
                DownResBlock(cfg.width(i), cfg.width(i + 1), blur_taps=ENCODER_BLUR, pad_mode="reflect")
                for i in range(n_sp)
            )
        )
        mid = self.trunk_channels = cfg.width(n_sp)
        self.to_structure = nn.Sequential(
            ConvLayer(mid, mid, 1), ConvLayer(mid, cfg.structure_channels, 1, activate=False)
        )
        # Unpadded stride-2 convs: the texture branch should not see positions.
        self.to_texture_features = nn.Sequential(
            *(
                ConvLayer(cfg.width(n_sp + i), cfg.width(n_sp + i + 1), 3, downsample=True, blur_taps=None)
                for i in range(cfg.texture_downsamplings)
            )
        )
        self.to_texture = EqualLinear(cfg.width(n_sp + cfg.texture_downsamplings), cfg.texture_dim)

    def forward(self, images: torch.Tensor, return_trunk: bool = False) -> tuple[torch.Tensor, ...]:
        _check_images(images, 2**self.cfg.structure_downsamplings, "Encoder")
        trunk = self.down(self.from_rgb(images))
        structure = self.to_structure(trunk)
        texture_map = self.to_texture_features(trunk)
        texture = self.to_texture(texture_map.mean(dim=(2, 3)))
        codes = (l2_normalize(structure), l2_normalize(texture))
        return (*codes, trunk) if return_trunk else codes


NoiseGenerators = Sequence[torch.Generator] | None


class GeneratorHeadBlock(nn.Module):
    """Resolution-preserving residual block of two styled convs; linear 1x1 skip (no bias) when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, use_noise: bool) -> None:
        super().__init__()
        self.conv1 = StyledConv(in_channels, out_channels, 3, style_dim, use_noise=use_noise)
        self.conv2 = StyledConv(out_channels, out_channels, 3, style_dim, use_noise=use_noise)
        self.skip = (
            ConvLayer(in_channels, out_channels, 1, bias=False, activate=False) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: NoiseGenerators = None) -> torch.Tensor:
        skip = self.skip(x) if self.skip is not None else x
        return (skip + self.conv2(self.conv1(x, style, noise), style, noise)) / math.sqrt(2.0)


class GeneratorUpBlock(nn.Module):
    """x2 upsampling residual block: styled transposed conv + blur, styled conv; 1x1 conv + act, bilinear skip."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, use_noise: bool) -> None:
        super().__init__()
        self.conv1 = StyledConv(in_channels, out_channels, 3, style_dim, upsample=True, use_noise=use_noise)
        self.conv2 = StyledConv(out_channels, out_channels, 3, style_dim, use_noise=use_noise)
        self.skip = ConvLayer(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: NoiseGenerators = None) -> torch.Tensor:
        skip = self.skip(x) if self.skip is not None else x
        skip = F.interpolate(skip, scale_factor=2.0, mode="bilinear", align_corners=False)
        return (skip + self.conv2(self.conv1(x, style, noise), style, noise)) / math.sqrt(2.0)


class Generator(nn.Module):
    """(structure code, texture code) -> image. Output is unbounded (no tanh), data live in [-1, 1].

    ``noise_seeds`` (one per sample) draws each sample's noise inputs from its own seeded stream, so an image does
    not depend on the batch it is generated in; without them the noise comes from the global RNG.
    """

    def __init__(self, cfg: GeneratorConfig, encoder_cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n_up = encoder_cfg.structure_downsamplings
        style_dim = encoder_cfg.texture_dim
        code_channels = encoder_cfg.structure_channels
        self.structure_channels = code_channels
        self.style_dim = style_dim
        self.modulation_scale = EqualLinear(style_dim, code_channels)
        self.modulation_bias = EqualLinear(style_dim, code_channels)
        head_width = cfg.width(n_up)
        blocks: list[nn.Module] = []
        in_channels = code_channels
        for i in range(cfg.head_blocks):
            # Widths ramp up linearly to the head width.
            out_channels = max(code_channels, round((i + 1) / cfg.head_blocks * head_width))
            blocks.append(GeneratorHeadBlock(in_channels, out_channels, style_dim, cfg.use_noise))
            in_channels = out_channels
        for level in range(n_up - 1, -1, -1):
            out_channels = cfg.width(level)
            blocks.append(GeneratorUpBlock(in_channels, out_channels, style_dim, cfg.use_noise))
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = ToRGB(in_channels, style_dim)

    def forward(
        self, structure: torch.Tensor, texture: torch.Tensor, noise_seeds: Sequence[int] | None = None
    ) -> torch.Tensor:
        if structure.ndim != 4 or structure.shape[1] != self.structure_channels:
            raise SAEInputError(
                f"Generator expects a structure code (B, {self.structure_channels}, h, w), got {tuple(structure.shape)}"
            )
        if texture.ndim != 2 or texture.shape != (structure.shape[0], self.style_dim):
            raise SAEInputError(
                f"Generator expects a texture code ({structure.shape[0]}, {self.style_dim}), got {tuple(texture.shape)}"
            )
        if noise_seeds is not None and len(noise_seeds) != structure.shape[0]:
            raise SAEInputError(f"Generator got {len(noise_seeds)} noise seeds for a batch of {structure.shape[0]}")
        noise = [torch.Generator().manual_seed(seed) for seed in noise_seeds] if noise_seeds is not None else None
        structure, texture = l2_normalize(structure), l2_normalize(texture)
        scale = self.modulation_scale(texture)[:, :, None, None]
        bias = self.modulation_bias(texture)[:, :, None, None]
        x = structure * scale.to(structure.dtype) + bias.to(structure.dtype)
        for block in self.blocks:
            x = block(x, texture, noise)
        return self.to_rgb(x, texture)


def _pyramid_widths(size: int, base: int, maximum: int) -> dict[int, int]:
    """Width per feature-map side: ``base`` at ``size``, doubling per halving, capped at ``maximum``."""
    widths = {}
    side = size
    while side >= 4:
        widths[side] = min(maximum, base * size // side)
        side //= 2
    return widths


class ImageDiscriminator(nn.Module):
    """StyleGAN2 residual discriminator (no minibatch stddev) for square crops of ``size``."""

    def __init__(self, cfg: DiscriminatorConfig, size: int) -> None:
        super().__init__()
        self.size = size
        widths = _pyramid_widths(size, cfg.base_channels, cfg.max_channels)
        self.from_rgb = ConvLayer(3, widths[size], 1)
        blocks = []
        side = size
        while side > 4:
            blocks.append(DownResBlock(widths[side], widths[side // 2], blur_taps=STYLEGAN_BLUR))
            side //= 2
        self.blocks = nn.Sequential(*blocks)
        self.final_conv = ConvLayer(widths[4], widths[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(widths[4] * 16, widths[4], activate=True), EqualLinear(widths[4], 1)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, self.size, self.size):
            raise SAEInputError(
                f"ImageDiscriminator expects (B, 3, {self.size}, {self.size}), got {tuple(images.shape)}"
            )
        x = self.final_conv(self.blocks(self.from_rgb(images)))
        return self.final_linear(x.flatten(1))


def sample_random_crops(
    images: torch.Tensor,
    n_crops: int,
    patch_size: int,
    scale: tuple[float, float] = (1 / 8, 1 / 4),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random crops (B, n, 3, P, P) resampled bilinearly; side fractions drawn per axis, random h-flip."""
    if images.ndim != 4:
        raise SAEInputError(f"expected images (B, C, H, W), got {tuple(images.shape)}")
    batch, channels = images.shape[:2]
    count = batch * n_crops
    opts = {"device": "cpu", "generator": generator}
    low, high = scale
    sx = torch.rand(count, **opts) * (high - low) + low
    sy = torch.rand(count, **opts) * (high - low) + low
    # Normalised coordinates span [-1, 1], so a crop of fraction s has half-width s and centre within 1 - s.
    cx = (torch.rand(count, **opts) * 2 - 1) * (1 - sx)
    cy = (torch.rand(count, **opts) * 2 - 1) * (1 - sy)
    flip = torch.where(torch.rand(count, **opts) < 0.5, -1.0, 1.0)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = sx * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = cy
    theta = theta.to(device=images.device, dtype=torch.float32)
    grid = F.affine_grid(theta, [count, channels, patch_size, patch_size], align_corners=False)
    source = images.repeat_interleave(n_crops, dim=0).float()
    crops = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return crops.to(images.dtype).reshape(batch, n_crops, channels, patch_size, patch_size)


class PatchDiscriminator(nn.Module):
    """Patch co-occurrence discriminator: is a query crop from the same image as the reference crops?"""

    def __init__(self, cfg: PatchDiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        size = cfg.patch_size
        widths = _pyramid_widths(size, cfg.base_channels, cfg.max_channels)
        layers: list[nn.Module] = [ConvLayer(3, widths[size], 3)]
        side = size
        while side > 4:
            layers.append(DownResBlock(widths[side], widths[side // 2], blur_taps=STYLEGAN_BLUR))
            side //= 2
        top = widths[4]
        layers.append(DownResBlock(top, 2 * top, downsample=False))
        layers.append(ConvLayer(2 * top, top, 3, padding=0))  # 4x4 -> 2x2
        self.features = nn.Sequential(*layers)
        self.feature_shape = (top, 2, 2)
        dims = [2 * top * 4, *cfg.classifier_widths]
        classifier: list[nn.Module] = [
            EqualLinear(d_in, d_out, activate=True) for d_in, d_out in zip(dims[:-1], dims[1:], strict=True)
        ]
        classifier.append(EqualLinear(dims[-1], 1))
        self.classifier = nn.Sequential(*classifier)

    def sample_crops(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return sample_random_crops(
            images, self.cfg.n_crops, self.cfg.patch_size, self.cfg.crop_scale, generator=generator
        )

    def extract_features(self, crops: torch.Tensor, aggregate: bool = False) -> torch.Tensor:
        """(B, n, 3, P, P) -> (B, n, C, 2, 2); with ``aggregate`` the mean over crops, (B, 1, C, 2, 2)."""
        p = self.cfg.patch_size
        if crops.ndim != 5 or tuple(crops.shape[2:]) != (3, p, p):
            raise SAEInputError(f"PatchDiscriminator expects crops (B, n, 3, {p}, {p}), got {tuple(crops.shape)}")
        batch, n_crops = crops.shape[:2]
        feats = self.features(crops.flatten(0, 1)).reshape(batch, n_crops, *self.feature_shape)
        return feats.mean(dim=1, keepdim=True) if aggregate else feats

    def discriminate(self, reference: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Logits (B, n) for each query crop against its image's reference features (B, 1 or n, C, 2, 2)."""
        if reference.shape[0] != query.shape[0]:
            raise SAEInputError(f"reference batch {reference.shape[0]} != query batch {query.shape[0]}")
        reference = reference.expand_as(query)
        pairs = torch.cat([reference.flatten(2), query.flatten(2)], dim=2)
        return self.classifier(pairs).squeeze(-1)

    def forward(self, reference_crops: torch.Tensor, query_crops: torch.Tensor) -> torch.Tensor:
        reference = self.extract_features(reference_crops, aggregate=self.cfg.aggregate_reference)
        return self.discriminate(reference, self.extract_features(query_crops))


class SemanticUpBlock(nn.Module):
    """Learned x2 upsampling (transposed conv + blur) followed by a 3x3 conv (StyleGAN2 layers)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = UpsampleConvLayer(in_channels, out_channels, 3)
        self.conv = ConvLayer(out_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x))


class SemanticHead(nn.Module):
    """LC-SAE inner semantic branch: encoder trunk features -> class logits at 4x the trunk resolution."""

    def __init__(self, cfg: SemanticHeadConfig, trunk_channels: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.trunk_channels = trunk_channels
        self.up1 = SemanticUpBlock(trunk_channels, trunk_channels // 2)
        self.up2 = SemanticUpBlock(trunk_channels // 2, trunk_channels // 4)
        self.classify = ConvLayer(trunk_channels // 4, cfg.n_classes, 1, activate=False)

    def forward(self, trunk: torch.Tensor) -> torch.Tensor:
        if trunk.ndim != 4 or trunk.shape[1] != self.trunk_channels:
            raise SAEInputError(
                f"SemanticHead expects encoder trunk features (B, {self.trunk_channels}, h, w), "
                f"got {tuple(trunk.shape)}"
            )
        return self.classify(self.up2(self.up1(trunk)))


class SAENetworks(nn.Module):
    """Container so the training loop can move, cast and checkpoint all networks together."""

    def __init__(
        self,
        cfg: SAEConfig,
        encoder: Encoder,
        generator: Generator,
        discriminator: ImageDiscriminator,
        patch_discriminator: PatchDiscriminator,
        semantic_head: SemanticHead,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.generator = generator
        self.discriminator = discriminator
        self.patch_discriminator = patch_discriminator
        self.semantic_head = semantic_head

    def translate(self, structure_images: torch.Tensor, texture_images: torch.Tensor) -> torch.Tensor:
        """Image with the structure of ``structure_images`` and the texture of ``texture_images``."""
        structure, _ = self.encoder(structure_images)
        _, texture = self.encoder(texture_images)
        return self.generator(structure, texture)


def build_networks(cfg: SAEConfig, device: torch.device | str | None = None) -> SAENetworks:
    """Build all SAE/LC-SAE networks; pass ``device="meta"`` to count parameters without allocating."""
    cfg.validate()
    with torch.device(device) if device is not None else contextlib.nullcontext():
        encoder = Encoder(cfg.encoder)
        return SAENetworks(
            cfg,
            encoder,
            Generator(cfg.generator, cfg.encoder),
            ImageDiscriminator(cfg.discriminator, cfg.crop_size),
            PatchDiscriminator(cfg.patch_discriminator),
            SemanticHead(cfg.semantic_head, encoder.trunk_channels),
        )


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
