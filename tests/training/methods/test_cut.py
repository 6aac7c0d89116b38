"""lccut / cut / fastcut: the identity start, PatchNCE learns, the label loss reaches the generator, the baselines'
settings and refusals, resuming, and translation through the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from stores import make_procedural_store

from simreal.data.store import FrameStore
from simreal.training.config import compose_training_config
from simreal.training.loop import train
from simreal.training.method import TrainContext
from simreal.training.methods.cut import CUTError, LCCUTMethod
from simreal.translate import load_translator


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_procedural_store(tmp_path_factory.mktemp("sim") / "store.zarr", "flat", frames=16)


def cut_config(method: str, sim: Path, real: Path, out: Path, *extra: str):
    return compose_training_config(
        method, ["preset=tiny", f"sim={sim}", f"real={real}", "device=cpu", f"out={out}", "seed=0", *extra]
    )


def build(cfg) -> LCCUTMethod:
    datasets = {role: LCCUTMethod.make_dataset(cfg, role, cfg[role]) for role in LCCUTMethod.data_roles}
    return LCCUTMethod(cfg, TrainContext(torch.device("cpu")), datasets)


def batch_of(store: Path, count: int = 2) -> dict:
    frames = FrameStore.open(store)
    rgb, label = frames.read_range(0, count)
    image = torch.from_numpy(rgb[:, :32, :32].copy()).permute(0, 3, 1, 2).float() / 127.5 - 1
    return {"image": image, "label": torch.from_numpy(label[:, :32, :32].astype(np.int64)), "index": list(range(count))}


def curve(run_dir: Path, key: str) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in records if key in r]


def test_translation_at_step_zero_is_the_input(sim_store: Path, textured_store: Path, tmp_path: Path) -> None:
    run = train(cut_config("cut", sim_store, textured_store, tmp_path / "run", "steps=0", "checkpoint_every=1"))
    translator = load_translator(run.checkpoint, torch.device("cpu"))
    rgb, label = FrameStore.open(sim_store).read_range(0, 3)
    images, _ = translator.translate(rgb, label, [(0, 0), (1, 0), (2, 0)], seed=0)
    np.testing.assert_array_equal(images, rgb)  # exactly the raw frames, so it scores as they do


def test_patch_nce_falls_and_the_start_was_the_identity(
    sim_store: Path, textured_store: Path, textured_segmenter: Path, tmp_path: Path
) -> None:
    cfg = cut_config(
        "lccut", sim_store, textured_store, tmp_path / "run", f"outer_segmenter={textured_segmenter}",
        "steps=300", "log_every=10", "checkpoint_every=1000", "sample_every=0",
    )  # fmt: skip
    nce = curve(train(cfg).run_dir, "train/G/nce")
    assert len(nce) == 30
    assert np.mean(nce[-5:]) < 0.7 * np.mean(nce[:2]), nce  # measured: 29.0 -> 14.4 (lambda_NCE 10 included)


def test_the_label_loss_reaches_the_generator_and_only_when_weighted(
    sim_store: Path, textured_store: Path, textured_segmenter: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    extra = [f"outer_segmenter={textured_segmenter}", "loss.lambda_gan=0", "loss.lambda_nce=0"]
    batch = {"sim": batch_of(sim_store), "real": batch_of(textured_store)}
    norms = {}
    for weight in (1.0, 0.0):
        method = build(cut_config("lccut", sim_store, textured_store, tmp_path / "run", *extra,
                                  f"loss.lambda_outer={weight}"))  # fmt: skip
        # one step first, so the zero-initialised head lets gradients through to the rest of the generator
        torch.nn.init.normal_(method.generator.head.weight, std=0.01)
        losses = method.compute_losses("G", batch, 0)
        sum(losses.values()).backward()
        stem = method.generator.model[1].weight.grad
        norms[weight] = 0.0 if stem is None else float(stem.norm())
        assert ("label" in losses) == (weight > 0)
    assert norms[1.0] > 0 and norms[0.0] == 0.0


def test_baselines_are_cuts_and_fastcuts_settings_and_refuse_the_label_loss(
    sim_store: Path, textured_store: Path, tmp_path: Path
) -> None:
    cut = cut_config("cut", sim_store, textured_store, tmp_path / "a")
    fast = cut_config("fastcut", sim_store, textured_store, tmp_path / "b")
    assert (cut.loss.lambda_nce, cut.loss.nce_idt, cut.loss.flip_equivariance) == (1.0, True, False)
    assert (fast.loss.lambda_nce, fast.loss.nce_idt, fast.loss.flip_equivariance) == (10.0, False, True)
    assert cut.loss.lambda_outer == fast.loss.lambda_outer == 0.0
    with pytest.raises(CUTError, match="use `simreal train lccut`"):
        train(cut_config("fastcut", sim_store, textured_store, tmp_path / "c", "loss.lambda_outer=1"))


def test_lccut_without_a_segmenter_says_what_to_pass(sim_store: Path, textured_store: Path, tmp_path: Path) -> None:
    with pytest.raises(CUTError, match="outer_segmenter=RUN_DIR_OR_CHECKPOINT"):
        train(cut_config("lccut", sim_store, textured_store, tmp_path / "run"))


@pytest.mark.parametrize("discriminator", ["patch", "semantic"])
def test_resume_continues_bit_for_bit(
    sim_store: Path, textured_store: Path, tmp_path: Path, discriminator: str
) -> None:
    extra = ["steps=6", "checkpoint_every=3", "model.noise_channels=2", f"model.discriminator={discriminator}",
             "ema.enabled=true"]  # fmt: skip
    whole = train(cut_config("fastcut", sim_store, textured_store, tmp_path / "whole", *extra))
    train(cut_config("fastcut", sim_store, textured_store, tmp_path / "split", *extra[1:], "steps=3"))
    resumed = train(cut_config("fastcut", sim_store, textured_store, tmp_path / "split", *extra))
    a, b = torch.load(whole.checkpoint, weights_only=True), torch.load(resumed.checkpoint, weights_only=True)
    for key, value in a["method"]["generator"].items():
        torch.testing.assert_close(b["method"]["generator"][key], value, msg=key)


def test_translation_reads_labels_and_noise_per_frame(sim_store: Path, textured_store: Path, tmp_path: Path) -> None:
    run = train(cut_config("fastcut", sim_store, textured_store, tmp_path / "run", "steps=4", "model.noise_channels=2"))
    translator = load_translator(run.checkpoint, torch.device("cpu"))
    rgb, label = FrameStore.open(sim_store).read_range(0, 2)
    one, prov = translator.translate(rgb, label, [(0, 0), (1, 0)], seed=3)
    alone, _ = translator.translate(rgb[1:], label[1:], [(1, 0)], seed=3)
    other, _ = translator.translate(rgb, label, [(0, 1), (1, 1)], seed=3)
    np.testing.assert_array_equal(one[1], alone[0])  # a frame's noise depends on the frame, not its batch
    assert not np.array_equal(one, other)  # another variant, other noise
    assert all("noise_seed" in p for p in prov)
