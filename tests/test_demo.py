from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simreal.cli.main import app
from simreal.data.verify import verify_store


@pytest.mark.usefixtures("ray_local")
def test_tiny_demo_runs_the_whole_chain(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "preset=tiny"])
    assert result.exit_code == 0, result.output
    for store in ("sim", "real", "eval", "translated", "floor", "oracle"):
        assert verify_store(out / f"{store}.zarr").ok
    for run in ("segmenter-outer", "segmenter-heldout", "lccut"):  # LC-CUT is the demo's translator
        assert (out / run / "checkpoint.pt").is_file()
    scores = json.loads((out / "report" / "scores.json").read_text())
    assert [s["name"] for s in scores["stores"]] == ["translated", "sim", "floor", "oracle"]
    assert scores["gap"] is None  # no FID, no gap
    assert all(0.0 <= s["consistency"]["pixel_acc"] <= 1.0 for s in scores["stores"])
    assert scores["fid_skipped"]  # no Inception weights offline: said, not failed
    readme = (out / "README.md").read_text()
    assert "FID/KID were not computed" in readme and "simreal fid-weights" in readme
    assert "small-scale numbers" in readme and "simreal collect --backend carla" in readme
    assert "simreal train lccut" in readme and "--style" not in readme  # LC-CUT translates without style frames
    assert (out / "report" / "report.html").is_file() and (out / "report" / "grid_translated.png").is_file()


@pytest.mark.parametrize(
    ("override", "message"),
    [("translator=oasis", "the demo has settings for lccut, lcsae"), ("translator=segmenter", "settings for")],
)
def test_a_translator_without_settings_is_refused_before_anything_runs(
    tmp_path: Path, override: str, message: str
) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "preset=tiny", override])
    assert result.exit_code == 1 and message in result.output
    assert not (tmp_path / "demo" / "sim.zarr").exists()


def test_a_translator_that_does_not_translate_is_refused(tmp_path: Path) -> None:
    override = "+translators.segmenter=['steps=1']"
    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path / "d"), "preset=tiny", "translator=segmenter", override]
    )
    assert result.exit_code == 1 and "does not translate" in result.output
