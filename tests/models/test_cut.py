"""CUT's generator and PatchNCE head: the reference's parameter counts, the identity start, encoder layers, inputs."""

from __future__ import annotations

import pytest
import torch

from simreal.errors import ModelError
from simreal.models.cut import BlurDownsample, BlurUpsample, CUTGenerator, CUTGeneratorSpec, PatchProjection
from simreal.models.patchgan import PatchGAN
from simreal.models.spade_blocks import count_parameters


def _count(build) -> int:
    with torch.device("meta"):
        return count_parameters(build())


# CUT's resnet generator at 3 input channels (cut.md §1, measured from the reference's networks.py).
@pytest.mark.parametrize(
    ("ngf", "blocks", "millions"), [(64, 9, 11.38), (64, 6, 7.84), (32, 9, 2.85), (16, 6, 0.49), (16, 2, 0.20)]
)
def test_generator_parameter_count_is_the_references(ngf: int, blocks: int, millions: float) -> None:
    count = _count(lambda: CUTGenerator(CUTGeneratorSpec(ngf=ngf, n_blocks=blocks, residual=False)))
    assert round(count / 1e6, 2) == millions


def test_full_size_generator_exactly() -> None:
    # 7x7 stem, two 3x3 down convs, 9 blocks of 2 x (9 * 256^2 + 256), two 3x3 up convs, the 7x7 head
    stem = 3 * 64 * 49 + 64
    down = (64 * 128 * 9 + 128) + (128 * 256 * 9 + 256)
    blocks = 9 * 2 * (256 * 256 * 9 + 256)
    up = (256 * 128 * 9 + 128) + (128 * 64 * 9 + 64)
    head = 64 * 3 * 49 + 3
    assert _count(lambda: CUTGenerator(CUTGeneratorSpec())) == stem + down + blocks + up + head == 11_378_179


def test_patchgan_and_projection_counts_are_the_references() -> None:
    # CUT's basic D at ndf 64 (2.76M) and netF at ngf 64 (0.56M): cut.md §2-3
    assert round(_count(lambda: PatchGAN(3, 64, 3)) / 1e6, 2) == 2.76
    channels = CUTGenerator(CUTGeneratorSpec(ngf=64)).feature_channels
    assert channels == [3, 128, 256, 256, 256]
    assert round(_count(lambda: PatchProjection(channels, 256)) / 1e6, 2) == 0.56


def test_residual_generator_starts_as_the_identity() -> None:
    torch.manual_seed(0)
    spec = CUTGeneratorSpec(ngf=8, n_blocks=2, label_channels=5, noise_channels=2, grain=True)
    image = torch.rand(2, 3, 32, 48) * 2 - 1
    labels = torch.nn.functional.one_hot(torch.randint(0, 5, (2, 32, 48)), 5).permute(0, 3, 1, 2).float()
    out = CUTGenerator(spec)(image, labels, torch.randn(2, 5, 32, 48))
    torch.testing.assert_close(out, image, atol=0, rtol=0)
    plain = CUTGenerator(CUTGeneratorSpec(ngf=8, n_blocks=2, residual=False))(image)
    assert plain.abs().max() < 0.5 and not torch.allclose(plain, image, atol=0.1)  # CUT's own start: near grey


def test_encoder_returns_the_nce_layers() -> None:
    generator = CUTGenerator(CUTGeneratorSpec(ngf=4, n_blocks=6, label_channels=3, noise_channels=1))
    image, labels = torch.zeros(1, 3, 32, 64), torch.zeros(1, 3, 32, 64)
    feats = generator.encode(image, labels)
    shapes = [tuple(f.shape[1:]) for f in feats]
    # padded RGB only, first down conv (full res), second down conv (1/2), residual blocks 1 and 5 (1/4)
    assert shapes == [(3, 38, 70), (8, 32, 64), (16, 16, 32), (16, 8, 16), (16, 8, 16)]
    assert [s[0] for s in shapes] == generator.feature_channels


def test_generator_refuses_inputs_it_does_not_take() -> None:
    generator = CUTGenerator(CUTGeneratorSpec(ngf=4, n_blocks=1, label_channels=3))
    with pytest.raises(ModelError, match="needs 3 label channels"):
        generator(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ModelError, match="takes no noise channels"):
        generator(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), torch.zeros(1, 1, 16, 16))
    with pytest.raises(ModelError, match="multiples of 4"):
        generator(torch.zeros(1, 3, 18, 16), torch.zeros(1, 3, 18, 16))
    with pytest.raises(ModelError, match="outside"):
        CUTGeneratorSpec(n_blocks=2, nce_layers=(0, 40))


def test_blur_stages_halve_and_double_and_keep_a_constant_image() -> None:
    x = torch.full((1, 2, 8, 12), 0.7)
    down, up = BlurDownsample(2)(x), BlurUpsample(2)(x)
    assert down.shape == (1, 2, 4, 6) and up.shape == (1, 2, 16, 24)
    torch.testing.assert_close(down, torch.full_like(down, 0.7))
    torch.testing.assert_close(up, torch.full_like(up, 0.7))


def test_spec_round_trips() -> None:
    spec = CUTGeneratorSpec(ngf=8, n_blocks=3, label_channels=17, noise_channels=4, nce_layers=(0, 4, 8))
    assert CUTGeneratorSpec.from_dict(spec.to_dict()) == spec


def test_noise_enters_at_full_resolution_and_can_make_per_pixel_grain() -> None:
    torch.manual_seed(0)
    generator = CUTGenerator(CUTGeneratorSpec(ngf=4, n_blocks=1, noise_channels=2))
    image = torch.zeros(1, 3, 32, 32)
    noise = torch.randn(1, 2, 32, 32)
    torch.testing.assert_close(generator(image, noise=noise), image, atol=0, rtol=0)  # the head is zero at the start
    torch.nn.init.normal_(generator.head.weight, std=0.1)
    out = generator(image, noise=noise)
    # grain: neighbouring pixels differ far more than a blurred (down-and-up) path could make them
    assert (out[..., 1:] - out[..., :-1]).abs().mean() > 0.01
    assert not torch.allclose(out, generator(image, noise=torch.randn(1, 2, 32, 32)))


def test_grain_has_an_amplitude_per_class_and_stays_out_of_the_clean_frame() -> None:
    generator = CUTGenerator(CUTGeneratorSpec(ngf=4, n_blocks=1, label_channels=2, grain=True))
    image = torch.zeros(1, 3, 16, 16)
    labels = torch.zeros(1, 2, 16, 16)
    labels[:, 0, :8], labels[:, 1, 8:] = 1, 1  # top half class 0, bottom half class 1
    with torch.no_grad():
        generator.grain.weight[:, 1] = 0.2  # grain on class 1 only
    out, clean = generator(image, labels, torch.randn(1, 3, 16, 16), with_clean=True)
    torch.testing.assert_close(clean, image)  # the head is still zero: the content is untouched
    assert out[..., :8, :].abs().max() == 0 and out[..., 8:, :].std() > 0.1
    with pytest.raises(ModelError, match="needs 3 noise channels"):
        generator(image, labels)
