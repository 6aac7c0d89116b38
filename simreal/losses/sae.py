"""Losses of the swapping autoencoder (SAE) and its label-consistent variant (LC-SAE).

The method asks :meth:`SAELoss.phase_losses` for the weighted terms of phase ``"G"`` (encoder, generator and
semantic head), ``"D"`` (both discriminators) or ``"Dreg"`` (lazy R1, every ``r1_interval`` D steps; the loop
multiplies it by ``r1_interval`` before backward, stylegan2-ada's lazy regularisation). Backward, zeroing
gradients and stepping the optimizers (:func:`build_optimizers`) stay with the training loop.

Following the LC-SAE report (§3, §4.2), hybrids pair only *sim structure* with *real texture*; with
``lambda_inner = lambda_outer = 0`` this is the report's SAE baseline. The generator-side GAN weights default to the
reference SAE code (``compute_generator_losses``: 0.5 for reconstructions, 1.0 for hybrids); the report's eq. 3.3
writes 0.5 for both (``gan_swap_weight=0.5``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from simreal.errors import TrainingError
from simreal.losses.label_consistency import LabelConsistencyLoss, cross_entropy_loss
from simreal.models.sae import SAENetworks

PHASES = ("G", "D", "Dreg")


class SAELossError(TrainingError):
    """Invalid loss configuration or batch."""


@dataclass  # not frozen: it is also the structured-config type of the training config's `loss:` section
class SAELossConfig:
    lambda_l1: float = 1.0
    lambda_gan: float = 1.0
    gan_rec_weight: float = 0.5  # reference code and report eq. 3.3 agree: 0.5 L_GAN,rec
    gan_swap_weight: float = 1.0  # reference code's G step; the report's eq. 3.3 writes 0.5
    lambda_patch_gan: float = 1.0
    r1_gamma: float = 10.0
    patch_r1_gamma: float = 1.0
    r1_interval: int = 16
    lambda_inner: float = 0.0
    lambda_outer: float = 0.0
    outer_loss: str = "ce"  # ce | dice (a str: Hydra structured configs have no Literal)
    outer_class_weights: tuple[float, ...] | None = None  # only for outer_loss="ce"
    ignore_index: int = 255
    lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)

    def validate(self) -> None:
        if self.outer_loss not in ("ce", "dice"):
            raise SAELossError(f"outer_loss must be 'ce' or 'dice', got {self.outer_loss!r}")
        if self.outer_class_weights is not None and self.outer_loss != "ce":
            raise SAELossError("outer_class_weights only apply to outer_loss='ce'")
        if self.r1_interval < 1:
            raise SAELossError(f"r1_interval must be >= 1, got {self.r1_interval}")
        for name in ("lambda_l1", "lambda_gan", "lambda_patch_gan", "lambda_inner", "lambda_outer"):
            if getattr(self, name) < 0:
                raise SAELossError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class SimRealBatch:
    """Sim images (B,3,H,W) in [-1,1], sim labels (B,H,W) long, real images (B,3,H,W); real labels optional.

    Real labels, when given, also train the inner semantic head (the report uses both domains there).
    """

    sim_images: torch.Tensor
    sim_labels: torch.Tensor
    real_images: torch.Tensor
    real_labels: torch.Tensor | None = None

    def __post_init__(self) -> None:
        sim, real = self.sim_images, self.real_images
        if sim.ndim != 4 or sim.shape[1] != 3:
            raise SAELossError(f"sim_images must be (B, 3, H, W), got {tuple(sim.shape)}")
        if real.shape != sim.shape:
            raise SAELossError(
                f"real_images {tuple(real.shape)} must match sim_images {tuple(sim.shape)} (same B, H, W)"
            )
        expected = (sim.shape[0], *sim.shape[2:])
        for name in ("sim_labels", "real_labels"):
            labels = getattr(self, name)
            if labels is None:
                continue
            if tuple(labels.shape) != expected:
                raise SAELossError(f"{name} must be (B, H, W) = {expected}, got {tuple(labels.shape)}")
            if labels.dtype != torch.long:
                raise SAELossError(f"{name} must be torch.long class ids, got {labels.dtype}")

    @property
    def size(self) -> int:
        return self.sim_images.shape[0]


@dataclass
class Synthesis:
    """Generator outputs of one step and where their codes came from."""

    reconstructions: torch.Tensor  # (2 * n_rec, 3, H, W): first n_rec sim, then n_rec real
    reconstruction_targets: torch.Tensor
    hybrids: torch.Tensor  # (B, 3, H, W): hybrid i = G(structure of sim[structure_index[i]], texture of real[...])
    structure_index: torch.Tensor  # indices into batch.sim_images
    texture_index: torch.Tensor  # indices into batch.real_images
    sim_trunk: torch.Tensor | None = None  # encoder trunk features, only when the inner semantic loss needs them
    real_trunk: torch.Tensor | None = None


def sim_to_real_pairs(batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hybrid pairing: every sim structure code once, every real texture code once (random bijection)."""
    return torch.arange(batch_size), torch.randperm(batch_size, generator=generator)


def downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of (B, H, W) class ids (keeps the ignore index intact)."""
    resized = F.interpolate(labels[:, None].float(), size=size, mode="nearest")
    return resized[:, 0].long()


def nonsaturating_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Non-saturating GAN loss (mean): softplus(-l) for real targets, softplus(l) for fake."""
    logits = logits.float()
    return F.softplus(-logits).mean() if real else F.softplus(logits).mean()


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Temporarily stop gradients into the parameters of ``modules`` (inputs still get gradients)."""
    params = [p for m in modules for p in m.parameters()]
    states = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, state in zip(params, states, strict=True):
            p.requires_grad_(state)


class SAELoss:
    """Loss terms of SAE / LC-SAE; see the module docstring for the phase protocol."""

    def __init__(
        self,
        networks: SAENetworks,
        cfg: SAELossConfig | None = None,
        segmenter: nn.Module | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.cfg = cfg or SAELossConfig()
        self.cfg.validate()
        self.nets = networks
        self.rng = generator
        if self.cfg.lambda_outer > 0 and segmenter is None:
            raise SAELossError("lambda_outer > 0 needs a frozen segmenter (nn.Module: image in [-1,1] -> logits)")
        if segmenter is not None:
            # Frozen for good: eval mode (fixed BN statistics) and no parameter gradients.
            segmenter.eval().requires_grad_(False)
        self.segmenter = segmenter
        self.outer_loss = LabelConsistencyLoss(self.cfg.outer_loss, self.cfg.ignore_index, self.cfg.outer_class_weights)

    # ------------------------------------------------------------------ synthesis
    def synthesize(self, batch: SimRealBatch, with_trunk: bool = False) -> Synthesis:
        """Encode sim and real together, reconstruct half of each and build B sim x real hybrids."""
        n = batch.size
        n_rec = max(1, n // 2)  # batches come shuffled, so the first half is a random half
        encoded = self.nets.encoder(torch.cat([batch.sim_images, batch.real_images]), return_trunk=with_trunk)
        structure, texture = encoded[:2]
        sim_structure, real_structure = structure[:n], structure[n:]
        sim_texture, real_texture = texture[:n], texture[n:]
        structure_index, texture_index = sim_to_real_pairs(n, self.rng)
        structure_index = structure_index.to(structure.device)
        texture_index = texture_index.to(structure.device)
        codes_structure = torch.cat([sim_structure[:n_rec], real_structure[:n_rec], sim_structure[structure_index]])
        codes_texture = torch.cat([sim_texture[:n_rec], real_texture[:n_rec], real_texture[texture_index]])
        images = self.nets.generator(codes_structure, codes_texture)
        return Synthesis(
            reconstructions=images[: 2 * n_rec],
            reconstruction_targets=torch.cat([batch.sim_images[:n_rec], batch.real_images[:n_rec]]),
            hybrids=images[2 * n_rec :],
            structure_index=structure_index,
            texture_index=texture_index,
            sim_trunk=encoded[2][:n] if with_trunk else None,
            real_trunk=encoded[2][n:] if with_trunk else None,
        )

    # ------------------------------------------------------------------ phases
    def phase_losses(self, phase: str, batch: SimRealBatch) -> dict[str, torch.Tensor]:
        """The weighted loss terms of ``phase``; empty when every term of the phase is switched off."""
        if phase == "G":
            return self.generator_losses(batch)
        if phase == "D":
            return self.discriminator_losses(batch)
        if phase == "Dreg":
            return self.r1_losses(batch)
        raise SAELossError(f"unknown phase {phase!r}; expected one of {PHASES}")

    def generator_losses(self, batch: SimRealBatch) -> dict[str, torch.Tensor]:
        """Weighted E/G (+ semantic head) losses; the discriminators and segmenter get no gradients."""
        cfg, nets = self.cfg, self.nets
        with frozen(nets.discriminator, nets.patch_discriminator):
            syn = self.synthesize(batch, with_trunk=cfg.lambda_inner > 0)
            losses: dict[str, torch.Tensor] = {}
            if cfg.lambda_l1 > 0:
                losses["G_l1"] = cfg.lambda_l1 * F.l1_loss(
                    syn.reconstructions.float(), syn.reconstruction_targets.float()
                )
            if cfg.lambda_gan > 0:
                n_rec = syn.reconstructions.shape[0]
                logits = nets.discriminator(torch.cat([syn.reconstructions, syn.hybrids]))
                rec_weight = cfg.lambda_gan * cfg.gan_rec_weight
                swap_weight = cfg.lambda_gan * cfg.gan_swap_weight
                losses["G_gan_rec"] = rec_weight * nonsaturating_loss(logits[:n_rec], real=True)
                losses["G_gan_swap"] = swap_weight * nonsaturating_loss(logits[n_rec:], real=True)
            if cfg.lambda_patch_gan > 0:
                patch_d = nets.patch_discriminator
                with torch.no_grad():
                    texture_sources = batch.real_images[syn.texture_index]
                    reference = patch_d.extract_features(
                        patch_d.sample_crops(texture_sources, self.rng), patch_d.cfg.aggregate_reference
                    )
                query = patch_d.extract_features(patch_d.sample_crops(syn.hybrids, self.rng))
                patch_logits = patch_d.discriminate(reference, query)
                losses["G_patch_gan"] = cfg.lambda_patch_gan * nonsaturating_loss(patch_logits, real=True)
        if cfg.lambda_inner > 0:
            losses["G_sem_inner"] = cfg.lambda_inner * self.inner_semantic_loss(batch, syn)
        if cfg.lambda_outer > 0:
            losses["G_sem_outer"] = cfg.lambda_outer * self.outer_semantic_loss(batch, syn)
        return losses

    def inner_semantic_loss(self, batch: SimRealBatch, syn: Synthesis) -> torch.Tensor:
        """NLL of the semantic head on the encoder trunk vs labels at the head's resolution (1/4)."""
        if syn.sim_trunk is None or syn.real_trunk is None:
            raise SAELossError("the inner semantic loss needs the encoder trunk: synthesize(batch, with_trunk=True)")
        trunks, labels = [syn.sim_trunk], [batch.sim_labels]
        if batch.real_labels is not None:
            trunks.append(syn.real_trunk)
            labels.append(batch.real_labels)
        logits = self.nets.semantic_head(torch.cat(trunks))
        targets = downsample_labels(torch.cat(labels), tuple(logits.shape[-2:]))
        return cross_entropy_loss(logits, targets, self.cfg.ignore_index)

    def outer_semantic_loss(self, batch: SimRealBatch, syn: Synthesis) -> torch.Tensor:
        """Frozen segmenter on the hybrids vs the labels of their sim structure source (full resolution)."""
        if self.segmenter is None:
            raise SAELossError("outer semantic loss needs a segmenter")
        return self.outer_loss(self.segmenter(syn.hybrids), batch.sim_labels[syn.structure_index])

    def discriminator_losses(self, batch: SimRealBatch) -> dict[str, torch.Tensor]:
        """Sim and real images count as real, reconstructions and hybrids as fake; patch D on real images."""
        cfg, nets = self.cfg, self.nets
        with torch.no_grad():
            syn = self.synthesize(batch)
        losses: dict[str, torch.Tensor] = {}
        if cfg.lambda_gan > 0:
            real_logits = nets.discriminator(torch.cat([batch.sim_images, batch.real_images]))
            fake_logits = nets.discriminator(torch.cat([syn.reconstructions, syn.hybrids]))
            n_rec = syn.reconstructions.shape[0]
            losses["D_real"] = cfg.lambda_gan * nonsaturating_loss(real_logits, real=True)
            losses["D_rec"] = cfg.lambda_gan * 0.5 * nonsaturating_loss(fake_logits[:n_rec], real=False)
            losses["D_swap"] = cfg.lambda_gan * 0.5 * nonsaturating_loss(fake_logits[n_rec:], real=False)
        if cfg.lambda_patch_gan > 0:
            patch_d = nets.patch_discriminator
            reference = patch_d.extract_features(
                patch_d.sample_crops(batch.real_images, self.rng), patch_d.cfg.aggregate_reference
            )
            same_image = patch_d.extract_features(patch_d.sample_crops(batch.real_images, self.rng))
            hybrid = patch_d.extract_features(patch_d.sample_crops(syn.hybrids, self.rng))
            losses["D_patch_real"] = cfg.lambda_patch_gan * nonsaturating_loss(
                patch_d.discriminate(reference, same_image), real=True
            )
            losses["D_patch_swap"] = cfg.lambda_patch_gan * nonsaturating_loss(
                patch_d.discriminate(reference[syn.texture_index], hybrid), real=False
            )
        return losses

    def r1_losses(self, batch: SimRealBatch) -> dict[str, torch.Tensor]:
        """Lazy R1 on real inputs, per step it runs (the loop multiplies it by ``r1_interval``, as StyleGAN2)."""
        cfg, nets = self.cfg, self.nets
        losses: dict[str, torch.Tensor] = {}
        if cfg.r1_gamma > 0 and cfg.lambda_gan > 0:
            images = torch.cat([batch.sim_images, batch.real_images]).detach().requires_grad_(True)
            logits = nets.discriminator(images)
            (grad,) = torch.autograd.grad(logits.float().sum(), images, create_graph=True)
            penalty = grad.float().square().sum(dim=(1, 2, 3)).mean()
            losses["D_r1"] = 0.5 * cfg.r1_gamma * penalty
        if cfg.patch_r1_gamma > 0 and cfg.lambda_patch_gan > 0:
            patch_d = nets.patch_discriminator
            reference = patch_d.sample_crops(batch.real_images, self.rng).detach().requires_grad_(True)
            query = patch_d.sample_crops(batch.real_images, self.rng).detach().requires_grad_(True)
            logits = patch_d(reference, query)
            grad_ref, grad_query = torch.autograd.grad(logits.float().sum(), [reference, query], create_graph=True)
            penalty = grad_ref.float().square().sum(dim=(1, 2, 3, 4)).mean()
            penalty = penalty + grad_query.float().square().sum(dim=(1, 2, 3, 4)).mean()
            losses["D_patch_r1"] = 0.25 * cfg.patch_r1_gamma * penalty
        return losses


@dataclass
class SAEOptimizers:
    generator: torch.optim.Adam  # encoder + generator + semantic head
    discriminator: torch.optim.Adam  # image + patch discriminators


def lazy_regularization_adam(
    params: Iterator[nn.Parameter] | list[nn.Parameter], lr: float, betas: tuple[float, float], interval: int
) -> torch.optim.Adam:
    """Adam for a lazily regularised network: lr * c and beta ** c with c = interval / (interval + 1)."""
    c = interval / (interval + 1) if interval > 0 else 1.0
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c))


def build_optimizers(networks: SAENetworks, cfg: SAELossConfig | None = None) -> SAEOptimizers:
    """Adam(lr 0.002, betas (0, 0.99)) for E+G+semantic head; the D optimizer gets the lazy-R1 correction."""
    cfg = cfg or SAELossConfig()
    generator_params = [
        *networks.encoder.parameters(),
        *networks.generator.parameters(),
        *networks.semantic_head.parameters(),
    ]
    discriminator_params = [*networks.discriminator.parameters(), *networks.patch_discriminator.parameters()]
    return SAEOptimizers(
        generator=torch.optim.Adam(generator_params, lr=cfg.lr, betas=cfg.betas),
        discriminator=lazy_regularization_adam(discriminator_params, cfg.lr, cfg.betas, cfg.r1_interval),
    )
