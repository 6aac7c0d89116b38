"""SemanticGAN networks: full-size parameter counts, shapes at a tiny size, the CRB's channel shuffle, init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from simreal.errors import ModelError
from simreal.models.semanticgan import (
    CorrelatedResidualBlock,
    MultiscalePatchGANSpec,
    SemanticGANDiscriminator,
    SemanticGANGenerator,
    SemanticGANGeneratorSpec,
    channel_shuffle,
)
from simreal.models.spade_blocks import LabelMapError, count_parameters

# pix2pixHD's Cityscapes input: label_nc 35 one-hot channels + the instance-edge channel = our N + 1 (N = 34) + 1.
CITYSCAPES = {"num_classes": 34, "extra_input_channels": 1}
# Computed by hand from pix2pixHD's layer list (ngf 64, 4 downsamplings, 9 blocks at 1024 channels):
# front 6,381,760 + 9 residual blocks x 18,876,416 + back 6,277,251. Its checkpoint, ~730 MB of float32, is the
# "700 mb" reported for the default global generator (NVIDIA/pix2pixHD issue #258).
PIX2PIXHD_GLOBAL_G = 182_546_755
# A CRB at 1024 channels, s = 4: two 1x1 convs (1024 x 1024 + 1024) and three 3x3 convs (256 x 256 x 9 + 256).
CRB_1024 = 2 * (1024 * 1024 + 1024) + 3 * (256 * 256 * 9 + 256)
RES_BLOCK_1024 = 2 * (1024 * 1024 * 9 + 1024)
# pix2pixHD's 70x70 PatchGAN on 39 input channels: 39*64*16+64, 64*128*16+128, 128*256*16+256, 256*512*16+512,
# 512*16+1.
PATCHGAN_39 = 40_000 + 131_200 + 524_544 + 2_097_664 + 8_193


def _count(build) -> int:
    with torch.device("meta"):
        return count_parameters(build())


def test_the_res_block_generator_is_pix2pixhds_global_generator() -> None:
    assert _count(lambda: SemanticGANGenerator(SemanticGANGeneratorSpec(**CITYSCAPES, block="res"))) == (
        PIX2PIXHD_GLOBAL_G
    )


@pytest.mark.parametrize("block", ["crb", "res2"])
def test_full_size_crb_generator_swaps_nine_residual_blocks_for_crbs(block: str) -> None:
    count = _count(lambda: SemanticGANGenerator(SemanticGANGeneratorSpec(**CITYSCAPES, block=block)))
    assert count == PIX2PIXHD_GLOBAL_G - 9 * RES_BLOCK_1024 + 9 * CRB_1024 == 47_483_971


def test_full_size_discriminator_is_three_pix2pixhd_patchgans() -> None:
    assert (
        _count(lambda: SemanticGANDiscriminator(MultiscalePatchGANSpec(**CITYSCAPES))) == 3 * PATCHGAN_39 == 8_404_803
    )


def test_shared16_full_size_counts() -> None:
    assert _count(lambda: SemanticGANGenerator(SemanticGANGeneratorSpec(16))) == 47_424_387
    assert _count(lambda: SemanticGANDiscriminator(MultiscalePatchGANSpec(16))) == 8_346_435


def test_full_size_generator_paints_256x512_on_meta() -> None:
    with torch.device("meta"):
        fake = SemanticGANGenerator(SemanticGANGeneratorSpec(16))(torch.zeros(1, 17, 256, 512))
    assert fake.shape == (1, 3, 256, 512)


def test_tiny_generator_and_discriminator_shapes() -> None:
    torch.manual_seed(0)
    generator = SemanticGANGenerator(SemanticGANGeneratorSpec(5, base_channels=4, num_downsampling=2, num_blocks=2))
    segmap = torch.zeros(2, 6, 32, 48)
    segmap[:, 1] = 1
    with torch.no_grad():
        fake = generator(segmap)
    assert fake.shape == (2, 3, 32, 48)
    assert float(fake.abs().max()) <= 1
    outputs = SemanticGANDiscriminator(MultiscalePatchGANSpec(5, base_channels=4))(segmap, fake)
    assert len(outputs) == 3
    # 5 layers per scale; 4x4 convs with padding 2: a stride-2 layer maps n to n // 2 + 1, a stride-1 one to n + 1
    assert [len(scale) for scale in outputs] == [5, 5, 5]
    assert [tuple(scale[-1].shape) for scale in outputs] == [(2, 1, 7, 9), (2, 1, 5, 6), (2, 1, 4, 5)]
    assert [scale[-2].shape[1] for scale in outputs] == [32, 32, 32]


def test_generator_refuses_noise_wrong_channels_and_sizes() -> None:
    generator = SemanticGANGenerator(SemanticGANGeneratorSpec(5, base_channels=4, num_downsampling=2, num_blocks=0))
    with pytest.raises(ModelError, match="no noise"):
        generator(torch.zeros(1, 6, 16, 16), torch.zeros(1, 8))
    with pytest.raises(ModelError, match="6-channel"):
        generator(torch.zeros(1, 7, 16, 16))
    with pytest.raises(LabelMapError, match="divisible by 4"):
        generator(torch.zeros(1, 6, 18, 16))


def test_spec_refuses_groups_that_do_not_divide_the_trunk() -> None:
    with pytest.raises(ModelError, match="groups"):
        SemanticGANGeneratorSpec(5, base_channels=4, num_downsampling=1, groups=4)  # 8 channels, 16 sub-groups
    with pytest.raises(ModelError, match="block must be"):
        SemanticGANGeneratorSpec(5, block="dense")
    SemanticGANGeneratorSpec(5, base_channels=4, num_downsampling=1, block="res")  # no groups: any width


def test_channel_shuffle_hands_every_chunk_one_sub_group_of_every_group() -> None:
    groups, channels = 4, 32  # 4 groups of 8 channels, sub-groups of 2
    x = torch.arange(channels, dtype=torch.float32).view(1, channels, 1, 1)
    chunks = [c.flatten().long().tolist() for c in channel_shuffle(x, groups).chunk(groups, dim=1)]
    size, sub = channels // groups, channels // groups // groups
    for j, chunk in enumerate(chunks):
        assert sorted(c // size for c in chunk) == [0, 0, 1, 1, 2, 2, 3, 3]  # two channels from every group
        # ... and those are the j-th sub-group of each group
        assert sorted(c % size for c in chunk) == sorted([j * sub, j * sub + 1] * groups)
    assert sorted(sum(chunks, [])) == list(range(channels))  # a permutation


def _first_conv_input(block: CorrelatedResidualBlock, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the 1x1 stage's output, what the first 3x3 convolution reads) for input ``x``."""
    seen: dict[str, torch.Tensor] = {}
    block.reduce.register_forward_hook(lambda module, args, out: seen.setdefault("reduced", out))
    block.convs[0].register_forward_hook(lambda module, args, out: seen.setdefault("first", args[0]))
    block(x)
    return seen["reduced"], seen["first"]


@pytest.mark.parametrize("shuffle", [True, False])
def test_crb_first_group_reads_sub_groups_of_every_group_res2block_its_own(shuffle: bool) -> None:
    torch.manual_seed(0)
    groups, channels = 4, 32
    block = CorrelatedResidualBlock(channels, groups, shuffle=shuffle)
    reduced, first = _first_conv_input(block, torch.randn(2, channels, 8, 8))
    width, sub = channels // groups, channels // groups // groups
    if shuffle:  # sub-group 0 (channels 0, 1) of groups 0..3, interleaved as ShuffleNet does
        expected = [g * width + c for c in range(sub) for g in range(groups)]
    else:
        expected = list(range(width))
    torch.testing.assert_close(first, reduced[:, expected])


def test_crb_is_residual_and_last_group_passes_through() -> None:
    torch.manual_seed(0)
    block = CorrelatedResidualBlock(16, 4)
    x = torch.randn(1, 16, 8, 8)
    nn.init.zeros_(block.expand[0].weight)
    nn.init.zeros_(block.expand[0].bias)
    torch.testing.assert_close(block(x), x)  # a zero expansion leaves the identity path alone
    # the last group's channels reach the 1x1 expansion untouched: a 1x1 that reads only them sees `reduced` there
    seen: dict[str, torch.Tensor] = {}
    block.expand.register_forward_hook(lambda module, args, out: seen.setdefault("in", args[0]))
    reduced = channel_shuffle(block.reduce(x), 4)
    block(x)
    torch.testing.assert_close(seen["in"][:, 12:], reduced[:, 12:])


def test_convolutions_start_from_normal_0_002() -> None:
    torch.manual_seed(0)
    generator = SemanticGANGenerator(SemanticGANGeneratorSpec(16, base_channels=16, num_blocks=1))
    weights = torch.cat(
        [m.weight.detach().flatten() for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    )
    assert float(weights.mean()) == pytest.approx(0.0, abs=1e-3)
    assert float(weights.std()) == pytest.approx(0.02, rel=0.02)
