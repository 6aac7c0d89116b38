"""SAE / LC-SAE networks: reference parameter counts (full, on meta), shapes, crops, bf16, channels_last."""

from __future__ import annotations

import pytest
import torch

from simreal.models.sae import (
    SAEConfig,
    SAEConfigError,
    SAEInputError,
    build_networks,
    count_parameters,
    sample_random_crops,
)
from simreal.models.stylegan2_layers import Blur, UpsampleConvLayer

# Reference SAE at 256x256 (specs/reference/models.md §1.2, measured on the reference code).
REFERENCE_PARAMS = {
    "encoder": 30.58e6,
    "generator": 25.06e6,
    "discriminator": 28.86e6,
    "patch_discriminator": 24.52e6,
}
PARAM_TOLERANCE = 0.005  # reached: within 0.02 % of every reference count


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
    assert abs(count - REFERENCE_PARAMS[name]) / REFERENCE_PARAMS[name] < PARAM_TOLERANCE


def test_full_shapes_on_frames_and_crops(full_meta):
    nets = full_meta
    frames = torch.empty(2, 3, 256, 512, device="meta")
    structure, texture = nets.encoder(frames)
    assert structure.shape == (2, 8, 16, 32)
    assert texture.shape == (2, 2048)
    assert nets.generator(structure, texture).shape == (2, 3, 256, 512)
    assert nets.semantic_head(structure).shape == (2, 16, 64, 128)
    crops = torch.empty(2, 3, 256, 256, device="meta")
    assert nets.discriminator(crops).shape == (2, 1)
    patches = torch.empty(2, 8, 3, 128, 128, device="meta")
    assert nets.patch_discriminator.extract_features(patches).shape == (2, 8, 384, 2, 2)
    assert nets.patch_discriminator.extract_features(patches, aggregate=True).shape == (2, 1, 384, 2, 2)
    assert nets.patch_discriminator(patches, patches).shape == (2, 8)


def test_tiny_shapes_and_unit_norm_codes(tiny):
    cfg = tiny.cfg
    images = torch.randn(3, 3, cfg.crop_size, cfg.crop_size)
    structure, texture = tiny.encoder(images)
    assert structure.shape == (3, 8, cfg.crop_size // 16, cfg.crop_size // 16)
    assert texture.shape == (3, cfg.encoder.texture_dim)
    torch.testing.assert_close(structure.norm(dim=1), torch.ones(3, *structure.shape[2:]))
    torch.testing.assert_close(texture.norm(dim=1), torch.ones(3))
    out = tiny.generator(structure, texture)
    assert out.shape == images.shape and torch.isfinite(out).all()
    assert tiny.discriminator(out).shape == (3, 1)
    logits = tiny.semantic_head(structure)
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
    structure, texture = tiny.encoder(images)
    fake = tiny.generator(structure, texture)
    crops = tiny.patch_discriminator.sample_crops(fake)
    loss = tiny.discriminator(fake).sum() + tiny.patch_discriminator(crops, crops).sum()
    loss = loss + tiny.semantic_head(structure).square().mean()
    loss.backward()
    missing = [n for n, p in tiny.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in tiny.parameters())


def test_bf16_autocast_channels_last_forward_on_cpu():
    torch.manual_seed(0)
    nets = build_networks(SAEConfig.preset("tiny")).to(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        structure, texture = nets.encoder(images)
        fake = nets.generator(structure, texture)
        logits = nets.discriminator(fake)
        crops = nets.patch_discriminator.sample_crops(fake)
        patch_logits = nets.patch_discriminator(crops, crops)
        seg = nets.semantic_head(structure)
    assert fake.dtype == torch.bfloat16
    for tensor in (fake, logits, patch_logits, seg):
        assert torch.isfinite(tensor.float()).all()


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
    with pytest.raises(SAEConfigError, match="unknown SAE preset"):
        SAEConfig.preset("huge")
    with pytest.raises(SAEConfigError, match="multiple of 16"):
        build_networks(SAEConfig.preset("tiny", crop_size=72))
