"""Scoring a trained segmenter on the benchmark's evaluation store.

Scores are taken on the store's evaluable classes (``FrameStore.evaluable_classes``) after its ``eval_merge``
(``{id: scored-as id}``, applied to predictions and targets alike, e.g. CamVid scores traffic lights as signs),
from one confusion matrix over the whole store: mIoU, mean class accuracy, pixel accuracy, per-class IoU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from simreal.metrics.segmentation import confusion_matrix, merge_table, named_scores


@torch.no_grad()
def confusion_on_store(
    net: nn.Module, store_path: str | Path, num_classes: int, *, batch_size: int = 8, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The ``(num_classes, num_classes)`` confusion matrix of ``net`` (taking [-1, 1] RGB) over a whole store."""
    from simreal.data.dataset import FrameDataset
    from simreal.data.store import FrameStore

    store = FrameStore.open(store_path)
    ignore = int(store.class_set.ignore_index)
    lut = merge_table(store.attrs.get("eval_merge") or {}, ignore).to(device)
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
    return named_scores(cm, store.evaluable_classes, store.class_set)
