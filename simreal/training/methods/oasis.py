"""Training methods ``oasis`` and ``dpgan``: label-to-image GANs with a segmentation (N+1 class) discriminator.

Per batch: a G step (N+1 loss of D(fake) towards the true classes, class-balanced; DP-GAN adds the patch-head hinge
term and the decoder feature alignment against D(real)), then a D step on the same batch (fake regenerated without
gradients: N+1 fake + N+1 real + LabelMix; DP-GAN adds the patch heads' hinge loss), then the EMA update.

Departure from the released DP-GAN code: its patch loss is added as a Python float and trains nothing; here it
stays in the graph, so the patch heads and, through them, the generator learn from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import MISSING
from torch import nn

from simreal.losses.synthesis import (
    feature_alignment_loss,
    hinge_d_loss,
    hinge_g_loss,
    labelmix_loss,
    labelmix_mask,
    n_plus_one_loss,
)
from simreal.models.dpgan import DPGANDiscriminator, DPGANGenerator, DPGANGeneratorSpec, DPGANOutput
from simreal.models.oasis import (
    OASISGenerator,
    OASISGeneratorSpec,
    UNetDiscriminator,
    UNetDiscriminatorSpec,
    UNetOutput,
)
from simreal.training.methods.synthesis import (
    EMAConfig,
    LabelToImageMethod,
    LabelToImageTrainConfig,
    PerceptualLossConfig,
    SwappableDiscriminatorModelConfig,
)
from simreal.training.registry import register_method

DOutput = UNetOutput | DPGANOutput


@dataclass
class OASISModelConfig(SwappableDiscriminatorModelConfig):
    z_dim: int = MISSING
    g_channels: int = MISSING
    num_blocks: int = MISSING


@dataclass
class OASISLossConfig(PerceptualLossConfig):
    balance: bool = MISSING
    labelmix: float = MISSING


@dataclass
class OASISTrainConfig(LabelToImageTrainConfig):
    model: OASISModelConfig = MISSING
    loss: OASISLossConfig = MISSING
    ema: EMAConfig = MISSING


@dataclass
class DPGANModelConfig(OASISModelConfig):
    pyramid_channels: int = MISSING


@dataclass
class DPGANLossConfig(OASISLossConfig):
    patch: float = MISSING
    alignment: float = MISSING


@dataclass
class DPGANTrainConfig(OASISTrainConfig):
    model: DPGANModelConfig = MISSING
    loss: DPGANLossConfig = MISSING


@register_method("oasis", "OASIS label-to-image GAN (SPADE generator + 3D noise, U-Net N+1 discriminator)")
class OASISMethod(LabelToImageMethod):
    kind = "oasis"
    config_class = OASISTrainConfig

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        model = self.cfg.model
        generator = OASISGenerator(
            OASISGeneratorSpec(self.num_classes, model.z_dim, model.g_channels, model.num_blocks)
        )
        return generator, UNetDiscriminator(UNetDiscriminatorSpec(self.num_classes, model.d_channels))

    @classmethod
    def generator_from_spec(cls, spec: dict[str, Any]) -> nn.Module:
        return OASISGenerator(OASISGeneratorSpec(**spec))

    def generator_losses(
        self, images: torch.Tensor, labels: torch.Tensor, segmap: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        with self.ctx.autocast():
            fake = self.train_generator(segmap)
            out_fake = self.discriminator(fake)
        balance = self.cfg.loss.balance
        losses = {"adv": n_plus_one_loss(out_fake.logits, labels, target_is_real=True, balance=balance)}
        losses.update(self.extra_generator_losses(images, out_fake))
        losses.update(self.perceptual_loss(fake, images))
        return losses

    def extra_generator_losses(self, images: torch.Tensor, out_fake: DOutput) -> dict[str, torch.Tensor]:
        return {}

    def discriminator_losses(
        self, images: torch.Tensor, labels: torch.Tensor, segmap: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        with torch.no_grad(), self.ctx.autocast():
            fake = self.train_generator(segmap)
        mask = labelmix_mask(labels)
        mixed = mask * images + (1 - mask) * fake
        with self.ctx.autocast():
            out_fake = self.train_discriminator(fake)
            out_real = self.train_discriminator(images)
            out_mixed = self.train_discriminator(mixed)
        losses = {
            "fake": n_plus_one_loss(out_fake.logits, labels, target_is_real=False),
            "real": n_plus_one_loss(out_real.logits, labels, target_is_real=True, balance=self.cfg.loss.balance),
            "labelmix": self.cfg.loss.labelmix
            * labelmix_loss(mask, out_mixed.logits, out_real.logits, out_fake.logits),
        }
        losses.update(self.extra_discriminator_losses(out_real, out_fake))
        return losses

    def extra_discriminator_losses(self, out_real, out_fake: DOutput) -> dict[str, torch.Tensor]:
        return {}


@register_method("dpgan", "DP-GAN label-to-image GAN (dual-pyramid generator, scale-enhancement discriminator)")
class DPGANMethod(OASISMethod):
    kind = "dpgan"
    config_class = DPGANTrainConfig

    @classmethod
    def generator_from_spec(cls, spec: dict[str, Any]) -> nn.Module:
        return DPGANGenerator(DPGANGeneratorSpec(**spec))

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        model = self.cfg.model
        spec = DPGANGeneratorSpec(
            self.num_classes,
            z_dim=model.z_dim,
            base_channels=model.g_channels,
            num_blocks=model.num_blocks,
            pyramid_channels=model.pyramid_channels,
        )
        discriminator = DPGANDiscriminator(UNetDiscriminatorSpec(self.num_classes, model.d_channels))
        return DPGANGenerator(spec), discriminator

    def extra_generator_losses(self, images: torch.Tensor, out_fake: DOutput) -> dict[str, torch.Tensor]:
        with torch.no_grad(), self.ctx.autocast():
            out_real = self.discriminator(images)
        return {
            "patch": self.cfg.loss.patch * hinge_g_loss(out_fake.patch_scores),
            "align": self.cfg.loss.alignment
            * feature_alignment_loss(out_fake.decoder_features, out_real.decoder_features),
        }

    def extra_discriminator_losses(self, out_real, out_fake: DOutput) -> dict[str, torch.Tensor]:
        return {"patch": self.cfg.loss.patch * hinge_d_loss(out_real.patch_scores, out_fake.patch_scores)}
