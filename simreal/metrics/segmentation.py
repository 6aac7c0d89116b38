"""Semantic segmentation scores (pixel accuracy, mean accuracy, mIoU) from a confusion matrix.

The confusion matrix is accumulated over a whole dataset first and scored once, so that the scores weight every
pixel equally (averaging per-image scores would over-weight small images and classes that appear rarely).
Rows are ground truth, columns are predictions: ``cm[t, p]`` counts pixels of true class ``t`` predicted as ``p``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from simreal.errors import ScoringError


class MetricInputError(ScoringError):
    """Predictions and targets that cannot be compared (shape, dtype or class range)."""


def confusion_matrix(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    num_classes: int,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Count (target, prediction) pairs as an int64 ``(num_classes, num_classes)`` matrix.

    ``pred`` and ``target`` hold class ids of the same shape; pixels whose target is ``ignore_index`` are skipped.
    Runs on the tensors' device, so GPU evaluation needs no host copy per batch.
    """
    pred_t = torch.as_tensor(pred)
    target_t = torch.as_tensor(target, device=pred_t.device)
    if pred_t.shape != target_t.shape:
        raise MetricInputError(f"prediction shape {tuple(pred_t.shape)} != target shape {tuple(target_t.shape)}")
    if pred_t.is_floating_point() or target_t.is_floating_point():
        raise MetricInputError("confusion_matrix expects integer class ids; take argmax of the logits first")
    pred_t = pred_t.reshape(-1).long()
    target_t = target_t.reshape(-1).long()
    keep = target_t != ignore_index
    pred_t, target_t = pred_t[keep], target_t[keep]
    for name, ids in (("target", target_t), ("prediction", pred_t)):
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_classes):
            raise MetricInputError(
                f"{name} holds class ids outside [0, {num_classes}) (other than ignore_index={ignore_index}): "
                f"range [{int(ids.min())}, {int(ids.max())}]"
            )
    counts = torch.bincount(target_t * num_classes + pred_t, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def segmentation_scores(
    cm: torch.Tensor | np.ndarray, classes: Sequence[int] | None = None
) -> dict[str, float | list[float]]:
    """Pixel accuracy, mean class accuracy, mIoU and per-class IoU from a confusion matrix.

    ``classes`` restricts the scores to those class ids (a dataset's evaluable classes): pixels whose *target* is
    another class are dropped like ignore pixels, while *predictions* of another class still count as misses.
    A class absent from both the targets and the predictions has undefined IoU/accuracy: it is NaN in
    ``per_class_iou`` and left out of the means. A class that is predicted but never present gets IoU 0 and is
    counted in mIoU (it has false positives). ``per_class_iou`` follows the order of ``classes`` (all when None).
    """
    matrix = torch.as_tensor(cm).double().cpu()
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise MetricInputError(f"confusion matrix must be square, got shape {tuple(matrix.shape)}")
    ids = torch.arange(matrix.shape[0]) if classes is None else torch.as_tensor(list(classes), dtype=torch.long)
    if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= matrix.shape[0]:
        raise MetricInputError(f"classes {list(ids.tolist())} must be non-empty ids in [0, {matrix.shape[0]})")
    matrix = matrix[ids]  # rows: evaluable targets only; columns: every prediction
    true_positive = matrix[:, ids].diagonal()
    per_target = matrix.sum(dim=1)
    per_pred = matrix[:, ids].sum(dim=0)
    union = per_target + per_pred - true_positive
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    iou = torch.where(union > 0, true_positive / union.clamp(min=1), nan)
    class_acc = torch.where(per_target > 0, true_positive / per_target.clamp(min=1), nan)
    total = matrix.sum()
    return {
        "pixel_acc": float(true_positive.sum() / total) if total > 0 else float("nan"),
        "mean_acc": _nanmean(class_acc),
        "miou": _nanmean(iou),
        "per_class_iou": iou.tolist(),
    }


def _nanmean(values: torch.Tensor) -> float:
    finite = values[~values.isnan()]
    return float(finite.mean()) if finite.numel() else float("nan")


def merge_table(eval_merge: Mapping[Any, Any], ignore_index: int = 255) -> torch.Tensor:
    """A 256-entry id -> scored-as id table from a store's ``eval_merge`` (JSON keys may be strings):
    identity except for the merged ids, e.g. CamVid scores traffic lights as signs."""
    table = torch.arange(256, dtype=torch.long)
    for source, target in eval_merge.items():
        source_id, target_id = int(source), int(target)
        if not (0 <= source_id < 256 and 0 <= target_id < 256) or source_id == ignore_index:
            raise ScoringError(f"eval_merge entry {source!r}: {target!r} is not a pair of class ids")
        table[source_id] = target_id
    return table


def named_scores(cm: torch.Tensor, classes: Sequence[int], class_set: Any) -> dict[str, Any]:
    """JSON-able scores of ``classes``: pixel_acc, mean_acc, miou and per-class IoU by class name; values that
    are undefined (a class absent from both labels and predictions) are ``None``."""
    scores = segmentation_scores(cm, classes)
    return {
        "pixel_acc": _finite_or_none(scores["pixel_acc"]),
        "mean_acc": _finite_or_none(scores["mean_acc"]),
        "miou": _finite_or_none(scores["miou"]),
        "per_class_iou": {
            class_set.name_of(c): _finite_or_none(v) for c, v in zip(classes, scores["per_class_iou"], strict=True)
        },
    }


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
