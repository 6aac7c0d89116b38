"""Synthesis networks: parameter counts at the references' Cityscapes settings, shapes, noise, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.utils import parametrize

from simreal.errors import ModelError
from simreal.models.dpgan import DPGANDiscriminator, DPGANGenerator, DPGANGeneratorSpec
from simreal.models.oasis import OASISGenerator, OASISGeneratorSpec, UNetDiscriminator, UNetDiscriminatorSpec
from simreal.models.spade import (
    MultiscalePatchDiscriminator,
    PatchGANSpec,
    SPADEEncoder,
    SPADEGenerator,
    SPADEGeneratorSpec,
)
from simreal.models.spade_blocks import (
    SN_INIT_DEFAULT,
    LabelMapError,
    conv2d,
    count_parameters,
    one_hot_labels,
    reestimate_batch_norm,
)

# The references' Cityscapes label input has 35 channels (34 ids + unknown) = our N + 1 with N = 34; SPADE adds
# an instance-edge channel (36 = 35 + 1 with N = 35 here).
REFERENCE_COUNTS = [
    ("DP-GAN G", lambda: DPGANGenerator(DPGANGeneratorSpec(34)), 69.51e6),
    ("OASIS G", lambda: OASISGenerator(OASISGeneratorSpec(34)), 71.11e6),
    ("DP-GAN D", lambda: DPGANDiscriminator(UNetDiscriminatorSpec(35)), 22.92e6),
    ("OASIS D", lambda: UNetDiscriminator(UNetDiscriminatorSpec(35)), 22.25e6),
    ("SPADE G", lambda: SPADEGenerator(SPADEGeneratorSpec(35)), 93.05e6),
    (
        "SPADE G (VAE)",
        lambda: SPADEGenerator(SPADEGeneratorSpec(35, use_vae=True, vae_image_size=(256, 512))),
        101.14e6,
    ),
    ("SPADE encoder", lambda: SPADEEncoder(SPADEGeneratorSpec(35, use_vae=True, vae_image_size=(256, 512))), 10.46e6),
    ("SPADE D", lambda: MultiscalePatchDiscriminator(PatchGANSpec(35, extra_input_channels=1)), 5.60e6),
]


@pytest.mark.parametrize(("name", "build", "expected"), REFERENCE_COUNTS, ids=[c[0] for c in REFERENCE_COUNTS])
def test_full_size_parameter_counts_match_the_references(name: str, build, expected: float) -> None:
    with torch.device("meta"):
        count = count_parameters(build())
    assert abs(count - expected) / expected < 0.001, f"{name}: {count / 1e6:.2f}M, reference {expected / 1e6:.2f}M"


def test_shared16_full_size_generators_paint_256x512_on_meta() -> None:
    with torch.device("meta"):
        segmap = torch.zeros(1, 17, 256, 512)
        for generator in (
            DPGANGenerator(DPGANGeneratorSpec(16)),
            OASISGenerator(OASISGeneratorSpec(16)),
            SPADEGenerator(SPADEGeneratorSpec(16)),
        ):
            assert generator(segmap).shape == (1, 3, 256, 512)
        out = DPGANDiscriminator(UNetDiscriminatorSpec(16))(torch.zeros(1, 3, 256, 512))
    assert out.logits.shape == (1, 17, 256, 512)
    assert [tuple(s.shape) for s in out.patch_scores] == [(1, 1, 8, 16), (1, 1, 2, 4)]
    assert [f.shape[1] for f in out.decoder_features] == [256, 256, 128, 128, 64]


def tiny_generators() -> list[torch.nn.Module]:
    return [
        DPGANGenerator(DPGANGeneratorSpec(3, z_dim=4, base_channels=4, pyramid_channels=8)),
        OASISGenerator(OASISGeneratorSpec(3, z_dim=4, base_channels=4)),
    ]


@pytest.mark.parametrize("generator", tiny_generators(), ids=["dpgan", "oasis"])
def test_the_given_noise_is_used(generator: torch.nn.Module) -> None:
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (2, 32, 64))
    labels[:, :4] = 255
    segmap = one_hot_labels(labels, 3)
    # fitted BatchNorm statistics: the initial ones (mean 0, var 1) squash the tiny-init pyramid's response
    reestimate_batch_norm(generator, [(segmap, torch.randn(2, 4)) for _ in range(3)])
    generator.eval()
    z1, z2 = torch.randn(2, 4), torch.randn(2, 4)
    with torch.no_grad():
        first, again, other = generator(segmap, z1), generator(segmap, z1), generator(segmap, z2)
        per_pixel = z1[:, :, None, None].expand(2, 4, 32, 64).clone()
        per_pixel[:, :, :, 32:] = z2[:, :, None, None]
        mixed = generator(segmap, per_pixel)
    assert first.shape == (2, 3, 32, 64) and first.abs().max() <= 1
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 0.1 * first.abs().mean()
    assert not torch.equal(mixed, first) and not torch.equal(mixed, other)
    with pytest.raises(ModelError, match="noise must be"):
        generator(segmap, torch.randn(2, 5))


def test_spade_without_vae_is_deterministic_and_refuses_noise() -> None:
    generator = SPADEGenerator(SPADEGeneratorSpec(3, base_channels=4, num_upsampling="normal")).eval()
    segmap = one_hot_labels(torch.randint(0, 3, (1, 64, 64)), 3)
    assert generator(segmap).shape == (1, 3, 64, 64)
    with pytest.raises(ModelError, match="takes no noise"):
        generator(segmap, torch.randn(1, 256))
    vae = SPADEGenerator(
        SPADEGeneratorSpec(3, base_channels=4, num_upsampling="normal", use_vae=True, z_dim=8, vae_image_size=(64, 64))
    ).eval()
    z = torch.randn(1, 8)
    assert torch.equal(vae(segmap, z), vae(segmap, z)) and not torch.equal(vae(segmap, z), vae(segmap, -z))


def test_bad_label_maps_are_refused_clearly() -> None:
    with pytest.raises(LabelMapError, match=r"label ids \[7\]"):
        one_hot_labels(torch.full((1, 8, 8), 7), 3)
    one_hot = one_hot_labels(torch.tensor([[[0, 2, 255]]]), 3)
    assert one_hot[0, :, 0].argmax(0).tolist() == [1, 3, 0]  # don't-care -> channel 0
    generator = OASISGenerator(OASISGeneratorSpec(3, z_dim=4, base_channels=4))
    with pytest.raises(LabelMapError, match="divisible by 32"):
        generator(one_hot_labels(torch.zeros(1, 40, 64, dtype=torch.long), 3))


def _spectral_norm_convs(net: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and parametrize.is_parametrized(m, "weight")]


def _xavier_std(conv: torch.nn.Conv2d) -> float:
    """Xavier-normal with the references' gain 0.02."""
    receptive = conv.kernel_size[0] * conv.kernel_size[1]
    return 0.02 * math.sqrt(2.0 / (receptive * (conv.in_channels + conv.out_channels)))


def _pytorch_default_std(conv: torch.nn.Conv2d) -> float:
    """nn.Conv2d's own init, kaiming-uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return 1.0 / math.sqrt(3 * conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1])


SN_INIT_CASES = [  # (network, the raw-weight std its reference ends up with under spectral norm)
    ("OASIS G", lambda: OASISGenerator(OASISGeneratorSpec(16, base_channels=16)), _xavier_std),
    ("OASIS D", lambda: UNetDiscriminator(UNetDiscriminatorSpec(16, 16)), _xavier_std),
    ("DP-GAN G", lambda: DPGANGenerator(DPGANGeneratorSpec(16, base_channels=16)), _xavier_std),
    ("DP-GAN D", lambda: DPGANDiscriminator(UNetDiscriminatorSpec(16, 16)), _xavier_std),
    ("SPADE G", lambda: SPADEGenerator(SPADEGeneratorSpec(16, base_channels=16)), _pytorch_default_std),
    ("SPADE D", lambda: MultiscalePatchDiscriminator(PatchGANSpec(16, 16)), _pytorch_default_std),
]


@pytest.mark.parametrize(("name", "build", "expected_std"), SN_INIT_CASES, ids=[c[0] for c in SN_INIT_CASES])
def test_spectral_norm_raw_weights_start_at_the_reference_scale(name: str, build, expected_std) -> None:
    torch.manual_seed(0)
    convs = _spectral_norm_convs(build())
    assert convs, f"{name} has no spectral-norm convolutions"
    ratios = [float(conv.parametrizations.weight.original.detach().std()) / expected_std(conv) for conv in convs]
    assert all(0.7 < ratio < 1.3 for ratio in ratios), f"{name}: raw std / expected {sorted(ratios)[:3]}..."
    biases = [conv.bias for conv in convs if conv.bias is not None]
    assert all(float(bias.detach().abs().max()) == 0.0 for bias in biases)


def test_full_width_spectral_norm_conv_matches_the_measured_reference_magnitudes() -> None:
    """OASIS / DP-GAN's 1024-wide 3x3 block conv: weight_orig std 2.1e-4 in the reference (SPADE's: 6.0e-3); the
    normalised weight is about 1 / (sqrt(1024) + sqrt(9216)) for both."""
    torch.manual_seed(0)
    xavier = conv2d(1024, 1024, sn=True)
    default = conv2d(1024, 1024, sn=True, sn_init=SN_INIT_DEFAULT)
    assert float(xavier.parametrizations.weight.original.detach().std()) == pytest.approx(2.1e-4, rel=0.03)
    assert float(default.parametrizations.weight.original.detach().std()) == pytest.approx(6.0e-3, rel=0.03)
    for conv in (xavier, default):
        assert float(conv.weight.detach().std()) == pytest.approx(1 / (math.sqrt(1024) + math.sqrt(9216)), rel=0.15)
