"""Object crops from label connected components, size buckets, and the per-bucket FID with too few crops."""

from __future__ import annotations

import numpy as np
import pytest

from simreal.labels import get_class_set
from simreal.metrics.fid import fid_from_features
from simreal.metrics.objects import ObjectCropSpec, object_crops, object_fid, size_bucket

SHARED16 = get_class_set("shared16")
VEHICLE, PERSON, ROAD = SHARED16.id_of("vehicle"), SHARED16.id_of("person"), SHARED16.id_of("road")


def frame(height: int = 256, width: int = 512) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8), np.full((height, width), ROAD, np.uint8)


def test_components_become_square_crops_in_size_buckets() -> None:
    rgb, label = frame()
    label[10:50, 10:50] = VEHICLE  # 1600 px: small
    label[100:160, 100:160] = VEHICLE  # 3600 px: medium
    label[120:240, 300:400] = PERSON  # 12000 px: large, 120 x 100 box
    label[0:5, 500:505] = VEHICLE  # 25 px: below the 100 px minimum
    label[70:90, 10:30] = 255  # ignore pixels are no object
    spec = ObjectCropSpec(crop_size=32)
    crops = object_crops(rgb, label, spec.class_ids(SHARED16), spec)

    found = sorted((SHARED16.name_of(c.class_id), c.bucket, c.area) for c in crops)
    assert found == [("person", "large", 12000), ("vehicle", "medium", 3600), ("vehicle", "small", 1600)]
    for crop in crops:
        assert crop.image.shape == (32, 32, 3) and crop.image.dtype == np.uint8
        y0, x0, y1, x1 = crop.box
        assert y1 - y0 == x1 - x0  # square, so resizing keeps the object's shape
    person = next(c for c in crops if c.class_id == PERSON)
    assert person.box == (120, 290, 240, 410)  # 120-px square centred on the 120 x 100 box


def test_thresholds_scale_with_frame_area_and_crops_stay_inside() -> None:
    rgb, label = frame(128, 256)  # a quarter of 512 x 256: small < 625 px, large > 2500 px
    label[0:30, 0:30] = VEHICLE  # 900 px at the corner
    label[100:128, 200:256] = VEHICLE  # 1568 px, 28 x 56 box at the bottom edge
    spec = ObjectCropSpec(crop_size=16)
    crops = object_crops(rgb, label, [VEHICLE], spec)
    assert [c.bucket for c in crops] == ["medium", "medium"]
    for crop in crops:
        y0, x0, y1, x1 = crop.box
        assert 0 <= y0 < y1 <= 128 and 0 <= x0 < x1 <= 256
    assert crops[1].box == (72, 200, 128, 256)  # shifted up to stay in the frame
    assert size_bucket(2500, 2500, 10000) == "medium" and size_bucket(10001, 2500, 10000) == "large"


def test_only_object_classes_of_the_class_set_are_used() -> None:
    spec = ObjectCropSpec(class_names=("vehicle", "car", "person"))
    assert spec.class_ids(SHARED16) == [VEHICLE, PERSON]  # shared16 has no "car"
    cityscapes = get_class_set("cityscapes19")
    assert spec.class_ids(cityscapes) == [cityscapes.id_of("car"), cityscapes.id_of("person")]


def test_object_fid_per_bucket_needs_enough_crops() -> None:
    rng = np.random.default_rng(0)
    ours = {"small": rng.normal(size=(6, 8)), "large": rng.normal(1, 1, (2, 8))}
    reference = {"small": rng.normal(size=(5, 8)), "medium": rng.normal(size=(4, 8)), "large": rng.normal(size=(3, 8))}
    result = object_fid(ours, reference, min_crops=3)

    assert result["small"]["fid"] == pytest.approx(fid_from_features(ours["small"], reference["small"]))
    assert result["all"]["crops"] == 8 and result["all"]["reference_crops"] == 12
    expected_all = fid_from_features(
        np.concatenate([ours["small"], ours["large"]]), np.concatenate(list(reference.values()))
    )
    assert result["all"]["fid"] == pytest.approx(expected_all)
    for bucket in ("medium", "large"):  # medium: none of ours; large: 2 < 3
        assert result[bucket]["fid"] is None and "fewer than 3" in result[bucket]["note"]
    assert result["medium"]["crops"] == 0 and result["large"]["crops"] == 2
