"""`simreal export`: the layouts read back by the readers trainers use, the manifest, resuming a killed export, and
refusals (a merged class set for cityscapes, an occupied OUT)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simreal.data.store import FrameStore
from simreal.export import ExportError, ExportJob, run_export
from simreal.labels import get_class_set, get_mapping
from simreal.sim.frames import render_labelled_frames


def labelled_store(path: Path, class_set: str, frames: int = 4) -> Path:
    rgb, label = render_labelled_frames(frames, width=64, height=32, class_set=class_set)
    store = FrameStore.create(path, height=32, width=64, class_set=class_set)
    store.append(rgb, label, [{"town": "Town10HD", "frame": 3 * i, "trust": {"miou": 0.5}} for i in range(frames)])
    return path


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def test_cityscapes_layout_reads_back_with_torchvision(tmp_path: Path) -> None:
    torchvision_datasets = pytest.importorskip("torchvision.datasets")
    store = labelled_store(tmp_path / "cs19.zarr", "cityscapes19")
    result = run_export(ExportJob(str(store), tmp_path / "cityscapes", "cityscapes", split="val"))
    assert result.frames == result.written == 4
    dataset = torchvision_datasets.Cityscapes(str(tmp_path / "cityscapes"), split="val", mode="fine",
                                              target_type="semantic")  # fmt: skip
    assert len(dataset) == 4
    frames = FrameStore.open(store)
    to_train = get_mapping("cityscapes", "cityscapes19").lut  # labelId -> trainId (= the store's cityscapes19 ids)
    for item in range(4):
        image, target = dataset[item]
        index = int(Path(dataset.images[item]).name.split("_")[2])  # <city>_000000_<frame>_leftImg8bit.png
        assert np.array_equal(np.asarray(image.convert("RGB")), frames.rgb(index))
        assert np.array_equal(to_train[np.asarray(target)], frames.label(index))
    train_ids = next((tmp_path / "cityscapes" / "gtFine" / "val").rglob("*_gtFine_labelTrainIds.png"))
    assert set(np.unique(np.asarray(Image.open(train_ids)))) <= {*range(19), 255}


def test_a_store_with_merged_classes_is_refused_for_cityscapes(tmp_path: Path) -> None:
    store = labelled_store(tmp_path / "s16.zarr", "shared16", frames=1)
    with pytest.raises(ExportError, match=r"shared16 store cannot .* vehicle \(8 labelIds\).*=cityscapes19"):
        run_export(ExportJob(str(store), tmp_path / "out", "cityscapes"))
    assert not (tmp_path / "out").exists()


def test_mmseg_layout_follows_base_seg_dataset_conventions(tmp_path: Path) -> None:
    # mmsegmentation itself is not installed here (it pins mmcv builds): the directory and suffix convention its
    # BaseSegDataset reads (data_prefix img_path / seg_map_path, img_suffix, seg_map_suffix) is checked instead.
    store = labelled_store(tmp_path / "s16.zarr", "shared16", frames=2)
    out = run_export(ExportJob(str(store), tmp_path / "mmseg", "mmseg")).out
    images, labels = sorted((out / "img_dir/train").glob("*.png")), sorted((out / "ann_dir/train").glob("*.png"))
    assert [p.name for p in images] == [p.name for p in labels] == ["000000.png", "000001.png"]
    assert np.array_equal(np.asarray(Image.open(labels[1])), FrameStore.open(store).label(1))
    config: dict = {}
    exec((out / "dataset_config.py").read_text(), config)  # noqa: S102 - the file this test just wrote
    assert config["metainfo"]["classes"] == tuple(c.name for c in get_class_set("shared16").classes)
    assert config["data_prefix"] == {"img_path": "img_dir/train", "seg_map_path": "ann_dir/train"}


def test_folder_layout_and_the_manifest(tmp_path: Path) -> None:
    store = labelled_store(tmp_path / "s16.zarr", "shared16", frames=3)
    result = run_export(ExportJob(str(store), tmp_path / "folder", "folder", frames=2))
    classes = json.loads((result.out / "classes.json").read_text())
    assert classes["class_set"] == "shared16" and classes["classes"][0]["name"] == "road"
    manifest = json.loads(result.manifest.read_text())
    assert manifest["settings"]["frames"] == 2 and len(manifest["frames"]) == 2
    assert manifest["frames"][1]["source"] == {"town": "Town10HD", "frame": 3}
    assert manifest["frames"][1]["trust"] == {"miou": 0.5}
    assert manifest["origin"]["class_set"] == "shared16"
    assert (result.out / manifest["frames"][0]["files"]["label_color"]).is_file()


def test_a_killed_export_resumes_to_the_same_files(tmp_path: Path) -> None:
    store = labelled_store(tmp_path / "s16.zarr", "shared16", frames=4)
    whole = run_export(ExportJob(str(store), tmp_path / "whole", "folder")).out

    def killed_after_two(index: int) -> None:
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_export(ExportJob(str(store), tmp_path / "killed", "folder"), on_frame=killed_after_two)
    assert not (tmp_path / "killed" / "manifest.json").exists()
    resumed = run_export(ExportJob(str(store), tmp_path / "killed", "folder"))
    assert resumed.written == 2  # the two finished frames were kept
    assert digests(tmp_path / "killed") == digests(whole)


def test_an_occupied_out_is_refused_unless_overwrite(tmp_path: Path) -> None:
    store = labelled_store(tmp_path / "s16.zarr", "shared16", frames=1)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="already exists and is not this export"):
        run_export(ExportJob(str(store), tmp_path / "mine", "folder"))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    run_export(ExportJob(str(store), tmp_path / "mine", "folder", overwrite=True))
    assert not (tmp_path / "mine" / "notes.txt").exists()
