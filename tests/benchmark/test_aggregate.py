"""The benchmark's evaluation and aggregation path against hand-computed confusion matrices and statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from simreal.benchmark.aggregate import mean_std, summarize
from simreal.benchmark.definition import Mix
from simreal.data.store import FrameStore
from simreal.errors import ScoringError
from simreal.metrics.consistency import evaluate_on_store
from simreal.metrics.segmentation import merge_table

NUM_CLASSES = 16


class RedChannelNet(nn.Module):
    """Predicts class ``red // 40`` at every pixel: the store's red channel spells out the prediction."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        red = torch.round((images[:, 0] + 1) * 127.5).long()
        return nn.functional.one_hot(red // 40, NUM_CLASSES).permute(0, 3, 1, 2).float()


def test_scores_equal_a_hand_computed_confusion_matrix(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, (3, 6, 10)).astype(np.uint8)
    target[:, 0, :3] = 255  # ignore
    target[0, 5, :] = 9  # a class the store does not score: its pixels drop out
    prediction = rng.integers(0, 5, (3, 6, 10)).astype(np.uint8)
    rgb = np.zeros((3, 6, 10, 3), np.uint8)
    rgb[..., 0] = prediction * 40
    store = FrameStore.create(
        tmp_path / "eval", height=6, width=10, attrs={"evaluable_classes": [0, 1, 2], "eval_merge": {"3": 2}}
    )
    store.append(rgb, target, [{} for _ in range(3)])

    scores = evaluate_on_store(RedChannelNet(), tmp_path / "eval", NUM_CLASSES, batch_size=2)

    merged_pred = np.where(prediction == 3, 2, prediction)  # eval_merge applies to predictions ...
    merged_target = np.where(target == 3, 2, target)  # ... and to targets
    keep = np.isin(merged_target, [0, 1, 2])
    t, p = merged_target[keep], merged_pred[keep]
    expected_iou = {}
    for name, c in (("road", 0), ("sidewalk", 1), ("building", 2)):
        intersection = np.sum((t == c) & (p == c))
        expected_iou[name] = intersection / (np.sum(t == c) + np.sum(p == c) - intersection)
    assert scores["per_class_iou"] == pytest.approx(expected_iou)
    assert scores["miou"] == pytest.approx(np.mean(list(expected_iou.values())))
    assert scores["pixel_acc"] == pytest.approx(np.mean(t == p))  # predictions of class 4 count as misses
    assert scores["mean_acc"] == pytest.approx(np.mean([np.mean(p[t == c] == c) for c in (0, 1, 2)]))


def test_merge_table_refuses_bad_entries() -> None:
    assert merge_table({"6": 7})[6] == 7 and merge_table({})[255] == 255
    with pytest.raises(ScoringError, match="eval_merge"):
        merge_table({"255": 3})


def record(mix: str, seed: int, miou: float, road: float | None) -> dict:
    scores = {"miou": miou, "mean_acc": miou, "pixel_acc": miou, "per_class_iou": {"road": road}}
    return {"mix": mix, "seed": seed, "scores": scores}


def test_summaries_give_mean_std_over_seeds_and_paired_gains() -> None:
    mixes = [Mix("sim_only", "sim only", {"sim": 1.0}), Mix("lcsae", "LC-SAE", {"translated": 1.0})]
    records = [
        record("sim_only", 0, 0.30, 0.5),
        record("sim_only", 1, 0.40, None),  # road absent from this run's scores: left out of its mean
        record("lcsae", 1, 0.46, 0.7),
        record("lcsae", 0, 0.35, 0.9),
        record("lcsae", 2, 0.50, 0.8),  # no sim-only run with seed 2: not part of the paired gain
    ]
    sim, lcsae = summarize(mixes, records, {"sim": "sim_only", "real": "real_only"})
    assert lcsae["seeds"] == [0, 1, 2]
    assert lcsae["miou"]["mean"] == pytest.approx(np.mean([0.35, 0.46, 0.50]))
    assert lcsae["miou"]["std"] == pytest.approx(np.std([0.35, 0.46, 0.50], ddof=1))
    assert sim["per_class_iou"]["road"] == {"mean": 0.5, "std": 0.0, "n": 1}
    gain = lcsae["gains"]["sim"]
    assert gain["n"] == 2 and gain["mean"] == pytest.approx(np.mean([0.05, 0.06]))
    assert gain["std"] == pytest.approx(np.std([0.05, 0.06], ddof=1))
    assert lcsae["gains"]["real"] is None  # that baseline did not run
    assert mean_std([]) == {"mean": None, "std": None, "n": 0}
