"""The oasis / dpgan / spade training methods on tiny configs: CLI runs, resume, EMA, patch-head gradients."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from simreal.cli.train import train_app
from simreal.data.store import FrameStore
from simreal.losses.synthesis import hinge_g_loss
from simreal.models.spade_blocks import one_hot_labels
from simreal.training.config import compose_training_config
from simreal.training.loop import run_phase
from simreal.training.method import TrainContext
from simreal.training.registry import get_method


def make_real_store(path: Path, frames: int = 4, height: int = 64, width: int = 96) -> Path:
    rng = np.random.default_rng(0)
    label = np.zeros((frames, height, width), np.uint8)
    label[:, height // 2 :] = 1
    label[:, :, width // 2 :] = 2
    label[:, :6] = 255
    rgb = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    rgb[label == 1] = (128, 64, 128)
    store = FrameStore.create(path, height=height, width=width)
    store.append(rgb, label, [{"i": i} for i in range(frames)])
    return path


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_real_store(tmp_path_factory.mktemp("real") / "real")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(train_app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize("method", ["dpgan", "oasis", "spade"])
def test_cli_trains_tiny_synthesizer_writes_grids_and_resumes(method: str, real_store: Path, tmp_path: Path) -> None:
    out = tmp_path / method
    code, output = invoke(method, f"real={real_store}", "preset=tiny", "steps=2", f"out={out}", "sample_every=2")
    assert code == 0, output
    assert "finished at step 2" in output
    grid = np.asarray(Image.open(out / "samples" / "step_0000002.png"))
    assert grid.shape[0] > 2 * 64 and grid.shape[1] >= 3 * 64  # rows of label | generated | real
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "train/G/adv" in records[-1] and "train/D/total" in records[-1]
    assert all(np.isfinite(v) for r in records for k, v in r.items() if k.startswith("train/"))
    code, output = invoke(method, f"real={real_store}", "preset=tiny", "steps=3", f"out={out}", "resume=true")
    assert code == 0, output
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def build_method(name: str, store: Path, *overrides: str):  # noqa: ANN201
    cfg = compose_training_config(name, [f"real={store}", "preset=tiny", *overrides])
    spec = get_method(name)
    datasets = {"real": spec.cls.make_dataset(cfg, "real", str(store))}
    return spec.cls(cfg, TrainContext(device=torch.device("cpu")), datasets), datasets["real"]


def real_batch(dataset) -> dict:  # noqa: ANN001
    samples = [dataset[i] for i in range(2)]
    return {"real": {key: torch.stack([torch.as_tensor(s[key]) for s in samples]) for key in ("image", "label")}}


def test_dpgan_patch_heads_receive_gradients_and_train(real_store: Path) -> None:
    torch.manual_seed(0)
    method, dataset = build_method("dpgan", real_store)
    batch = real_batch(dataset)
    heads = method.discriminator.patch_heads
    before = [p.detach().clone() for p in heads.parameters()]
    losses = run_phase(method, "D", batch, 0)
    assert losses["patch"] > 0
    grads = [p.grad for p in heads.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, heads.parameters(), strict=True))
    # the generator's patch term reaches the generator through the heads
    generator = method.generator
    segmap = one_hot_labels(batch["real"]["label"], method.num_classes)
    hinge_g_loss(method.discriminator(generator(segmap)).patch_scores).backward()
    assert sum(float(p.grad.abs().sum()) for p in generator.parameters() if p.grad is not None) > 0


def test_ema_follows_the_generator_and_checkpoints_reestimate_its_statistics(real_store: Path) -> None:
    torch.manual_seed(0)
    method, dataset = build_method("oasis", real_store, "ema.decay=0.5")
    batch = real_batch(dataset)
    shadow_before = [p.detach().clone() for p in method.ema.module.parameters()]
    run_phase(method, "G", batch, 0)
    run_phase(method, "D", batch, 0)  # the EMA update follows the D step
    for old, shadow, live in zip(
        shadow_before, method.ema.module.parameters(), method.generator.parameters(), strict=True
    ):
        assert torch.allclose(shadow, 0.5 * old + 0.5 * live.detach(), atol=1e-6)
    norm = next(m for m in method.ema.module.modules() if isinstance(m, torch.nn.BatchNorm2d))
    live_norm = next(m for m in method.generator.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.equal(norm.running_mean, live_norm.running_mean)  # copied by the update
    state = method.state_dict()  # re-estimates the EMA generator's statistics before saving
    assert not torch.equal(norm.running_mean, live_norm.running_mean)
    assert int(norm.num_batches_tracked) == 2  # the tiny preset's bn_batches
    key = next(k for k in state["ema"]["module"] if k.endswith("running_mean"))
    assert torch.equal(state["ema"]["module"][key], dict(method.ema.module.named_buffers())[key])


def test_spade_vae_trains_with_kld(real_store: Path) -> None:
    torch.manual_seed(0)
    method, dataset = build_method("spade", real_store, "model.use_vae=true")
    losses = run_phase(method, "G", real_batch(dataset), 0)
    assert losses["kld"] > 0 and np.isfinite(losses["total"])
    assert method.encoder is not None and all(p.grad is not None for p in method.encoder.parameters())


def test_vgg_loss_without_weights_stops_with_what_to_do(real_store: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vgg19.pth"
    args = ["spade", f"real={real_store}", "preset=tiny", "steps=1", f"out={tmp_path / 'run'}", "loss.vgg=10"]
    code, output = invoke(*args, f"loss.vgg_weights={missing}")
    text = " ".join(output.split())  # rich wraps long lines
    assert code == 1, output
    assert "loss.vgg=0" in text and "$SIMREAL_WEIGHTS_DIR" in text and "loss.vgg_weights=" in text
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize("method", ["spade", "oasis"])
def test_vgg_loss_trains_with_weights_from_the_weights_dir(
    method: str, real_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["E"])  # VGG19's layers; random weights stand in for the ImageNet ones
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "vgg19.pth")
    monkeypatch.setenv("SIMREAL_WEIGHTS_DIR", str(tmp_path))
    out = tmp_path / "run"
    code, output = invoke(method, f"real={real_store}", "preset=tiny", "steps=1", f"out={out}", "loss.vgg=10")
    assert code == 0, output
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["train/G/vgg"] > 0
