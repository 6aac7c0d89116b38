"""`simreal score` end to end through typer's CliRunner: two tiny stores against a tiny real store, the report
files, the comparison table, source frames in grids, the FID modes (require, auto, off) and the errors a user meets
first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from inception import make_random_inception_weights, no_download
from PIL import Image
from typer.testing import CliRunner

import simreal.scoring as scoring
from simreal.cli.score import score
from simreal.data.store import FrameStore
from simreal.metrics.consistency import LabelConsistency, eval_protocol, segment_images
from simreal.metrics.fid import WEIGHTS_ENV
from simreal.models.segmenter import build_segmenter, load_segmenter, save_segmenter
from simreal.report import image_grid, iou_bar_chart
from simreal.scoring import ScoreError, ScoreJob, run_score
from simreal.sim.frames import render_labelled_frames

FRAMES, HEIGHT, WIDTH = 3, 64, 128


def procedural_frames(look: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return render_labelled_frames(FRAMES, width=WIDTH, height=HEIGHT, look=look, seed=seed)


def write_store(path: Path, rgb: np.ndarray, label: np.ndarray, provenance: list[dict], **create: object) -> Path:
    FrameStore.create(path, height=rgb.shape[1], width=rgb.shape[2], **create).append(rgb, label, provenance)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("score")
    real_rgb, real_label = procedural_frames("textured", seed=1)
    sim_rgb, sim_label = procedural_frames("flat", seed=2)
    paths = {
        "real": write_store(root / "real.zarr", real_rgb, real_label, [{"i": i} for i in range(FRAMES)]),
        "sim": write_store(root / "sim.zarr", sim_rgb, sim_label, [{"i": i} for i in range(FRAMES)]),
    }
    # A "translation" that made real images from the sim frames: provenance points back at them (relative path).
    paths["translated"] = write_store(
        root / "translated.zarr",
        real_rgb,
        sim_label,
        [{"source_store": "sim.zarr", "source_index": i} for i in range(FRAMES)],
    )
    net = build_segmenter("tiny", 16)
    run = root / "segmenter"
    run.mkdir()
    save_segmenter(net, run / "checkpoint.pt", FrameStore.open(paths["real"]).class_set.to_attrs())
    (run / "config.yaml").write_text(yaml.safe_dump({"data": str(paths["real"])}))
    paths["segmenter"] = run
    paths["weights"] = make_random_inception_weights(root / "inception.pth")
    return paths


def invoke(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    app.command()(score)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())  # rich wraps error lines at the terminal width


def test_cli_scores_two_stores_and_writes_report(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    code, output = invoke(
        str(world["translated"]),
        str(world["sim"]),
        "--reference",
        str(world["real"]),
        "--segmenter",
        str(world["segmenter"]),
        "--inception-weights",
        str(world["weights"]),
        "--out",
        str(out),
        "--batch-size",
        "3",
        "--object-classes",
        "vehicle",
        "--min-object-crops",
        "2",
        "--kid-subsets",
        "3",
    )
    assert code == 0, output
    assert "translated: 3 images" in output and "sim: 3 images" in output and "2048" in output
    expected_files = {"scores.json", "report.md", "report.html", "grid_translated.png", "grid_sim.png"}
    assert expected_files | {"per_class_iou.png"} <= {p.name for p in out.iterdir()}

    scores = json.loads((out / "scores.json").read_text())
    translated, sim = scores["stores"]
    assert [translated["images"], sim["images"], scores["reference"]["images"]] == [3, 3, 3]
    assert translated["fid"] == pytest.approx(0.0, abs=1e-6)  # the same images as the reference
    assert sim["fid"] > 1.0 and sim["kid"]["mean"] > translated["kid"]["mean"]
    assert translated["kid"]["subset_size"] == 3
    assert translated["grid_columns"] == ["sim", "translated", "label", "prediction"]
    assert sim["grid_columns"] == ["image", "label", "prediction"]
    assert scores["settings"]["objects"]["classes"] == ["vehicle"]
    assert set(sim["objects"]) == {"all", "small", "medium", "large"}
    assert translated["objects"]["all"]["crops"] == sim["objects"]["all"]["crops"] > 0  # crops follow the labels
    assert scores["segmenter"]["training_store"] == str(world["real"])
    assert len(scores["warnings"]) == 2 and all("2048" in w for w in scores["warnings"])

    # label consistency equals an independent evaluation of the same segmenter on the same store
    store = FrameStore.open(world["sim"])
    net = load_segmenter(world["segmenter"])
    independent = LabelConsistency(16, eval_protocol(store, FrameStore.open(world["real"])))
    rgb, label = store.read_range(0, len(store))
    independent.update(segment_images(net, rgb), label)
    assert sim["consistency"]["miou"] == pytest.approx(independent.scores(store.class_set)["miou"])

    markdown = (out / "report.md").read_text()
    assert "| translated | 3 |" in markdown and "| sim | 3 |" in markdown
    assert "2048" in markdown and "![per-class IoU](per_class_iou.png)" in markdown
    html_text = (out / "report.html").read_text()
    assert "<table>" in html_text and 'src="grid_sim.png"' in html_text and "<strong>Warning:</strong>" in html_text
    sim_grid = np.asarray(Image.open(out / "grid_sim.png"))
    translated_grid = np.asarray(Image.open(out / "grid_translated.png"))
    assert sim_grid.shape[0] >= 3 * HEIGHT and sim_grid.shape[1] >= 3 * WIDTH
    assert translated_grid.shape[1] >= 4 * WIDTH


def test_cli_fails_offline_without_weights(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytorch_fid import inception as pfid_inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(pfid_inception, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(scoring, "load_segmenter", no_download)  # fails before any heavy work
    code, output = invoke(str(world["sim"]), "--reference", str(world["real"]), "--segmenter", str(world["segmenter"]))
    assert code == 1
    assert "FID Inception weights not found" in output and WEIGHTS_ENV in output
    assert not (world["sim"].parent / "sim.scores").exists()


def independent_miou(world: dict[str, Path], store_path: Path) -> float:
    """mIoU of the world's segmenter on a store, computed without the score pipeline."""
    store = FrameStore.open(store_path)
    consistency = LabelConsistency(16, eval_protocol(store, FrameStore.open(world["real"])))
    rgb, label = store.read_range(0, len(store))
    consistency.update(segment_images(load_segmenter(world["segmenter"]), rgb), label)
    return consistency.scores(store.class_set)["miou"]


def test_cli_fid_auto_without_weights_scores_consistency_and_says_why(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    out = tmp_path / "auto"
    args = ["--reference", str(world["real"]), "--segmenter", str(world["segmenter"]), "--out", str(out)]
    code, output = invoke(str(world["sim"]), *args, "--fid", "auto", "--object-classes", "vehicle")
    assert code == 0, output
    assert "sim: 3 images FID not computed KID not computed" in output
    assert "skipped" in output and WEIGHTS_ENV in output and "--inception-weights" in output

    scores = json.loads((out / "scores.json").read_text())
    (sim,) = scores["stores"]
    assert sim["fid"] is None and sim["kid"] is None and sim["objects"] is None
    assert sim["fid_skipped"] == scores["fid_skipped"] and "Inception weights unavailable" in sim["fid_skipped"]
    assert scores["settings"]["inception_weights"] is None and scores["settings"]["fid"] == "auto"
    assert scores["warnings"] == []  # no small-set FID warning for an FID that was not computed
    assert sim["consistency"]["miou"] == pytest.approx(independent_miou(world, world["sim"]))
    markdown = (out / "report.md").read_text()
    assert "FID/KID and object-level KID/FID not computed:** Inception weights unavailable" in markdown
    assert "| sim | 3 | not computed | not computed |" in markdown
    assert "| sim | not computed | not computed | not computed | not computed |" in markdown  # object FID
    assert "<strong>FID/KID and object-level KID/FID not computed:</strong>" in (out / "report.html").read_text()

    code, output = invoke(str(world["sim"]), *args, "--fid", "sometimes")
    assert code == 2 and "sometimes" in output


def test_fid_off_never_loads_inception_and_accepts_single_frames(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("resolve_inception_weights", "load_inception", "inception_features"):
        monkeypatch.setattr(scoring, name, no_download)
    rgb, label = render_labelled_frames(1, width=WIDTH, height=HEIGHT, look="flat", seed=5)
    single = write_store(tmp_path / "single", rgb, label, [{}])
    job = ScoreJob(
        stores=[single], reference=world["real"], segmenter=world["segmenter"], out=tmp_path / "off", fid="off"
    )
    scores = run_score(job)
    assert scores["stores"][0]["fid"] is None and "--fid off" in scores["fid_skipped"]
    assert scores["stores"][0]["consistency"]["miou"] == pytest.approx(independent_miou(world, single))
    with pytest.raises(ScoreError, match="--fid must be one of"):
        run_score(ScoreJob(stores=[single], reference=world["real"], segmenter=world["segmenter"], fid="maybe"))
    with pytest.raises(ScoreError, match="or use --fid off"):
        run_score(ScoreJob(stores=[single], reference=world["real"], segmenter=world["segmenter"], fid="auto"))


def test_fid_auto_with_weights_computes_fid(world: dict[str, Path], tmp_path: Path) -> None:
    job = ScoreJob(
        stores=[world["translated"]],
        reference=world["real"],
        segmenter=world["segmenter"],
        out=tmp_path / "auto",
        inception_weights=world["weights"],
        inception_dims=64,  # the first Inception block only: fast
        kid_subsets=2,
        fid="auto",
    )
    scores = run_score(job)
    (translated,) = scores["stores"]
    assert translated["fid"] == pytest.approx(0.0, abs=1e-6) and translated["kid"]["subset_size"] == 3
    assert translated["fid_skipped"] is None and scores["fid_skipped"] is None
    assert scores["settings"]["inception_weights"] == str(world["weights"])


def test_the_share_of_the_fid_gap_closed_is_stated_against_every_floor(world: dict[str, Path], tmp_path: Path) -> None:
    job = ScoreJob(
        stores=[world["sim"], world["translated"], world["real"]],
        reference=world["real"],
        segmenter=world["segmenter"],
        out=tmp_path / "gap",
        inception_weights=world["weights"],
        inception_dims=64,
        kid_subsets=2,
        fid="auto",
        raw="sim",
        floors=["real"],
    )
    scores = run_score(job)
    fid = {store["name"]: store["fid"] for store in scores["stores"]}
    assert fid["real"] == pytest.approx(0.0, abs=1e-6) and fid["sim"] > 0
    share = scores["gap"]["closed"]["translated"]["real"]
    assert share == pytest.approx((fid["sim"] - fid["translated"]) / (fid["sim"] - fid["real"]))
    assert share == pytest.approx(1.0)  # the "translation" is the real frames themselves
    report = (tmp_path / "gap" / "report.md").read_text()
    assert "Share of the FID gap closed" in report and "100.0%" in report


def test_fid_gap_refuses_unknown_names_and_needs_fid() -> None:
    results = [{"name": "sim", "fid": 100.0}, {"name": "t", "fid": 80.0}, {"name": "floor", "fid": 60.0}]
    gap = scoring.fid_gap(results, "sim", ["floor"])
    assert gap["closed"] == {"t": {"floor": pytest.approx(0.5)}}
    assert scoring.fid_gap([{**r, "fid": None} for r in results], "sim", ["floor"]) is None
    with pytest.raises(ScoreError, match="no scored store named oracle"):
        scoring.fid_gap(results, "sim", ["oracle"])


def test_cli_rejects_bad_inputs(world: dict[str, Path], tmp_path: Path) -> None:
    common = ["--segmenter", str(world["segmenter"]), "--inception-weights", str(world["weights"])]
    code, output = invoke(str(tmp_path / "missing"), "--reference", str(world["real"]), *common)
    assert code == 1 and "not a simreal frame store" in output

    rgb, label = np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 8), np.uint8)
    city = write_store(tmp_path / "city", rgb, label, [{}, {}], class_set="cityscapes19")
    code, output = invoke(str(city), "--reference", str(world["real"]), *common, "--out", str(tmp_path / "o"))
    assert code == 1 and "cityscapes19" in output

    single = write_store(tmp_path / "single", rgb[:1], label[:1], [{}])
    code, output = invoke(str(single), "--reference", str(world["real"]), *common)
    assert code == 1 and "at least 2" in output

    code, output = invoke(str(world["sim"]), "--reference", str(world["real"]), *common, "--object-classes", "cars")
    assert code == 1 and "unknown object class" in output


def test_figures_reject_inconsistent_input_and_draw_bars() -> None:
    tile = np.zeros((8, 12, 3), np.uint8)
    with pytest.raises(ValueError, match="one per column title"):
        image_grid([[tile, tile]], ["a", "b", "c"])
    chart = iou_bar_chart({"a": {"road": 1.0, "sky": None}, "b": {"road": 0.0, "sky": 0.5}}, ["road", "sky"])
    blue_bar = np.all(chart == (31, 119, 180), axis=-1)
    assert chart.dtype == np.uint8 and blue_bar.sum() > 8 * 200  # a full-height bar for store "a" on road
