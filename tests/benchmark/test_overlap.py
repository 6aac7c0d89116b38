"""``simreal bench`` refuses an evaluation store that is, or shares frames with, a training store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_bench_pipeline import HEIGHT, WIDTH, make_store

from simreal.benchmark.definition import BenchConfigError, check_stores, compose_bench_config, planned_mixes
from simreal.benchmark.overlap import find_overlaps
from simreal.data.store import FrameStore


def copy_frames(source: Path, path: Path, indices: list[int], provenance: list[dict] | None = None) -> Path:
    store = FrameStore.open(source)
    out = FrameStore.create(path, height=HEIGHT, width=WIDTH, attrs={"evaluable_classes": [0, 2]})
    rgb = np.stack([store.rgb(i) for i in indices])
    label = np.stack([store.label(i) for i in indices])
    out.append(rgb, label, provenance or [{"copied": i} for i in indices])
    return path


def check(tmp_path: Path, **roles: Path) -> None:
    eval_store = roles.pop("eval")
    cfg = compose_bench_config(
        "default", [*(f"{role}={path}" for role, path in roles.items()), f"eval={eval_store}", f"out={tmp_path}/b"]
    )
    mixes, _ = planned_mixes(cfg)
    check_stores(cfg, mixes, [16, 16])


def test_disjoint_stores_pass(tmp_path: Path) -> None:
    sim, real = make_store(tmp_path / "sim", 3, 1, 60), make_store(tmp_path / "real", 3, 2, 100)
    check(tmp_path, sim=sim, real=real, eval=make_store(tmp_path / "eval", 3, 3, 100))


def test_the_evaluation_store_as_a_training_store_is_refused(tmp_path: Path) -> None:
    real = make_store(tmp_path / "real", 3, 2, 100)
    with pytest.raises(BenchConfigError, match=r"real=.*real is the evaluation store itself"):
        check(tmp_path, real=real, eval=real)


def test_a_copied_frame_is_found_by_its_pixels(tmp_path: Path) -> None:
    real = make_store(tmp_path / "real", 4, 2, 100)
    eval_store = copy_frames(real, tmp_path / "eval", [3, 0])  # same pixels, new provenance
    with pytest.raises(BenchConfigError, match=r"shares 2 frame\(s\) with the evaluation store"):
        check(tmp_path, real=real, eval=eval_store)


def test_frames_imported_from_the_same_files_overlap(tmp_path: Path) -> None:
    real = make_store(tmp_path / "real", 2, 2, 100)
    files = [{"image": str(tmp_path / f"img{i}.png")} for i in range(2)]
    train = copy_frames(real, tmp_path / "train", [0, 1], files)
    other_pixels = make_store(tmp_path / "other", 2, 5, 100)
    eval_store = copy_frames(other_pixels, tmp_path / "eval", [0], [{"image": str(tmp_path / "sub/../img1.png")}])
    (overlap,) = find_overlaps(eval_store, {"real": train})
    assert overlap.frames == 1 and overlap.example == (1, 0)


def test_a_translated_store_made_from_the_evaluation_frames_overlaps(tmp_path: Path) -> None:
    eval_store = make_store(tmp_path / "eval", 3, 3, 100)
    repainted = make_store(tmp_path / "paint", 3, 9, 10)  # other pixels, provenance points at the eval frames
    translated = copy_frames(
        repainted, tmp_path / "translated", [0, 1], [{"source_store": "eval", "source_index": i} for i in (2, 1)]
    )
    (overlap,) = find_overlaps(eval_store, {"translated": translated, "sim": make_store(tmp_path / "sim", 2, 1, 60)})
    assert overlap.role == "translated" and overlap.frames == 2 and overlap.example == (0, 2)
