"""SAE / LC-SAE networks: reference parameter counts (full, on meta), reference block semantics, shapes, crops,
per-sample noise, bf16, channels_last."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from simreal.models.sae import (
    SAEConfig,
    SAEConfigError,
    SAEInputError,
    build_networks,
    count_parameters,
    sample_random_crops,
)
from simreal.models.stylegan2_layers import Blur, DownResBlock, UpsampleConvLayer

# Reference SAE at 256x256 (specs/reference/models.md §1.2, measured on the reference code, in millions to 2 places).
REFERENCE_PARAMS = {
    "encoder": 30.58e6,
    "generator": 25.06e6,
    "discriminator": 28.86e6,
    "patch_discriminator": 24.52e6,
}
TEXTURE_DIM = 2048


def conv_params(c_in: int, c_out: int, kernel: int, bias: bool) -> int:
    return c_in * c_out * kernel * kernel + (c_out if bias else 0)


def styled_conv_params(c_in: int, c_out: int, kernel: int) -> int:
    """Reference StyledConv: weight, style affine (bias init 1), noise weight, FusedLeakyReLU bias."""
    return c_in * c_out * kernel * kernel + (TEXTURE_DIM + 1) * c_in + 1 + c_out


def reference_encoder_params() -> int:
    """StyleGAN2ResnetEncoder layer by layer (widths 2**(5+i)); a ConvLayer's bias sits in its activation."""
    width = [2 ** (5 + i) for i in range(7)]
    total = conv_params(3, 32, 1, bias=True)  # FromRGB
    for i in range(4):  # ResBlock: conv 3x3, conv 3x3 + down, skip 1x1 without bias
        c_in, c_out = width[i], width[i + 1]
        total += (
            conv_params(c_in, c_in, 3, True) + conv_params(c_in, c_out, 3, True) + conv_params(c_in, c_out, 1, False)
        )
    total += conv_params(512, 512, 1, True) + conv_params(512, 8, 1, True)  # ToSpatialCode
    total += conv_params(512, 1024, 3, True) + conv_params(1024, 2048, 3, True)  # DownToGlobalCode
    return total + TEXTURE_DIM * TEXTURE_DIM + TEXTURE_DIM  # ToGlobalCode


def reference_generator_params() -> int:
    """StyleGAN2ResnetGenerator: modulation, 2 head blocks (linear bias-free 1x1 skip), 4 up blocks (1x1 conv +
    act skip), ToRGB (modulated 1x1 without demodulation + bias)."""
    total = 2 * (TEXTURE_DIM * 8 + 8)
    for c_in, c_out in ((8, 256), (256, 512)):
        total += styled_conv_params(c_in, c_out, 3) + styled_conv_params(c_out, c_out, 3) + c_in * c_out
    for c_in, c_out in ((512, 512), (512, 512), (512, 256), (256, 128)):
        total += styled_conv_params(c_in, c_out, 3) + styled_conv_params(c_out, c_out, 3)
        total += conv_params(c_in, c_out, 1, True) if c_in != c_out else 0
    return total + 3 * 128 + (TEXTURE_DIM + 1) * 128 + 3


@pytest.fixture(scope="module")
def full_meta():
    return build_networks(SAEConfig.preset("full"), device="meta")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_networks(SAEConfig.preset("tiny"))


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_full_parameter_counts_match_reference(full_meta, name):
    count = count_parameters(getattr(full_meta, name))
    assert round(count / 1e6, 2) == pytest.approx(REFERENCE_PARAMS[name] / 1e6)


def test_full_encoder_and_generator_counts_are_the_reference_layer_sums(full_meta):
    assert count_parameters(full_meta.encoder) == reference_encoder_params()
    assert count_parameters(full_meta.generator) == reference_generator_params()


def test_full_semantic_branch_halves_the_trunk_channels(full_meta):
    head = full_meta.semantic_head
    assert full_meta.encoder.trunk_channels == 512
    widths = [head.up1.up.weight.shape[:2], head.up2.up.weight.shape[:2], head.classify.conv.weight.shape[:2]]
    assert [tuple(w) for w in widths] == [(256, 512), (128, 256), (16, 128)]


# ----------------------------------------------------------------- reference block semantics, re-stated functionally
def fused_lrelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x + bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)


def blur(x: torch.Tensor, taps: list[float], pad: tuple[int, int], mode: str) -> torch.Tensor:
    """Reference Blur/upfirdn2d: pad (zeros, or reflection when reflection_pad), then a normalised separable FIR."""
    k = torch.tensor(taps)
    k = torch.outer(k, k) / torch.outer(k, k).sum()
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]], mode=mode)
    return F.conv2d(x, k.expand(x.shape[1], 1, *k.shape), groups=x.shape[1])


def reference_encoder_resblock(x: torch.Tensor, block: DownResBlock) -> torch.Tensor:
    """SAE ResBlock(in, out, [1, 2, 1], reflection_pad=True): the 3x3 convs reflect-pad, the 1x1 skip zero-pads."""
    conv1, conv2, skip = block.conv1, block.conv2, block.skip
    h = F.conv2d(F.pad(x, [1, 1, 1, 1], mode="reflect"), conv1.conv.weight * conv1.conv.scale)
    h = fused_lrelu(h, conv1.act.bias)
    h = F.conv2d(blur(h, [1, 2, 1], (2, 1), "reflect"), conv2.conv.weight * conv2.conv.scale, stride=2)
    h = fused_lrelu(h, conv2.act.bias)
    s = F.conv2d(blur(x, [1, 2, 1], (1, 0), "constant"), skip.conv.weight * skip.conv.scale, stride=2)
    return (h + s) / math.sqrt(2)


def reference_styled_conv(x: torch.Tensor, texture: torch.Tensor, layer) -> torch.Tensor:
    """StyledConv with new_demodulation: RMS-normalised style into the input, weight demodulated unmodulated."""
    mod = layer.conv.modulation
    style = F.linear(texture, mod.weight * mod.scale, mod.bias)
    style = style * torch.rsqrt(style.pow(2).mean(dim=1, keepdim=True) + 1e-8)
    weight = layer.conv.weight * layer.conv.scale
    weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
    out = F.conv2d(x * style[:, :, None, None], weight, padding=weight.shape[-1] // 2)
    return fused_lrelu(out, layer.act.bias)  # noise weight is 0 at init: no noise term


def reference_head_block(x: torch.Tensor, texture: torch.Tensor, block) -> torch.Tensor:
    """ResolutionPreservingResnetBlock: skip = ConvLayer(in, out, 1, activate=False, bias=False), i.e. linear."""
    res = reference_styled_conv(reference_styled_conv(x, texture, block.conv1), texture, block.conv2)
    skip = F.conv2d(x, block.skip.conv.weight * block.skip.conv.scale)
    return (skip + res) / math.sqrt(2)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).norm() / expected.norm())


def test_encoder_resblocks_compute_the_reference_block(tiny):
    x = torch.randn(2, tiny.cfg.encoder.base_channels, 32, 48)
    for block in tiny.encoder.down:
        with torch.no_grad():
            expected = reference_encoder_resblock(x, block)
            assert relative_error(block(x), expected) <= 1e-5
            # The check can tell: a reflect-padded skip (the old behaviour) is off by far more.
            wrong = blur(x, [1, 2, 1], (1, 0), "reflect")
            wrong_skip = F.conv2d(wrong, block.skip.conv.weight * block.skip.conv.scale, stride=2)
            correct_skip = F.conv2d(
                blur(x, [1, 2, 1], (1, 0), "constant"), block.skip.conv.weight * block.skip.conv.scale, stride=2
            )
            assert relative_error(wrong_skip, correct_skip) > 1e-3
            x = block(x)


def test_generator_head_blocks_compute_the_reference_block(tiny):
    generator = tiny.generator
    head_blocks = generator.blocks[: generator.cfg.head_blocks]
    torch.manual_seed(3)
    texture = F.normalize(torch.randn(2, generator.style_dim), dim=1)
    x = torch.randn(2, generator.structure_channels, 4, 6)
    for block in head_blocks:
        assert block.skip is not None and block.skip.act is None and block.skip.conv.bias is None
        with torch.no_grad():
            expected = reference_head_block(x, texture, block)
            assert relative_error(block(x, texture), expected) <= 1e-5
            x = block(x, texture)


@pytest.fixture(scope="module")
def test_full_shapes_on_frames_and_crops(full_meta):
    nets = full_meta
    frames = torch.empty(2, 3, 256, 512, device="meta")
    structure, texture, trunk = nets.encoder(frames, return_trunk=True)
    assert structure.shape == (2, 8, 16, 32)
    assert texture.shape == (2, 2048)
    assert trunk.shape == (2, 512, 16, 32)
    assert nets.generator(structure, texture).shape == (2, 3, 256, 512)
    assert nets.semantic_head(trunk).shape == (2, 16, 64, 128)
    crops = torch.empty(2, 3, 256, 256, device="meta")
    assert nets.discriminator(crops).shape == (2, 1)
    patches = torch.empty(2, 8, 3, 128, 128, device="meta")
    assert nets.patch_discriminator.extract_features(patches).shape == (2, 8, 384, 2, 2)
    assert nets.patch_discriminator.extract_features(patches, aggregate=True).shape == (2, 1, 384, 2, 2)
    assert nets.patch_discriminator(patches, patches).shape == (2, 8)


def test_tiny_shapes_and_unit_norm_codes(tiny):
    cfg = tiny.cfg
    images = torch.randn(3, 3, cfg.crop_size, cfg.crop_size)
    structure, texture, trunk = tiny.encoder(images, return_trunk=True)
    assert structure.shape == (3, 8, cfg.crop_size // 16, cfg.crop_size // 16)
    assert texture.shape == (3, cfg.encoder.texture_dim)
    torch.testing.assert_close(structure.norm(dim=1), torch.ones(3, *structure.shape[2:]))
    torch.testing.assert_close(texture.norm(dim=1), torch.ones(3))
    # The trunk is what both heads branch off: the structure code is its 1x1 head, normalised.
    assert trunk.shape == (3, tiny.encoder.trunk_channels, *structure.shape[2:])
    torch.testing.assert_close(structure, torch.nn.functional.normalize(tiny.encoder.to_structure(trunk), dim=1))
    out = tiny.generator(structure, texture)
    assert out.shape == images.shape and torch.isfinite(out).all()
    assert tiny.discriminator(out).shape == (3, 1)
    logits = tiny.semantic_head(trunk)
    assert logits.shape == (3, cfg.semantic_head.n_classes, cfg.crop_size // 4, cfg.crop_size // 4)
    crops = tiny.patch_discriminator.sample_crops(images)
    assert tiny.patch_discriminator(crops, crops).shape == (3, cfg.patch_discriminator.n_crops)


def test_tiny_translates_full_frames(tiny):
    height, width = tiny.cfg.frame_size
    out = tiny.translate(torch.randn(1, 3, height, width), torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 3, height, width)


def test_tiny_backward_reaches_every_trainable_parameter(tiny):
    tiny.zero_grad(set_to_none=True)
    images = torch.randn(2, 3, 64, 64)
    structure, texture, trunk = tiny.encoder(images, return_trunk=True)
    fake = tiny.generator(structure, texture)
    crops = tiny.patch_discriminator.sample_crops(fake)
    loss = tiny.discriminator(fake).sum() + tiny.patch_discriminator(crops, crops).sum()
    loss = loss + tiny.semantic_head(trunk).square().mean()
    loss.backward()
    missing = [n for n, p in tiny.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in tiny.parameters())


def test_bf16_autocast_channels_last_forward_on_cpu():
    torch.manual_seed(0)
    nets = build_networks(SAEConfig.preset("tiny")).to(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        structure, texture, trunk = nets.encoder(images, return_trunk=True)
        fake = nets.generator(structure, texture)
        logits = nets.discriminator(fake)
        crops = nets.patch_discriminator.sample_crops(fake)
        patch_logits = nets.patch_discriminator(crops, crops)
        seg = nets.semantic_head(trunk)
    assert fake.dtype == torch.bfloat16
    for tensor in (fake, logits, patch_logits, seg):
        assert torch.isfinite(tensor.float()).all()


def test_seeded_generator_noise_is_per_sample():
    torch.manual_seed(0)
    nets = build_networks(SAEConfig.preset("tiny"))
    for name, param in nets.generator.named_parameters():
        if name.endswith("noise.weight"):
            param.data.fill_(1.0)  # trained noise weights are non-zero; at init (0) noise would not show
    structure, texture = nets.encoder(torch.randn(3, 3, 64, 64))
    with torch.no_grad():
        batched = nets.generator(structure, texture, noise_seeds=[5, 6, 7])
        single = torch.cat(
            [nets.generator(structure[i : i + 1], texture[i : i + 1], [s]) for i, s in enumerate([5, 6, 7])]
        )
        reseeded = nets.generator(structure, texture, noise_seeds=[5, 6, 8])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(reseeded[:2], batched[:2], rtol=1e-5, atol=1e-5)
    assert (reseeded[2] - batched[2]).abs().max() > 1e-2
    with pytest.raises(SAEInputError, match="2 noise seeds for a batch of 3"):
        nets.generator(structure, texture, noise_seeds=[1, 2])


def test_crops_at_full_scale_recover_image_or_its_mirror():
    image = torch.randn(2, 3, 16, 16)
    crops = sample_random_crops(image, n_crops=6, patch_size=16, scale=(1.0, 1.0))
    assert crops.shape == (2, 6, 3, 16, 16)
    for b in range(2):
        for c in range(6):
            crop = crops[b, c]
            assert torch.allclose(crop, image[b], atol=1e-5) or torch.allclose(crop, image[b].flip(-1), atol=1e-5)


def test_small_crops_see_a_local_region():
    # Left half 0, right half 1: a crop spans at most 1/4 of the side, so only crops near the middle mix both
    # halves; most crops are constant, and bilinear sampling keeps values in [0, 1].
    image = torch.zeros(1, 3, 64, 64)
    image[..., 32:] = 1.0
    crops = sample_random_crops(image, n_crops=64, patch_size=8, generator=torch.Generator().manual_seed(1))
    spread = crops.amax(dim=(2, 3, 4)) - crops.amin(dim=(2, 3, 4))
    assert crops.min() >= 0 and crops.max() <= 1
    assert (spread < 1e-6).float().mean() > 0.5


def test_blur_preserves_constant_and_upsampling_doubles_size():
    x = torch.full((1, 2, 8, 8), 3.0)
    blurred = Blur((1, 3, 3, 1), pad=(1, 2))(x)
    assert blurred.shape == (1, 2, 8, 8)
    torch.testing.assert_close(blurred[..., 2:-2, 2:-2], torch.full((1, 2, 4, 4), 3.0))
    assert UpsampleConvLayer(2, 4)(x).shape == (1, 4, 16, 16)


def test_bad_inputs_raise_clear_errors(tiny):
    with pytest.raises(SAEInputError, match="divisible by 16"):
        tiny.encoder(torch.randn(1, 3, 40, 64))
    with pytest.raises(SAEInputError, match=r"\(B, 3, H, W\)"):
        tiny.encoder(torch.randn(1, 1, 64, 64))
    with pytest.raises(SAEInputError, match="ImageDiscriminator expects"):
        tiny.discriminator(torch.randn(1, 3, 32, 32))
    structure, texture = tiny.encoder(torch.randn(2, 3, 64, 64))
    with pytest.raises(SAEInputError, match="texture code"):
        tiny.generator(structure, texture[:1])
    with pytest.raises(SAEInputError, match="encoder trunk features"):
        tiny.semantic_head(structure)
    saved = dataclasses.asdict(tiny.cfg)
    assert SAEConfig.from_dict(saved) == tiny.cfg
    saved["semantic_head"]["channels"] = [32, 16]  # an older checkpoint's configurable head widths
    with pytest.raises(SAEConfigError, match="another simreal version"):
        SAEConfig.from_dict(saved)
    with pytest.raises(SAEConfigError, match="unknown SAE preset"):
        SAEConfig.preset("huge")
    with pytest.raises(SAEConfigError, match="multiple of 16"):
        build_networks(SAEConfig.preset("tiny", crop_size=72))
