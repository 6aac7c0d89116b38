"""Training method ``spade``: SPADE / GauGAN with a multi-scale PatchGAN discriminator.

G step: hinge G loss averaged over the scales + feature matching (L1, every D layer but the logits, λ_feat /
num_D per scale) + VGG19 perceptual loss (λ_vgg; no weights = an error, unless loss.vgg=0) [+ KL
divergence of the VAE style code, λ_kld]. D step on the same batch: hinge on real and on a fake regenerated
without gradients. Fake and real go through D as one concatenated batch (shared InstanceNorm statistics), as in
the reference. TTUR: Adam lr 1e-4 (G) / 4e-4 (D), β (0, 0.9). No EMA (the reference keeps none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import MISSING
from torch import nn

from simreal.labels import LabelTable
from simreal.losses.synthesis import (
    hinge_d_loss,
    hinge_g_loss,
    kld_loss,
    multiscale_feature_matching,
)
from simreal.models.spade import (
    MultiscalePatchDiscriminator,
    PatchGANSpec,
    SPADEEncoder,
    SPADEGenerator,
    SPADEGeneratorSpec,
)
from simreal.synthesize import Synthesizer
from simreal.training.method import load_matching_weights
from simreal.training.methods.synthesis import (
    LabelToImageMethod,
    LabelToImageTrainConfig,
    PerceptualLossConfig,
    SwappableDiscriminatorModelConfig,
)
from simreal.training.registry import register_method

Outputs = list[list[torch.Tensor]]  # per discriminator scale, every layer's output


@dataclass
class SPADEModelConfig(SwappableDiscriminatorModelConfig):
    g_channels: int = MISSING
    num_upsampling: str = MISSING
    use_vae: bool = MISSING
    z_dim: int = MISSING
    encoder_size: int = MISSING
    num_d: int = MISSING
    d_layers: int = MISSING


@dataclass
class SPADELossConfig(PerceptualLossConfig):
    feat: float = MISSING
    kld: float = MISSING


@dataclass
class SPADETrainConfig(LabelToImageTrainConfig):
    model: SPADEModelConfig = MISSING
    loss: SPADELossConfig = MISSING


def _split_halves(outputs: Outputs) -> tuple[Outputs, Outputs]:
    """D outputs of concat(fake, real) -> (fake outputs, real outputs)."""
    fake = [[t[: len(t) // 2] for t in scale] for scale in outputs]
    real = [[t[len(t) // 2 :] for t in scale] for scale in outputs]
    return fake, real


@register_method("spade", "SPADE / GauGAN label-to-image GAN (multi-scale PatchGAN, feature matching, VGG)")
class SPADEMethod(LabelToImageMethod):
    kind = "spade"
    uses_ema = False
    config_class = SPADETrainConfig

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        model = self.cfg.model
        use_vae = model.use_vae
        image_size = None
        if use_vae:  # the VAE generator's first layer is sized for the training frames
            dataset = self.datasets["real"]
            image_size = tuple(dataset.crop) if dataset.crop else (dataset.height, dataset.width)
        spec = SPADEGeneratorSpec(
            self.num_classes,
            base_channels=model.g_channels,
            num_upsampling=model.num_upsampling,
            use_vae=use_vae,
            z_dim=model.z_dim,
            vae_image_size=image_size,
            encoder_size=model.encoder_size,
        )
        self.encoder = SPADEEncoder(spec) if use_vae else None
        if self.encoder is not None:
            self.train_encoder = self.ctx.prepare(self.encoder)
        discriminator = MultiscalePatchDiscriminator(
            PatchGANSpec(self.num_classes, model.d_channels, model.num_d, model.d_layers)
        )
        return SPADEGenerator(spec), discriminator

    @classmethod
    def generator_from_spec(cls, spec: dict[str, Any]) -> nn.Module:
        return SPADEGenerator(SPADEGeneratorSpec.from_dict(spec))

    @classmethod
    def synthesizer(cls, method: str, generator: nn.Module, class_set: LabelTable, device: torch.device) -> Synthesizer:
        """Noise-free without a VAE; a VAE generator paints its training frame size only."""
        spec = generator.spec
        return Synthesizer(
            method, generator, class_set, device, z_dim=spec.z_dim if generator.stochastic else 0,
            size_multiple=spec.downsampling, fixed_size=tuple(spec.vae_image_size) if spec.use_vae else None,
        )  # fmt: skip

    def generator_networks(self) -> tuple[nn.Module, ...]:
        return (self.generator,) if self.encoder is None else (self.generator, self.encoder)

    def sample_noise(self, batch: int, generator: torch.Generator) -> torch.Tensor | None:
        return super().sample_noise(batch, generator) if self.generator.stochastic else None

    def _style(self, images: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(z, KL loss) from the VAE encoder; (None, None) without one."""
        if self.encoder is None:
            return None, None
        self.train_encoder.train()
        with self.ctx.autocast():
            mu, logvar = self.train_encoder(images)
        mu, logvar = mu.float(), logvar.float()
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return z, self.cfg.loss.kld * kld_loss(mu, logvar)

    def generate(self, images: torch.Tensor, segmap: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z, kld = self._style(images)
        with self.ctx.autocast():
            fake = self.train_generator(segmap, z)
        return fake, ({"kld": kld} if kld is not None else {})

    def _discriminate(
        self, discriminator: nn.Module, segmap: torch.Tensor, fake: torch.Tensor, images: torch.Tensor
    ) -> tuple[Outputs, Outputs]:
        with self.ctx.autocast():
            outputs = discriminator(torch.cat([segmap, segmap]), torch.cat([fake, images.to(fake.dtype)]))
        return _split_halves(outputs)

    def generator_losses(
        self, images: torch.Tensor, labels: torch.Tensor, segmap: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        z, kld = self._style(images)
        with self.ctx.autocast():
            fake = self.train_generator(segmap, z)
        pred_fake, pred_real = self._discriminate(self.discriminator, segmap, fake, images)
        losses = {
            "adv": hinge_g_loss([scale[-1] for scale in pred_fake]),
            "feat": self.cfg.loss.feat * multiscale_feature_matching(pred_fake, pred_real),
        }
        losses.update(self.perceptual_loss(fake, images))
        if kld is not None:
            losses["kld"] = kld
        return losses

    def discriminator_losses(
        self, images: torch.Tensor, labels: torch.Tensor, segmap: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            z, _ = self._style(images)
            with self.ctx.autocast():
                fake = self.train_generator(segmap, z)
        pred_fake, pred_real = self._discriminate(self.train_discriminator, segmap, fake, images)
        return {"hinge": hinge_d_loss([s[-1] for s in pred_real], [s[-1] for s in pred_fake])}

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.encoder is not None:
            state["encoder"] = self.encoder.state_dict()
        return state

    def load_state_dict(self, state: Mapping) -> None:
        super().load_state_dict(state)
        if self.encoder is not None:
            self.encoder.load_state_dict(state["encoder"])

    def load_weights(self, saved: Mapping, source: str) -> None:
        super().load_weights(saved, source)
        if self.encoder is not None:
            load_matching_weights(self.encoder, saved["method"].get("encoder", {}), "style encoder", source)
