"""Label consistency: scores against hand-counted confusion matrices, ignore labels, absent classes, merges, and
the choice of scored classes from the segmenter's training store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from simreal.data.store import FrameStore
from simreal.labels import get_class_set
from simreal.metrics.consistency import (
    ConsistencyError,
    EvalProtocol,
    LabelConsistency,
    check_class_sets_match,
    eval_protocol,
    open_training_store,
    segment_images,
    segmenter_training_store,
)
from simreal.training.errors import RunDirectoryError

SHARED16 = get_class_set("shared16")
LIGHT, SIGN = SHARED16.id_of("traffic_light"), SHARED16.id_of("traffic_sign")


def hand_scores(pred: np.ndarray, target: np.ndarray, classes: list[int]) -> dict[str, object]:
    """Per-class counting written out plainly: the reference the metric code is checked against."""
    keep = np.isin(target, classes)  # ignore (255) and non-scored targets drop out
    p, t = pred[keep], target[keep]
    iou, acc = {}, {}
    for c in classes:
        tp = int(np.sum((p == c) & (t == c)))
        fp = int(np.sum((p == c) & (t != c)))
        fn = int(np.sum((p != c) & (t == c)))
        iou[c] = tp / (tp + fp + fn) if tp + fp + fn else None
        acc[c] = tp / (tp + fn) if tp + fn else None
    defined_iou = [v for v in iou.values() if v is not None]
    defined_acc = [v for v in acc.values() if v is not None]
    return {
        "pixel_acc": float(np.mean(p == t)),
        "mean_acc": float(np.mean(defined_acc)),
        "miou": float(np.mean(defined_iou)),
        "iou": iou,
    }


def test_scores_equal_hand_counts_with_ignore_and_absent_classes() -> None:
    rng = np.random.default_rng(0)
    target = rng.choice([0, 1, 2, 255], size=(3, 10, 12), p=[0.4, 0.3, 0.2, 0.1]).astype(np.uint8)
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 4, target.shape)).astype(np.uint8)
    pred[pred == 255] = 3
    pred[0, 0, :5] = 4  # class 4: predicted, never in the labels -> IoU 0, counted in mIoU
    classes = [0, 1, 2, 4, 5]  # class 5: in neither -> undefined, left out of the means
    consistency = LabelConsistency(16, EvalProtocol(tuple(classes)))
    for i in range(len(target)):  # accumulating batch by batch must equal one count over everything
        consistency.update(torch.from_numpy(pred[i : i + 1]), target[i : i + 1])
    scores = consistency.scores(SHARED16)
    expected = hand_scores(pred, target, classes)

    assert scores["pixel_acc"] == pytest.approx(expected["pixel_acc"])
    assert scores["mean_acc"] == pytest.approx(expected["mean_acc"])
    assert scores["miou"] == pytest.approx(expected["miou"])
    for c in classes:
        value = scores["per_class_iou"][SHARED16.name_of(c)]
        assert value == (pytest.approx(expected["iou"][c]) if expected["iou"][c] is not None else None)
    assert scores["per_class_iou"][SHARED16.name_of(4)] == 0.0
    assert scores["per_class_iou"][SHARED16.name_of(5)] is None
    assert scores["pixels_scored"] == int(np.isin(target, classes).sum())


def test_eval_merge_scores_predicted_traffic_light_as_sign() -> None:
    target = np.array([[SIGN, SIGN, SIGN, 0]], np.uint8)
    pred = np.array([[LIGHT, LIGHT, SIGN, 0]], np.uint8)
    classes = (0, SIGN)  # CamVid-like: no separate traffic light class
    merged = LabelConsistency(16, EvalProtocol(classes, {LIGHT: SIGN}))
    merged.update(torch.from_numpy(pred), target)
    plain = LabelConsistency(16, EvalProtocol(classes))
    plain.update(torch.from_numpy(pred), target)
    assert merged.scores(SHARED16)["pixel_acc"] == 1.0
    assert merged.scores(SHARED16)["merged"] == {"traffic_light": "traffic_sign"}
    assert plain.scores(SHARED16)["per_class_iou"]["traffic_sign"] == pytest.approx(1 / 3)


def make_store(path: Path, evaluable: list[int] | None = None, merge: dict[str, int] | None = None) -> FrameStore:
    attrs = {}
    if evaluable is not None:
        attrs["evaluable_classes"] = evaluable
    if merge is not None:
        attrs["eval_merge"] = merge
    store = FrameStore.create(path, height=4, width=4, attrs=attrs)
    store.append(np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 4, 4), np.uint8), [{}, {}])
    return store


def test_protocol_uses_classes_both_label_sources_define(tmp_path: Path) -> None:
    camvid_like = [c for c in range(16) if c not in (LIGHT, 3, 9, 13, 14, 15)]
    scored = make_store(tmp_path / "camvid", camvid_like, {str(LIGHT): SIGN})
    training = make_store(tmp_path / "cityscapes", [c for c in range(16) if c != 15])

    protocol = eval_protocol(scored, training)
    assert protocol.classes == tuple(camvid_like)
    assert protocol.merge == {LIGHT: SIGN}
    assert "cityscapes" in protocol.description

    own = eval_protocol(scored, None)
    assert own.classes == tuple(camvid_like) and own.merge == {LIGHT: SIGN}
    assert "unknown" in own.description

    disjoint = make_store(tmp_path / "disjoint", [LIGHT])
    with pytest.raises(ConsistencyError, match="share no evaluable class"):
        eval_protocol(disjoint, make_store(tmp_path / "other", [0, 1]))


def test_training_store_comes_from_the_run_config(tmp_path: Path) -> None:
    training = make_store(tmp_path / "train_store")
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    assert segmenter_training_store(run) is None and open_training_store(run) is None
    (run / "config.yaml").write_text(yaml.safe_dump({"data": str(training.path)}))
    assert segmenter_training_store(run / "checkpoint.pt") == training.path
    assert open_training_store(run).path == training.path
    (run / "config.yaml").write_text(yaml.safe_dump({"data": str(tmp_path / "gone")}))
    assert open_training_store(run) is None
    with pytest.raises(RunDirectoryError, match="no segmenter checkpoint"):
        segmenter_training_store(tmp_path / "nothing")


def test_store_with_another_class_set_is_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    check_class_sets_match(SHARED16, store)
    with pytest.raises(ConsistencyError, match="cityscapes19"):
        check_class_sets_match(get_class_set("cityscapes19"), store)
    with pytest.raises(ConsistencyError, match="outside"):
        LabelConsistency(8, EvalProtocol((0, 12)))


def test_segmenter_input_is_rgb_in_minus_one_to_one() -> None:
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen["range"] = (float(x.min()), float(x.max()))
            seen["shape"] = tuple(x.shape)
            return torch.stack([x[:, 0], -x[:, 0]], 1)  # class 0 where red is high

    rgb = np.zeros((2, 3, 5, 3), np.uint8)
    rgb[0, :, :, 0] = 255
    prediction = segment_images(Probe(), rgb)
    assert seen["range"] == (-1.0, 1.0) and seen["shape"] == (2, 3, 3, 5)
    assert prediction[0].eq(0).all() and prediction[1].eq(1).all()
