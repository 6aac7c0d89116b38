from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from layouts import (
    WrittenSample,
    write_bdd100k,
    write_camvid,
    write_carla,
    write_cityscapes,
    write_folder,
    write_gta5,
    write_kitti,
)
from PIL import Image

from simreal.importers import FORMATS, DatasetFormat, ImportFailure, SamplePair, get_format
from simreal.importers.errors import (
    AmbiguousFiles,
    EmptyDirectory,
    InvalidOption,
    LayoutError,
    NotSingleChannel,
    SizeMismatch,
    UnknownFormat,
    UnknownSplit,
    UnmappedColour,
    UnpairedFiles,
    UnreadableImage,
)

REPO = Path(__file__).resolve().parents[2]

# format name, options, split to read, writer(root) -> written samples
CASES: dict[str, tuple[str, dict, str, Callable[[Path], list[WrittenSample]]]] = {
    "cityscapes": ("cityscapes", {}, "val", lambda root: write_cityscapes(root, "val", n=4)),
    "camvid": ("camvid", {}, "train", lambda root: write_camvid(root, "train")),
    "kitti": ("kitti", {}, "train", lambda root: write_kitti(root)),
    "bdd100k": ("bdd100k", {}, "val", lambda root: write_bdd100k(root, "val")),
    "gta5": ("gta5", {}, "train", lambda root: write_gta5(root)),
    "carla": ("carla", {}, "train", lambda root: write_carla(root)),
    "folder": ("folder", {}, "train", lambda root: write_folder(root)),
}


def _read_all(fmt: DatasetFormat, root: Path, split: str) -> list[tuple[SamplePair, np.ndarray, np.ndarray]]:
    return [(pair, *fmt.load(pair)) for pair in fmt.pairs(root, split)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_returns_the_written_arrays_in_key_order(case: str, tmp_path: Path) -> None:
    name, options, split, write = CASES[case]
    written = write(tmp_path)
    fmt = get_format(name, **options)
    loaded = _read_all(fmt, tmp_path, split)
    assert [pair.key for pair, _, _ in loaded] == [sample.key for sample in written]
    assert [pair.key for pair, _, _ in loaded] == sorted(pair.key for pair, _, _ in loaded)
    for (pair, image, ids), sample in zip(loaded, written, strict=True):
        assert (pair.image, pair.label, pair.split) == (sample.image_path, sample.label_path, split)
        assert image.dtype == np.uint8 and image.shape == sample.image.shape
        assert ids.dtype == np.uint8 and ids.shape == sample.ids.shape
        np.testing.assert_array_equal(image, sample.image)
        np.testing.assert_array_equal(ids, sample.ids)
    assert fmt.pairs(tmp_path, split) == [pair for pair, _, _ in loaded]


def test_registry_lists_every_format_and_instances_follow_the_protocol() -> None:
    assert sorted(FORMATS) == sorted(CASES)
    for name in FORMATS:
        fmt = get_format(name)
        assert isinstance(fmt, DatasetFormat) and fmt.name == name


def test_unknown_format_and_option_are_named() -> None:
    with pytest.raises(UnknownFormat, match="'mapillary'.*cityscapes"):
        get_format("mapillary")
    with pytest.raises(InvalidOption, match=r"\['colour_map'\]"):
        get_format("camvid", colour_map="x.yaml")
    assert issubclass(UnknownFormat, ImportFailure) and issubclass(InvalidOption, ImportFailure)


def test_cityscapes_ignores_other_gtfine_files_and_records_city(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, "train", n=2)
    pairs = get_format("cityscapes").pairs(tmp_path, "train")
    assert [p.label.name for p in pairs] == [
        "aachen_000000_000019_gtFine_labelIds.png",
        "bochum_000001_000020_gtFine_labelIds.png",
    ]
    assert pairs[0].meta == {"city": "aachen", "sequence": "000000", "frame": "000019"}


def test_gta5_palette_labels_are_read_as_indices_not_colours(tmp_path: Path) -> None:
    written = write_gta5(tmp_path, n=1)
    assert Image.open(written[0].label_path).mode == "P"
    # OpenCV alone expands the palette to colours: the importer must not return those.
    assert cv2.imread(str(written[0].label_path), cv2.IMREAD_UNCHANGED).ndim == 3
    _, ids = get_format("gta5").load(get_format("gta5").pairs(tmp_path, "train")[0])
    np.testing.assert_array_equal(ids, written[0].ids)


def test_bdd100k_jpeg_is_returned_in_rgb_order(tmp_path: Path) -> None:
    written = write_bdd100k(tmp_path, n=1)
    red = np.zeros_like(written[0].image)
    red[..., 0] = 255
    cv2.imwrite(str(written[0].image_path), red[:, :, ::-1])
    image, _ = get_format("bdd100k").load(get_format("bdd100k").pairs(tmp_path, "train")[0])
    assert image[..., 0].min() > 240 and image[..., 1:].max() < 15


# --- CARLA -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label_mode", ["bgra", "bgr", "grey"])
def test_carla_reads_the_tag_from_the_red_channel(label_mode: str, tmp_path: Path) -> None:
    written = write_carla(tmp_path, n=2, label_mode=label_mode)
    if label_mode != "grey":
        on_disk = cv2.imread(str(written[0].label_path), cv2.IMREAD_UNCHANGED)
        # Blue and green differ from the tag everywhere, so reading the wrong channel cannot pass.
        assert (on_disk[..., 0] != written[0].ids).all() and (on_disk[..., 1] != written[0].ids).all()
    fmt = get_format("carla")
    for (pair, image, tags), sample in zip(_read_all(fmt, tmp_path, "train"), written, strict=True):
        np.testing.assert_array_equal(tags, sample.ids)
        np.testing.assert_array_equal(image, sample.image)
        assert pair.meta == {"rgb": f"rgb/{sample.key}.png", "label": f"semantic/{sample.key}.png"}


def test_carla_label_pattern_and_split_placeholder(tmp_path: Path) -> None:
    written = write_carla(tmp_path / "val", rgb_dir="cam0", label_dir="seg")
    for sample in written:
        sample.label_path.rename(sample.label_path.with_name(f"{sample.key}_seg.png"))
    fmt = get_format("carla", rgb_pattern="{split}/cam0/*.png", label_pattern="{parent}/../seg/{stem}_seg.png")
    pairs = fmt.pairs(tmp_path, "val")
    assert [p.key for p in pairs] == [s.key for s in written]
    np.testing.assert_array_equal(fmt.load(pairs[1])[1], written[1].ids)
    with pytest.raises(LayoutError, match="train/cam0"):
        fmt.pairs(tmp_path, "train")


def test_carla_regex_pairing(tmp_path: Path) -> None:
    written = write_carla(tmp_path)
    fmt = get_format("carla", rgb_regex=r"rgb/(?P<key>\d+)\.png", label_regex=r"semantic/(?P<key>\d+)\.png")
    pairs = fmt.pairs(tmp_path, "train")
    assert [p.key for p in pairs] == [s.key for s in written]
    np.testing.assert_array_equal(fmt.load(pairs[0])[1], written[0].ids)
    written[2].image_path.unlink()
    with pytest.raises(UnpairedFiles, match=f"1 labels without an image.*{written[2].key}"):
        fmt.pairs(tmp_path, "train")


def test_carla_options_are_checked_when_configured() -> None:
    with pytest.raises(InvalidOption, match="together"):
        get_format("carla", rgb_regex=r"(?P<key>.*)")
    with pytest.raises(InvalidOption, match="unknown fields.*'frame'"):
        get_format("carla", label_pattern="semantic/{frame}.png")
    with pytest.raises(InvalidOption, match="named group"):
        get_format("carla", rgb_regex=r"rgb/.*", label_regex=r"seg/.*").pairs(REPO, "train")


def test_carla_missing_labels_are_listed_before_any_load(tmp_path: Path) -> None:
    written = write_carla(tmp_path, n=3)
    written[1].label_path.unlink()
    with pytest.raises(UnpairedFiles, match=rf"1 images without a label.*rgb/{written[1].key}\.png"):
        get_format("carla").pairs(tmp_path, "train")


# --- folder ----------------------------------------------------------------------------------------


def test_folder_colour_labels_map_through_a_yaml_colour_map(tmp_path: Path) -> None:
    colours = {(128, 64, 128): 0, (244, 35, 232): 1, (0, 0, 0): 255, (70, 70, 70): 2}
    written = write_folder(tmp_path / "data", colour_map=colours)
    yaml_path = tmp_path / "colours.yaml"
    yaml_path.write_text('"128,64,128": 0\n"#f423e8": 1\n"0, 0, 0": 255\n"70,70,70": 2\n')
    fmt = get_format("folder", colour_map=yaml_path)
    for (_, _, ids), sample in zip(_read_all(fmt, tmp_path / "data", "train"), written, strict=True):
        np.testing.assert_array_equal(ids, sample.ids)
    yaml_path.write_text('"128,64,128": 0\n"#f423e8": 1\n"0,0,0": 255\n')
    fmt = get_format("folder", colour_map=yaml_path)
    with pytest.raises(UnmappedColour, match=r"1 RGB colours \(\d+ pixels\).*\(70,70,70\)"):
        fmt.load(fmt.pairs(tmp_path / "data", "train")[0])


@pytest.mark.parametrize(
    ("text", "message"),
    [("road: 0\n", "not a colour"), ('"1,2,3": 300\n', "0-255"), ('"1,2,3": 1\n"#010203": 2\n', "twice")],
)
def test_folder_rejects_malformed_colour_maps(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(InvalidOption, match=message):
        get_format("folder", colour_map=path)


def test_folder_ids_require_single_channel_labels(tmp_path: Path) -> None:
    write_folder(tmp_path, n=1, colour_map={(1, 2, 3): 0})
    fmt = get_format("folder")
    with pytest.raises(NotSingleChannel, match=r"frame_000\.png.*\(32, 64, 3\)"):
        fmt.load(fmt.pairs(tmp_path, "train")[0])


def test_folder_split_directories_and_single_split(tmp_path: Path) -> None:
    written = write_folder(tmp_path / "val", image_suffix=".jpg")
    split_fmt = get_format("folder", image_dir="{split}/images", label_dir="{split}/labels")
    assert [p.key for p in split_fmt.pairs(tmp_path, "val")] == [s.key for s in written]
    with pytest.raises(UnknownSplit, match="'val'.*known splits: train"):
        get_format("folder").pairs(tmp_path / "val", "val")


def test_folder_duplicate_stems_are_ambiguous(tmp_path: Path) -> None:
    written = write_folder(tmp_path, n=1)
    cv2.imwrite(str(written[0].image_path.with_suffix(".jpg")), written[0].image)
    with pytest.raises(AmbiguousFiles, match="frame_000"):
        get_format("folder").pairs(tmp_path, "train")


# --- splits of single-pool datasets ------------------------------------------------------------------


def test_kitti_has_one_labelled_pool_unless_split_lists_are_given(tmp_path: Path) -> None:
    written = write_kitti(tmp_path, n=4)
    assert len(get_format("kitti").pairs(tmp_path, "training")) == 4
    with pytest.raises(UnknownSplit, match="'val'.*split_lists"):
        get_format("kitti").pairs(tmp_path, "val")
    (tmp_path / "val.txt").write_text(f"# hold-out\n{written[3].key}.png\n\n{written[1].key}\n")
    fmt = get_format("kitti", split_lists={"val": "val.txt", "train": [written[0].key, written[2].key]})
    assert [p.key for p in fmt.pairs(tmp_path, "val")] == [written[1].key, written[3].key]
    assert [p.key for p in fmt.pairs(tmp_path, "train")] == [written[0].key, written[2].key]
    with pytest.raises(UnknownSplit, match="'test'"):
        fmt.pairs(tmp_path, "test")
    with pytest.raises(UnpairedFiles, match="1 keys of split 'train'.*999999_10"):
        get_format("kitti", split_lists={"train": ["999999_10"]}).pairs(tmp_path, "train")


def test_bdd100k_can_skip_orphans_of_old_releases(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    written = write_bdd100k(tmp_path, n=4)
    written[1].label_path.unlink()
    written[2].image_path.unlink()
    with pytest.raises(UnpairedFiles, match="1 images without a label"):
        get_format("bdd100k").pairs(tmp_path, "train")
    pairs = get_format("bdd100k", skip_unpaired=True).pairs(tmp_path, "train")
    assert [p.key for p in pairs] == [written[0].key, written[3].key]
    assert written[1].image_path.name in caplog.text and written[2].label_path.name in caplog.text


def test_gta5_split_list_file_must_exist(tmp_path: Path) -> None:
    write_gta5(tmp_path, n=2)
    with pytest.raises(InvalidOption, match="lists/val.txt does not exist"):
        get_format("gta5", split_lists={"val": "lists/val.txt"}).pairs(tmp_path, "val")


# --- layout, pairing and decoding failures -----------------------------------------------------------


def test_missing_root_and_missing_layout_directories_are_named(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="nowhere.*dataset root"):
        get_format("cityscapes").pairs(tmp_path / "nowhere", "train")
    write_camvid(tmp_path, "train")
    with pytest.raises(LayoutError, match=r"valannot"):
        (tmp_path / "val").mkdir()
        get_format("camvid").pairs(tmp_path, "val")
    with pytest.raises(LayoutError, match=r"gtFine/train"):
        write_cityscapes(tmp_path / "cs")
        for path in sorted((tmp_path / "cs" / "gtFine").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        get_format("cityscapes").pairs(tmp_path / "cs", "train")
    with pytest.raises(LayoutError, match="labels/sem_seg/masks/test"):
        write_bdd100k(tmp_path / "bdd", "test")
        for path in (tmp_path / "bdd" / "labels/sem_seg/masks/test").iterdir():
            path.unlink()
        (tmp_path / "bdd" / "labels/sem_seg/masks/test").rmdir()
        get_format("bdd100k").pairs(tmp_path / "bdd", "test")


def test_empty_directories_are_reported(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "trainannot").mkdir()
    (tmp_path / "train" / "notes.txt").write_text("not an image")
    with pytest.raises(EmptyDirectory, match=r"no \*\.png images found in .*train"):
        get_format("camvid").pairs(tmp_path, "train")
    with pytest.raises(EmptyDirectory, match="rgb_pattern"):
        (tmp_path / "rgb").mkdir()
        get_format("carla").pairs(tmp_path, "train")


def test_unpaired_files_list_a_few_names_and_the_count(tmp_path: Path) -> None:
    written = write_camvid(tmp_path, n=9)
    for sample in written[:7]:
        sample.label_path.unlink()
    with pytest.raises(UnpairedFiles) as failure:
        get_format("camvid").pairs(tmp_path, "train")
    message = str(failure.value)
    assert "7 images without a label" in message and "(2 more)" in message and "trainannot" in message
    assert written[0].image_path.name in message and written[6].image_path.name not in message
    written[8].image_path.unlink()
    for sample in written[:7]:
        sample.image_path.unlink()
    with pytest.raises(UnpairedFiles, match=rf"1 labels without an image.*{written[8].key}"):
        get_format("camvid").pairs(tmp_path, "train")


def test_corrupt_and_missing_images_name_the_file(tmp_path: Path) -> None:
    written = write_kitti(tmp_path, n=2)
    written[0].image_path.write_bytes(written[0].image_path.read_bytes()[:40])
    fmt = get_format("kitti")
    pairs = fmt.pairs(tmp_path, "train")
    with pytest.raises(UnreadableImage, match=f"{written[0].key}.png: cannot be decoded"):
        fmt.load(pairs[0])
    written[1].label_path.write_text("not a png")
    with pytest.raises(UnreadableImage, match=f"semantic/{written[1].key}.png"):
        fmt.load(pairs[1])
    written[1].label_path.unlink()
    with pytest.raises(UnreadableImage, match="cannot be opened"):
        fmt.load(pairs[1])


def test_size_mismatch_names_the_label_and_both_sizes(tmp_path: Path) -> None:
    written = write_cityscapes(tmp_path, n=1, size=(64, 32))
    cv2.imwrite(str(written[0].label_path), np.zeros((30, 60), np.uint8))
    fmt = get_format("cityscapes")
    with pytest.raises(SizeMismatch, match=r"labelIds\.png: label size 60x30 .* size 64x32"):
        fmt.load(fmt.pairs(tmp_path, "train")[0])


def test_colour_label_where_ids_are_expected_is_rejected(tmp_path: Path) -> None:
    written = write_cityscapes(tmp_path, n=1)
    cv2.imwrite(str(written[0].label_path), np.zeros((32, 64, 3), np.uint8))
    fmt = get_format("cityscapes")
    with pytest.raises(NotSingleChannel, match="gtFine_labelIds.png: label must be a single-channel"):
        fmt.load(fmt.pairs(tmp_path, "train")[0])


def test_image_variants_alpha_grey_and_16_bit(tmp_path: Path) -> None:
    written = write_camvid(tmp_path, n=3)
    fmt = get_format("camvid")
    pairs = fmt.pairs(tmp_path, "train")
    rgb = written[0].image
    alpha = np.full(rgb.shape[:2] + (1,), 7, np.uint8)
    cv2.imwrite(str(written[0].image_path), np.concatenate([rgb[:, :, ::-1], alpha], axis=2))
    np.testing.assert_array_equal(fmt.load(pairs[0])[0], rgb)
    cv2.imwrite(str(written[1].image_path), written[1].image[:, :, 0])
    np.testing.assert_array_equal(fmt.load(pairs[1])[0], np.repeat(written[1].image[:, :, :1], 3, axis=2))
    deep = written[2].image.astype(np.uint16) * 257  # exact 16-bit version of the 8-bit image
    cv2.imwrite(str(written[2].image_path), deep[:, :, ::-1])
    np.testing.assert_array_equal(fmt.load(pairs[2])[0], written[2].image)


def test_16_bit_labels_must_fit_in_uint8(tmp_path: Path) -> None:
    written = write_camvid(tmp_path, n=2)
    cv2.imwrite(str(written[0].label_path), written[0].ids.astype(np.uint16))
    cv2.imwrite(str(written[1].label_path), np.full(written[1].ids.shape, 300, np.uint16))
    fmt = get_format("camvid")
    pairs = fmt.pairs(tmp_path, "train")
    np.testing.assert_array_equal(fmt.load(pairs[0])[1], written[0].ids)
    with pytest.raises(ImportFailure, match="must fit in uint8.*300"):
        fmt.load(pairs[1])


# --- real CamVid -----------------------------------------------------------------------------------


def _camvid_root() -> Path:
    root = Path(os.environ.get("SIMREAL_CAMVID_ROOT", REPO.parent / "shared" / "data" / "camvid"))
    if not root.is_dir():
        pytest.skip(f"CamVid not found at {root} (set SIMREAL_CAMVID_ROOT to a SegNet-layout copy)")
    return root


@pytest.mark.parametrize(("split", "count"), [("train", 367), ("val", 101)])
def test_real_camvid_split(split: str, count: int) -> None:
    fmt = get_format("camvid")
    pairs = fmt.pairs(_camvid_root(), split)
    assert len(pairs) == count
    for pair in pairs:
        image, ids = fmt.load(pair)
        assert image.shape == (360, 480, 3) and ids.shape == (360, 480)
        assert int(ids.max()) <= 11
