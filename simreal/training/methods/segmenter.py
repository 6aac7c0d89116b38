"""Training method ``segmenter``: DeepLabV3+ on labelled frames (the LC-SAE report's Table 4.1 recipe).

``data`` is one frame store, or a mix file of weighted stores (``simreal.data.mix``). SGD with momentum,
polynomial learning-rate decay (the encoder at ``encoder_lr_mult`` of the base rate, as usual for pretrained
backbones), cross-entropy ignoring label 255, random crops and flips. Validation (``val=STORE``) runs on whole
images and scores pixel accuracy, mean accuracy and mIoU on the store's evaluable classes after its ``eval_merge``
(the evaluator of ``score`` and ``bench``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch.utils.data import Dataset

from simreal.data.images import tensor_to_uint8
from simreal.inference import SEGMENTER, SegmenterModel
from simreal.labels import LabelTable
from simreal.models.segmenter import SegmenterNet, build_segmenter, segmenter_from_state
from simreal.training.method import (
    Batch,
    LRSchedule,
    Phase,
    PhaseLosses,
    TrainContext,
    TrainingMethod,
    poly_decay,
)
from simreal.training.registry import register_method
from simreal.training.schema import TrainingConfig

SAMPLES_SHOWN = 4


@dataclass
class SegmenterModelConfig:
    architecture: str = MISSING
    encoder_name: str | None = MISSING
    encoder_depth: int | None = MISSING
    decoder_channels: int | None = MISSING
    output_stride: int = MISSING
    encoder_weights: str | None = MISSING


@dataclass
class SegmenterOptimConfig:
    lr: float = MISSING
    momentum: float = MISSING
    weight_decay: float = MISSING
    encoder_lr_mult: float = MISSING
    poly_power: float = MISSING


@dataclass
class SegmenterTrainConfig(TrainingConfig):
    data: str | None = MISSING
    val: str | None = MISSING
    crop: list[int] = MISSING
    hflip: bool = MISSING
    eval_batch_size: int = MISSING
    model: SegmenterModelConfig = MISSING
    optim: SegmenterOptimConfig = MISSING


@register_method("segmenter", "DeepLabV3+ segmenter: LC-SAE's outer-loss network and the held-out scorer")
class SegmenterMethod(TrainingMethod):
    data_roles = ("data",)
    path_keys = ("val",)
    sample_columns = 3  # image, label, prediction
    inference_kind = SEGMENTER
    config_class = SegmenterTrainConfig

    @classmethod
    def make_dataset(cls, cfg: SegmenterTrainConfig, role: str, store_path: str) -> Dataset:
        """One store, or a weighted mix of stores when ``store_path`` is a mix file (``simreal.data.mix``)."""
        from simreal.data.dataset import FrameDataset, crop_hw
        from simreal.data.mix import is_mix_file, load_mix_dataset

        def store_dataset(path: str) -> Dataset:
            return FrameDataset(path, crop=crop_hw(cfg.crop), random_crop=True, hflip=cfg.hflip, normalize="tanh")

        if is_mix_file(store_path):
            return load_mix_dataset(store_path, store_dataset)
        return store_dataset(store_path)

    def __init__(self, cfg: SegmenterTrainConfig, ctx: TrainContext, datasets: Mapping[str, Dataset]) -> None:
        super().__init__(cfg, ctx, datasets)
        self.class_set = datasets["data"].class_set
        self.ignore_index = int(self.class_set.ignore_index)
        self.num_classes = max(self.class_set.ids) + 1
        model_cfg = cfg.model
        self.net: SegmenterNet = build_segmenter(
            model_cfg.architecture,
            self.num_classes,
            encoder_weights=model_cfg.encoder_weights,
            encoder_name=model_cfg.encoder_name,
            encoder_depth=model_cfg.encoder_depth,
            decoder_channels=model_cfg.decoder_channels,
            output_stride=model_cfg.output_stride,
        )
        self.train_net = ctx.prepare(self.net)
        encoder_params = list(self.net.encoder.parameters())
        encoder_ids = {id(p) for p in encoder_params}
        head_params = [p for p in self.net.parameters() if id(p) not in encoder_ids]
        optim = cfg.optim
        self.optimizer = torch.optim.SGD(
            [{"params": encoder_params, "lr": optim.lr * optim.encoder_lr_mult}, {"params": head_params}],
            lr=optim.lr,
            momentum=optim.momentum,
            weight_decay=optim.weight_decay,
        )
        self.schedule = LRSchedule(self.optimizer, poly_decay(cfg.steps, optim.poly_power))

    def phases(self) -> Sequence[Phase]:
        return [Phase("seg", networks=(self.net,), optimizer=self.optimizer, schedule=self.schedule)]

    def compute_losses(self, phase: str, batch: Batch, step: int) -> PhaseLosses:
        self.train_net.train()
        images = self.ctx.images_to_device(batch["data"]["image"])
        labels = batch["data"]["label"]
        with self.ctx.autocast():
            logits = self.train_net(images)
        loss = F.cross_entropy(logits.float(), labels, ignore_index=self.ignore_index)
        return PhaseLosses({"ce": loss}, logs={"lr": self.optimizer.param_groups[1]["lr"]})

    @classmethod
    def build_inference(cls, saved: Mapping, device: torch.device) -> SegmenterModel:
        state = saved["method"]
        class_set = LabelTable.from_dict(state["class_set"]) if "class_set" in state else None
        net = segmenter_from_state(state).to(device).eval().requires_grad_(False)
        return SegmenterModel(str(saved["method_name"]), net, class_set, device)

    def state_dict(self) -> dict:
        return {
            "model_spec": self.net.spec.to_dict(),
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "class_set": self.class_set.to_attrs(),
            "input_range": "tanh",
        }

    def load_state_dict(self, state: Mapping) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    @torch.no_grad()
    def sample_images(self, batch: Batch) -> list[tuple[str, np.ndarray]]:
        images = batch["data"]["image"][:SAMPLES_SHOWN]
        labels = batch["data"]["label"][:SAMPLES_SHOWN].cpu().numpy()
        self.net.eval()  # eval mode: no BatchNorm statistics update, no dropout RNG use
        try:
            predictions = self.net(self.ctx.images_to_device(images)).argmax(1).cpu().numpy()
        finally:
            self.net.train()
        rgb = tensor_to_uint8(images)
        samples = []
        for i in range(len(rgb)):
            samples.append((f"image {i}", rgb[i]))
            samples.append((f"label {i}", self.class_set.colorize(labels[i].astype(np.uint8))))
            samples.append((f"prediction {i}", self.class_set.colorize(predictions[i].astype(np.uint8))))
        return samples

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        if not self.cfg.val:
            return {}
        from simreal.metrics.consistency import evaluate_on_store

        # the one store evaluator of score and bench: evaluable classes after the store's eval_merge
        scores = evaluate_on_store(
            self.net,
            self.cfg.val,
            self.num_classes,
            batch_size=self.cfg.eval_batch_size,
            device=self.ctx.device,
        )
        self.net.train()
        per_class = {f"iou/{name}": _nan_if_none(iou) for name, iou in scores.pop("per_class_iou").items()}
        return {key: _nan_if_none(value) for key, value in scores.items()} | per_class


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)
