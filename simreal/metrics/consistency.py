"""Label consistency: how well a segmenter's predictions on a store's images agree with its labels.

The one segmenter evaluator: ``score`` (translated frames against the labels they were made from), ``bench`` (a
retrained segmenter on the evaluation store) and training-time validation all accumulate ``LabelConsistency``.

Protocol (LC-SAE report, section 4.3): a DeepLabV3+ ResNet50 trained on real data segments every (translated)
image and is scored against the labels the images were made from. It is scored only on classes that both the
segmenter's training labels and the scored store's labels define (a class one of them lacks can only produce false
positives or never be predicted), and each store's ``eval_merge`` applies (e.g. CamVid scores predicted traffic
lights as signs, because its SignSymbol class holds both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from simreal.data.dataset import FrameDataset
from simreal.data.images import uint8_to_tensor
from simreal.data.store import FrameStore, StoreError
from simreal.errors import ScoringError
from simreal.labels import LabelTable
from simreal.metrics.segmentation import confusion_matrix, merge_table, named_scores, segmentation_scores
from simreal.training.checkpoint import checkpoint_file
from simreal.training.checkpoint import load as load_checkpoint


class ConsistencyError(ScoringError):
    """A segmenter and a store that cannot be scored against each other."""


@dataclass(frozen=True)
class EvalProtocol:
    """Which classes are scored and which predicted ids count as another class."""

    classes: tuple[int, ...]
    merge: dict[int, int] = field(default_factory=dict)
    description: str = ""


def store_eval_merge(store: FrameStore) -> dict[int, int]:
    """The store's ``eval_merge`` attribute with integer keys (JSON keeps them as strings)."""
    return {int(k): int(v) for k, v in (store.attrs.get("eval_merge") or {}).items()}


def segmenter_training_store(segmenter: str | Path) -> Path | None:
    """The ``data`` store recorded in the run's ``config.yaml``, when the run directory has one."""
    config_file = checkpoint_file(segmenter, "segmenter").parent / "config.yaml"
    if not config_file.is_file():
        return None
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    data = config.get("data") if isinstance(config, dict) else None
    return Path(str(data)) if data else None


def segmenter_class_set(segmenter: str | Path) -> LabelTable | None:
    """The class set a segmenter checkpoint was trained on (``None`` for checkpoints that do not record it)."""
    saved = load_checkpoint(checkpoint_file(segmenter, "segmenter"), mmap=True)
    attrs = saved.get("method", saved).get("class_set")
    return LabelTable.from_dict(attrs) if attrs else None


def check_class_sets_match(segmenter_set: LabelTable | None, store: FrameStore) -> None:
    """Refuse a store whose label ids mean other classes than the segmenter's outputs."""
    if segmenter_set is None:
        return
    ours = [(c.id, c.name) for c in store.class_set.classes]
    theirs = [(c.id, c.name) for c in segmenter_set.classes]
    if ours != theirs:
        raise ConsistencyError(
            f"{store.path} uses class set {store.class_set.name!r} but the segmenter was trained on "
            f"{segmenter_set.name!r}; score stores labelled with the segmenter's class set"
        )


def eval_protocol(scored: FrameStore, training: FrameStore | None) -> EvalProtocol:
    """Classes both label sources define, with both stores' merges (the scored store's win on conflicts)."""
    scored_classes = scored.evaluable_classes
    if training is None:
        return EvalProtocol(
            tuple(scored_classes),
            store_eval_merge(scored),
            f"classes of the scored store {scored.path.name} (segmenter's training store unknown)",
        )
    trained = set(training.evaluable_classes)
    classes = tuple(c for c in scored_classes if c in trained)
    if not classes:
        raise ConsistencyError(
            f"{scored.path} and the segmenter's training store {training.path} share no evaluable class"
        )
    merge = {**store_eval_merge(training), **store_eval_merge(scored)}
    return EvalProtocol(
        classes,
        merge,
        f"classes defined by both the segmenter's training store {training.path.name} and {scored.path.name}",
    )


def open_training_store(segmenter: str | Path) -> FrameStore | None:
    """The segmenter's training store, when its run records one that still exists and opens."""
    path = segmenter_training_store(segmenter)
    if path is None or not path.exists():
        return None
    try:
        return FrameStore.open(path)
    except StoreError:
        return None


@torch.no_grad()
def segment_images(net: torch.nn.Module, rgb: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """Class ids (N, H, W) for uint8 (N, H, W, 3) images; the segmenter takes RGB in [-1, 1]."""
    return net(uint8_to_tensor(rgb, device)).argmax(1)


def frame_consistency(
    prediction: torch.Tensor, label: np.ndarray, classes: Sequence[int], num_classes: int, ignore_index: int = 255
) -> np.ndarray:
    """(N, 2) float32: each frame's pixel accuracy and mIoU of ``prediction`` against ``label`` over ``classes``
    (NaN where the frame has none of them)."""
    scores = np.full((len(label), 2), np.nan, np.float32)
    for i in range(len(label)):
        cm = confusion_matrix(prediction[i], torch.as_tensor(label[i]).to(prediction.device), num_classes,
                              ignore_index)  # fmt: skip
        if int(cm[list(classes)].sum()) > 0:
            result = segmentation_scores(cm, classes)
            scores[i] = (result["pixel_acc"], result["miou"])
    return scores


class LabelConsistency:
    """Accumulates one confusion matrix over a whole store (after merges) and scores it once."""

    def __init__(
        self,
        num_classes: int,
        protocol: EvalProtocol,
        ignore_index: int = 255,
        device: str | torch.device = "cpu",
    ) -> None:
        if any(not 0 <= c < num_classes for c in protocol.classes):
            raise ConsistencyError(f"scored classes {protocol.classes} outside the segmenter's {num_classes} outputs")
        self.num_classes = num_classes
        self.protocol = protocol
        self.ignore_index = ignore_index
        self.table = merge_table(protocol.merge, ignore_index).to(device)
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: torch.Tensor, target: torch.Tensor | np.ndarray) -> None:
        target = torch.as_tensor(target, device=self.table.device).long()
        self.matrix += confusion_matrix(
            self.table[prediction.long()], self.table[target], self.num_classes, self.ignore_index
        )

    def scores(self, class_set: LabelTable) -> dict[str, Any]:
        """JSON-able scores; undefined values (a class absent from labels and predictions) are ``None``."""
        return {
            **named_scores(self.matrix, self.protocol.classes, class_set),
            "classes": [class_set.name_of(c) for c in self.protocol.classes],
            "merged": {class_set.name_of(a): class_set.name_of(b) for a, b in self.protocol.merge.items()},
            "protocol": self.protocol.description,
            "pixels_scored": int(self.matrix[list(self.protocol.classes)].sum()),
        }


@torch.no_grad()
def evaluate_on_store(
    net: torch.nn.Module,
    store_path: str | Path,
    num_classes: int,
    *,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """mIoU, mean class accuracy, pixel accuracy and per-class IoU of ``net`` on a labelled store.

    Scored on the store's evaluable classes after its ``eval_merge``, from one confusion matrix over the whole store.
    """
    store = FrameStore.open(store_path)
    protocol = EvalProtocol(tuple(store.evaluable_classes), store_eval_merge(store))
    consistency = LabelConsistency(num_classes, protocol, int(store.class_set.ignore_index), device)
    net.eval()
    for batch in DataLoader(FrameDataset(store_path, crop=None, hflip=False, normalize="tanh"), batch_size=batch_size):
        consistency.update(net(batch["image"].to(device)).argmax(1), batch["label"])
    return named_scores(consistency.matrix, protocol.classes, store.class_set)
