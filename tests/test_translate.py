from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from stores import make_procedural_store
from typer.testing import CliRunner

from pipelines.translate import TranslateJob, run_translate
from simreal.cli.main import app
from simreal.data.store import FrameStore, StoreError
from simreal.data.verify import verify_store
from simreal.synthesize import frame_noise_seed
from simreal.training.config import compose_training_config
from simreal.training.errors import RunDirectoryError
from simreal.training.loop import train
from simreal.translate import StyleOptions, TranslationError, load_translator

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("translate")
    sim = make_procedural_store(root / "sim.zarr", "flat", frames=6)
    real = make_procedural_store(root / "real.zarr", "textured", frames=4)
    common = ["preset=tiny", "steps=2", "progress=false"]
    sae = train(compose_training_config("sae", [*common, f"sim={sim}", f"real={real}", f"out={root / 'sae'}"]))
    dpgan = train(compose_training_config("dpgan", [*common, f"real={real}", f"out={root / 'dpgan'}"]))
    return {"root": root, "sim": sim, "real": real, "sae": sae.run_dir, "dpgan": dpgan.run_dir}


def provenance(path: Path) -> list[dict]:
    return FrameStore.open(path).provenance_table()


def test_texture_translation_keeps_labels_and_records_styles(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "t.zarr"
    job = TranslateJob(world["sae"], world["sim"], out, StyleOptions(world["real"], "random"), variants=2,
                       batch_size=4, shard_size=4)  # fmt: skip
    result = run_translate(job)
    assert result.frames == 12 and result.added == 12
    assert verify_store(out).ok
    sim, translated = FrameStore.open(world["sim"]), FrameStore.open(out)
    for j in range(12):
        np.testing.assert_array_equal(translated.label(j), sim.label(j // 2))
    records = provenance(out)
    assert [(p["source_index"], p["variant"]) for p in records] == [(j // 2, j % 2) for j in range(12)]
    assert all(p["method"] == "sae" and p["style_policy"] == "random" for p in records)
    assert {p["style_index"] for p in records} <= set(range(4)) and len({p["style_index"] for p in records}) > 1
    assert [p["noise_seed"] for p in records] == [frame_noise_seed(0, j // 2, j % 2) for j in range(12)]
    assert not np.array_equal(translated.rgb(0), sim.rgb(0))
    recorded = translated.attrs["translate"]
    assert recorded["method"] == "sae" and recorded["checkpoint_hash"] == records[0]["checkpoint"]
    assert recorded["variants"] == 2 and recorded["style"]["policy"] == "random"
    # the same command again adds nothing; other settings cannot continue this store
    assert run_translate(job).added == 0
    with pytest.raises(StoreError, match="seed: 0 there, 1 now"):
        run_translate(replace(job, seed=1))
    # the same seed into a new store gives the same pixels
    again = run_translate(
        TranslateJob(
            world["sae"],
            world["sim"],
            tmp_path / "u.zarr",
            StyleOptions(world["real"], "random"),
            variants=2,
            batch_size=4,
            shard_size=4,
        )
    )
    np.testing.assert_array_equal(FrameStore.open(tmp_path / "u.zarr").array("rgb")[:12],
                                  translated.array("rgb")[:12])  # fmt: skip
    assert again.frames == 12


@pytest.mark.parametrize("policy", ["random", "fixed"])
def test_texture_translation_pixels_do_not_depend_on_batch_size(world: dict[str, Path], policy: str) -> None:
    translator = load_translator(world["sae"], torch.device("cpu"), StyleOptions(world["real"], policy, fixed_index=1))
    for name, param in translator.generator.named_parameters():
        if name.endswith("noise.weight"):
            param.data.fill_(1.0)  # two training steps leave the noise weights near 0: make the noise show
    sim = FrameStore.open(world["sim"])
    jobs = [(0, 0), (0, 1), (3, 0), (5, 1)]
    rgb = np.stack([sim.rgb(index) for index, _ in jobs])
    label = np.stack([sim.label(index) for index, _ in jobs])
    batched, batched_extras = translator.translate(rgb, label, jobs, seed=7)
    singles = [translator.translate(rgb[i : i + 1], label[i : i + 1], jobs[i : i + 1], seed=7) for i in range(4)]
    single = np.concatenate([images for images, _ in singles])
    # Same noise and texture per frame. Batched float32 kernels differ from single-frame ones by ~1e-6, which flips
    # the uint8 rounding of a few pixels by one level (batch-seeded noise changed nearly every pixel).
    difference = np.abs(batched.astype(int) - single.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
    assert batched_extras == [extra for _, extras in singles for extra in extras]
    assert [e["noise_seed"] for e in batched_extras] == [frame_noise_seed(7, i, v) for i, v in jobs]
    if policy == "fixed":  # one texture for all: only the seeded noise tells variants and seeds apart
        assert not np.array_equal(batched[0], batched[1])
        reseeded, _ = translator.translate(rgb, label, jobs, seed=8)
        assert not np.array_equal(reseeded, batched)


@pytest.mark.parametrize("policy", ["fixed", "mean"])
def test_fixed_and_mean_styles_use_one_texture(world: dict[str, Path], tmp_path: Path, policy: str) -> None:
    out = tmp_path / f"{policy}.zarr"
    run_translate(TranslateJob(world["sae"], world["sim"], out, StyleOptions(world["real"], policy, fixed_index=3)))
    records = provenance(out)
    assert {p["style_policy"] for p in records} == {policy}
    assert {p["style_index"] for p in records} == ({3} if policy == "fixed" else {None})


def test_label_to_image_translation_paints_the_labels(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "painted.zarr"
    run_translate(TranslateJob(world["dpgan"], world["sim"], out, variants=2, shard_size=4))
    painted, sim = FrameStore.open(out), FrameStore.open(world["sim"])
    assert len(painted) == 12
    np.testing.assert_array_equal(painted.label(5), sim.label(2))
    records = provenance(out)
    assert records[4]["method"] == "dpgan" and records[4]["noise_seed"] != records[5]["noise_seed"]
    assert not np.array_equal(painted.rgb(4), painted.rgb(5))  # two variants of one label map differ


def test_bad_requests_are_clear(world: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TranslationError, match="--style"):
        run_translate(TranslateJob(world["sae"], world["sim"], tmp_path / "a.zarr"))
    with pytest.raises(RunDirectoryError, match="no checkpoint"):
        run_translate(TranslateJob(tmp_path / "nowhere", world["sim"], tmp_path / "b.zarr"))
    result = CliRunner().invoke(app, ["translate", str(world["sae"]), "--input", str(world["sim"]), "--out",
                                      str(tmp_path / "c.zarr"), "--style", str(world["real"]),
                                      "--style-policy", "median"])  # fmt: skip
    assert result.exit_code == 1 and "random, fixed, mean" in result.output


def test_resume_after_kill(world: dict[str, Path], tmp_path: Path) -> None:
    big = make_procedural_store(tmp_path / "big.zarr", "flat", frames=48)
    out = tmp_path / "killed.zarr"
    args = ["translate", str(world["dpgan"]), "--input", str(big), "--out", str(out), "--shard-size", "2",
            "--batch-size", "2", "--variants", "2"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "simreal.cli.main", *args], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 180
    try:
        while time.time() < deadline:
            if (out / "zarr.json").is_file() and len(FrameStore.open(out)) >= 4:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the translation never committed a shard")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = len(FrameStore.open(out))
    assert verify_store(out).ok
    assert killed_at < 96, "the run finished before it was killed; nothing was resumed"
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = verify_store(out)
    assert report.ok and report.uncommitted == [], "the resumed run left rows written past its commits"
    records = provenance(out)
    assert [(p["source_index"], p["variant"]) for p in records] == [(j // 2, j % 2) for j in range(96)]


def test_a_scorer_gives_every_translated_frame_its_trust_and_export_can_gate_on_it(
    world: dict[str, Path], tmp_path: Path
) -> None:
    from simreal.data.store import TRUST_FIELDS
    from simreal.export import ExportJob, run_export
    from simreal.inference import load_segmenter
    from simreal.metrics.consistency import frame_consistency, segment_images

    common = ["preset=tiny", "steps=2", "progress=false"]
    scorer = train(compose_training_config("segmenter", [*common, f"data={world['real']}", f"out={tmp_path / 'seg'}"]))
    out = tmp_path / "scored.zarr"
    run_translate(TranslateJob(world["dpgan"], world["sim"], out, batch_size=4, scorer=scorer.run_dir))
    store, source = FrameStore.open(out), FrameStore.open(world["sim"])
    assert store.has_trust and store.array("trust").shape[1] == len(TRUST_FIELDS)
    net = load_segmenter(scorer.run_dir)
    n = max(source.class_set.ids) + 1
    rgb, label = store.read_range(0, len(store))
    expected = frame_consistency(segment_images(net, rgb), label, source.evaluable_classes, n)
    on_source = frame_consistency(segment_images(net, source.read_range(0, 6)[0]), label, source.evaluable_classes, n)
    trust = store.array("trust")[: len(store)]
    np.testing.assert_allclose(trust[:, :2], expected, rtol=1e-5)
    np.testing.assert_allclose(trust[:, 2:], on_source, rtol=1e-5)  # the source frame's score: the drop shows
    assert store.provenance(0)["trust"]["miou"] == pytest.approx(float(trust[0, 1]))

    threshold = float(np.median(trust[:, 1]))
    gated = run_export(ExportJob(str(out), tmp_path / "gated", "folder", min_consistency=threshold))
    assert gated.frames == int((trust[:, 1] >= threshold).sum()) < len(store)
    with pytest.raises(StoreError, match="no trust scores to gate on"):
        run_export(ExportJob(str(world["sim"]), tmp_path / "x", "folder", min_consistency=0.5))


def test_the_translators_own_loss_segmenter_cannot_score_it(world: dict[str, Path], tmp_path: Path) -> None:
    common = ["preset=tiny", "steps=2", "progress=false"]
    outer = train(compose_training_config("segmenter", [*common, f"data={world['real']}", f"out={tmp_path / 'o'}"]))
    lcsae = train(
        compose_training_config(
            "lcsae",
            [
                *common,
                f"sim={world['sim']}",
                f"real={world['real']}",
                f"outer_segmenter={outer.run_dir}",
                f"out={tmp_path / 'lc'}",
            ],
        )
    )
    job = TranslateJob(
        lcsae.run_dir, world["sim"], tmp_path / "t.zarr", StyleOptions(world["real"]), scorer=outer.run_dir
    )
    with pytest.raises(TranslationError, match="is the outer_segmenter .* was trained with"):
        run_translate(job)
    assert not (tmp_path / "t.zarr").exists()
