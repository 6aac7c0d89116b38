"""SAE / LC-SAE losses (tiny config): phases, gradients, sim x real pairing, frozen segmenter, optimizers."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from simreal.errors import TrainingError
from simreal.losses.label_consistency import cross_entropy_loss, dice_loss
from simreal.losses.sae import (
    SAELoss,
    SAELossConfig,
    SAELossError,
    SimRealBatch,
    build_optimizers,
    downsample_labels,
)
from simreal.models.sae import SAEConfig, build_networks

N_CLASSES = 16


def make_networks(use_noise: bool = True):
    torch.manual_seed(0)
    cfg = SAEConfig.preset("tiny")
    if not use_noise:
        cfg = dataclasses.replace(cfg, generator=dataclasses.replace(cfg.generator, use_noise=False))
    return build_networks(cfg)


def make_batch(size: int = 2, side: int = 64, seed: int = 1) -> SimRealBatch:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, N_CLASSES, (size, side, side), generator=g)
    labels[:, :4] = 255  # an ignored band, as unlabelled pixels arrive
    return SimRealBatch(
        sim_images=smooth_images(size, side, g), sim_labels=labels, real_images=smooth_images(size, side, g)
    )


def smooth_images(size: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """Image-like (spatially correlated) values in [-1, 1]; white noise cannot be reconstructed."""
    coarse = torch.rand(size, 3, side // 8, side // 8, generator=generator) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)


class TinySegmenter(nn.Module):
    """Stand-in for the frozen outer segmenter: image in [-1, 1] -> logits at half resolution."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, N_CLASSES, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def backward_phase(loss: SAELoss, phase: str, batch: SimRealBatch) -> dict[str, torch.Tensor]:
    """The phase's terms and their total, backpropagated, as the training loop does it."""
    terms = loss.phase_losses(phase, batch)
    total = torch.stack([value.float() for value in terms.values()]).sum()
    total.backward()
    return {**{name: value.detach() for name, value in terms.items()}, "total": total.detach()}


def grads_of(module: nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def has_grad(module: nn.Module) -> bool:
    return any(g is not None and g.abs().sum() > 0 for g in grads_of(module))


def no_grad_at_all(module: nn.Module) -> bool:
    return all(g is None for g in grads_of(module))


def test_generator_phase_updates_only_encoder_generator_and_head():
    nets = make_networks()
    loss = SAELoss(nets, SAELossConfig(lambda_inner=1.0), generator=torch.Generator().manual_seed(0))
    terms = backward_phase(loss, "G", make_batch())
    assert {"G_l1", "G_gan_rec", "G_gan_swap", "G_patch_gan", "G_sem_inner", "total"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values())
    assert has_grad(nets.encoder) and has_grad(nets.generator) and has_grad(nets.semantic_head)
    assert no_grad_at_all(nets.discriminator) and no_grad_at_all(nets.patch_discriminator)
    # Freezing the discriminators during the G phase is temporary.
    assert all(p.requires_grad for p in nets.discriminator.parameters())


def test_discriminator_phase_updates_only_discriminators():
    nets = make_networks()
    loss = SAELoss(nets, generator=torch.Generator().manual_seed(0))
    terms = backward_phase(loss, "D", make_batch())
    assert {"D_real", "D_rec", "D_swap", "D_patch_real", "D_patch_swap"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values())
    assert has_grad(nets.discriminator) and has_grad(nets.patch_discriminator)
    assert no_grad_at_all(nets.encoder) and no_grad_at_all(nets.generator)


def test_lazy_r1_phase_gives_gradients_only_to_discriminators():
    nets = make_networks()
    loss = SAELoss(nets, generator=torch.Generator().manual_seed(0))
    terms = backward_phase(loss, "Dreg", make_batch())
    assert set(terms) == {"D_r1", "D_patch_r1", "total"}
    assert terms["D_r1"] > 0 and terms["D_patch_r1"] > 0
    assert has_grad(nets.discriminator) and has_grad(nets.patch_discriminator)
    for module in (nets.encoder, nets.generator, nets.semantic_head):
        assert no_grad_at_all(module)


def test_hybrids_pair_sim_structure_with_real_texture_only():
    nets = make_networks(use_noise=False)
    batch = make_batch(size=4)
    loss = SAELoss(nets, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        syn = loss.synthesize(batch)
        sim_structure, sim_texture = nets.encoder(batch.sim_images)
        _, real_texture = nets.encoder(batch.real_images)
        expected = nets.generator(sim_structure[syn.structure_index], real_texture[syn.texture_index])
        expected_rec = nets.generator(sim_structure[:2], sim_texture[:2])
    # Every sim structure and every real texture is used exactly once.
    assert sorted(syn.structure_index.tolist()) == [0, 1, 2, 3]
    assert sorted(syn.texture_index.tolist()) == [0, 1, 2, 3]
    torch.testing.assert_close(syn.hybrids, expected, atol=1e-4, rtol=1e-4)
    assert syn.reconstructions.shape[0] == 4  # half of the sim and half of the real images
    torch.testing.assert_close(syn.reconstructions[:2], expected_rec, atol=1e-4, rtol=1e-4)


def test_reconstruction_loss_falls_on_a_fixed_batch():
    nets = make_networks()
    # Momentum makes 50 steps enough to see the fall; with the GAN default beta1 = 0 it is ~0.8x slower.
    cfg = SAELossConfig(lambda_gan=0.0, lambda_patch_gan=0.0, betas=(0.9, 0.99))
    loss = SAELoss(nets, cfg, generator=torch.Generator().manual_seed(0))
    optimizer = build_optimizers(nets, cfg).generator
    batch = make_batch()
    history = []
    for _ in range(50):
        optimizer.zero_grad(set_to_none=True)
        history.append(backward_phase(loss, "G", batch)["G_l1"].item())
        optimizer.step()
    history = torch.tensor(history)
    assert torch.isfinite(history).all()
    assert history[-10:].mean() < 0.8 * history[:10].mean()


@pytest.mark.parametrize(
    "outer",
    [
        {"outer_loss": "ce"},
        {"outer_loss": "ce", "outer_class_weights": (2.0,) * N_CLASSES},
        {"outer_loss": "dice"},
    ],
)
def test_outer_segmenter_stays_frozen_but_passes_gradients(outer):
    nets = make_networks()
    segmenter = TinySegmenter().train()
    before = {k: v.clone() for k, v in segmenter.state_dict().items()}
    # Only the outer term is active, so any E/G gradient must flow through the segmenter.
    cfg = SAELossConfig(lambda_l1=0.0, lambda_gan=0.0, lambda_patch_gan=0.0, lambda_outer=1.0, **outer)
    loss = SAELoss(nets, cfg, segmenter=segmenter, generator=torch.Generator().manual_seed(0))
    optimizers = build_optimizers(nets, cfg)
    terms = backward_phase(loss, "G", make_batch())
    optimizers.generator.step()
    assert set(terms) == {"G_sem_outer", "total"} and terms["total"] > 0
    assert has_grad(nets.encoder) and has_grad(nets.generator)
    assert no_grad_at_all(segmenter) and not segmenter.training
    for key, value in segmenter.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_outer_loss_requires_a_segmenter_and_matching_weights():
    nets = make_networks()
    with pytest.raises(SAELossError, match="segmenter"):
        SAELoss(nets, SAELossConfig(lambda_outer=1.0))
    cfg = SAELossConfig(lambda_outer=1.0, outer_class_weights=(1.0, 2.0))
    loss = SAELoss(nets, cfg, segmenter=TinySegmenter())
    with pytest.raises(TrainingError, match="outer_class_weights has 2 entries"):
        backward_phase(loss, "G", make_batch())


def test_inner_semantic_loss_reads_the_encoder_trunk():
    nets = make_networks()
    batch = make_batch()
    batch.real_labels = batch.sim_labels.flip(0)
    cfg = SAELossConfig(lambda_l1=0.0, lambda_gan=0.0, lambda_patch_gan=0.0, lambda_inner=1.0)
    terms = backward_phase(SAELoss(nets, cfg), "G", batch)
    assert set(terms) == {"G_sem_inner", "total"}
    # Its gradient reaches the semantic head and the shared trunk, not the structure or texture heads.
    assert has_grad(nets.semantic_head) and has_grad(nets.encoder.down) and has_grad(nets.encoder.from_rgb)
    for module in (nets.encoder.to_structure, nets.encoder.to_texture, nets.generator):
        assert no_grad_at_all(module)
    with torch.no_grad():
        *_, trunk = nets.encoder(torch.cat([batch.sim_images, batch.real_images]), return_trunk=True)
        logits = nets.semantic_head(trunk)
    labels = downsample_labels(torch.cat([batch.sim_labels, batch.real_labels]), (16, 16))
    assert logits.shape[-2:] == (16, 16)  # 1/4 of the 64 x 64 crops
    expected = torch.nn.functional.cross_entropy(logits, labels, ignore_index=255)
    torch.testing.assert_close(terms["G_sem_inner"], expected, rtol=1e-5, atol=1e-6)


def test_generator_gan_weights_default_to_the_reference_code():
    nets = make_networks(use_noise=False)
    batch = make_batch()
    rng_seed = 4

    def gan_terms(cfg: SAELossConfig) -> dict[str, torch.Tensor]:
        loss = SAELoss(nets, cfg, generator=torch.Generator().manual_seed(rng_seed))
        with torch.no_grad():
            return loss.generator_losses(batch)

    reference, report = gan_terms(SAELossConfig()), gan_terms(SAELossConfig(gan_swap_weight=0.5))
    # Reference G step: 0.5 GAN(rec) + 1.0 GAN(swap); the report's eq. 3.3: 0.5 + 0.5.
    torch.testing.assert_close(reference["G_gan_rec"], report["G_gan_rec"])
    torch.testing.assert_close(reference["G_gan_swap"], 2 * report["G_gan_swap"])
    unweighted = SAELoss(nets, SAELossConfig(gan_rec_weight=1.0), generator=torch.Generator().manual_seed(rng_seed))
    with torch.no_grad():
        torch.testing.assert_close(reference["G_gan_rec"], 0.5 * unweighted.generator_losses(batch)["G_gan_rec"])


def test_baseline_leaves_semantic_head_untouched():
    nets = make_networks()
    backward_phase(SAELoss(nets, SAELossConfig()), "G", make_batch())
    assert no_grad_at_all(nets.semantic_head)


def test_semantic_helpers_respect_the_ignore_index():
    labels = torch.tensor([[[1, 1, 255, 255], [1, 1, 255, 255], [2, 2, 3, 3], [2, 2, 3, 3]]])
    small = downsample_labels(labels, (2, 2))
    assert small.tolist() == [[[1, 255], [2, 3]]]
    logits = torch.randn(1, 4, 2, 2)
    all_ignored = torch.full((1, 2, 2), 255)
    assert cross_entropy_loss(logits, all_ignored, 255).item() == 0.0
    expected = torch.nn.functional.cross_entropy(logits, small, ignore_index=255)
    torch.testing.assert_close(cross_entropy_loss(logits, small, 255), expected)
    perfect = torch.nn.functional.one_hot(small.clamp(max=3), 4).permute(0, 3, 1, 2).float() * 50
    assert dice_loss(perfect, small, 255).item() < 0.05
    assert dice_loss(-perfect, small, 255).item() > 0.5


def test_optimizers_use_lazy_regularisation_correction():
    nets = make_networks()
    opts = build_optimizers(nets, SAELossConfig())
    g_group, d_group = opts.generator.param_groups[0], opts.discriminator.param_groups[0]
    assert g_group["lr"] == pytest.approx(0.002) and g_group["betas"] == pytest.approx((0.0, 0.99))
    c = 16 / 17
    assert d_group["lr"] == pytest.approx(0.002 * c)
    assert d_group["betas"] == pytest.approx((0.0, 0.99**c))
    n_g = sum(p.numel() for group in opts.generator.param_groups for p in group["params"])
    n_d = sum(p.numel() for group in opts.discriminator.param_groups for p in group["params"])
    assert n_g + n_d == sum(p.numel() for p in nets.parameters())


def test_bad_batches_and_phases_are_rejected():
    batch = make_batch()
    with pytest.raises(SAELossError, match="must match sim_images"):
        SimRealBatch(batch.sim_images, batch.sim_labels, batch.real_images[:1])
    with pytest.raises(SAELossError, match="torch.long"):
        SimRealBatch(batch.sim_images, batch.sim_labels.int(), batch.real_images)
    with pytest.raises(SAELossError, match="unknown phase"):
        backward_phase(SAELoss(make_networks()), "E", batch)
    with pytest.raises(SAELossError, match="outer_loss"):
        SAELoss(make_networks(), SAELossConfig(outer_loss="focal"))


def test_generator_phase_runs_under_bf16_autocast():
    nets = make_networks()
    loss = SAELoss(nets, SAELossConfig(lambda_inner=1.0), generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = backward_phase(loss, "G", make_batch())
    assert all(torch.isfinite(v) for v in terms.values())
    assert has_grad(nets.encoder)
