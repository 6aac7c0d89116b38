"""The semguided training method: jitter-and-crop, the task segmenter, learning, painting with its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from simreal.training.config import compose_training_config
from simreal.training.loop import train
from simreal.training.methods.semguided import TaskSegmenterError, jitter_and_crop


def semguided_config(real_store: Path, out: Path, *extra: str):
    return compose_training_config(
        "semguided", ["preset=tiny", f"real={real_store}", "device=cpu", f"out={out}", "seed=0", *extra]
    )


def test_jitter_keeps_the_size_and_labels_aligned_with_their_pixels() -> None:
    labels = torch.randint(0, 4, (2, 8, 12)).repeat_interleave(8, 1).repeat_interleave(8, 2)  # 64x96, 8px blocks
    images = labels[:, None].float().expand(2, 3, 64, 96) / 4
    jittered, jittered_labels = jitter_and_crop(images, labels, 286 / 256, torch.Generator().manual_seed(0))
    assert jittered.shape == images.shape and jittered_labels.shape == labels.shape
    assert not torch.equal(jittered_labels, labels)  # moved
    # away from block edges (where bilinear blends neighbours) every pixel shows its label's value
    exact = (jittered * 4 - jittered_labels[:, None]).abs() < 1e-4
    assert exact.float().mean() > 0.7
    same, same_labels = jitter_and_crop(images, labels, 1.0, torch.Generator())
    assert same is images and same_labels is labels


def test_without_a_task_segmenter_the_run_stops_and_says_what_to_pass(textured_store: Path, tmp_path: Path) -> None:
    with pytest.raises(TaskSegmenterError, match="outer_segmenter=RUN_DIR_OR_CHECKPOINT"):
        train(semguided_config(textured_store, tmp_path / "run"))


def test_a_segmenter_of_other_classes_is_refused(textured_store: Path, tmp_path: Path) -> None:
    from simreal.models.segmenter import build_segmenter, save_segmenter

    other = save_segmenter(build_segmenter("tiny", num_classes=5), tmp_path / "seg5.pt")
    with pytest.raises(TaskSegmenterError, match="predicts 5 classes"):
        train(semguided_config(textured_store, tmp_path / "run", f"outer_segmenter={other}"))


def test_the_frozen_segmenter_recognises_more_of_what_the_generator_paints(
    textured_store: Path, textured_segmenter: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    train(semguided_config(textured_store, run, f"outer_segmenter={textured_segmenter}", "steps=60", "eval_every=1",
                           "eval_frames=8", "log_every=10", "model.g_channels=8", "batch_size=4"))  # fmt: skip
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    semantic = [r["train/G/semantic"] for r in records if "train/G/semantic" in r]
    accuracy = [r["eval/task_accuracy"] for r in records if "eval/task_accuracy" in r]
    assert np.mean(semantic[-2:]) < 0.7 * semantic[0], semantic
    assert np.mean(accuracy[-5:]) > accuracy[0] + 0.2, accuracy[::10]


def test_synthesize_and_translate_paint_with_its_checkpoint(
    textured_store: Path, textured_segmenter: Path, tmp_path: Path
) -> None:
    from simreal.data.store import FrameStore
    from simreal.synthesize import load_synthesizer, open_synthesis_job
    from simreal.translate import load_translator

    run = tmp_path / "run"
    train(semguided_config(textured_store, run, f"outer_segmenter={textured_segmenter}", "steps=2"))
    synthesizer = load_synthesizer(run)
    assert not synthesizer.stochastic
    job = open_synthesis_job(synthesizer, textured_store, tmp_path / "painted.zarr")
    assert job.run(batch_size=4) == 16
    painted = FrameStore.open(tmp_path / "painted.zarr")
    source = FrameStore.open(textured_store)
    assert len(painted) == 16 and np.array_equal(painted.label(3), source.label(3))
    assert painted.rgb(3).shape == (64, 128, 3) and painted.rgb(3).std() > 0
    translator = load_translator(run, torch.device("cpu"))
    images, provenance = translator.translate(source.array("rgb")[:2], source.array("label")[:2], [(0, 0), (1, 0)], 0)
    assert np.array_equal(images[1], painted.rgb(1))  # one painting per label map, no noise
    assert provenance == [{"noise_seed": None}] * 2


@pytest.mark.parametrize("method", ["dpgan", "oasis", "spade"])
def test_the_per_class_discriminator_drops_into_the_other_label_to_image_methods(
    method: str, textured_store: Path, tmp_path: Path
) -> None:
    from simreal.data.store import FrameStore
    from simreal.synthesize import load_synthesizer

    run = tmp_path / "run"
    overrides = ["preset=tiny", f"real={textured_store}", "steps=2", "device=cpu", f"out={run}"]
    overrides.append("model.discriminator=semantic")
    result = train(compose_training_config(method, overrides))
    assert {"G/adv", "D/gan"} <= set(result.losses), sorted(result.losses)
    assert set(result.losses) == {"G/adv", "G/total", "D/gan", "D/total"}  # no labelmix, feat, patch, align
    assert all(np.isfinite(v) for v in result.losses.values())
    saved = torch.load(run / "checkpoint.pt", weights_only=True)["method"]["discriminator"]
    convs = [v for k, v in saved.items() if k.endswith("weight") and v.ndim == 4]
    assert convs[0].shape[1] == 17 + 3 and convs[-1].shape[0] == 16  # one-hot shared16 + RGB in, a map per class
    labels = FrameStore.open(textured_store).label(0)[None, :64, :64]
    images, _ = load_synthesizer(run).paint_frames(labels, [(0, 0)], seed=0)
    assert images.shape == (1, 64, 64, 3)


def test_an_unknown_discriminator_choice_is_refused(textured_store: Path, tmp_path: Path) -> None:
    from simreal.errors import ConfigError

    overrides = ["preset=tiny", f"real={textured_store}", "device=cpu", f"out={tmp_path}", "model.discriminator=global"]
    with pytest.raises(ConfigError, match="own or semantic"):
        train(compose_training_config("oasis", overrides))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("jitter=abc", r"jitter=abc.*could not be converted to Float"),
        ("eval_frames=abc", r"eval_frames=abc.*could not be converted to Integer"),
        ("model.dropout=abc", r"model\.dropout=abc.*could not be converted to Float"),
        ("model.discriminator=semantic", r"model\.discriminator"),  # its own discriminator is the per-class one
        ("optim.decay_start=0.5", r"optim\.decay_start"),
    ],
)
def test_wrong_types_and_unknown_keys_are_refused_by_name(override: str, message: str) -> None:
    from simreal.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        compose_training_config("semguided", ["preset=tiny", override])
