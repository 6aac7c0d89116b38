from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from layouts import write_cityscapes, write_kitti

from pipelines.import_dataset import ImportJob, run_import
from simreal.data.convert import FrameSpec
from simreal.data.store import FrameStore, StoreError
from simreal.data.verify import verify_store
from simreal.importers.errors import ImportFailure, SizeMismatch, UnpairedFiles
from simreal.labels import UnknownLabelIdError, get_mapping

pytestmark = pytest.mark.usefixtures("ray_local")


def job(root: Path, out: Path, **kw) -> ImportJob:
    base = dict(
        format="cityscapes",
        root=root,
        split="train",
        scheme="cityscapes",
        out=out,
        spec=FrameSpec(size=(32, 16)),
        shard_size=2,
    )
    base.update(kw)
    return ImportJob(**base)


def test_cityscapes_import_remaps_resizes_and_keeps_order(tmp_path: Path) -> None:
    written = write_cityscapes(tmp_path / "cs", split="train", n=5, size=(64, 32))
    result = run_import(job(tmp_path / "cs", tmp_path / "cs.zarr"))
    assert result.frames == 5
    store = FrameStore.open(tmp_path / "cs.zarr")
    assert verify_store(tmp_path / "cs.zarr").ok
    lut = get_mapping("cityscapes").lut
    for i, sample in enumerate(written):
        expected = cv2.resize(lut[sample.ids], (32, 16), interpolation=cv2.INTER_NEAREST_EXACT)
        np.testing.assert_array_equal(store.label(i), expected)
        assert store.provenance(i)["key"] == sample.key
        assert store.provenance(i)["split"] == "train"
    assert store.rgb(0).shape == (16, 32, 3)
    assert not (tmp_path / "cs.zarr.partial").exists()


def test_source_labels_kept_on_request(tmp_path: Path) -> None:
    written = write_kitti(tmp_path / "kitti", n=2, size=(32, 16))
    run_import(
        job(
            tmp_path / "kitti",
            tmp_path / "k.zarr",
            format="kitti",
            scheme="kitti",
            spec=FrameSpec(size=(32, 16), keep_source_label=True),
        )
    )
    store = FrameStore.open(tmp_path / "k.zarr")
    np.testing.assert_array_equal(store[1].source_label, written[1].ids)


def test_unknown_ids_fail_and_leave_nothing_behind(tmp_path: Path) -> None:
    written = write_cityscapes(tmp_path / "cs", n=3, size=(32, 16))
    ids = written[1].ids.copy()
    ids[0, :4] = 200
    cv2.imwrite(str(written[1].label_path), ids)
    with pytest.raises(UnknownLabelIdError, match=r"200 \(4 px\)"):
        run_import(job(tmp_path / "cs", tmp_path / "cs.zarr"))
    assert not (tmp_path / "cs.zarr").exists() and not (tmp_path / "cs.zarr.partial").exists()
    result = run_import(job(tmp_path / "cs", tmp_path / "cs.zarr", spec=FrameSpec(size=(32, 16), unknown="ignore")))
    assert result.unknown_pixels == {200: 4}
    assert FrameStore.open(tmp_path / "cs.zarr").attrs["unknown_ids_ignored"] == {"200": 4}


def test_bad_inputs_give_clear_errors_and_no_store(tmp_path: Path) -> None:
    written = write_cityscapes(tmp_path / "cs", n=3, size=(32, 16))
    written[2].label_path.unlink()
    with pytest.raises(UnpairedFiles):
        run_import(job(tmp_path / "cs", tmp_path / "a.zarr"))
    assert not (tmp_path / "a.zarr").exists()

    written = write_cityscapes(tmp_path / "cs2", n=3, size=(32, 16))
    cv2.imwrite(str(written[0].label_path), np.zeros((8, 8), np.uint8))
    with pytest.raises(SizeMismatch, match="32x16"):
        run_import(job(tmp_path / "cs2", tmp_path / "b.zarr"))
    assert not (tmp_path / "b.zarr").exists() and not (tmp_path / "b.zarr.partial").exists()

    written = write_cityscapes(tmp_path / "cs3", n=3, size=(32, 16))
    written[1].image_path.write_bytes(b"not a png")
    with pytest.raises(ImportFailure, match=written[1].image_path.name):
        run_import(job(tmp_path / "cs3", tmp_path / "c.zarr"))
    assert not (tmp_path / "c.zarr").exists()

    with pytest.raises(ImportFailure):
        run_import(job(tmp_path / "nowhere", tmp_path / "d.zarr"))


def test_existing_store_is_not_replaced_without_overwrite(tmp_path: Path) -> None:
    write_cityscapes(tmp_path / "cs", n=2, size=(32, 16))
    run_import(job(tmp_path / "cs", tmp_path / "cs.zarr"))
    with pytest.raises(StoreError, match="already exists"):
        run_import(job(tmp_path / "cs", tmp_path / "cs.zarr"))
    run_import(job(tmp_path / "cs", tmp_path / "cs.zarr", overwrite=True))
    assert len(FrameStore.open(tmp_path / "cs.zarr")) == 2
