"""The LC-SAE report's outer loss, for any translator: a frozen segmenter, trained on the real domain, reads the
translated frame, and its loss against the source frame's labels keeps the labels true (report §3.2).

``ce`` is per-pixel cross-entropy (optionally class-weighted), ``dice`` one minus the mean soft Dice; labels equal
to ``ignore_index`` count for neither. Logits are resized to the labels' size when the segmenter's output is smaller.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from simreal.errors import TrainingError

OUTER_LOSSES = ("ce", "dice")


def cross_entropy_loss(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-pixel NLL of softmax(logits), (weighted) mean over labelled pixels; 0 when none is labelled."""
    total = F.cross_entropy(logits.float(), labels, weight=weight, ignore_index=ignore_index, reduction="sum")
    valid = labels != ignore_index
    # Normalise without a host sync (no `.any()`), matching F.cross_entropy's "mean" when pixels exist.
    if weight is None:
        count = valid.sum()
    else:
        count = (weight[labels.clamp(0, logits.shape[1] - 1)] * valid).sum()
    return total / count.clamp_min(1e-6)


def dice_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over classes, ignored pixels masked out of both prediction and target."""
    n_classes = logits.shape[1]
    valid = (labels != ignore_index)[:, None].float()
    probs = logits.float().softmax(dim=1) * valid
    target = F.one_hot(labels.clamp(0, n_classes - 1) * (labels != ignore_index), n_classes)
    target = target.permute(0, 3, 1, 2).float() * valid
    dims = (0, 2, 3)
    intersection = (probs * target).sum(dims)
    total = probs.sum(dims) + target.sum(dims)
    return 1.0 - ((2 * intersection + eps) / (total + eps)).mean()


class LabelConsistencyLoss:
    """``loss(segmenter_logits, source_labels)``: the outer loss of kind ``ce`` or ``dice``."""

    def __init__(self, kind: str, ignore_index: int, class_weights: Sequence[float] | None = None) -> None:
        if kind not in OUTER_LOSSES:
            raise TrainingError(f"outer_loss must be one of {', '.join(OUTER_LOSSES)}, got {kind!r}")
        if class_weights is not None and kind != "ce":
            raise TrainingError("outer_class_weights only apply to outer_loss='ce'")
        self.kind = kind
        self.ignore_index = ignore_index
        self.class_weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if tuple(logits.shape[-2:]) != tuple(labels.shape[-2:]):
            logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
        if self.kind == "dice":
            return dice_loss(logits, labels, self.ignore_index)
        weight = None
        if self.class_weights is not None:
            if self.class_weights.numel() != logits.shape[1]:
                raise TrainingError(
                    f"outer_class_weights has {self.class_weights.numel()} entries but the segmenter "
                    f"predicts {logits.shape[1]} classes"
                )
            weight = self.class_weights.to(logits.device)
        return cross_entropy_loss(logits, labels, self.ignore_index, weight)
