"""What the label-to-image methods (``oasis``, ``dpgan``, ``spade``) share on the method contract.

Data role ``real``: images and labels of a real store (label 255 = don't-care). Each step runs a G phase, then a D
phase on the same batch (the references' loop), then the EMA update. The checkpoint's method state carries a
``synthesizer`` entry (generator kind + spec); the weights to paint with are ``ema.module`` (the EMA generator,
BatchNorm statistics re-estimated just before saving) when the method keeps one, else ``generator``.
``build_inference`` rebuilds them as a ``simreal.synthesize.Synthesizer``.

``model.discriminator=semantic`` swaps a method's discriminator for the semantic-guided cGAN's per-class PatchGAN
(``simreal.models.semguided``, paper 001: it helps any cGAN) and its adversarial losses for that one's
class-balanced pair; the losses that read the method's own discriminator (N+1, LabelMix, feature matching, DP-GAN's
patch and alignment terms) go with it, the others (VGG, KL) stay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import MISSING
from torch import nn
from torch.utils.data import Dataset

from simreal.data.images import tensor_to_uint8
from simreal.errors import ConfigError, TrainingError
from simreal.inference import LABEL_TO_IMAGE
from simreal.labels import LabelTable
from simreal.losses.semguided import semantic_discriminator_loss, semantic_generator_loss
from simreal.losses.synthesis import VGGPerceptualLoss, VGGWeightsUnavailable, load_vgg19_features
from simreal.models.semguided import SemanticPatchDiscriminator, SemanticPatchDiscriminatorSpec
from simreal.models.spade_blocks import one_hot_labels, reestimate_batch_norm
from simreal.synthesize import Synthesizer
from simreal.training.ema import ExponentialMovingAverage
from simreal.training.errors import InitWeightsError
from simreal.training.method import Batch, Phase, TrainContext, TrainingMethod, load_matching_weights
from simreal.training.schema import TrainingConfig

SAMPLES_SHOWN = 4
SAMPLE_NOISE_SEED = 1234  # the same noise at every sample step, so grids show training progress only
BN_NOISE_SEED = 4321


@dataclass
class LabelToImageModelConfig:
    d_channels: int = MISSING  # also the width of the per-class PatchGAN that model.discriminator=semantic swaps in


@dataclass
class SwappableDiscriminatorModelConfig(LabelToImageModelConfig):
    """The model section of the methods whose discriminator ``model.discriminator=semantic`` can swap."""

    discriminator: str = MISSING  # own | semantic (checked when the method is built)


@dataclass
class PerceptualLossConfig:
    vgg: float = MISSING
    vgg_weights: str = MISSING


@dataclass
class AdamPairConfig:
    lr_g: float = MISSING
    lr_d: float = MISSING
    beta1: float = MISSING
    beta2: float = MISSING


@dataclass
class EMAConfig:
    decay: float = MISSING
    bn_batches: int = MISSING


@dataclass
class LabelToImageTrainConfig(TrainingConfig):
    """What ``LabelToImageMethod`` reads; a method's config class subclasses it with its own sections."""

    real: str | None = MISSING
    crop: list[int] | None = MISSING
    hflip: bool = MISSING
    model: LabelToImageModelConfig = MISSING
    loss: PerceptualLossConfig = MISSING
    optim: AdamPairConfig = MISSING


class PerceptualLossError(TrainingError):
    """The VGG19 perceptual loss is asked for (``loss.vgg`` > 0) but its weights cannot be loaded."""


class LabelToImageMethod(TrainingMethod):
    """Base of the synthesizer methods: data, one-hot labels, Adam pair, EMA, sample grids, checkpoint layout.

    Subclasses return the bare generator and discriminator from ``build_networks``, rebuild a generator from its
    saved spec in ``generator_from_spec`` and implement ``generator_losses`` / ``discriminator_losses``. The G
    phase calls the bare ``discriminator`` (its weights are frozen there, so the DDP wrapper, which expects
    gradients for every parameter, stays out of it); the D phase calls ``train_discriminator``.
    """

    data_roles = ("real",)
    sample_columns = 3  # label | generated | real
    inference_kind = LABEL_TO_IMAGE
    kind = ""  # the generator kind saved in the checkpoint (the method name)
    uses_ema = True

    @classmethod
    def make_dataset(cls, cfg: LabelToImageTrainConfig, role: str, store_path: str) -> Dataset:
        from simreal.data.dataset import FrameDataset, crop_hw

        return FrameDataset(store_path, crop=crop_hw(cfg.crop), random_crop=True, hflip=cfg.hflip, normalize="tanh")

    def __init__(self, cfg: LabelToImageTrainConfig, ctx: TrainContext, datasets: Mapping[str, Dataset]) -> None:
        super().__init__(cfg, ctx, datasets)
        self.class_set = datasets["real"].class_set
        self.num_classes = max(self.class_set.ids) + 1
        generator, discriminator = self.build_networks()
        choice = cfg.model.get("discriminator", "own")  # semanticgan and semguided have no choice
        if choice not in ("own", "semantic"):
            raise ConfigError(f"model.discriminator must be own or semantic, got {choice!r}")
        if choice == "semantic":
            discriminator = SemanticPatchDiscriminator(
                SemanticPatchDiscriminatorSpec(self.num_classes, cfg.model.d_channels)
            )
        self.semantic_discriminator = isinstance(discriminator, SemanticPatchDiscriminator)
        self.generator, self.discriminator = self.ctx.place(generator), self.ctx.place(discriminator)
        # made after placing, so the copy lives where the generator does; it keeps plain BatchNorm (its statistics
        # are re-estimated on the main rank alone)
        self.ema = ExponentialMovingAverage(self.generator, cfg.ema.decay) if self.uses_ema else None
        if ctx.distributed:  # the parameter-free norms must see the global batch, as the references' sync-BN
            self.generator = nn.SyncBatchNorm.convert_sync_batchnorm(self.generator)
            self.discriminator = nn.SyncBatchNorm.convert_sync_batchnorm(self.discriminator)
        self.train_generator = ctx.prepare(self.generator)
        self.train_discriminator = ctx.prepare(self.discriminator)
        optim = cfg.optim
        betas = (optim.beta1, optim.beta2)
        generator_parameters = [p for net in self.generator_networks() for p in net.parameters()]
        self.opt_g = torch.optim.Adam(generator_parameters, lr=optim.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=optim.lr_d, betas=betas)
        self._bn_labels: list[torch.Tensor] | None = None
        self.vgg = self._perceptual_network()

    # ---------------------------------------------------------------- to implement
    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    @classmethod
    def generator_from_spec(cls, spec: dict[str, Any]) -> nn.Module:
        """A fresh generator from the spec ``generator_spec`` returned (what checkpoints hold)."""
        raise NotImplementedError

    def generator_losses(
        self, images: torch.Tensor, labels: torch.Tensor, segmap: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def discriminator_losses(
        self, images: torch.Tensor, labels: torch.Tensor, segmap: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _perceptual_network(self) -> VGGPerceptualLoss | None:
        """VGG19 for the perceptual loss (every method's config has ``loss.vgg``), None when its weight is 0.

        Without its weights the run is not the method asked for, so it stops instead of training on without it.
        """
        weight = self.cfg.loss.vgg
        if weight == 0:
            return None
        try:
            features = load_vgg19_features(self.cfg.loss.vgg_weights)
        except VGGWeightsUnavailable as err:
            raise PerceptualLossError(
                f"loss.vgg={weight:g} needs VGG19 ImageNet weights: {err}. Put vgg19.pth (torchvision's vgg19 "
                "state dict) or vgg19.safetensors into $SIMREAL_WEIGHTS_DIR, or pass loss.vgg_weights=/path/to/"
                "vgg19.pth; or train without the perceptual loss with loss.vgg=0 (a departure from the reference "
                f"{self.kind} recipe when it uses one)"
            ) from err
        return VGGPerceptualLoss(features).to(self.ctx.device)

    def perceptual_loss(self, fake: torch.Tensor, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"vgg": weighted loss}`` when the perceptual loss is on, else nothing."""
        return {"vgg": self.cfg.loss.vgg * self.vgg(fake, images)} if self.vgg is not None else {}

    def generator_networks(self) -> tuple[nn.Module, ...]:
        """The networks the G phase trains (the generator, and e.g. a style encoder)."""
        return (self.generator,)

    def generator_spec(self) -> dict:
        return self.generator.spec.to_dict()  # type: ignore[union-attr,operator]

    # ---------------------------------------------------------------- method contract
    def phases(self) -> Sequence[Phase]:
        return [
            Phase("G", networks=self.generator_networks(), optimizer=self.opt_g),
            Phase("D", networks=(self.discriminator,), optimizer=self.opt_d, ema=self.ema),
        ]

    def compute_losses(self, phase: str, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        images = self.ctx.images_to_device(batch["real"]["image"])
        labels = batch["real"]["label"].to(self.ctx.device)
        segmap = self.ctx.images_to_device(one_hot_labels(labels, self.num_classes))
        self.train_generator.train()
        self.train_discriminator.train()
        if self.semantic_discriminator:
            return self.semantic_guided_losses(phase, images, labels, segmap)
        if phase == "G":
            return self.generator_losses(images, labels, segmap)
        if phase == "D":
            return self.discriminator_losses(images, labels, segmap)
        raise ValueError(f"unknown phase {phase!r}")

    def generate(self, images: torch.Tensor, segmap: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A fake batch from the training generator, with the losses that drawing it brings (e.g. a VAE's KL)."""
        with self.ctx.autocast():
            return self.train_generator(segmap), {}

    def semantic_guided_losses(
        self, phase: str, images: torch.Tensor, labels: torch.Tensor, segmap: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The class-balanced adversarial losses of the per-class PatchGAN (``model.discriminator=semantic``)."""
        if phase == "G":
            fake, losses = self.generate(images, segmap)
            with self.ctx.autocast():
                scores = self.discriminator(segmap, fake)
            adv = semantic_generator_loss(scores, labels, self.num_classes)
            return {"adv": adv, **losses, **self.perceptual_loss(fake, images)}
        if phase == "D":
            with torch.no_grad():
                fake, _ = self.generate(images, segmap)
            with self.ctx.autocast():
                fake_scores = self.train_discriminator(segmap, fake)
                real_scores = self.train_discriminator(segmap, images)
            return {"gan": semantic_discriminator_loss(real_scores, fake_scores, labels, self.num_classes)}
        raise ValueError(f"unknown phase {phase!r}")

    @classmethod
    def build_inference(cls, saved: Mapping, device: torch.device) -> Synthesizer:
        """The painting generator (EMA weights when kept) as a ``Synthesizer``."""
        state = saved["method"]
        generator = cls.generator_from_spec(state["synthesizer"]["generator_spec"])
        generator.load_state_dict(state["ema"]["module"] if "ema" in state else state["generator"])
        generator = generator.to(device).eval().requires_grad_(False)
        return cls.synthesizer(str(saved["method_name"]), generator, LabelTable.from_dict(state["class_set"]), device)

    @classmethod
    def synthesizer(cls, method: str, generator: nn.Module, class_set: LabelTable, device: torch.device) -> Synthesizer:
        """Wrap a generator whose ``spec`` has ``z_dim`` and ``downsampling`` (the sides' divisor)."""
        spec = generator.spec  # type: ignore[union-attr]
        return Synthesizer(method, generator, class_set, device, z_dim=spec.z_dim, size_multiple=spec.downsampling)

    # ---------------------------------------------------------------- sampling generator
    def sampling_generator(self) -> nn.Module:
        """The generator to paint with: the EMA one (statistics re-estimated) when kept, else the live one."""
        if self.ema is None:
            return self.generator
        self.refresh_ema_statistics()
        return self.ema.module

    def _statistics_labels(self) -> list[torch.Tensor]:
        """Label batches for BatchNorm re-estimation: evenly spread frames, centre crops, no RNG use."""
        if self._bn_labels is None:
            from simreal.data.dataset import FrameDataset

            source = self.datasets["real"]
            dataset = FrameDataset(source.store_path, crop=source.crop, random_crop=False, hflip=False)
            batch_size = self.cfg.batch_size // self.ctx.world_size
            wanted = min(len(dataset), self.cfg.ema.bn_batches * batch_size)
            picks = np.linspace(0, len(dataset) - 1, wanted).round().astype(int)
            labels = torch.stack([dataset[int(i)]["label"].to(torch.uint8) for i in picks])
            self._bn_labels = list(labels.split(batch_size))
        return self._bn_labels

    @torch.no_grad()
    def refresh_ema_statistics(self) -> None:
        if self.ema is None:
            return
        noise = torch.Generator().manual_seed(BN_NOISE_SEED)
        batches = []
        for labels in self._statistics_labels():
            segmap = self.ctx.images_to_device(one_hot_labels(labels.long(), self.num_classes))
            batches.append((segmap, self.sample_noise(len(labels), noise)))
        with self.ctx.autocast():
            reestimate_batch_norm(self.ema.module, batches)

    def sample_noise(self, batch: int, generator: torch.Generator) -> torch.Tensor | None:
        """Noise for ``batch`` images drawn on the CPU from ``generator`` (None for noise-free generators,
        ``spec.z_dim == 0``)."""
        spec = self.generator.spec  # type: ignore[union-attr]
        if not spec.z_dim:
            return None
        return torch.randn(batch, spec.z_dim, generator=generator).to(self.ctx.device)

    @torch.no_grad()
    def sample_images(self, batch: Mapping[str, Mapping[str, torch.Tensor]]) -> list[tuple[str, np.ndarray]]:
        images = batch["real"]["image"][:SAMPLES_SHOWN]
        labels = batch["real"]["label"][:SAMPLES_SHOWN]
        generator = self.sampling_generator()
        was_training = generator.training
        generator.eval()
        try:
            segmap = self.ctx.images_to_device(one_hot_labels(labels.to(self.ctx.device), self.num_classes))
            noise = self.sample_noise(len(labels), torch.Generator().manual_seed(SAMPLE_NOISE_SEED))
            with self.ctx.autocast():
                fake = generator(segmap, noise)
        finally:
            generator.train(was_training)
        samples = []
        label_ids = labels.cpu().numpy().astype(np.uint8)
        for i, (painted, real) in enumerate(zip(tensor_to_uint8(fake), tensor_to_uint8(images), strict=True)):
            samples.append((f"label {i}", self.class_set.colorize(label_ids[i])))
            samples.append((f"generated {i}", painted))
            samples.append((f"real {i}", real))
        return samples

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        self.refresh_ema_statistics()
        state = {
            "synthesizer": {"kind": self.kind, "generator_spec": self.generator_spec()},
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "class_set": self.class_set.to_attrs(),
            "input_range": "tanh",
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: Mapping) -> None:
        saved_kind = state.get("synthesizer", {}).get("kind")
        if saved_kind != self.kind:
            raise TrainingError(f"checkpoint holds a {saved_kind!r} synthesizer, not {self.kind!r}")
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])

    def load_weights(self, saved: Mapping, source: str) -> None:
        """Generator (and its EMA copy when saved), discriminator when saved; a fresh one otherwise."""
        state = saved.get("method", {})
        kind = state.get("synthesizer", {}).get("kind")
        if kind != self.kind:
            raise InitWeightsError(f"init={source} holds a {kind!r} synthesizer, not {self.kind!r}")
        saved_classes = state["class_set"]["name"]
        if saved_classes != self.class_set.name:
            raise InitWeightsError(
                f"init={source} paints class set {saved_classes!r} but the store uses {self.class_set.name!r}; "
                f"import or relabel the store in {saved_classes!r}"
            )
        load_matching_weights(self.generator, state["generator"], "generator", source)
        if "discriminator" in state:
            load_matching_weights(self.discriminator, state["discriminator"], "discriminator", source)
        if self.ema is not None:
            ema_state = state["ema"]["module"] if "ema" in state else self.generator.state_dict()
            load_matching_weights(self.ema.module, ema_state, "EMA generator", source)
