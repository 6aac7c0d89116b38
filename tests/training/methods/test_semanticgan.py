"""The ``semanticgan`` method on tiny configs: the SIPL's frozen segmenter, the lr schedule, learning, inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from simreal.data.store import FrameStore
from simreal.errors import ConfigError
from simreal.inference import LABEL_TO_IMAGE, load_inference
from simreal.training.config import compose_training_config
from simreal.training.loop import run_phase, train
from simreal.training.method import TrainContext
from simreal.training.methods.semanticgan import SIPLSegmenterError
from simreal.training.registry import get_method


def build_method(store: Path, *overrides: str):  # noqa: ANN201
    cfg = compose_training_config("semanticgan", [f"real={store}", "preset=tiny", *overrides])
    cls = get_method("semanticgan").cls
    return cls(cfg, TrainContext(device=torch.device("cpu")), {"real": cls.make_dataset(cfg, "real", str(store))})


def real_batch(method) -> dict:  # noqa: ANN001
    dataset = method.datasets["real"]
    samples = [dataset[i] for i in range(2)]
    return {"real": {key: torch.stack([torch.as_tensor(s[key]) for s in samples]) for key in ("image", "label")}}


def test_sipl_needs_a_segmenter_unless_switched_off(textured_store: Path) -> None:
    with pytest.raises(SIPLSegmenterError, match="outer_segmenter=RUN_DIR_OR_CHECKPOINT.*loss.sipl=0"):
        build_method(textured_store)
    method = build_method(textured_store, "loss.sipl=0")
    assert method.segmenter is None
    assert "sipl" not in run_phase(method, "G", real_batch(method), 0)


def test_a_segmenter_of_another_class_set_is_refused(textured_segmenter: Path, tmp_path: Path) -> None:
    store = FrameStore.create(tmp_path / "c19", height=64, width=64, class_set="cityscapes19")
    store.append(np.zeros((2, 64, 64, 3), np.uint8), np.zeros((2, 64, 64), np.uint8), [{}, {}])
    with pytest.raises(SIPLSegmenterError, match="predicts 16 classes but the store uses 19"):
        build_method(tmp_path / "c19", f"outer_segmenter={textured_segmenter}")


def test_generator_step_trains_through_the_frozen_segmenter(textured_store: Path, textured_segmenter: Path) -> None:
    torch.manual_seed(0)
    method = build_method(textured_store, f"outer_segmenter={textured_segmenter}", "loss.gan=0", "loss.feat=0")
    frozen = [p.detach().clone() for p in method.segmenter.parameters()]
    generator_before = [p.detach().clone() for p in method.generator.parameters()]
    losses = run_phase(method, "G", real_batch(method), 0)
    assert set(losses) == {"gan", "feat", "sipl", "total"} and losses["sipl"] > 0
    # only the SIPL is non-zero here, and it moved the generator
    assert any(not torch.equal(b, p) for b, p in zip(generator_before, method.generator.parameters(), strict=True))
    assert all(p.grad is None for p in method.segmenter.parameters())
    assert all(torch.equal(b, p) for b, p in zip(frozen, method.segmenter.parameters(), strict=True))
    assert not method.segmenter.training


def test_learning_rate_is_constant_for_half_the_steps_then_falls_linearly_to_zero(textured_store: Path) -> None:
    method = build_method(textured_store, "loss.sipl=0", "steps=20")
    batch = real_batch(method)
    for step, factor in ((0, 1.0), (9, 1.0), (10, 1.0), (15, 0.5), (19, 0.1)):
        for phase in method.phases():
            run_phase(method, phase, batch, step)
        assert [g["lr"] for g in method.opt_g.param_groups] == pytest.approx([2e-4 * factor])
        assert [g["lr"] for g in method.opt_d.param_groups] == pytest.approx([2e-4 * factor])


def test_sipl_falls_as_the_generator_learns(textured_store: Path, textured_segmenter: Path, tmp_path: Path) -> None:
    cfg = compose_training_config(
        "semanticgan",
        ["preset=tiny", f"real={textured_store}", f"outer_segmenter={textured_segmenter}", "steps=150", "log_every=10",
         "sample_every=0", "checkpoint_every=1000", "seed=0", f"out={tmp_path}/run"],
    )  # fmt: skip
    records = [json.loads(line) for line in (train(cfg).run_dir / "metrics.jsonl").read_text().splitlines()]
    sipl = [r["train/G/sipl"] for r in records]
    assert len(sipl) == 15
    assert np.mean(sipl[-3:]) < 0.6 * sipl[0], sipl  # measured: 2.78 -> 0.51 (windows of 10 steps)


def test_checkpoint_rebuilds_a_noise_free_label_painter(textured_store: Path, tmp_path: Path) -> None:
    run = train(
        compose_training_config(
            "semanticgan", ["preset=tiny", f"real={textured_store}", "loss.sipl=0", "steps=2", f"out={tmp_path}/run"]
        )
    ).run_dir
    painter = load_inference(run, kind=LABEL_TO_IMAGE)
    assert painter.method == "semanticgan" and painter.z_dim == 0 and painter.size_multiple == 4
    store = FrameStore.open(textured_store)
    labels = torch.as_tensor(np.stack([store.label(0), store.label(1)]))
    images = painter.paint(labels)
    assert images.shape == (2, 3, 64, 128) and float(images.abs().max()) <= 1
    torch.testing.assert_close(painter.paint(labels), images)  # deterministic: no noise


def test_a_resumed_run_repeats_an_uninterrupted_one(
    textured_store: Path, textured_segmenter: Path, tmp_path: Path
) -> None:
    common = [
        "preset=tiny",
        f"real={textured_store}",
        f"outer_segmenter={textured_segmenter}",
        "steps=4",
        "checkpoint_every=2",
    ]
    straight = train(compose_training_config("semanticgan", [*common, f"out={tmp_path}/a"])).run_dir
    train(compose_training_config("semanticgan", [*common, "steps=2", f"out={tmp_path}/b"]))
    resumed = train(compose_training_config("semanticgan", [*common, f"out={tmp_path}/b", "resume=true"])).run_dir
    a, b = (torch.load(run / "checkpoint.pt", weights_only=True)["method"] for run in (straight, resumed))
    for net in ("generator", "discriminator"):
        for key, value in a[net].items():
            torch.testing.assert_close(b[net][key], value, rtol=0, atol=0, msg=f"{net}.{key}")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.groups=abc", r"model\.groups=abc.*could not be converted to Integer"),
        ("optim.decay_start=abc", r"optim\.decay_start=abc.*could not be converted to Float"),
        ("loss.sipl=abc", r"loss\.sipl=abc.*could not be converted to Float"),
        ("model.discriminator=semantic", r"model\.discriminator"),  # only dpgan, oasis and spade can swap theirs
        ("loss.labelmix=5", r"loss\.labelmix"),
    ],
)
def test_wrong_types_and_unknown_keys_are_refused_by_name(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compose_training_config("semanticgan", ["preset=tiny", override])
