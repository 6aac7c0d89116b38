"""Semantic-guided cGAN networks: pix2pix's parameter counts, shapes, the 70x70 receptive field, init, dropout."""

from __future__ import annotations

import pytest
import torch

from simreal.models.semguided import (
    SemanticPatchDiscriminator,
    SemanticPatchDiscriminatorSpec,
    UNetGenerator,
    UNetGeneratorSpec,
    patch_gan_layers,
)
from simreal.models.spade_blocks import LabelMapError, count_parameters, one_hot_labels


def test_pix2pix_reference_parameter_counts() -> None:
    # pix2pix prints 54.414 M for unet_256 and 2.769 M for the n_layers=3 PatchGAN (3-channel input and output;
    # its D sees input + output = 6 channels). num_classes=2 gives our generator 3 one-hot input channels.
    with torch.device("meta"):
        generator = count_parameters(UNetGenerator(UNetGeneratorSpec(2)))
        patch_gan = count_parameters(patch_gan_layers(6, 1, 64, 3))
    assert round(generator / 1e6, 3) == 54.414
    assert round(patch_gan / 1e6, 3) == 2.769


def test_shared16_full_size_parameter_counts() -> None:
    with torch.device("meta"):
        generator = count_parameters(UNetGenerator(UNetGeneratorSpec(16)))
        discriminator = count_parameters(SemanticPatchDiscriminator(SemanticPatchDiscriminatorSpec(16)))
    # 17 one-hot input channels; D: 17 + 3 input channels, 16 class score maps
    assert generator == 54_428_291
    assert discriminator == 2_905_936


def test_full_size_networks_on_a_cityscapes_frame() -> None:
    with torch.device("meta"):
        generator = UNetGenerator(UNetGeneratorSpec(16))
        image = generator(torch.zeros(1, 17, 256, 512))
        scores = SemanticPatchDiscriminator(SemanticPatchDiscriminatorSpec(16))(torch.zeros(1, 17, 256, 512), image)
    assert image.shape == (1, 3, 256, 512)
    assert scores.shape == (1, 16, 30, 62)  # pix2pix's 30x30 grid on a 256 side


def test_tiny_shapes_and_range() -> None:
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (2, 64, 128))
    segmap = one_hot_labels(labels, 3)
    generator = UNetGenerator(UNetGeneratorSpec(3, base_channels=4, num_downs=6))
    image = generator(segmap)
    assert image.shape == (2, 3, 64, 128)
    assert image.abs().max() <= 1
    scores = SemanticPatchDiscriminator(SemanticPatchDiscriminatorSpec(3, base_channels=4))(segmap, image)
    assert scores.shape == (2, 3, 6, 14)


def test_discriminator_patches_see_70x70_pixels() -> None:
    torch.manual_seed(0)
    discriminator = SemanticPatchDiscriminator(SemanticPatchDiscriminatorSpec(2, base_channels=4)).eval()
    image = torch.randn(1, 3, 128, 128, requires_grad=True)
    scores = discriminator(torch.zeros(1, 3, 128, 128), image)
    scores[0, 1, 6, 6].backward()
    rows = image.grad.abs().sum((0, 1, 3)).nonzero().flatten()
    cols = image.grad.abs().sum((0, 1, 2)).nonzero().flatten()
    assert int(rows.max() - rows.min()) + 1 == 70
    assert int(cols.max() - cols.min()) + 1 == 70


def test_generator_dropout_is_its_training_noise_and_eval_is_deterministic() -> None:
    torch.manual_seed(0)
    generator = UNetGenerator(UNetGeneratorSpec(3, base_channels=4, num_downs=6))
    segmap = one_hot_labels(torch.randint(0, 3, (2, 64, 64)), 3)
    assert not torch.equal(generator(segmap), generator(segmap))
    generator.eval()
    assert torch.equal(generator(segmap), generator(segmap))
    assert sum(isinstance(m, torch.nn.Dropout) for m in generator.modules()) == 1  # num_downs - 5


def test_normal_init() -> None:
    torch.manual_seed(0)
    generator = UNetGenerator(UNetGeneratorSpec(16, base_channels=32))
    weights = torch.cat([m.weight.detach().flatten() for m in generator.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(float(weights.std()) - 0.02) < 0.001
    scales = torch.cat([m.weight.detach() for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(float(scales.mean()) - 1) < 0.01


def test_bad_inputs() -> None:
    generator = UNetGenerator(UNetGeneratorSpec(3, base_channels=4, num_downs=6))
    with pytest.raises(LabelMapError, match="divisible by 64"):
        generator(torch.zeros(1, 4, 64, 96))
    with pytest.raises(ValueError, match="no noise"):
        generator(torch.zeros(1, 4, 64, 64), torch.zeros(1, 8))
    with pytest.raises(ValueError, match="num_downs >= 5"):
        UNetGeneratorSpec(3, num_downs=4)
