"""Training methods ``lcsae`` (Label-Consistent Swapping Autoencoder) and ``sae`` (its baseline, λ_in = λ_out = 0).

Each step draws ``batch_size`` random crops from the ``sim`` store and as many from the ``real`` store (the LC-SAE
report: 8 + 8 crops of 256x256 from 512x256 frames) and runs one phase of ``simreal.losses.sae.SAELoss`` on them.
As in the reference SAE, steps alternate ``D`` (both discriminators; even steps, so the first step is a D step) and
``G`` (encoder, generator and inner semantic head; odd steps), each on a fresh minibatch; ``Dreg`` (lazy R1, its own
optimizer step, loss gain ``loss.r1_interval``) follows every ``loss.r1_interval``-th D step on that step's batch.
The reference's image counter adds the batch (here sim + real crops, 2 * ``batch_size``) per D step and per G step,
so a run of ``steps`` steps trains on ``steps * 2 * batch_size`` images: the report's 5M images at 8 + 8 crops are
312,500 steps.

The sim labels feed the inner semantic loss (and the real labels with ``real_labels=true``), whose semantic head
reads the encoder trunk, and the outer loss, which runs a frozen segmenter (``outer_segmenter=RUN_DIR_OR_CKPT``) on
the sim-structure / real-texture hybrids.

On CUDA the G and D phases run under bf16 autocast; lazy R1 (a double backward) stays in fp32 and eager mode, so
``compile=true`` compiles the encoder, generator and image discriminator for the G and D phases only. The networks
are not wrapped in DDP (the loss calls sub-network methods directly, which DDP wrappers would not see): with
several workers the loop averages their gradients across ranks before each optimizer step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from omegaconf import MISSING
from torch import nn
from torch.utils.data import Dataset

from simreal.config import to_object
from simreal.data.images import tensor_to_uint8
from simreal.inference import STRUCTURE_TEXTURE, TextureModel
from simreal.labels import LabelTable
from simreal.losses.sae import SAELoss, SAELossConfig, SimRealBatch, build_optimizers
from simreal.models.sae import SAEConfig, SAENetworks, build_networks
from simreal.training.ema import ExponentialMovingAverage
from simreal.training.errors import InitWeightsError, TrainingError
from simreal.training.method import Batch, Phase, TrainContext, TrainingMethod, load_matching_weights
from simreal.training.registry import register_method
from simreal.training.schema import EMASwitchConfig, TrainingConfig

SAMPLE_SEED = 1234  # fixed noise for sample grids, so grids of different steps are comparable


class OuterSegmenterError(TrainingError):
    """The outer semantic loss has no usable segmenter."""


@dataclass
class SAEModelChoice:
    preset: str = MISSING  # an SAEConfig preset: full | small | tiny
    structure_downsamplings: int | None = MISSING  # None: the preset's


@dataclass
class SAETrainConfig(TrainingConfig):
    """``configs/train/sae.yaml`` (documented there)."""

    sim: str | None = MISSING
    real: str | None = MISSING
    crop: list[int] = MISSING
    hflip: bool = MISSING
    real_labels: bool = MISSING
    sample_count: int = MISSING
    model: SAEModelChoice = MISSING
    loss: SAELossConfig = MISSING
    ema: EMASwitchConfig = MISSING


@dataclass
class LCSAETrainConfig(SAETrainConfig):
    """``configs/train/lcsae.yaml``: the SAE's keys and the outer loss's frozen segmenter."""

    outer_segmenter: str | None = MISSING


@register_method("lcsae", "Label-Consistent Swapping Autoencoder: sim -> real translator with semantic losses")
class LCSAEMethod(TrainingMethod):
    data_roles = ("sim", "real")
    path_keys = ("outer_segmenter",)
    sample_columns = 4  # sim | translated | real texture source | sim labels
    inference_kind = STRUCTURE_TEXTURE
    config_class = LCSAETrainConfig

    @classmethod
    def make_dataset(cls, cfg: LCSAETrainConfig, role: str, store_path: str) -> Dataset:
        from simreal.data.dataset import FrameDataset, crop_hw

        return FrameDataset(store_path, crop=crop_hw(cfg.crop), random_crop=True, hflip=cfg.hflip, normalize="tanh")

    def __init__(self, cfg: LCSAETrainConfig, ctx: TrainContext, datasets: Mapping[str, Dataset]) -> None:
        super().__init__(cfg, ctx, datasets)
        self.class_set = self.shared_class_set()
        self.num_classes = max(self.class_set.ids) + 1
        self.model_config = self._model_config(cfg)
        self.loss_config = self._loss_config(cfg)

        self.nets: SAENetworks = self.ctx.place(build_networks(self.model_config))
        segmenter = (
            self.load_frozen_segmenter(
                OuterSegmenterError,
                f"loss.lambda_outer={self.loss_config.lambda_outer} (the outer loss) needs it; or loss.lambda_outer=0",
                self.num_classes,
            )
            if self.loss_config.lambda_outer > 0
            else None
        )
        self.loss = SAELoss(self._compiled_view() if ctx.compile else self.nets, self.loss_config, segmenter)
        # Lazy R1 differentiates twice: torch.compile cannot, so it always runs on the eager networks.
        self.r1_loss = SAELoss(self.nets, self.loss_config) if ctx.compile else self.loss
        self.optimizers = build_optimizers(self.nets, self.loss_config)
        ema_cfg = cfg.ema
        self.ema = (
            ExponentialMovingAverage(self._translator(), ema_cfg.decay, ema_cfg.warmup_steps)
            if ema_cfg.enabled
            else None
        )

    # ------------------------------------------------------------------ construction
    def _model_config(self, cfg: LCSAETrainConfig) -> SAEConfig:
        width, height = cfg.crop
        if height != width:
            raise TrainingError(f"crop must be square (the image discriminator is built for one size), got {cfg.crop}")
        base = SAEConfig.preset(cfg.model.preset)
        encoder = base.encoder
        if cfg.model.structure_downsamplings is not None:
            encoder = replace(encoder, structure_downsamplings=cfg.model.structure_downsamplings)
        return replace(
            base,
            crop_size=height,
            encoder=encoder,
            semantic_head=replace(base.semantic_head, n_classes=self.num_classes),
        )

    def _loss_config(self, cfg: LCSAETrainConfig) -> SAELossConfig:
        loss_cfg = replace(to_object(cfg.loss, "loss"), ignore_index=self.class_set.ignore_index)
        loss_cfg.validate()
        return loss_cfg

    def _compiled_view(self) -> SAENetworks:
        """The same networks (shared parameters) with the heavy convolutional ones compiled."""
        nets = self.nets
        return SAENetworks(
            nets.cfg,
            torch.compile(nets.encoder),
            torch.compile(nets.generator),
            torch.compile(nets.discriminator),
            nets.patch_discriminator,
            nets.semantic_head,
        )

    def _translator(self) -> nn.Module:
        """Encoder and generator together: what translation needs and what EMA averages."""
        return nn.ModuleDict({"encoder": self.nets.encoder, "generator": self.nets.generator})

    # ------------------------------------------------------------------ training
    def phases(self) -> Sequence[Phase]:
        r1_interval = self.loss_config.r1_interval
        r1_every = 2 * r1_interval  # in steps: D steps are every other step
        discriminators = (self.nets.discriminator, self.nets.patch_discriminator)
        generator = (self.nets.encoder, self.nets.generator, self.nets.semantic_head)
        optimizer_d, optimizer_g = self.optimizers.discriminator, self.optimizers.generator
        return [
            Phase("D", 2, 0, networks=discriminators, optimizer=optimizer_d),
            Phase("Dreg", r1_every, r1_every - 2, networks=discriminators, optimizer=optimizer_d, gain=r1_interval),
            Phase("G", 2, 1, networks=generator, optimizer=optimizer_g, ema=self.ema),
        ]

    def compute_losses(self, phase: str, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        sim_real = self._sim_real_batch(batch)
        self.nets.train()
        if phase == "Dreg":  # a double backward: fp32 and the eager networks
            return self.r1_loss.phase_losses(phase, sim_real)
        with self.ctx.autocast():
            return self.loss.phase_losses(phase, sim_real)

    @classmethod
    def build_inference(cls, saved: Mapping, device: torch.device) -> TextureModel:
        """Encoder and generator, with the averaged weights when the run kept them (they translate better)."""
        state = saved["method"]
        nets = build_networks(SAEConfig.from_dict(state["model_config"]))
        nets.load_state_dict(state["networks"])
        translator = nn.ModuleDict({"encoder": nets.encoder, "generator": nets.generator})
        if "ema" in state:
            translator.load_state_dict(state["ema"]["module"])
        translator = translator.to(device).eval().requires_grad_(False)
        class_set = LabelTable.from_dict(state["class_set"])
        return TextureModel(
            str(saved["method_name"]), translator["encoder"], translator["generator"], class_set, device
        )

    def _sim_real_batch(self, batch: Batch) -> SimRealBatch:
        to_device = self.ctx.images_to_device
        return SimRealBatch(
            sim_images=to_device(batch["sim"]["image"]),
            sim_labels=batch["sim"]["label"].to(self.ctx.device),
            real_images=to_device(batch["real"]["image"]),
            real_labels=batch["real"]["label"].to(self.ctx.device) if self.cfg.real_labels else None,
        )

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        state = {
            "model_config": asdict(self.model_config),
            "networks": self.nets.state_dict(),
            "optimizer_g": self.optimizers.generator.state_dict(),
            "optimizer_d": self.optimizers.discriminator.state_dict(),
            "class_set": self.class_set.to_attrs(),
            "input_range": "tanh",
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: Mapping) -> None:
        if state["model_config"] != asdict(self.model_config):
            raise TrainingError("the checkpoint's network configuration differs from model.preset / crop / classes")
        self.nets.load_state_dict(state["networks"])
        self.optimizers.generator.load_state_dict(state["optimizer_g"])
        self.optimizers.discriminator.load_state_dict(state["optimizer_d"])
        if self.ema is not None:
            if "ema" not in state:
                raise TrainingError("the checkpoint has no EMA weights; resume with ema.enabled=false")
            self.ema.load_state_dict(state["ema"])

    def load_weights(self, saved: Mapping, source: str) -> None:
        """The networks of an ``lcsae`` or ``sae`` run (``init=``); this run keeps its own semantic head when the
        source never trained one (an ``sae`` run) and any network an import left fresh."""
        method = saved.get("method_name")
        if method not in ("lcsae", "sae"):
            raise InitWeightsError(
                f"init={source} is a {method!r} run; {self.cfg.method} starts from an lcsae or sae run"
            )
        networks = saved["method"]["networks"]
        untrained = set(saved.get("imported", {}).get("fresh", ())) | ({"semantic_head"} if method == "sae" else set())
        for name, module in self.nets.named_children():
            if name in untrained:
                continue
            prefix = f"{name}."
            weights = {key.removeprefix(prefix): value for key, value in networks.items() if key.startswith(prefix)}
            load_matching_weights(module, weights, name.replace("_", " "), source)
        if self.ema is not None:
            self.ema.module.load_state_dict(self._translator().state_dict())

    # ------------------------------------------------------------------ samples
    @torch.no_grad()
    def sample_images(self, batch: Batch) -> list[tuple[str, np.ndarray]]:
        count = min(self.cfg.sample_count, len(batch["sim"]["image"]))
        sim = self.ctx.images_to_device(batch["sim"]["image"][:count])
        real = self.ctx.images_to_device(batch["real"]["image"][:count])
        labels = batch["sim"]["label"][:count].cpu().numpy().astype(np.uint8)
        translator = self.ema.module if self.ema is not None else self._translator()
        devices = [self.ctx.device] if self.ctx.device.type == "cuda" else []
        # Fixed generator noise, and the training RNG streams left untouched (resumes stay exact).
        with torch.random.fork_rng(devices=devices), self.ctx.autocast():
            torch.manual_seed(SAMPLE_SEED)
            structure, _ = translator["encoder"](sim)
            _, texture = translator["encoder"](real)
            translated = translator["generator"](structure, texture)
        samples = []
        for i, (sim_rgb, out_rgb, real_rgb) in enumerate(
            zip(tensor_to_uint8(sim), tensor_to_uint8(translated), tensor_to_uint8(real))
        ):
            samples += [
                (f"sim {i}", sim_rgb),
                (f"translated {i}", out_rgb),
                (f"real texture {i}", real_rgb),
                (f"labels {i}", self.class_set.colorize(labels[i])),
            ]
        return samples


@register_method("sae", "Swapping Autoencoder baseline: LC-SAE without semantic losses (lambda_in = lambda_out = 0)")
class SAEMethod(LCSAEMethod):
    """The report's baseline: refuses semantic loss weights, so an ``sae`` run is never an LC-SAE one by accident."""

    path_keys = ()  # no outer segmenter
    config_class = SAETrainConfig

    def _loss_config(self, cfg: SAETrainConfig) -> SAELossConfig:
        loss_cfg = super()._loss_config(cfg)
        if loss_cfg.lambda_inner or loss_cfg.lambda_outer:
            raise TrainingError(
                f"sae is LC-SAE with loss.lambda_inner = loss.lambda_outer = 0, got {loss_cfg.lambda_inner} and "
                f"{loss_cfg.lambda_outer}; use `simreal train lcsae` for semantic losses"
            )
        return loss_cfg
