"""`simreal synthesize` end to end on a tiny checkpoint: variants, labels copied, provenance, resume, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from simreal.cli.synthesize import synthesize
from simreal.data.store import FrameStore
from simreal.synthesize import SynthesisError, load_synthesizer, open_synthesis_job
from simreal.training.config import compose_training_config
from simreal.training.loop import train

app = typer.Typer()
app.command()(synthesize)


def make_store(path: Path, frames: int, *, source_label: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 5, (frames, 64, 64)).astype(np.uint8)
    label[:, :8] = 255
    store = FrameStore.create(path, height=64, width=64, with_source_label=source_label, shard_size=4)
    rgb = rng.integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8)
    store.append(
        rgb, label, [{"town": f"T{i}"} for i in range(frames)], source_label=label + 1 if source_label else None
    )
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synth")
    real = make_store(root / "real", 4)
    runs = {}
    for method in ("dpgan", "spade"):
        cfg = compose_training_config(method, [f"real={real}", "preset=tiny", "steps=1", f"out={root / method}"])
        runs[method] = train(cfg).run_dir
    return runs


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_synthesize_paints_variants_copies_labels_and_resumes(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    labels = make_store(tmp_path / "labels", 3, source_label=True, seed=1)
    out = tmp_path / "out"
    run = checkpoints["dpgan"]
    code, output = invoke(run, "--labels", labels, "--out", out, "--variants", 2, "--seed", 5, "--batch-size", 4)
    assert code == 0, output
    painted, source = FrameStore.open(out), FrameStore.open(labels)
    assert len(painted) == 6 and painted.class_set.name == "shared16" and painted.has_source_label
    for j in range(6):
        assert np.array_equal(painted.label(j), source.label(j // 2))
        assert np.array_equal(painted.array("source_label")[j], source.array("source_label")[j // 2])
        record = painted.provenance(j)
        assert (record["source_index"], record["variant"], record["seed"]) == (j // 2, j % 2, 5)
        assert record["method"] == "dpgan" and len(record["checkpoint"]) == 16
        assert record["source_provenance"] == {"town": f"T{j // 2}"}
    assert not np.array_equal(painted.rgb(0), painted.rgb(1))  # variants differ

    # interrupted after one batch, then rerun: the result equals the uninterrupted run (and batch size is free)
    resumed = tmp_path / "resumed"
    job = open_synthesis_job(load_synthesizer(run), labels, resumed, variants=2, seed=5)

    def stop(count: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        job.run(batch_size=4, on_batch=stop)
    assert len(FrameStore.open(resumed)) == 4
    code, output = invoke(
        run / "checkpoint.pt", "--labels", labels, "--out", resumed, "--variants", 2, "--seed", 5, "-b", 3
    )
    assert code == 0, output
    assert "painted 2 frame(s), 6 in total" in output
    again = FrameStore.open(resumed)
    for j in range(6):
        assert np.array_equal(again.rgb(j), painted.rgb(j))
    code, output = invoke(run, "--labels", labels, "--out", resumed, "--variants", 2, "--seed", 5)
    assert code == 0 and "already painted" in output

    code, output = invoke(run, "--labels", labels, "--out", resumed, "--variants", 2, "--seed", 6)
    assert code == 1 and "not made by this job" in output


def test_paint_uses_the_seed_or_the_given_noise(checkpoints: dict[str, Path]) -> None:
    synth = load_synthesizer(checkpoints["dpgan"])
    labels = torch.randint(0, 16, (2, 64, 64))
    a, b, c = synth.paint(labels, noise_seed=1), synth.paint(labels, noise_seed=1), synth.paint(labels, noise_seed=2)
    assert a.shape == (2, 3, 64, 64) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(synth.paint(labels, z=synth.noise(2, 1)), a)
    with pytest.raises(SynthesisError, match="not both"):
        synth.paint(labels, noise_seed=1, z=synth.noise(2, 1))


def test_synthesize_refuses_bad_inputs(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    labels = make_store(tmp_path / "labels", 1)
    code, output = invoke(checkpoints["spade"], "--labels", labels, "--out", tmp_path / "o", "--variants", 3)
    assert code == 1 and "variants would be identical" in output
    code, output = invoke(checkpoints["spade"], "--labels", labels, "--out", tmp_path / "o")
    assert code == 0, output
    odd = FrameStore.create(tmp_path / "odd", height=48, width=64)
    odd.append(np.zeros((1, 48, 64, 3), np.uint8), np.zeros((1, 48, 64), np.uint8), [{}])
    code, output = invoke(checkpoints["dpgan"], "--labels", tmp_path / "odd", "--out", tmp_path / "o2")
    assert code == 1 and "divisible by 32" in output
    code, output = invoke(tmp_path, "--labels", labels, "--out", tmp_path / "o3")
    assert code == 1 and "no checkpoint" in output
    other = FrameStore.create(tmp_path / "city", height=64, width=64, class_set="cityscapes19")
    other.append(np.zeros((1, 64, 64, 3), np.uint8), np.zeros((1, 64, 64), np.uint8), [{}])
    with pytest.raises(SynthesisError, match="cityscapes19"):
        open_synthesis_job(load_synthesizer(checkpoints["dpgan"]), tmp_path / "city", tmp_path / "o4")
