from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from layouts import write_camvid
from typer.testing import CliRunner

from simreal.cli.main import app
from simreal.data.store import FrameStore
from tests.conftest import shared_path

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["labels"],
        ["labels", "show"],
        ["labels", "map"],
        ["datasets"],
        ["datasets", "import"],
        ["datasets", "verify"],
        ["datasets", "show"],
        ["datasets", "list"],
        ["collect"],
        ["train"],
        ["checkpoints"],
        ["checkpoints", "import"],
        *(["train", method] for method in ("segmenter", "lcsae", "sae", "dpgan", "oasis", "spade")),
        ["translate"],
        ["synthesize"],
        ["score"],
        ["fid-weights"],
        ["bench"],
        ["demo"],
        ["study"],
    ],
)
def test_every_command_explains_itself(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and len(result.output) > 200


def test_labels_show_and_map() -> None:
    shown = runner.invoke(app, ["labels", "show", "shared16"])
    assert shown.exit_code == 0 and "traffic_light" in shown.output and "dynamic" in shown.output
    mapped = runner.invoke(app, ["labels", "map", "carla-0.9.14", "--to", "shared16"])
    assert mapped.exit_code == 0 and "RoadLines" in mapped.output and "scored on 16 classes" in mapped.output
    unknown = runner.invoke(app, ["labels", "map", "carla-9"])
    assert unknown.exit_code == 1 and "unknown label scheme 'carla-9'" in unknown.output


@pytest.mark.usefixtures("ray_local")
def test_import_verify_show_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_camvid(tmp_path / "camvid", split="train", n=4, size=(48, 36))
    out = tmp_path / "data" / "cv.zarr"
    result = runner.invoke(
        app,
        [
            "datasets",
            "import",
            "--format",
            "camvid",
            "--root",
            str(tmp_path / "camvid"),
            "--scheme",
            "camvid11",
            "--split",
            "train",
            "--out",
            str(out),
            "--size",
            "32x16",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "imported 4 frames" in result.output
    store = FrameStore.open(out)
    assert len(store) == 4 and store.evaluable_classes == [0, 1, 2, 4, 5, 7, 8, 10, 11, 12]

    assert runner.invoke(app, ["datasets", "verify", str(out)]).exit_code == 0
    shown = runner.invoke(app, ["datasets", "show", str(out), "--out", str(tmp_path / "grid.png"), "--n", "3"])
    assert shown.exit_code == 0
    grid = cv2.imread(str(tmp_path / "grid.png"))
    assert grid.shape == (3 * 16 + 2 * 4, 2 * 32 + 4, 3)

    monkeypatch.chdir(tmp_path)
    listed = runner.invoke(app, ["datasets", "list", "--stores", "data"])
    assert listed.exit_code == 0 and "cityscapes" in listed.output and "cv.zarr" in listed.output

    FrameStore.open(out, mode="a").array("label")[1, 0, 0] = 99  # corrupt a committed frame behind the store's back
    bad = runner.invoke(app, ["datasets", "verify", str(out)])
    assert bad.exit_code == 1 and "99" in bad.output


def test_verify_reports_frames_written_past_the_committed_count(tmp_path: Path) -> None:
    store = FrameStore.create(tmp_path / "s.zarr", height=8, width=16, shard_size=4)
    rgb, label = np.zeros((3, 8, 16, 3), np.uint8), np.zeros((3, 8, 16), np.uint8)
    store.append(rgb, label, [{}] * 3)
    store.reserve(12)
    store.write_frames(5, rgb[:2], label[:2], [{}] * 2)  # a writer stopped before committing these
    result = runner.invoke(app, ["datasets", "verify", str(tmp_path / "s.zarr")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "uncommitted data frames 5..6 (2 frames" in text and "3 committed frames verified" in text


def test_import_argument_errors(tmp_path: Path) -> None:
    neither = runner.invoke(app, ["datasets", "import", "--out", str(tmp_path / "x.zarr")])
    assert neither.exit_code == 1 and "--format" in neither.output
    unknown = runner.invoke(app, ["datasets", "import", "nosuch", "--out", str(tmp_path / "x.zarr")])
    assert unknown.exit_code == 1 and "no dataset 'nosuch'" in unknown.output
    bad_size = runner.invoke(
        app,
        [
            "datasets",
            "import",
            "--format",
            "camvid",
            "--root",
            str(tmp_path),
            "--scheme",
            "camvid11",
            "--out",
            str(tmp_path / "x.zarr"),
            "--size",
            "big",
        ],
    )
    assert bad_size.exit_code == 1 and "512x256" in bad_size.output
    missing = runner.invoke(app, ["datasets", "verify", str(tmp_path / "none.zarr")])
    assert missing.exit_code == 1


@pytest.mark.usefixtures("ray_local")
def test_real_camvid_import_from_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = shared_path("data", "camvid")
    monkeypatch.setenv("SIMREAL_CAMVID_ROOT", str(root))
    out = tmp_path / "camvid_val.zarr"
    result = runner.invoke(app, ["datasets", "import", "camvid", "--split", "val", "--out", str(out)])
    assert result.exit_code == 0, result.output
    store = FrameStore.open(out)
    assert len(store) == 101 and (store.width, store.height) == (512, 256)
    assert store.attrs["eval_merge"] == {"6": 7, "3": 2}  # lights as signs, walls as buildings
    assert runner.invoke(app, ["datasets", "verify", str(out)]).exit_code == 0
