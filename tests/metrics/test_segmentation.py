from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simreal.metrics.segmentation import MetricInputError, confusion_matrix, segmentation_scores

# target -> prediction pairs: (0,0) (1,1) (2,1) (2,2) (ignored) (1,0)
PRED = torch.tensor([[0, 1, 1], [2, 2, 0]])
TARGET = torch.tensor([[0, 1, 2], [2, 255, 1]])
EXPECTED_CM = [[1, 0, 0], [1, 1, 0], [0, 1, 1]]


def test_confusion_matrix_counts_pairs_and_skips_ignore() -> None:
    cm = confusion_matrix(PRED, TARGET, num_classes=3)
    assert cm.dtype == torch.int64
    assert cm.tolist() == EXPECTED_CM


def test_confusion_matrix_accepts_numpy_and_accumulates() -> None:
    cm = confusion_matrix(PRED.numpy(), TARGET.numpy(), 3) + confusion_matrix(PRED, TARGET, 3)
    assert cm.tolist() == [[2 * v for v in row] for row in EXPECTED_CM]


def test_scores_match_hand_computation() -> None:
    scores = segmentation_scores(torch.tensor(EXPECTED_CM))
    assert scores["pixel_acc"] == pytest.approx(3 / 5)
    assert scores["mean_acc"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    # IoU: class 0: 1/(1+2-1); class 1: 1/(2+2-1); class 2: 1/(2+1-1)
    assert scores["per_class_iou"] == pytest.approx([1 / 2, 1 / 3, 1 / 2])
    assert scores["miou"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)


def test_class_absent_everywhere_is_nan_and_not_averaged() -> None:
    scores = segmentation_scores(confusion_matrix(PRED, TARGET, num_classes=4))
    assert math.isnan(scores["per_class_iou"][3])
    assert scores["miou"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)
    assert scores["mean_acc"] == pytest.approx(2 / 3)


def test_predicted_but_absent_class_counts_as_zero_iou() -> None:
    cm = confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 0]), num_classes=2)
    scores = segmentation_scores(cm)
    assert scores["per_class_iou"] == pytest.approx([1 / 2, 0.0])
    assert scores["miou"] == pytest.approx(1 / 4)
    assert scores["mean_acc"] == pytest.approx(1 / 2)  # class 1 has no targets: no accuracy


def test_evaluable_classes_drop_other_targets_but_keep_wrong_predictions() -> None:
    scores = segmentation_scores(torch.tensor(EXPECTED_CM), classes=[0, 2])
    # rows 0 and 2 remain: [[1,0,0],[0,1,1]]; the class-2 pixel predicted as 1 is still a miss
    assert scores["pixel_acc"] == pytest.approx(2 / 3)
    assert scores["per_class_iou"] == pytest.approx([1.0, 1 / 2])
    assert scores["miou"] == pytest.approx(3 / 4)
    assert scores["mean_acc"] == pytest.approx(3 / 4)


def test_random_labels_agree_with_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, (4, 8, 8))
    target[:, 0] = 255
    pred = rng.integers(0, 5, (4, 8, 8))
    keep = target != 255
    reference = np.zeros((5, 5), np.int64)
    np.add.at(reference, (target[keep], pred[keep]), 1)
    assert confusion_matrix(pred, target, 5).numpy().tolist() == reference.tolist()


def test_bad_inputs_have_clear_errors() -> None:
    with pytest.raises(MetricInputError, match="shape"):
        confusion_matrix(torch.zeros(2, 2, dtype=torch.long), torch.zeros(3, dtype=torch.long), 3)
    with pytest.raises(MetricInputError, match="argmax"):
        confusion_matrix(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), 3)
    with pytest.raises(MetricInputError, match="outside"):
        confusion_matrix(torch.tensor([0, 7]), torch.tensor([0, 1]), 3)
    with pytest.raises(MetricInputError, match="classes"):
        segmentation_scores(torch.eye(3), classes=[5])
