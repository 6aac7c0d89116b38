"""Training method ``semguided``: the semantic-guided cGAN (Saadatnejad et al., STRC 2020, paper 001).

A label-to-image synthesizer: ŷ = G(s) paints a label map s (one-hot) into an image, trained on a real store's
(image y, label map s) pairs. Per batch, after pix2pix's jitter-and-crop (frames upscaled by ``jitter`` and cut back
to their size at a random place; the dataset has already flipped half of them):

- G step: ``L_G = -L_D + λ·L_s``: the per-class PatchGAN's class-balanced adversarial loss (non-saturating, as
  pix2pix trains ``-L_D``) plus λ = ``loss.semantic`` times the semantic perceptual loss ``|T_s(y) - T_s(ŷ)|``
  through the frozen segmenter ``outer_segmenter`` (a ``simreal train segmenter`` run on the real domain; the same
  key as LC-SAE's outer loss, which also needs a frozen real-domain segmenter);
- D step on the same batch: (L(D(s, y), real) + L(D(s, ŷ), fake)) / 2 with ŷ regenerated without gradients.

The adversarial pair is ``LabelToImageMethod.semantic_guided_losses``, the path that the other label-to-image
methods take with ``model.discriminator=semantic``; this method adds L_s through ``perceptual_loss``.

``evaluate`` reports how well the frozen segmenter recognises the classes painted into fixed label maps
(``task_accuracy``, pixel accuracy of T_s(G(s)) against s; ``task_miou``). The checkpoint carries the U-Net
generator as a ``semguided`` synthesizer, so ``simreal synthesize`` and ``simreal translate`` paint with it (no
noise: one variant per label map, as pix2pix at test time without dropout).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn
from torch.utils.data import Dataset

from simreal.errors import TrainingError
from simreal.labels import LabelTable
from simreal.losses.semguided import semantic_perceptual_loss
from simreal.metrics.segmentation import confusion_matrix, segmentation_scores
from simreal.models.semguided import (
    SemanticPatchDiscriminator,
    SemanticPatchDiscriminatorSpec,
    UNetGenerator,
    UNetGeneratorSpec,
)
from simreal.models.spade_blocks import one_hot_labels
from simreal.synthesize import Synthesizer
from simreal.training.method import Batch, TrainContext
from simreal.training.methods.synthesis import (
    LabelToImageMethod,
    LabelToImageModelConfig,
    LabelToImageTrainConfig,
    PerceptualLossConfig,
)
from simreal.training.registry import register_method

JITTER_SEED = 0x6A17  # mixed with the run's seed and the step: both phases of a step see the same jitter


@dataclass
class SemanticGuidedModelConfig(LabelToImageModelConfig):
    g_channels: int = MISSING
    num_downs: int = MISSING
    dropout: float = MISSING
    d_layers: int = MISSING


@dataclass
class SemanticGuidedLossConfig(PerceptualLossConfig):
    semantic: float = MISSING


@dataclass
class SemanticGuidedTrainConfig(LabelToImageTrainConfig):
    outer_segmenter: str | None = MISSING
    jitter: float = MISSING
    eval_frames: int = MISSING
    model: SemanticGuidedModelConfig = MISSING
    loss: SemanticGuidedLossConfig = MISSING


class TaskSegmenterError(TrainingError):
    """The semantic perceptual loss has no usable frozen segmenter."""


def jitter_and_crop(
    images: torch.Tensor, labels: torch.Tensor, scale: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """pix2pix's jitter: upscale by ``scale`` (bilinear images, nearest labels), cut each frame back to its size."""
    height, width = images.shape[-2:]
    big = (round(height * scale), round(width * scale))
    if big == (height, width):
        return images, labels
    images = F.interpolate(images, size=big, mode="bilinear", align_corners=False)
    labels = F.interpolate(labels[:, None].float(), size=big, mode="nearest")[:, 0].long()
    tops = torch.randint(0, big[0] - height + 1, (len(images),), generator=generator).tolist()
    lefts = torch.randint(0, big[1] - width + 1, (len(images),), generator=generator).tolist()
    crops = [(slice(t, t + height), slice(x, x + width)) for t, x in zip(tops, lefts, strict=True)]
    return (
        torch.stack([img[:, rows, cols] for img, (rows, cols) in zip(images, crops, strict=True)]),
        torch.stack([lab[rows, cols] for lab, (rows, cols) in zip(labels, crops, strict=True)]),
    )


@register_method("semguided", "semantic-guided cGAN (pix2pix U-Net, per-class PatchGAN, semantic perceptual loss)")
class SemanticGuidedMethod(LabelToImageMethod):
    kind = "semguided"
    uses_ema = False  # pix2pix keeps none
    path_keys = ("outer_segmenter",)
    config_class = SemanticGuidedTrainConfig

    def __init__(self, cfg: SemanticGuidedTrainConfig, ctx: TrainContext, datasets: Mapping[str, Dataset]) -> None:
        super().__init__(cfg, ctx, datasets)
        self.semantic_weight = cfg.loss.semantic
        self.task_network = (
            self.load_frozen_segmenter(
                TaskSegmenterError,
                f"loss.semantic={self.semantic_weight:g} and the task_accuracy evaluation need the task network T_s, "
                "or set loss.semantic=0 eval_every=0 (not the paper's method)",
                self.num_classes,
            )
            if self.semantic_weight > 0 or cfg.eval_every
            else None
        )
        self._eval_labels: list[torch.Tensor] | None = None

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        model = self.cfg.model
        generator = UNetGenerator(
            UNetGeneratorSpec(
                self.num_classes,
                base_channels=model.g_channels,
                num_downs=model.num_downs,
                dropout=model.dropout,
            )
        )
        discriminator = SemanticPatchDiscriminator(
            SemanticPatchDiscriminatorSpec(self.num_classes, model.d_channels, model.d_layers)
        )
        return generator, discriminator

    def sample_noise(self, batch: int, generator: torch.Generator) -> None:
        return None

    @classmethod
    def generator_from_spec(cls, spec: dict[str, Any]) -> nn.Module:
        return UNetGenerator(UNetGeneratorSpec(**spec))

    @classmethod
    def synthesizer(cls, method: str, generator: nn.Module, class_set: LabelTable, device: torch.device) -> Synthesizer:
        return Synthesizer(method, generator, class_set, device, z_dim=0, size_multiple=generator.spec.downsampling)

    # ---------------------------------------------------------------- losses
    def compute_losses(self, phase: str, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        jitter = self.cfg.jitter
        if jitter != 1.0:
            real = batch["real"]
            generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + JITTER_SEED + step)
            images, labels = jitter_and_crop(real["image"], real["label"], jitter, generator)
            batch = {**batch, "real": {**real, "image": images, "label": labels}}
        return super().compute_losses(phase, batch, step)

    def perceptual_loss(self, fake: torch.Tensor, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The semantic perceptual loss λ·L_s (and VGG when asked for) next to the class-balanced adversarial one."""
        losses = super().perceptual_loss(fake, images)
        if self.task_network is not None and self.semantic_weight > 0:
            with self.ctx.autocast():
                losses["semantic"] = self.semantic_weight * semantic_perceptual_loss(self.task_network, images, fake)
        return losses

    # ---------------------------------------------------------------- evaluation
    def _evaluation_labels(self) -> list[torch.Tensor]:
        """Evenly spread label maps (centre crops), the same at every evaluation."""
        if self._eval_labels is None:
            from simreal.data.dataset import FrameDataset

            source = self.datasets["real"]
            dataset = FrameDataset(source.store_path, crop=source.crop, random_crop=False, hflip=False)
            picks = np.linspace(0, len(dataset) - 1, min(len(dataset), self.cfg.eval_frames)).round()
            labels = torch.stack([dataset[int(i)]["label"] for i in picks.astype(int)])
            self._eval_labels = list(labels.split(self.cfg.batch_size))
        return self._eval_labels

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Pixel accuracy and mIoU of the frozen segmenter on generated images against their label maps."""
        if self.task_network is None:
            return {}
        confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        self.generator.eval()
        try:
            for labels in self._evaluation_labels():
                labels = labels.to(self.ctx.device)
                with self.ctx.autocast():
                    fake = self.generator(self.ctx.images_to_device(one_hot_labels(labels, self.num_classes)))
                    predicted = self.task_network(fake).argmax(1)
                confusion += confusion_matrix(predicted, labels, self.num_classes).cpu()
        finally:
            self.generator.train()
        scores = segmentation_scores(confusion, self.datasets["real"].evaluable_classes)
        return {"task_accuracy": float(scores["pixel_acc"]), "task_miou": float(scores["miou"])}
