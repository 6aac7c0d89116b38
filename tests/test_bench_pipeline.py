"""``simreal bench`` end to end on tiny stores: one row per mix, reproducible seeds, resumable reruns, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipelines.bench import run_benchmark
from simreal.benchmark.definition import compose_bench_config, plan_runs, planned_mixes, resolve_encoder_weights
from simreal.benchmark.run import BenchRunError, execute_run, finished_result
from simreal.cli.bench import bench
from simreal.data.store import FrameStore

HEIGHT, WIDTH = 32, 64


def make_store(path: Path, frames: int, seed: int, tint: int) -> Path:
    """Road below a horizon, building above; the road is reddish, by ``tint`` (sim and real differ in look)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 120, (frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    label = np.full((frames, HEIGHT, WIDTH), 2, np.uint8)
    for i, horizon in enumerate(rng.integers(10, 22, frames)):
        label[i, horizon:] = 0
        rgb[i, horizon:, :, 0] += np.uint8(tint)
    store = FrameStore.create(path, height=HEIGHT, width=WIDTH, attrs={"evaluable_classes": [0, 2]})
    store.append(rgb, label, [{"i": i} for i in range(frames)])
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench-stores")
    return {
        "sim": make_store(root / "sim", 4, seed=1, tint=60),
        "real": make_store(root / "real", 4, seed=2, tint=100),
        "eval": make_store(root / "eval", 3, seed=3, tint=100),
    }


def overrides(stores: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        f"sim={stores['sim']}",
        f"real={stores['real']}",
        f"eval={stores['eval']}",
        "preset=tiny",
        "seeds=2",
        "segmenter.overrides.steps=3",
        f"out={out}",
        *extra,
    ]


def test_benchmark_reports_each_mix_and_reruns_skip_finished_runs(
    ray_local: None, stores: dict[str, Path], tmp_path: Path
) -> None:
    cfg = compose_bench_config("default", overrides(stores, tmp_path / "bench"))
    outcome = run_benchmark(cfg)
    assert (outcome.trained, outcome.reused) == (4, 0)
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert [mix["name"] for mix in results["mixes"]] == ["sim_only", "real_only"]  # one row per mix that ran
    assert all(mix["seeds"] == [0, 1] for mix in results["mixes"])
    assert len(results["runs"]) == 4 and results["budget"]["steps"] == 3
    assert results["pretrained"].startswith("no") and results["hardware"][0].startswith("CPU")
    assert any(note.startswith("lcsae") and "translated=STORE" in note for note in results["skipped"])
    sim, real = results["mixes"]
    assert sim["gains"]["sim"]["mean"] == 0.0 and real["gains"]["real"]["mean"] == 0.0
    assert set(sim["per_class_iou"]) == {"road", "building"}
    report = (tmp_path / "bench" / "report.md").read_text()
    assert "| sim only | sim 100% | 2 |" in report and "| real only | real 100% | 2 |" in report
    assert "Pretrained encoder weights: no" in report and "3 steps, batch 4, crop 32x32" in report
    assert "<td>real only</td>" in (tmp_path / "bench" / "report.html").read_text()
    chart = Image.open(tmp_path / "bench" / "miou.png")
    assert chart.width > 300 and chart.height > 100

    results_before = {p: p.stat().st_mtime_ns for p in (tmp_path / "bench" / "runs").rglob("result.json")}
    rerun = run_benchmark(cfg)
    assert (rerun.trained, rerun.reused) == (0, 4)
    assert {p: p.stat().st_mtime_ns for p in results_before} == results_before
    assert rerun.results["mixes"] == outcome.results["mixes"]


def test_a_fixed_seed_reproduces_the_same_scores_on_cpu(stores: dict[str, Path], tmp_path: Path) -> None:
    records = []
    for out in ("a", "b"):
        cfg = compose_bench_config("default", overrides(stores, tmp_path / out, "only=[real_only]", "seeds=1"))
        spec = plan_runs(cfg, planned_mixes(cfg)[0], None)[0]
        records.append(execute_run(spec, threads=1))
    assert records[0]["scores"] == records[1]["scores"] and records[0]["final_loss"] == records[1]["final_loss"]
    assert records[0]["scores"]["miou"] is not None


def test_a_finished_run_with_other_settings_is_refused(stores: dict[str, Path], tmp_path: Path) -> None:
    cfg = compose_bench_config("default", overrides(stores, tmp_path, "only=[sim_only]", "seeds=1"))
    spec = plan_runs(cfg, planned_mixes(cfg)[0], None)[0]
    Path(spec.run_dir).mkdir(parents=True)
    (Path(spec.run_dir) / "result.json").write_text(json.dumps({"fingerprint": "other"}))
    with pytest.raises(BenchRunError, match="other settings"):
        finished_result(spec)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sim=S"], "pass eval=STORE"),
        (["eval=E"], "no mix can run"),
        (["sim=S", "eval=E", "only=[nope]"], "unknown mixes"),
        (["sim=S", "eval=E", "preset=huge"], "unknown preset"),
        (["sim=S", "eval=E", "seedz=2"], "seedz"),
    ],
)
def test_bad_command_lines_give_one_clear_error(
    args: list[str], message: str, stores: dict[str, Path], tmp_path: Path
) -> None:
    args = [a.replace("=S", f"={stores['sim']}").replace("=E", f"={stores['eval']}") for a in args]
    import typer

    app = typer.Typer()
    app.command()(bench)
    result = CliRunner().invoke(app, ["default", *args, f"out={tmp_path}"])
    assert result.exit_code == 1, result.output
    assert message in result.output


def test_every_mix_gets_the_same_recipe_and_budget(stores: dict[str, Path], tmp_path: Path) -> None:
    roles = [f"{role}={stores[role]}" for role in ("sim", "real", "eval")]
    cfg = compose_bench_config("default", [*roles, f"out={tmp_path}"])
    mixes, _ = planned_mixes(cfg)
    specs = plan_runs(cfg, mixes, None)
    assert len(specs) == 2 * 3  # default: 3 seeds
    varying = ("out", "data", "seed")
    recipes = [{k: v for k, v in spec.train_config.items() if k not in varying} for spec in specs]
    assert all(recipe == recipes[0] for recipe in recipes)
    assert recipes[0]["model"]["architecture"] == "heldout" and recipes[0]["steps"] == 10000
    assert specs[0].train_config["data"] == str(Path(specs[0].run_dir) / "mix.yaml")
    assert len({spec.fingerprint for spec in specs}) == len(specs)


def test_offline_weights_fall_back_to_scratch_once_per_out_dir(
    stores: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simreal.models.segmenter as segmenter_models

    attempts = []

    def offline(*args: object, **kwargs: object) -> None:
        attempts.append(kwargs["encoder_weights"])
        raise segmenter_models.WeightsUnavailableError("offline") from OSError("no network")

    monkeypatch.setattr(segmenter_models, "build_segmenter", offline)
    cfg = compose_bench_config("default", [f"sim={stores['sim']}", f"out={tmp_path}"])
    decision = tmp_path / "encoder_weights.json"
    for _ in range(2):
        weights, note = resolve_encoder_weights(cfg, decision)
        assert weights is None and note.startswith("no: imagenet") and "OSError" in note
    assert attempts == ["imagenet"]  # the rerun reused the recorded decision
