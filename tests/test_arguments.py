"""One argument style: every setting as a flag or a key=value by the same name, disagreements refused, sizes WxH,
and --help listing each Hydra command's settings with the defaults its config composes to."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from simreal.cli.arguments import RAY_ADDRESS, merge_overrides, settings_arguments, yaml_comments
from simreal.cli.main import app, main
from simreal.collect.config import compose_collect_config
from simreal.data.dataset import FrameDataset, crop_hw
from simreal.data.store import FrameStore
from simreal.errors import ConfigError
from simreal.training.config import compose_training_config

runner = CliRunner()


def one_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one ``error:`` line the console script prints for ``argv`` (non-zero exit)."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and stopped.value.code != 0 and "Traceback" not in err, err
    return " ".join(lines[0].split())


def test_flags_are_overrides_by_the_same_name() -> None:
    assert settings_arguments(["--steps", "10", "--batch-size=4", "--out", "runs/x", "preset=tiny"], set()) == [
        "steps=10",
        "batch_size=4",
        "out=runs/x",
        "preset=tiny",
    ]
    assert settings_arguments(["--tensorboard", "--model.width", "8"], set()) == ["tensorboard=true", "model.width=8"]
    assert settings_arguments(["--town", "Town01", "frames=3"], {"--town"}) == ["--town", "Town01", "frames=3"]
    # every command takes --address / address=, wherever its config keeps the key
    assert settings_arguments(["--address", "h:6379"], set(), {"address": "ray.address"}) == ["ray.address=h:6379"]
    assert compose_training_config("segmenter", settings_arguments(["address=h:1"], set(), RAY_ADDRESS)).ray.address


def test_a_flag_and_an_override_that_disagree_are_refused() -> None:
    with pytest.raises(ConfigError, match="--steps 10 and steps=20 disagree on steps"):
        settings_arguments(["--steps", "10", "steps=20"], set())
    assert settings_arguments(["--steps", "10", "steps=10"], set()) == ["steps=10", "steps=10"]  # the same: fine
    with pytest.raises(ConfigError, match="disagree on towns"):
        merge_overrides(["towns=[Town02]"], ["towns=[Town01]"])


def test_train_takes_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "segmenter", "--steps", "10", "steps=20", f"--out={tmp_path}"]
    assert "disagree on steps" in one_error_line(argv, capsys)
    flagged = compose_training_config("segmenter", settings_arguments(["--steps", "7", "--batch-size", "3"], set()))
    assert (flagged.steps, flagged.batch_size) == (7, 3)


def test_collect_flags_and_overrides_are_one_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "c.zarr")
    by_flag = compose_collect_config(settings_arguments(["--frames", "5", "--out", out, "--seed", "3"], set()))
    by_key = compose_collect_config(["frames=5", f"out={out}", "seed=3"])
    assert by_flag == by_key
    argv = ["collect", "--out", out, f"out={tmp_path / 'other.zarr'}", "--frames", "2"]
    assert "disagree on out" in one_error_line(argv, capsys)
    argv = ["collect", "--town", "Town01", "towns=[Town02]", "--frames", "2", "--out", out]
    assert "disagree on towns" in one_error_line(argv, capsys)
    assert not (tmp_path / "c.zarr").exists()


def test_option_commands_take_key_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = FrameStore.create(tmp_path / "empty.zarr", height=8, width=16)
    run = tmp_path / "run"
    run.mkdir()
    # input= is --input: the command gets as far as the empty input store
    argv = ["translate", str(run), f"input={empty.path}", f"out={tmp_path / 'o.zarr'}"]
    assert "holds no committed frames" in one_error_line(argv, capsys)
    argv = ["translate", str(run), "--input", str(empty.path), "--out", "a.zarr", f"out={tmp_path / 'b.zarr'}"]
    assert "disagree on out" in one_error_line(argv, capsys)
    argv = ["translate", str(run), f"input={empty.path}", "out=o.zarr", "bf16=maybe"]
    assert "expected true or false" in one_error_line(argv, capsys)


def test_help_lists_every_setting_with_the_configs_default() -> None:
    collect_help = runner.invoke(app, ["collect", "--help"], terminal_width=200).output
    defaults = compose_collect_config([])
    for key, value in (("frames", defaults.frames), ("carla.warmup_s", defaults.carla.warmup_s)):
        line = next(line for line in collect_help.splitlines() if line.split()[:1] == [key])
        assert str(value) in line.split()[1], line
    assert "simulated seconds not captured" in " ".join(collect_help.split())  # carla.warmup_s's YAML comment
    train_help = runner.invoke(app, ["train", "lccut", "--help"], terminal_width=200).output
    steps = next(line for line in train_help.splitlines() if line.split()[:1] == ["steps"])
    assert steps.split()[1] == str(compose_training_config("lccut", []).steps)
    translate_help = runner.invoke(app, ["translate", "--help"], terminal_width=200).output
    assert "[default: 8]" in translate_help and "batch_size=4" in " ".join(translate_help.split())


def test_yaml_comments_follow_the_nesting() -> None:
    text = "a: 1  # one\nb:\n  c: [1, 2]   # two # and\n             # more\n  d: 'x#y'\n"
    assert yaml_comments(text) == {"a": "one", "b": "", "b.c": "two # and more", "b.d": ""}


def test_crops_are_typed_width_by_height(tmp_path: Path) -> None:
    assert crop_hw([64, 32]) == (32, 64) and crop_hw(None) is None
    store = FrameStore.create(tmp_path / "s.zarr", height=48, width=96)
    import numpy as np

    store.append(np.zeros((1, 48, 96, 3), np.uint8), np.zeros((1, 48, 96), np.uint8), [{}])
    from simreal.training.registry import get_method

    cfg = compose_training_config("segmenter", ["crop=[64,32]", f"data={store.path}"])
    dataset = get_method("segmenter").cls.make_dataset(cfg, "data", str(store.path))
    assert isinstance(dataset, FrameDataset) and dataset[0]["image"].shape[-2:] == (32, 64)
