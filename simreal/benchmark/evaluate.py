"""Scoring a trained segmenter on the benchmark's evaluation store.

Scores are taken on the store's evaluable classes (``FrameStore.evaluable_classes``) after its ``eval_merge``
(``{id: scored-as id}``, applied to predictions and targets alike, e.g. CamVid scores traffic lights as signs),
from one confusion matrix over the whole store: mIoU, mean class accuracy, pixel accuracy, per-class IoU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from simreal.labels import LabelTable
from simreal.metrics.segmentation import confusion_matrix, segmentation_scores


def merge_lut(eval_merge: Mapping[Any, Any], ignore_index: int = 255) -> torch.Tensor:
    """A 256-entry id -> scored-as id table: identity except for the merged ids (JSON keys may be strings)."""
    lut = torch.arange(256, dtype=torch.long)
    for source, target in eval_merge.items():
        source_id, target_id = int(source), int(target)
        if not (0 <= source_id < 256 and 0 <= target_id < 256) or source_id == ignore_index:
            raise ValueError(f"eval_merge entry {source!r}: {target!r} is not a pair of class ids")
        lut[source_id] = target_id
    return lut


def scores_from_confusion(
    cm: torch.Tensor, classes: Sequence[int], class_set: LabelTable
) -> dict[str, float | dict[str, float | None] | None]:
    """Headline scores and per-class IoU (by class name; None where a class is absent) of a confusion matrix."""
    scores = segmentation_scores(cm, classes)
    per_class = {
        class_set.name_of(class_id): _finite_or_none(iou)
        for class_id, iou in zip(classes, scores["per_class_iou"], strict=True)
    }
    return {
        "miou": _finite_or_none(scores["miou"]),
        "mean_acc": _finite_or_none(scores["mean_acc"]),
        "pixel_acc": _finite_or_none(scores["pixel_acc"]),
        "per_class_iou": per_class,
    }


@torch.no_grad()
def confusion_on_store(
    net: nn.Module, store_path: str | Path, num_classes: int, *, batch_size: int = 8, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The ``(num_classes, num_classes)`` confusion matrix of ``net`` (taking [-1, 1] RGB) over a whole store."""
    from simreal.data.dataset import FrameDataset
    from simreal.data.store import FrameStore

    store = FrameStore.open(store_path)
    ignore = int(store.class_set.ignore_index)
    lut = merge_lut(store.attrs.get("eval_merge") or {}, ignore).to(device)
    dataset = FrameDataset(store_path, crop=None, hflip=False, normalize="tanh")
    net.eval()
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        predictions = lut[net(batch["image"].to(device)).argmax(1)]
        targets = lut[batch["label"].to(device)]
        cm += confusion_matrix(predictions, targets, num_classes, ignore)
    return cm


def evaluate_on_store(
    net: nn.Module, store_path: str | Path, num_classes: int, *, batch_size: int = 8, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Scores of ``net`` on a store's evaluable classes (see the module docstring)."""
    from simreal.data.store import FrameStore

    store = FrameStore.open(store_path)
    cm = confusion_on_store(net, store_path, num_classes, batch_size=batch_size, device=device)
    return scores_from_confusion(cm, store.evaluable_classes, store.class_set)


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
