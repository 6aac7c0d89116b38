"""The DeepLabV3+ segmenter: architectures, offline weights, typed config, CLI training on a tiny store, reloading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
from omegaconf import OmegaConf
from PIL import Image
from typer.testing import CliRunner

from simreal.cli.train import train_app
from simreal.data.store import FrameStore
from simreal.errors import ConfigError
from simreal.models.segmenter import (
    SegmenterConfigError,
    WeightsUnavailableError,
    build_segmenter,
    load_segmenter,
)
from simreal.training.config import compose_training_config
from simreal.training.method import poly_decay


def make_store(path: Path, frames: int = 6, height: int = 32, width: int = 48) -> Path:
    rng = np.random.default_rng(0)
    store = FrameStore.create(path, height=height, width=width)
    rgb = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    label = np.zeros((frames, height, width), np.uint8)
    label[:, height // 2 :] = 1  # learnable: road below, sidewalk above
    label[:, :, :4] = 255
    rgb[:, height // 2 :, :, 0] = 200
    store.append(rgb, label, [{"i": i} for i in range(frames)])
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("store") / "frames")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(train_app, list(args))
    return result.exit_code, result.output


def test_cli_trains_tiny_segmenter_and_resumes(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, output = invoke("segmenter", f"data={store}", "preset=tiny", "steps=3", f"out={out}", "sample_every=3")
    assert code == 0, output
    assert "finished at step 3" in output
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "metrics.jsonl", "checkpoint.pt", "samples"}
    grid = np.asarray(Image.open(out / "samples" / "step_0000003.png"))
    assert grid.shape[0] > 2 * 32 and grid.shape[1] >= 3 * 32  # 2 rows of image | label | prediction
    config = OmegaConf.load(out / "config.yaml")
    assert config.model.architecture == "tiny" and config.steps == 3 and config.data == str(store)

    code, output = invoke("segmenter", f"data={store}", "preset=tiny", "steps=5", f"out={out}", "resume=true")
    assert code == 0, output
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_cli_evaluates_on_a_validation_store(store: Path, tmp_path: Path) -> None:
    code, output = invoke(
        "segmenter", f"data={store}", f"val={store}", "preset=tiny", "steps=2", "eval_every=2", f"out={tmp_path}/r"
    )
    assert code == 0, output
    assert "miou" in output
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    scores = next(r for r in records if "eval/miou" in r)
    assert 0.0 <= scores["eval/pixel_acc"] <= 1.0
    assert scores["eval/iou/road"] is not None and scores["eval/iou/sky"] is None  # sky absent: NaN -> null


def test_cli_reports_missing_data_and_bad_keys_without_traceback(tmp_path: Path) -> None:
    code, output = invoke("segmenter", "preset=tiny", f"out={tmp_path}/r")
    assert code == 1 and "data=STORE_PATH" in output
    code, output = invoke("segmenter", "preset=tiny", "stepz=3")
    assert code == 1 and "stepz" in output
    code, output = invoke("segmenter", f"data={tmp_path}/missing", "preset=tiny")
    assert code == 1 and "not a simreal frame store" in output


def test_checkpoint_of_another_architecture_is_refused(store: Path, tmp_path: Path) -> None:
    assert invoke("segmenter", f"data={store}", "preset=tiny", "steps=1", f"out={tmp_path}/r")[0] == 0
    code, output = invoke("segmenter", f"data={store}", "preset=tiny", "model.decoder_channels=48", f"out={tmp_path}/r")
    assert code == 1 and "does not fit the current config" in output


def test_load_segmenter_restores_the_trained_network(store: Path, tmp_path: Path) -> None:
    code, output = invoke("segmenter", f"data={store}", "preset=tiny", "steps=2", f"out={tmp_path}/r")
    assert code == 0, output
    saved = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["method"]
    net = load_segmenter(tmp_path / "r")
    assert not net.training
    for key, value in saved["model"].items():
        assert torch.equal(net.state_dict()[key], value), key
    logits = net(torch.zeros(1, 3, 20, 30))  # any size: padded to the stride internally
    assert logits.shape == (1, 16, 20, 30)
    assert saved["input_range"] == "tanh"


def test_architectures_have_the_expected_sizes() -> None:
    outer = build_segmenter("outer", 16)
    heldout = build_segmenter("heldout", 16)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert type(outer.encoder).__name__ == "MobileNetV2Encoder"
    assert type(heldout.encoder).__name__ == "ResNetEncoder"
    assert 3e6 < count(outer) < 7e6  # MobileNetV2 DeepLabV3+
    assert 20e6 < count(heldout) < 35e6  # ResNet50 DeepLabV3+, several times the MobileNet one
    assert outer.stride == heldout.stride == 16
    assert heldout.eval()(torch.zeros(1, 3, 64, 128)).shape == (1, 16, 64, 128)


def test_offline_imagenet_weights_give_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> str:
        raise OSError("Temporary failure in name resolution")

    monkeypatch.delenv("SIMREAL_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(smp.encoders, "hf_hub_download", no_network)
    with pytest.raises(WeightsUnavailableError, match="encoder_weights=null") as caught:
        build_segmenter("tiny", 16, encoder_weights="imagenet")
    assert "name resolution" in str(caught.value)


def test_local_encoder_weights_load_from_file_and_weights_dir(tmp_path: Path, monkeypatch) -> None:
    source = build_segmenter("tiny", 16)
    torch.save(source.encoder.state_dict(), tmp_path / "mobilenet_v2.imagenet.pth")
    from_file = build_segmenter("tiny", 16, encoder_weights=str(tmp_path / "mobilenet_v2.imagenet.pth"))
    monkeypatch.setenv("SIMREAL_WEIGHTS_DIR", str(tmp_path))
    from_dir = build_segmenter("tiny", 16, encoder_weights="imagenet")  # found locally: no download attempted
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(from_file.encoder.state_dict()[key], value)
        assert torch.equal(from_dir.encoder.state_dict()[key], value)
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        build_segmenter("tiny", 16, encoder_weights=str(tmp_path / "nope.pth"))
    torch.save({"unrelated.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(WeightsUnavailableError, match="missing keys"):
        build_segmenter("tiny", 16, encoder_weights=str(tmp_path / "wrong.pth"))


def test_bad_architectures_are_refused() -> None:
    with pytest.raises(SegmenterConfigError, match="unknown architecture"):
        build_segmenter("huge", 16)
    with pytest.raises(SegmenterConfigError, match="unknown encoder"):
        build_segmenter("tiny", 16, encoder_name="resnet9000")
    with pytest.raises(SegmenterConfigError, match="DeepLabV3"):
        build_segmenter("tiny", 16, output_stride=32)


def test_poly_schedule() -> None:
    poly_lr_factor = poly_decay(100, 0.9)
    assert poly_lr_factor(0) == 1.0
    assert poly_lr_factor(50) == pytest.approx(0.5**0.9)
    assert poly_lr_factor(100) == 0.0 and poly_lr_factor(150) == 0.0


def test_values_arrive_with_the_types_of_the_schema() -> None:
    cfg = compose_training_config("segmenter", ["preset=tiny", "optim.lr=1", "model.decoder_channels=48"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.model.decoder_channels == 48 and cfg.model.encoder_depth is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval_batch_size=abc", r"eval_batch_size=abc.*could not be converted to Integer"),
        ("optim.poly_power=abc", r"optim\.poly_power=abc.*could not be converted to Float"),
        ("model.decoder_channels=abc", r"model\.decoder_channels=abc.*could not be converted to Integer"),
        ("hflip=abc", r"hflip=abc.*not a valid bool"),
        ("model.encoder_widths=3", r"model\.encoder_widths"),
        ("optim.nesterov=true", r"optim\.nesterov"),
    ],
)
def test_wrong_types_and_unknown_keys_are_refused_by_name(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compose_training_config("segmenter", ["preset=tiny", override])
