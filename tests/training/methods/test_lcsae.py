"""LC-SAE and SAE training through the CLI: run directory, exact resume, NaN stop, outer segmenter, sae == λ=0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from stores import make_procedural_store
from typer.testing import CliRunner

from simreal.cli.train import train_app
from simreal.data.store import FrameStore
from simreal.losses.sae import SAELoss
from simreal.training import checkpoint as ckpt

CROP = 64  # the tiny preset's crop


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``sim=`` and ``real=`` overrides of two tiny stores (4 frames of 128x64)."""
    root = tmp_path_factory.mktemp("stores")
    sim = make_procedural_store(root / "sim", "flat")
    real = make_procedural_store(root / "real", "textured")
    return [f"sim={sim}", f"real={real}"]


@pytest.fixture(scope="module")
def segmenter_run(stores: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("segmenter") / "run"
    real = stores[1].removeprefix("real=")
    code, output = invoke("segmenter", f"data={real}", "preset=tiny", "steps=1", f"out={out}")
    assert code == 0, output
    return out


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(train_app, list(args))
    return result.exit_code, result.output


def lcsae(stores: list[str], segmenter_run: Path, *overrides: str) -> tuple[int, str]:
    return invoke("lcsae", *stores, f"outer_segmenter={segmenter_run}", "preset=tiny", *overrides)


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def losses(run_dir: Path) -> list[dict]:
    """The logged losses per step, without wall-clock entries."""
    return [{k: v for k, v in r.items() if k not in ("time", "it_s")} for r in records(run_dir)]


def test_tiny_lcsae_fills_the_run_directory(stores: list[str], segmenter_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, output = lcsae(stores, segmenter_run, "steps=3", "sample_every=3", f"out={out}")
    assert code == 0, output
    assert "lcsae: finished at step 3" in output
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "metrics.jsonl", "checkpoint.pt", "samples"}
    config = OmegaConf.load(out / "config.yaml")
    assert config.method == "lcsae" and config.model.preset == "tiny" and config.crop == [CROP, CROP]

    logged = records(out)
    assert [r["step"] for r in logged] == [1, 2, 3]
    # Steps alternate D (step 0), G (step 1), D + lazy R1 (step 2: the 2nd D step, r1_interval is 2 in tiny).
    phases = [{key.split("/")[1] for key in record if key.startswith("train/")} for record in logged]
    assert phases == [{"D"}, {"G"}, {"D", "Dreg"}]
    for step, key in ((0, "D/D_real"), (0, "D/D_patch_swap"), (1, "G/G_l1"), (1, "G/G_patch_gan"), (2, "Dreg/D_r1")):
        assert np.isfinite(logged[step][f"train/{key}"]), key
    assert logged[1]["train/G/G_sem_inner"] > 0 and logged[1]["train/G/G_sem_outer"] > 0

    grid = np.asarray(Image.open(out / "samples" / "step_0000003.png"))
    assert grid.shape[0] > 2 * CROP and grid.shape[1] >= 4 * CROP  # 2 rows of sim | translated | real | labels
    saved = ckpt.load(out / "checkpoint.pt")
    assert saved["step"] == 3 and saved["method_name"] == "lcsae"
    state = saved["method"]
    assert state["model_config"]["crop_size"] == CROP and state["input_range"] == "tanh"
    assert any(key.startswith("semantic_head.") for key in state["networks"])
    assert state["optimizer_g"]["state"] and state["optimizer_d"]["state"]


def test_d_and_g_steps_alternate_on_fresh_minibatches(
    stores: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simreal.training.methods.sae import LCSAEMethod

    compute_losses = LCSAEMethod.compute_losses
    seen = []

    def recording(self: LCSAEMethod, name: str, batch: dict, step: int) -> dict[str, torch.Tensor]:
        seen.append((step, name, tuple(batch["sim"]["index"].tolist()), tuple(batch["real"]["index"].tolist())))
        return compute_losses(self, name, batch, step)

    monkeypatch.setattr(LCSAEMethod, "compute_losses", recording)
    assert invoke("sae", *stores, "preset=tiny", "steps=4", f"out={tmp_path}/r")[0] == 0
    assert [(step, name) for step, name, *_ in seen] == [(0, "D"), (1, "G"), (2, "D"), (2, "Dreg"), (3, "G")]
    # The 4-frame stores give 2 batches of 2 per epoch: a G step never reuses the batch of the D step before it.
    for (_, _, *d_batch), (_, _, *g_batch) in ((seen[0], seen[1]), (seen[2], seen[4])):
        assert set(d_batch[0]).isdisjoint(g_batch[0]) and set(d_batch[1]).isdisjoint(g_batch[1])
    assert seen[3][2:] == seen[2][2:]  # lazy R1 regularises on its D step's batch


def test_resume_repeats_continuous_training(stores: list[str], segmenter_run: Path, tmp_path: Path) -> None:
    # Lazy R1 runs at steps 2 and 6: the resumed part covers an R1 step and restored Adam moments and EMA.
    common = ("ema.enabled=true", "ema.warmup_steps=2")
    assert lcsae(stores, segmenter_run, "steps=7", f"out={tmp_path}/straight", *common)[0] == 0
    assert lcsae(stores, segmenter_run, "steps=3", f"out={tmp_path}/resumed", *common)[0] == 0
    code, output = lcsae(stores, segmenter_run, "steps=7", f"out={tmp_path}/resumed", "resume=true", *common)
    assert code == 0, output

    assert losses(tmp_path / "resumed") == losses(tmp_path / "straight")
    straight = ckpt.load(tmp_path / "straight" / "checkpoint.pt")["method"]
    resumed = ckpt.load(tmp_path / "resumed" / "checkpoint.pt")["method"]
    for key, value in straight["networks"].items():
        assert torch.equal(value, resumed["networks"][key]), key
    assert straight["ema"]["updates"] == resumed["ema"]["updates"] == 3  # G steps 1, 3, 5
    for key, value in straight["ema"]["module"].items():
        assert torch.equal(value, resumed["ema"]["module"][key]), key


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    stores: list[str], segmenter_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator_losses = SAELoss.generator_losses
    calls = []

    def poisoned_at_third_g_step(self: SAELoss, batch: object) -> dict[str, torch.Tensor]:
        calls.append(1)
        result = generator_losses(self, batch)
        return {k: v * float("nan") for k, v in result.items()} if len(calls) == 3 else result

    monkeypatch.setattr(SAELoss, "generator_losses", poisoned_at_third_g_step)
    out = tmp_path / "run"
    code, output = lcsae(stores, segmenter_run, "steps=6", "checkpoint_every=2", f"out={out}")
    assert code == 1
    text = " ".join(output.split())  # rich wraps long lines
    assert "'G/G_l1' is nan at step 5" in text and "checkpoint" in text  # G steps are 1, 3, 5
    saved = ckpt.load(out / "checkpoint.pt")
    assert saved["step"] == 4
    assert all(torch.isfinite(value).all() for value in saved["method"]["networks"].values())


def test_poisoned_loss_weight_is_caught_before_any_checkpoint(stores: list[str], tmp_path: Path) -> None:
    code, output = invoke("sae", *stores, "preset=tiny", "steps=2", "loss.lambda_l1=inf", f"out={tmp_path}/r")
    assert code == 1
    assert "'G/G_l1' is inf at step 1" in " ".join(output.split())  # the first G step
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_outer_segmenter_errors_are_clear(stores: list[str], segmenter_run: Path, tmp_path: Path) -> None:
    code, output = invoke("lcsae", *stores, "preset=tiny", "steps=1", f"out={tmp_path}/a")
    assert code == 1 and "outer_segmenter=RUN_DIR_OR_CHECKPOINT" in output
    code, output = invoke("lcsae", *stores, "preset=tiny", f"outer_segmenter={tmp_path}/nope", f"out={tmp_path}/b")
    assert code == 1 and "no segmenter checkpoint" in output
    code, output = lcsae(stores, segmenter_run, "steps=2", "loss.outer_class_weights=[1,2]", f"out={tmp_path}/c")
    assert code == 1 and "outer_class_weights has 2 entries" in " ".join(output.split())
    # Without the outer loss no segmenter is needed.
    code, output = invoke("lcsae", *stores, "preset=tiny", "steps=2", "loss.lambda_outer=0", f"out={tmp_path}/d")
    assert code == 0, output
    g_step = records(tmp_path / "d")[1]
    assert "train/G/G_sem_inner" in g_step and "train/G/G_sem_outer" not in g_step


def test_dice_outer_loss_trains(stores: list[str], segmenter_run: Path, tmp_path: Path) -> None:
    code, output = lcsae(stores, segmenter_run, "steps=2", "loss.outer_loss=dice", f"out={tmp_path}/r")
    assert code == 0, output
    assert 0 < records(tmp_path / "r")[1]["train/G/G_sem_outer"] <= 2 * 1.0  # lambda_outer * (1 - soft Dice)


def test_sae_is_lcsae_without_semantic_losses(stores: list[str], tmp_path: Path) -> None:
    assert invoke("sae", *stores, "preset=tiny", "steps=2", f"out={tmp_path}/sae")[0] == 0
    code, output = invoke(
        "lcsae", *stores, "preset=tiny", "steps=2", "loss.lambda_inner=0", "loss.lambda_outer=0", f"out={tmp_path}/lc"
    )
    assert code == 0, output
    sae_losses = losses(tmp_path / "sae")
    assert sae_losses == losses(tmp_path / "lc")
    assert not any("sem" in key for record in sae_losses for key in record)

    code, output = invoke("sae", *stores, "preset=tiny", "loss.lambda_inner=1", f"out={tmp_path}/bad")
    assert code == 1 and "simreal train lcsae" in output


def test_mismatched_crop_and_class_sets_are_refused(stores: list[str], tmp_path: Path) -> None:
    code, output = invoke("sae", *stores, "preset=tiny", "crop=[64,32]", f"out={tmp_path}/a")
    assert code == 1 and "crop must be square" in output
    other = FrameStore.create(tmp_path / "cityscapes", height=64, width=128, class_set="cityscapes19")
    other.append(np.zeros((4, 64, 128, 3), np.uint8), np.zeros((4, 64, 128), np.uint8), [{}] * 4)
    code, output = invoke("sae", stores[0], f"real={other.path}", "preset=tiny", f"out={tmp_path}/b")
    assert code == 1 and "class set" in output
