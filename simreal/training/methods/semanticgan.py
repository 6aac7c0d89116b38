"""Training method ``semanticgan``: SemanticGAN (paper 003), a pix2pixHD label-to-image GAN with CRBs and the SIPL.

What it translates: label maps into images, as pix2pixHD and the paper do ("semantic label map to photo-realistic
image translation"; G(s), D(s, x), perceptual loss between G(s) and the photo x of s). It trains on a real store's
(label, image) pairs, like ``spade``, and ``translate`` / ``synthesize`` paint a sim store's label maps with it
(the sim RGB frame is not read). The SIPL needs a segmenter trained on the real domain, given as
``outer_segmenter=RUN_DIR_OR_CHECKPOINT`` as for ``lcsae`` (the paper uses ERFNet; our DeepLabV3+ serves).

G step: λ1 · LSGAN(G) summed over the three scales + λ2 · SIPL (cross-entropy of the frozen segmenter on G(s)
against s) + λ3 · feature matching (L1 over every D layer but the logits, 1/num_d per scale and pix2pixHD's
4/(n_layers+1) per layer) + λ4 · VGG19 perceptual loss (pix2pixHD's weights 1/32 .. 1). D step on the same batch:
0.5 · (LSGAN(real) + LSGAN(fake)) with the fake regenerated without gradients. Adam β (0.5, 0.999), lr 2e-4 for
both, constant for the first ``optim.decay_start`` share of the steps, then linear decay to 0 (pix2pixHD's niter /
niter_decay, by step instead of by epoch). No EMA, no image pool (pix2pixHD's pool_size 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from omegaconf import MISSING
from torch import nn
from torch.utils.data import Dataset

from simreal.labels import LabelTable
from simreal.losses.semanticgan import lsgan_d_loss, lsgan_g_loss, semantic_information_preserved_loss
from simreal.losses.synthesis import multiscale_feature_matching
from simreal.models.semanticgan import (
    MultiscalePatchGANSpec,
    SemanticGANDiscriminator,
    SemanticGANGenerator,
    SemanticGANGeneratorSpec,
)
from simreal.synthesize import Synthesizer
from simreal.training.errors import TrainingError
from simreal.training.method import LRSchedule, Phase, TrainContext, linear_decay
from simreal.training.methods.synthesis import (
    AdamPairConfig,
    LabelToImageMethod,
    LabelToImageModelConfig,
    LabelToImageTrainConfig,
    PerceptualLossConfig,
)
from simreal.training.registry import register_method

Outputs = list[list[torch.Tensor]]


@dataclass
class SemanticGANModelConfig(LabelToImageModelConfig):
    g_channels: int = MISSING
    num_downsampling: int = MISSING
    num_blocks: int = MISSING
    block: str = MISSING
    groups: int = MISSING
    num_d: int = MISSING
    d_layers: int = MISSING


@dataclass
class SemanticGANLossConfig(PerceptualLossConfig):
    gan: float = MISSING
    sipl: float = MISSING
    feat: float = MISSING


@dataclass
class SemanticGANOptimConfig(AdamPairConfig):
    decay_start: float = MISSING


@dataclass
class SemanticGANTrainConfig(LabelToImageTrainConfig):
    outer_segmenter: str | None = MISSING
    model: SemanticGANModelConfig = MISSING
    loss: SemanticGANLossConfig = MISSING
    optim: SemanticGANOptimConfig = MISSING


class SIPLSegmenterError(TrainingError):
    """The SIPL has no usable segmenter."""


@register_method("semanticgan", "SemanticGAN label-to-image GAN (pix2pixHD with Correlated Residual Blocks + SIPL)")
class SemanticGANMethod(LabelToImageMethod):
    kind = "semanticgan"
    uses_ema = False
    path_keys = ("outer_segmenter",)
    config_class = SemanticGANTrainConfig

    def __init__(self, cfg: SemanticGANTrainConfig, ctx: TrainContext, datasets: Mapping[str, Dataset]) -> None:
        super().__init__(cfg, ctx, datasets)
        self.segmenter = (
            self.load_frozen_segmenter(
                SIPLSegmenterError,
                f"loss.sipl={cfg.loss.sipl:g} (the SIPL) needs it, or set loss.sipl=0 (SemanticGAN without it)",
                self.num_classes,
            )
            if cfg.loss.sipl > 0
            else None
        )
        decay = linear_decay(cfg.steps, int(cfg.steps * cfg.optim.decay_start))
        self.schedules = {"G": LRSchedule(self.opt_g, decay), "D": LRSchedule(self.opt_d, decay)}

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        model = self.cfg.model
        generator = SemanticGANGenerator(
            SemanticGANGeneratorSpec(
                self.num_classes,
                base_channels=model.g_channels,
                num_downsampling=model.num_downsampling,
                num_blocks=model.num_blocks,
                block=model.block,
                groups=model.groups,
            )
        )
        discriminator = SemanticGANDiscriminator(
            MultiscalePatchGANSpec(self.num_classes, model.d_channels, num_d=model.num_d, n_layers=model.d_layers)
        )
        return generator, discriminator

    @classmethod
    def generator_from_spec(cls, spec: dict[str, Any]) -> nn.Module:
        return SemanticGANGenerator(SemanticGANGeneratorSpec(**spec))

    @classmethod
    def synthesizer(cls, method: str, generator: nn.Module, class_set: LabelTable, device: torch.device) -> Synthesizer:
        spec = generator.spec
        return Synthesizer(method, generator, class_set, device, z_dim=0, size_multiple=spec.downsampling)

    def sample_noise(self, batch: int, generator: torch.Generator) -> None:
        return None  # a deterministic generator

    def phases(self) -> Sequence[Phase]:
        return [replace(phase, schedule=self.schedules[phase.name]) for phase in super().phases()]

    def _discriminate(
        self, discriminator: nn.Module, segmap: torch.Tensor, fake: torch.Tensor, images: torch.Tensor
    ) -> tuple[Outputs, Outputs]:
        """D on concat(fake, real): InstanceNorm keeps the halves apart, so this is two separate D passes in one."""
        with self.ctx.autocast():
            outputs = discriminator(torch.cat([segmap, segmap]), torch.cat([fake, images.to(fake.dtype)]))
        fake_out = [[t[: len(t) // 2] for t in scale] for scale in outputs]
        real_out = [[t[len(t) // 2 :] for t in scale] for scale in outputs]
        return fake_out, real_out

    def generator_losses(
        self, images: torch.Tensor, labels: torch.Tensor, segmap: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        loss = self.cfg.loss
        with self.ctx.autocast():
            fake = self.train_generator(segmap)
        pred_fake, pred_real = self._discriminate(self.discriminator, segmap, fake, images)
        layer_weight = 4.0 / (self.cfg.model.d_layers + 1)  # pix2pixHD's feat_weights
        losses = {
            "gan": loss.gan * lsgan_g_loss([scale[-1] for scale in pred_fake]),
            "feat": loss.feat * layer_weight * multiscale_feature_matching(pred_fake, pred_real),
        }
        losses.update(self.perceptual_loss(fake, images))
        if self.segmenter is not None:
            with self.ctx.autocast():
                sipl = semantic_information_preserved_loss(
                    self.segmenter, fake, labels, int(self.class_set.ignore_index)
                )
            losses["sipl"] = loss.sipl * sipl
        return losses

    def discriminator_losses(
        self, images: torch.Tensor, labels: torch.Tensor, segmap: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        with torch.no_grad(), self.ctx.autocast():
            fake = self.train_generator(segmap)
        pred_fake, pred_real = self._discriminate(self.train_discriminator, segmap, fake, images)
        return {"lsgan": lsgan_d_loss([s[-1] for s in pred_real], [s[-1] for s in pred_fake])}
