"""Training methods ``lccut`` (label-consistent contrastive translation) and its baselines ``cut`` and ``fastcut``.

CUT / FastCUT (Park et al. 2020) translate a sim frame into the real domain as a whole: no style frame, no cycle.
A PatchNCE loss in the generator's own encoder keeps each output patch recognisable as its input patch, an LSGAN
PatchGAN pulls the output towards the real domain. LC-CUT adds the LC-SAE report's outer loss: a frozen segmenter,
trained on the real domain (``outer_segmenter=RUN``), must still read the source frame's labels in the translation.
The generator edits the rendered frame (``simreal.models.cut``: a zero-initialised residual output, so step 0 is
the identity; the label map as extra input, noise in the decoder, per-class grain outside PatchNCE).

Each step draws ``batch_size`` sim and real crops (batch 1 in the reference) and runs a G phase (generator and
projection head: GAN + PatchNCE [+ identity PatchNCE on the real batch for CUT] [+ label loss]), then a D phase on
the same step's fake (the reference's D step also reads the fake made before the G update). Learning rates are
constant for the first ``optim.decay_from`` share of the run, then fall linearly to 0 (the reference's ``linear``
policy).

``model.discriminator``: ``patch`` is CUT's PatchGAN on the image (LSGAN); ``semantic`` is the semantic-guided
cGAN's per-class PatchGAN on (labels, image), both domains labelled, with its class-balanced loss: it judges road as
road and buildings as buildings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import MISSING
from torch import nn
from torch.utils.data import Dataset

from simreal.data.images import tensor_to_uint8
from simreal.errors import ConfigError, TrainingError
from simreal.inference import IMAGE_TO_IMAGE, ImageModel
from simreal.labels import LabelTable
from simreal.losses.cut import lsgan_loss, patch_nce_loss
from simreal.losses.label_consistency import LabelConsistencyLoss
from simreal.losses.semguided import class_balanced_patch_loss, patch_class_shares, semantic_generator_loss
from simreal.models.cut import CUTGenerator, CUTGeneratorSpec, PatchProjection, xavier_init
from simreal.models.patchgan import PatchGAN
from simreal.models.semguided import SemanticPatchDiscriminator, SemanticPatchDiscriminatorSpec
from simreal.models.spade_blocks import one_hot_labels
from simreal.training.ema import ExponentialMovingAverage
from simreal.training.method import Batch, LRSchedule, Phase, TrainContext, TrainingMethod, linear_decay
from simreal.training.registry import register_method
from simreal.training.schema import EMASwitchConfig, TrainingConfig

SAMPLE_SEED = 1234  # fixed generator noise for sample grids
DISCRIMINATORS = ("patch", "semantic")


class CUTError(TrainingError):
    """A CUT / LC-CUT run that cannot be built as configured."""


@dataclass
class CUTModelConfig:
    ngf: int = MISSING
    n_blocks: int = MISSING
    residual: bool = MISSING
    label_input: bool = MISSING
    noise_channels: int = MISSING
    grain: bool = MISSING
    discriminator: str = MISSING  # patch | semantic
    ndf: int = MISSING
    d_layers: int = MISSING
    nce_layers: list[int] = MISSING
    num_patches: int = MISSING
    netF_nc: int = MISSING


@dataclass
class CUTLossConfig:
    lambda_gan: float = MISSING
    lambda_nce: float = MISSING
    nce_tau: float = MISSING
    nce_idt: bool = MISSING
    flip_equivariance: bool = MISSING
    lambda_outer: float = MISSING
    outer_loss: str = MISSING
    outer_class_weights: list[float] | None = MISSING


@dataclass
class CUTOptimConfig:
    lr: float = MISSING
    beta1: float = MISSING
    beta2: float = MISSING
    decay_from: float = MISSING  # share of the run after which the learning rates fall linearly to 0


@dataclass
class CUTTrainConfig(TrainingConfig):
    """``configs/train/cut.yaml`` / ``fastcut.yaml`` (documented there)."""

    sim: str | None = MISSING
    real: str | None = MISSING
    crop: list[int] | None = MISSING
    hflip: bool = MISSING
    sample_count: int = MISSING
    model: CUTModelConfig = MISSING
    loss: CUTLossConfig = MISSING
    optim: CUTOptimConfig = MISSING
    ema: EMASwitchConfig = MISSING


@dataclass
class LCCUTTrainConfig(CUTTrainConfig):
    """``configs/train/lccut.yaml``: CUT's keys and the label loss's frozen segmenter."""

    outer_segmenter: str | None = MISSING


@register_method("lccut", "Label-consistent CUT: contrastive sim -> real translator kept true to the labels")
class LCCUTMethod(TrainingMethod):
    data_roles = ("sim", "real")
    path_keys = ("outer_segmenter",)
    sample_columns = 3  # sim | translated | sim labels
    inference_kind = IMAGE_TO_IMAGE
    config_class = LCCUTTrainConfig

    @classmethod
    def make_dataset(cls, cfg: CUTTrainConfig, role: str, store_path: str) -> Dataset:
        from simreal.data.dataset import FrameDataset, crop_hw

        return FrameDataset(store_path, crop=crop_hw(cfg.crop), random_crop=True, hflip=cfg.hflip, normalize="tanh")

    def __init__(self, cfg: CUTTrainConfig, ctx: TrainContext, datasets: Mapping[str, Dataset]) -> None:
        super().__init__(cfg, ctx, datasets)
        self.class_set = self.shared_class_set()
        self.num_classes = max(self.class_set.ids) + 1
        model, loss = cfg.model, cfg.loss
        self.check_loss(loss)
        self.spec = CUTGeneratorSpec(
            ngf=model.ngf,
            n_blocks=model.n_blocks,
            label_channels=self.num_classes + 1 if model.label_input else 0,
            noise_channels=model.noise_channels,
            grain=model.grain,
            residual=model.residual,
            nce_layers=tuple(model.nce_layers),
        )
        self.generator = ctx.place(CUTGenerator(self.spec))
        self.projection = ctx.place(PatchProjection(self.generator.feature_channels, model.netF_nc))
        self.discriminator = ctx.place(self._discriminator(model))
        self.train_generator = ctx.prepare(self.generator)
        self.train_discriminator = ctx.prepare(self.discriminator)
        self.segmenter = None
        if loss.lambda_outer > 0:
            self.segmenter = self.load_frozen_segmenter(
                CUTError, f"loss.lambda_outer={loss.lambda_outer} (the label loss) needs it; or loss.lambda_outer=0",
                self.num_classes,
            )  # fmt: skip
        classes = list(loss.outer_class_weights) if loss.outer_class_weights is not None else None
        self.label_loss = LabelConsistencyLoss(loss.outer_loss, self.class_set.ignore_index, classes)
        optim = cfg.optim
        betas = (optim.beta1, optim.beta2)
        generator_parameters = [*self.generator.parameters(), *self.projection.parameters()]
        self.opt_g = torch.optim.Adam(generator_parameters, lr=optim.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=optim.lr, betas=betas)
        decay = linear_decay(int(cfg.steps), int(round(optim.decay_from * int(cfg.steps))))
        self.schedule_g, self.schedule_d = LRSchedule(self.opt_g, decay), LRSchedule(self.opt_d, decay)
        ema = cfg.ema
        self.ema = ExponentialMovingAverage(self.generator, ema.decay, ema.warmup_steps) if ema.enabled else None
        self._fake: tuple[torch.Tensor, torch.Tensor] | None = None  # this step's fake and its labels, for D

    def check_loss(self, loss: CUTLossConfig) -> None:
        """Refuse loss weights the method does not take (the baselines refuse the label loss)."""
        if min(loss.lambda_gan, loss.lambda_nce, loss.lambda_outer) < 0 or loss.nce_tau <= 0:
            raise CUTError("loss weights must be >= 0 and loss.nce_tau > 0")

    def _discriminator(self, model: CUTModelConfig) -> nn.Module:
        if model.discriminator not in DISCRIMINATORS:
            raise ConfigError(f"model.discriminator must be one of {', '.join(DISCRIMINATORS)}, got "
                              f"{model.discriminator!r}")  # fmt: skip
        if model.discriminator == "semantic":
            return SemanticPatchDiscriminator(
                SemanticPatchDiscriminatorSpec(self.num_classes, model.ndf, num_layers=model.d_layers)
            )
        discriminator = PatchGAN(3, model.ndf, model.d_layers)
        xavier_init(discriminator)
        return discriminator

    # ------------------------------------------------------------------ training
    def phases(self) -> Sequence[Phase]:
        return [
            Phase("G", networks=(self.generator, self.projection), optimizer=self.opt_g, schedule=self.schedule_g,
                  ema=self.ema),
            Phase("D", networks=(self.discriminator,), optimizer=self.opt_d, schedule=self.schedule_d),
        ]  # fmt: skip

    def _aux(self, labels: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The generator's extra inputs for a batch: one-hot labels and fresh noise, as configured."""
        segmap = one_hot_labels(labels, self.num_classes) if self.spec.label_channels else None
        noise = None
        if self.spec.noise_inputs:
            b, h, w = labels.shape
            noise = torch.randn(b, self.spec.noise_inputs, h, w, device=labels.device)
        return segmap, noise

    def _nce(
        self, source: torch.Tensor, output: torch.Tensor, segmap: torch.Tensor | None, flipped: bool = False
    ) -> torch.Tensor:
        """PatchNCE between ``source`` and the ``output`` made from it (``flipped``: made from the mirrored source)."""
        queries = self.generator.encode(output, segmap.flip(-1) if flipped and segmap is not None else segmap)
        if flipped:
            queries = [q.flip(-1) for q in queries]
        keys = self.generator.encode(source, segmap)
        loss = self.cfg.loss
        return patch_nce_loss(queries, keys, self.projection, self.cfg.model.num_patches, loss.nce_tau)

    def compute_losses(self, phase: str, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        self.generator.train()
        self.discriminator.train()
        with self.ctx.autocast():
            if phase == "G":
                return self._generator_losses(batch)
            return self._discriminator_losses(batch)

    def _generator_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        loss = self.cfg.loss
        sim = self.ctx.images_to_device(batch["sim"]["image"])
        labels = batch["sim"]["label"].to(self.ctx.device)
        aux = self._aux(labels)
        flipped = loss.flip_equivariance and bool(torch.rand(()) < 0.5)
        if flipped:  # FastCUT: translate the mirrored frame, compare its features mirrored back
            source, source_labels = sim.flip(-1), labels.flip(-1)
            source_aux = tuple(t.flip(-1) if t is not None else None for t in aux)
        else:
            source, source_labels, source_aux = sim, labels, aux
        fake, clean = self.train_generator(source, *source_aux, with_clean=True)
        self._fake = (fake.detach(), source_labels)
        losses = {"gan": loss.lambda_gan * self._adversarial(fake, source_labels)}
        nce = self._nce(sim, clean, aux[0], flipped)  # content: the frame before grain
        if loss.nce_idt:  # CUT: identity PatchNCE on the real batch, averaged with the sim one
            real = self.ctx.images_to_device(batch["real"]["image"])
            real_aux = self._aux(batch["real"]["label"].to(self.ctx.device))
            _, real_clean = self.train_generator(real, *real_aux, with_clean=True)
            nce = 0.5 * (nce + self._nce(real, real_clean, real_aux[0]))
        losses["nce"] = loss.lambda_nce * nce
        if self.segmenter is not None:
            losses["label"] = loss.lambda_outer * self.label_loss(self.segmenter(fake), source_labels)
        return losses

    def _discriminator_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self._fake is None:
            raise CUTError("the D phase judges the fake of the G phase before it in the same step; run G first")
        fake, fake_labels = self._fake
        self._fake = None
        real = self.ctx.images_to_device(batch["real"]["image"])
        real_labels = batch["real"]["label"].to(self.ctx.device)
        if isinstance(self.discriminator, SemanticPatchDiscriminator):
            real_scores = self.train_discriminator(one_hot_labels(real_labels, self.num_classes), real)
            fake_scores = self.train_discriminator(one_hot_labels(fake_labels, self.num_classes), fake)
            # the semantic-guided cGAN's halved pair, real and fake each judged on its own label map
            return {
                "real": 0.5 * self._class_balanced(real_scores, real_labels, real=True),
                "fake": 0.5 * self._class_balanced(fake_scores, fake_labels, real=False),
            }
        return {
            "real": 0.5 * lsgan_loss(self.train_discriminator(real)[-1], real=True),
            "fake": 0.5 * lsgan_loss(self.train_discriminator(fake)[-1], real=False),
        }

    def _adversarial(self, fake: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The generator's GAN term (fakes scored as real), through the bare (frozen in this phase) discriminator."""
        if isinstance(self.discriminator, SemanticPatchDiscriminator):
            scores = self.discriminator(one_hot_labels(labels, self.num_classes), fake)
            return semantic_generator_loss(scores, labels, self.num_classes)
        return lsgan_loss(self.discriminator(fake)[-1], real=True)

    def _class_balanced(self, scores: torch.Tensor, labels: torch.Tensor, real: bool) -> torch.Tensor:
        """The semantic D's loss on one side; its paired helper reads one label map for both, here each has its own."""
        shares = patch_class_shares(labels, self.num_classes, tuple(scores.shape[-2:]))
        return class_balanced_patch_loss(scores, shares, target_is_real=real)

    # ------------------------------------------------------------------ inference
    @classmethod
    def build_inference(cls, saved: Mapping, device: torch.device) -> ImageModel:
        """The generator, with the averaged weights when the run kept them."""
        state = saved["method"]
        generator = CUTGenerator(CUTGeneratorSpec.from_dict(dict(state["generator_spec"])))
        generator.load_state_dict(state["ema"]["module"] if "ema" in state else state["generator"])
        generator = generator.to(device).eval().requires_grad_(False)
        class_set = LabelTable.from_dict(state["class_set"])
        return ImageModel(str(saved["method_name"]), generator, class_set, device)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        state = {
            "generator_spec": self.spec.to_dict(),
            "generator": self.generator.state_dict(),
            "projection": self.projection.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "optimizer_g": self.opt_g.state_dict(),
            "optimizer_d": self.opt_d.state_dict(),
            "class_set": self.class_set.to_attrs(),
            "input_range": "tanh",
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: Mapping) -> None:
        if dict(state["generator_spec"]) != self.spec.to_dict():
            raise CUTError("the checkpoint's generator differs from this run's model settings (see its config.yaml)")
        self.generator.load_state_dict(state["generator"])
        self.projection.load_state_dict(state["projection"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["optimizer_g"])
        self.opt_d.load_state_dict(state["optimizer_d"])
        if self.ema is not None:
            if "ema" not in state:
                raise CUTError("the checkpoint has no EMA weights; resume with ema.enabled=false")
            self.ema.load_state_dict(state["ema"])

    # ------------------------------------------------------------------ samples
    @torch.no_grad()
    def sample_images(self, batch: Batch) -> list[tuple[str, np.ndarray]]:
        count = min(self.cfg.sample_count, len(batch["sim"]["image"]))
        sim = self.ctx.images_to_device(batch["sim"]["image"][:count])
        labels = batch["sim"]["label"][:count].to(self.ctx.device)
        generator = self.ema.module if self.ema is not None else self.generator
        devices = [self.ctx.device] if self.ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), self.ctx.autocast():  # fixed noise, training RNG untouched
            torch.manual_seed(SAMPLE_SEED)
            translated = generator.eval()(sim, *self._aux(labels))
        self.generator.train()
        samples = []
        ids = labels.cpu().numpy().astype(np.uint8)
        for i, (sim_rgb, out_rgb) in enumerate(zip(tensor_to_uint8(sim), tensor_to_uint8(translated))):
            samples += [
                (f"sim {i}", sim_rgb),
                (f"translated {i}", out_rgb),
                (f"labels {i}", self.class_set.colorize(ids[i])),
            ]
        return samples


@register_method("cut", "CUT baseline (Park et al. 2020): LC-CUT without the label loss, identity PatchNCE on")
class CUTMethod(LCCUTMethod):
    """The baselines refuse a label loss, so a ``cut`` / ``fastcut`` run is never an LC-CUT one by accident."""

    path_keys = ()
    config_class = CUTTrainConfig

    def check_loss(self, loss: CUTLossConfig) -> None:
        super().check_loss(loss)
        if loss.lambda_outer:
            raise CUTError(
                f"{self.cfg.method} is LC-CUT with loss.lambda_outer = 0, got {loss.lambda_outer}; use "
                "`simreal train lccut` for the label loss"
            )


@register_method("fastcut", "FastCUT baseline: CUT with lambda_NCE 10, flip equivariance, no identity PatchNCE")
class FastCUTMethod(CUTMethod):
    pass
