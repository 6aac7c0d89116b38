from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from simreal.errors import LabelError
from simreal.labels import (
    UnknownLabelIdError,
    carla_scheme_for_version,
    clear_cache,
    get_class_set,
    get_mapping,
    get_scheme,
)
from tests.conftest import shared_path

SPEC_COLUMNS = ["carla-0.9.9", "carla-0.9.13", "carla-0.9.14", "cityscapes", "camvid11"]


def _parse_ids(cell: str) -> set[int]:
    """'1, 24' / '14–19' / '— (0 = None)' / '6 (signs + lights)' / '-1' -> ids (the -1 plate is stored as 255)."""
    cell = re.sub(r"\(.*?\)", "", cell).strip()
    ids: set[int] = set()
    for part in cell.split(","):
        part = part.strip()
        if not part or part.startswith("—"):
            continue
        if part == "-1":
            ids.add(255)
        elif "–" in part:
            lo, hi = (int(v) for v in part.split("–"))
            ids.update(range(lo, hi + 1))
        else:
            ids.add(int(part))
    return ids


def _spec_rows() -> list[list[str]]:
    text = shared_path("specs", "labels.md").read_text()
    table = text.split("## shared16")[1]
    rows = [line.strip().strip("|").split("|") for line in table.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row] for row in rows if re.match(r"\s*\d", row[0])]


def _spec_scheme(heading: str) -> dict[int, str]:
    text = shared_path("specs", "labels.md").read_text()
    body = text.split(heading)[1].split("\n\n")[0].split("\n", 1)[1]
    body = re.sub(r"\(.*?\)", "", body).split(". ")[0]
    return {int(m.group(1)): m.group(2).strip() for m in re.finditer(r"(\d+) ([A-Za-z ]+?)(?:,|\.|$)", body)}


@pytest.mark.parametrize(
    ("heading", "scheme"),
    [("## CARLA 0.9.0", "carla-0.9.9"), ("## CARLA 0.9.10", "carla-0.9.13"), ("## CARLA 0.9.14", "carla-0.9.14")],
)
def test_carla_schemes_match_the_official_tables(heading: str, scheme: str) -> None:
    official = _spec_scheme(heading)
    table = get_scheme(scheme)
    assert table.ids == sorted(official)
    assert [n.lower() for n in table.names] == [official[i].lower() for i in sorted(official)]


@pytest.mark.parametrize("column", range(len(SPEC_COLUMNS)))
def test_shared16_mappings_match_the_official_table(column: int) -> None:
    mapping = get_mapping(SPEC_COLUMNS[column], "shared16")
    for row in _spec_rows():
        target_id, source_cell = int(row[0]), row[2 + column]
        expected = _parse_ids(source_cell)
        actual = {i for i in mapping.source.ids if int(mapping.lut[i]) == target_id}
        if target_id == 255 and SPEC_COLUMNS[column] == "cityscapes":
            expected.add(255)  # license plate, -1 in the spec, stored as 255 in labelId PNGs
        assert actual == expected, (SPEC_COLUMNS[column], row[1])


def test_shared16_class_names_match_the_spec() -> None:
    spec = {int(r[0]): r[1] for r in _spec_rows() if int(r[0]) != 255}
    assert dict(zip(get_class_set("shared16").ids, get_class_set("shared16").names, strict=True)) == spec


def test_builtin_facts_without_the_spec() -> None:
    assert get_scheme("carla-0.9.14").num_classes == 29
    assert get_scheme("carla-0.9.13").num_classes == 23
    assert get_scheme("carla-0.9.9").num_classes == 13
    assert get_scheme("kitti") is get_scheme("cityscapes") is get_scheme("gta5")
    assert get_scheme("bdd100k") is get_scheme("cityscapes-train")
    # CARLA >= 0.9.14 tags are Cityscapes trainIds + 1 for tags 1..19.
    to_city19 = get_mapping("carla-0.9.14", "cityscapes19")
    assert [int(to_city19.lut[tag]) for tag in range(1, 20)] == list(range(19))


def test_camvid_is_scored_on_ten_classes_with_lights_and_walls_merged() -> None:
    mapping = get_mapping("camvid11", "shared16")
    shared16 = get_class_set("shared16")
    names = [shared16.name_of(i) for i in mapping.evaluable_classes]
    assert names == [
        "road",
        "sidewalk",
        "building",
        "fence",
        "pole",
        "traffic_sign",
        "vegetation",
        "sky",
        "person",
        "vehicle",
    ]
    # the SegNet 11-class grouping: SignSymbol holds traffic lights, Building holds walls
    assert mapping.eval_merge == {
        shared16.id_of("traffic_light"): shared16.id_of("traffic_sign"),
        shared16.id_of("wall"): shared16.id_of("building"),
    }


def test_remap_is_a_lookup_table() -> None:
    mapping = get_mapping("carla-0.9.14")
    tags = np.array([[1, 24, 14], [19, 0, 11]], np.uint8)
    mapped, report = mapping.remap(tags)
    assert mapped.tolist() == [[0, 0, 12], [12, 255, 10]]
    assert report.total_unknown == 0


def test_unknown_ids_are_an_error_by_default_and_counted_when_ignored() -> None:
    mapping = get_mapping("carla-0.9.13")
    tags = np.array([[7, 40, 40], [99, 7, 7]], np.uint8)
    with pytest.raises(UnknownLabelIdError, match=r"40 \(2 px\), 99 \(1 px\).*frame_7\.png"):
        mapping.remap(tags, where="frame_7.png")
    mapped, report = mapping.remap(tags, unknown="ignore")
    assert mapped.tolist() == [[0, 255, 255], [255, 0, 0]]
    assert report.unknown_pixels == {40: 2, 99: 1}


def test_identity_mapping_for_a_class_set() -> None:
    mapping = get_mapping("shared16", "shared16")
    ids = np.arange(16, dtype=np.uint8)
    assert mapping.remap(ids)[0].tolist() == ids.tolist()


def test_a_user_adds_a_class_set_and_mapping_with_yaml_files(tmp_path, monkeypatch) -> None:
    (tmp_path / "sets").mkdir()
    (tmp_path / "mappings").mkdir()
    (tmp_path / "sets" / "drivable.yaml").write_text(
        "name: drivable\nclasses:\n  - {id: 0, name: drivable, color: [0, 255, 0]}\n"
        "  - {id: 1, name: obstacle, color: [255, 0, 0]}\n"
    )
    (tmp_path / "mappings" / "camvid11__drivable.yaml").write_text(
        "source: camvid11\ntarget: drivable\nmap: {drivable: [3], obstacle: [8, 9, 10]}\n"
        "ignore: [0, 1, 2, 4, 5, 6, 7, 11]\n"
    )
    monkeypatch.setenv("SIMREAL_LABELS_PATH", str(tmp_path))
    clear_cache()
    try:
        mapped, _ = get_mapping("camvid", "drivable").remap(np.array([3, 8, 0], np.uint8))
        assert mapped.tolist() == [0, 1, 255]
    finally:
        monkeypatch.delenv("SIMREAL_LABELS_PATH")
        clear_cache()


def test_incomplete_mapping_is_refused(tmp_path, monkeypatch) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "camvid11__shared16.yaml").write_text(
        "source: camvid11\ntarget: shared16\nmap: {road: [3]}\nignore: [11]\n"
    )
    monkeypatch.setenv("SIMREAL_LABELS_PATH", str(tmp_path))
    clear_cache()
    try:
        with pytest.raises(LabelError, match="neither mapped nor ignored"):
            get_mapping("camvid11")
    finally:
        monkeypatch.delenv("SIMREAL_LABELS_PATH")
        clear_cache()


def test_palette_colours_every_class() -> None:
    shared16 = get_class_set()
    rgb = shared16.colorize(np.array([[0, 10, 255]], np.uint8))
    assert rgb.tolist() == [[[128, 64, 128], [70, 130, 180], [0, 0, 0]]]


@pytest.mark.parametrize(
    ("version", "scheme"),
    [
        ("0.9.16", "carla-0.9.14"),
        ("0.9.14", "carla-0.9.14"),
        ("0.9.13-1-g8854804f", "carla-0.9.13"),
        ("0.9.10", "carla-0.9.13"),
        ("0.9.9.4", "carla-0.9.9"),
        ("0.8.4", "carla-0.9.9"),
    ],
)
def test_server_version_picks_the_tag_scheme(version: str, scheme: str) -> None:
    assert carla_scheme_for_version(version) == scheme


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(LabelError, match="carla-0.9.14"):
        get_scheme("carla-9")


def test_cityscapes_labelids_light_the_channel_the_published_generators_read() -> None:
    """simreal's one-hot puts class c in channel c + 1 and ignore in channel 0; the OASIS / DP-GAN / SPADE
    Cityscapes generators read labelId k in channel k (35 channels, labelId 0 = unlabeled)."""
    from simreal.models.spade_blocks import one_hot_labels

    label_ids = get_class_set("cityscapes-labelids")
    assert label_ids.num_classes == 34 and max(label_ids.ids) + 2 == 35  # N + 1 one-hot channels
    to_ids = get_mapping("cityscapes", "cityscapes-labelids")
    city_ids = np.arange(34, dtype=np.uint8)[None, None]
    channels = one_hot_labels(torch.from_numpy(to_ids.remap(city_ids)[0]), label_ids.num_classes).argmax(1)
    assert channels[0, 0].tolist() == list(range(34))
    city = get_scheme("cityscapes")
    assert [label_ids.name_of(i) for i in range(33)] == [city.name_of(k) for k in range(1, 34)]


@pytest.mark.parametrize("scheme", ["carla-0.9.9", "carla-0.9.13", "carla-0.9.14"])
def test_carla_tags_paint_as_the_cityscapes_class_of_the_same_meaning(scheme: str) -> None:
    to_ids = get_mapping(scheme, "cityscapes-labelids")
    to_shared = get_mapping(scheme, "shared16")
    via_cityscapes = get_mapping("cityscapes-labelids", "shared16")
    # Going through Cityscapes labelIds lands every CARLA tag in the shared16 class it has directly.
    tags = np.array(get_scheme(scheme).ids, np.uint8)
    direct = to_shared.remap(tags)[0]
    through = via_cityscapes.remap(to_ids.remap(tags)[0], unknown="ignore")[0]  # ignore stays ignore
    kept = direct != 255  # shared16 ignores some tags that Cityscapes has a class for (bridge, guard rail)
    assert through[kept].tolist() == direct[kept].tolist()
