"""Object crops from label connected components, size buckets, and the per-bucket FID with too few crops."""

from __future__ import annotations

import numpy as np
import pytest

from simreal.labels import get_class_set
from simreal.metrics.fid import fid_from_features, kernel_inception_distance
from simreal.metrics.objects import FID_MIN_CROPS, ObjectCropSpec, object_crops, object_scores, size_bucket

SHARED16 = get_class_set("shared16")
VEHICLE, PERSON, ROAD = SHARED16.id_of("vehicle"), SHARED16.id_of("person"), SHARED16.id_of("road")


def frame(height: int = 256, width: int = 512) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8), np.full((height, width), ROAD, np.uint8)


def test_components_become_crops_with_context_in_size_buckets() -> None:
    rgb, label = frame()
    label[10:50, 10:50] = VEHICLE  # 1600 px: small
    label[100:160, 100:160] = VEHICLE  # 3600 px: medium
    label[120:240, 300:400] = PERSON  # 12000 px: large, 120 x 100 box
    label[0:20, 480:500] = VEHICLE  # 400 px, but a 20-px box: below the absolute 24-px minimum side
    label[70:90, 10:30] = 255  # ignore pixels are no object
    spec = ObjectCropSpec(crop_size=32)
    crops = object_crops(rgb, label, spec.class_ids(SHARED16), spec)

    found = sorted((SHARED16.name_of(c.class_id), c.bucket, c.area) for c in crops)
    assert found == [("person", "large", 12000), ("vehicle", "medium", 3600), ("vehicle", "small", 1600)]
    for crop in crops:
        assert crop.image.shape == (32, 32, 3) and crop.image.dtype == np.uint8
    person = next(c for c in crops if c.class_id == PERSON)
    assert person.box == (108, 288, 252, 412)  # 12 px (10% of the long side) of context on every side


def test_crops_keep_their_aspect_ratio_by_padding() -> None:
    rgb = np.full((256, 512, 3), 200, np.uint8)
    label = np.full((256, 512), ROAD, np.uint8)
    label[100:132, 0:512] = VEHICLE  # a full-width band: 512 x 32, wider than the frame is tall
    spec = ObjectCropSpec(crop_size=64, context=0.0)
    (crop,) = object_crops(rgb, label, [VEHICLE], spec)
    assert crop.box == (100, 0, 132, 512)  # the box itself, not a square squeezed into the frame
    # 512 x 32 centred on a 512 x 512 black square -> 64 x 4 rows of image in the middle, black above and below
    rows_with_image = np.flatnonzero(crop.image.mean(axis=(1, 2)) > 100)
    assert 3 <= len(rows_with_image) <= 5 and abs(rows_with_image.mean() - 31.5) <= 1
    assert crop.image[:25].max() == 0 and crop.image[-25:].max() == 0


def test_small_objects_are_dropped_at_any_frame_size() -> None:
    rgb, label = frame(128, 256)  # a quarter of 512 x 256: small < 625 px, large > 2500 px
    label[0:30, 0:30] = VEHICLE  # 900 px at the corner, 30-px side: kept
    label[100:128, 200:256] = VEHICLE  # 1568 px, 28 x 56 box at the bottom edge: kept
    label[50:70, 100:120] = VEHICLE  # 20 x 20: dropped, whatever the frame area
    spec = ObjectCropSpec(crop_size=16)
    crops = object_crops(rgb, label, [VEHICLE], spec)
    assert [c.bucket for c in crops] == ["medium", "medium"]
    for crop in crops:
        y0, x0, y1, x1 = crop.box
        assert 0 <= y0 < y1 <= 128 and 0 <= x0 < x1 <= 256
    assert crops[1].box == (94, 194, 128, 256)  # context clipped at the frame's edges
    assert size_bucket(2500, 2500, 10000) == "medium" and size_bucket(10001, 2500, 10000) == "large"


def test_only_object_classes_of_the_class_set_are_used() -> None:
    spec = ObjectCropSpec(class_names=("vehicle", "car", "person"))
    assert spec.class_ids(SHARED16) == [VEHICLE, PERSON]  # shared16 has no "car"
    cityscapes = get_class_set("cityscapes19")
    assert spec.class_ids(cityscapes) == [cityscapes.id_of("car"), cityscapes.id_of("person")]


def test_object_scores_give_kid_from_few_crops_and_fid_only_from_many() -> None:
    rng = np.random.default_rng(0)
    ours = {"small": rng.normal(size=(6, 8)), "large": rng.normal(1, 1, (2, 8))}
    reference = {"small": rng.normal(size=(5, 8)), "medium": rng.normal(size=(4, 8)), "large": rng.normal(size=(3, 8))}
    result = object_scores(ours, reference, min_crops=3, kid_subsets=4)

    mean, std, size = kernel_inception_distance(ours["small"], reference["small"], num_subsets=4)
    assert result["small"]["kid"] == {"mean": pytest.approx(mean), "std": pytest.approx(std), "subset_size": 5}
    assert result["small"]["fid"] is None and f"fewer than {FID_MIN_CROPS}" in result["small"]["note"]
    assert result["all"]["crops"] == 8 and result["all"]["reference_crops"] == 12
    for bucket in ("medium", "large"):  # medium: none of ours; large: 2 < 3
        assert result[bucket]["kid"] is None and "KID not computed: fewer than 3" in result[bucket]["note"]
    assert result["medium"]["crops"] == 0 and result["large"]["crops"] == 2


def test_object_fid_from_enough_crops() -> None:
    rng = np.random.default_rng(1)
    ours = {"large": rng.normal(size=(FID_MIN_CROPS, 4))}
    reference = {"large": rng.normal(0.5, 1, size=(FID_MIN_CROPS + 10, 4))}
    result = object_scores(ours, reference, min_crops=50, kid_subsets=2)
    assert result["large"]["fid"] == pytest.approx(fid_from_features(ours["large"], reference["large"]))
    assert "note" not in result["large"] and result["large"]["kid"]["mean"] > 0
