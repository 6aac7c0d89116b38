"""``simreal study``: the LC-SAE report's protocol at small scale, one resumable command (see configs/study/).

Stages run the same pipelines as the commands; finished pieces are skipped on rerun (training runs resume from their
checkpoints and stop at once when done, translated stores continue, the benchmark reuses finished runs, the score
is kept once written). Translators train as parallel Ray tasks, one per ``cpus_per_translator`` CPUs (on a cluster:
one per worker). Outputs under ``out/``: the stores and runs, ``scores/`` (the score report), ``bench/`` (the
downstream report), ``results.json``, ``results.md`` and ``samples.png``.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from pipelines.bench import run_benchmark
from pipelines.ray_runtime import Demand, ray_session, require_resources, require_shared_folder, task_error_cause
from pipelines.stages import StageClock, collect_procedural, import_registered, train_run
from pipelines.train import result_from_run_dir
from pipelines.translate import TranslateJob, run_translate
from simreal.benchmark.definition import compose_bench_config
from simreal.data.store import FrameStore
from simreal.errors import SimrealError
from simreal.inference import load_segmenter
from simreal.progress import console, progress_bar
from simreal.report import image_grid, save_png
from simreal.scoring import ScoreJob, run_score
from simreal.study import (
    StudyConfig,
    Translator,
    check_targets,
    consistency_table,
    inverse_frequency_weights,
    results_markdown,
    selected_translators,
)
from simreal.training.config import compose_training_config
from simreal.translate import StyleOptions

SAMPLE_ROWS = 4


@dataclass
class StudyResult:
    out: Path
    results: dict[str, Any]
    markdown: Path


@dataclass(frozen=True)
class StudyStores:
    sim_train: Path
    sim_test: Path
    real_train: Path
    eval: Path


def run_study(cfg: StudyConfig, command: str = "simreal study") -> StudyResult:
    out = Path(cfg.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    translators = selected_translators(cfg.translators.runs, cfg.translators.only)
    names = {t.name for t in translators}
    for key, name in (("best", cfg.best), ("best_cut", cfg.best_cut)):
        if name is not None and name not in names:
            raise SimrealError(f"{key}={name} is not one of the translators: {', '.join(t.name for t in translators)}")
    variants = {t.name: cfg.translate.styles if t.family == "sae" else 1 for t in translators}
    clock = StageClock(out)
    with ray_session(cfg.address):
        with clock.stage("1/7 simulator frames: train, and a held-out test set (other seed, other towns)"):
            stores = _stores(cfg, out)
        with clock.stage("2/7 segmenters on real train only: outer (MobileNetV2) and held-out scorer"):
            common = [f"data={stores.real_train}", f"val={stores.eval}", f"seed={cfg.seed}"]
            outer = train_run("segmenter", [*cfg.segmenters.outer, *common, f"out={out / 'segmenter-outer'}"])
            heldout = train_run("segmenter", [*cfg.segmenters.heldout, *common, f"out={out / 'segmenter-heldout'}"])
        with clock.stage(f"3/7 {len(translators)} translators on one budget", key="3/7 translators on one budget"):
            runs = _train_translators(cfg, out, translators, stores, outer)
        with clock.stage("4/7 translate the held-out sim frames (with real styles for the swapping autoencoders)"):
            translated = {
                name: _translate(
                    cfg, run, stores.sim_test, out / "translated" / f"{name}.zarr", variants[name], stores.real_train
                )
                for name, run in runs.items()
            }
        with clock.stage("5/7 score: held-out scorer and FID/KID against real"):
            scores = _score(cfg, out, stores, translated, heldout)
        with clock.stage("6/7 downstream: segmenters retrained on sim, translated and real mixes"):
            downstream = {
                name: _translate(
                    cfg, runs[name], stores.sim_train, out / "downstream" / f"{name}.zarr", 1, stores.real_train
                )
                for name in ("sae", cfg.best, cfg.best_cut)
                if name in runs
            }
            bench = _bench(cfg, out, stores, downstream)
        with clock.stage("7/7 results"):
            grid = _samples(out, stores.sim_test, translated, cfg.best, cfg.best_cut, heldout)
        # written after the last stage closed, so the page's budget includes the sample grid's time too
        results = _results(cfg, command, out, stores, translators, scores, bench, heldout, clock)
        markdown = out / "results.md"
        (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
        markdown.write_text(results_markdown(results, grid.name if grid else None))
    console.print(f"study: {markdown}")
    return StudyResult(out, results, markdown)


def _stores(cfg: StudyConfig, out: Path) -> StudyStores:
    size, seed = cfg.size, cfg.seed
    sim_train = Path(cfg.sim.train) if cfg.sim.train else out / "sim_train.zarr"
    sim_test = Path(cfg.sim.test) if cfg.sim.test else out / "sim_test.zarr"
    if not cfg.sim.train:
        collect_procedural(sim_train, size, "flat", cfg.sim.frames, seed, cfg.sim.towns)
    if not cfg.sim.test:
        collect_procedural(sim_test, size, "flat", cfg.sim.test_frames, seed + 1, cfg.sim.test_towns)
    real_train = Path(cfg.real.train) if cfg.real.train else out / "real_train.zarr"
    eval_store = Path(cfg.eval) if cfg.eval else out / "eval.zarr"
    dataset = cfg.real.dataset
    if not cfg.real.train:
        if dataset:
            import_registered(dataset, cfg.real.train_split, real_train, size)
        else:  # the procedural world's second look stands in for a real dataset
            collect_procedural(real_train, size, "textured", cfg.sim.frames, seed + 1000)
    if not cfg.eval:
        if dataset:
            import_registered(dataset, cfg.real.eval_split, eval_store, size)
        else:
            collect_procedural(eval_store, size, "textured", cfg.sim.test_frames, seed + 2000)
    return StudyStores(sim_train, sim_test, real_train, eval_store)


def _train_translator(method: str, overrides: list[str], threads: int) -> str:
    """One translator's training run, in a Ray task (the local loop: the task already has its CPUs or GPU)."""
    torch.set_num_threads(threads)
    cfg = compose_training_config(method, [*overrides, "launcher=local", "progress=false"])
    from simreal.training.loop import train

    return str(train(cfg).run_dir)


def _train_translators(
    cfg: StudyConfig, out: Path, translators: list[Translator], stores: StudyStores, outer: Path
) -> dict[str, Path]:
    import ray

    weights = None
    if any(t.class_weights for t in translators):
        weights = inverse_frequency_weights(stores.real_train)
    cpus = cfg.cpus_per_translator
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    require_resources(
        Demand("translator runs", len(translators), cpus, gpus, together=False, cpus_key="cpus_per_translator")
    )
    require_shared_folder(out / "translators", "the study folder")
    task = ray.remote(_train_translator).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
    pending = {}
    for translator in translators:
        overrides = [
            *cfg.translators.common, f"sim={stores.sim_train}", f"real={stores.real_train}",
            f"out={out / 'translators' / translator.name}", f"seed={cfg.seed}", *translator.overrides(outer, weights),
        ]  # fmt: skip
        pending[task.remote(translator.method, overrides, cpus)] = translator.name
    runs: dict[str, Path] = {}
    with progress_bar("translators", total=len(pending), unit="runs") as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(ready[0])
            try:
                runs[name] = Path(ray.get(ready[0]))
            except Exception as err:
                for ref in pending:
                    ray.cancel(ref)
                raise task_error_cause(err, f"training translator {name}") from None
            bar.advance()
            bar.info(f"done: {name}")
    return {t.name: runs[t.name] for t in translators}


def _translate(cfg: StudyConfig, run: Path, source: Path, target: Path, variants: int, style: Path) -> Path:
    """``variants`` translations of every frame of ``source``, each with a random style frame of ``style``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    run_translate(
        TranslateJob(
            checkpoint=run, input=source, out=target, style=StyleOptions(store=style), variants=variants,
            seed=cfg.seed, batch_size=cfg.translate.batch_size,
        )
    )  # fmt: skip
    return target


def _score(
    cfg: StudyConfig, out: Path, stores: StudyStores, translated: dict[str, Path], heldout: Path
) -> dict[str, Any]:
    scores_file = out / "scores" / "scores.json"
    wanted = {str(path.resolve()) for path in (stores.sim_test, *translated.values())}
    if scores_file.is_file():  # kept while it scored exactly these stores (a rerun may add translators)
        kept = json.loads(scores_file.read_text())
        if {str(Path(store["path"]).resolve()) for store in kept["stores"]} == wanted:
            return kept
    return run_score(
        ScoreJob(
            stores=[stores.sim_test, *translated.values()], reference=stores.real_train, segmenter=heldout,
            out=out / "scores", fid=cfg.score.fid, batch_size=cfg.score.batch_size,
        )
    )  # fmt: skip


def _bench(cfg: StudyConfig, out: Path, stores: StudyStores, downstream: dict[str, Path]) -> dict[str, Any]:
    roles = {"sim": stores.sim_train, "real": stores.real_train, "translated_sae": downstream.get("sae"),
             "translated": downstream.get(cfg.best),
             "translated_lccut": downstream.get(cfg.best_cut) if cfg.best_cut else None}  # fmt: skip
    overrides = [
        *(f"{role}={path}" for role, path in roles.items() if path is not None), f"eval={stores.eval}",
        f"seeds={cfg.bench.seeds}", f"only=[{','.join(cfg.bench.mixes)}]", f"out={out / 'bench'}",
        *cfg.bench.overrides,
    ]  # fmt: skip
    return run_benchmark(compose_bench_config("default", overrides)).results


def _samples(
    out: Path, sim_test: Path, translated: dict[str, Path], best: str, best_cut: str | None, heldout: Path
) -> Path | None:
    """sim | SAE | LC-SAE (best) | [LC-CUT (best_cut)] | label | the scorer's prediction on the last translation,
    for a few test frames."""
    if "sae" not in translated or best not in translated:
        return None
    sim = FrameStore.open(sim_test)
    columns = [("SAE", "sae"), (f"LC-SAE ({best})", best)]
    if best_cut in translated:
        columns.append((f"LC-CUT ({best_cut})", best_cut))
    opened = [FrameStore.open(translated[name]) for _, name in columns]
    scorer = load_segmenter(heldout)
    rows = []
    # frames spread over the test set: consecutive frames of one stream look alike
    for index in np.unique(np.linspace(0, len(sim) - 1, SAMPLE_ROWS).round().astype(int)).tolist():
        images = [store.rgb(index * (len(store) // len(sim))) for store in opened]
        with torch.no_grad():
            image = torch.from_numpy(images[-1]).permute(2, 0, 1)[None].float() / 127.5 - 1
            prediction = scorer(image).argmax(1)[0].numpy().astype(np.uint8)
        rows.append([sim.rgb(index), *images, sim.class_set.colorize(sim.label(index)),
                     sim.class_set.colorize(prediction)])  # fmt: skip
    path = out / "samples.png"
    titles = ["sim", *(title for title, _ in columns), "label", f"scorer on {columns[-1][0].split(' ')[0]}"]
    save_png(image_grid(rows, titles), path)
    return path


def _results(
    cfg: StudyConfig, command: str, out: Path, stores: StudyStores, translators: list[Translator],
    scores: dict[str, Any], bench: dict[str, Any], heldout: Path, clock: StageClock,
) -> dict[str, Any]:  # fmt: skip
    sim_path = stores.sim_test.resolve()
    sim_name = next(store["name"] for store in scores["stores"] if Path(store["path"]).resolve() == sim_path)
    named = {**scores, "stores": [_named(store, sim_name) for store in scores["stores"]]}
    rows = consistency_table(translators, named, sim_name)
    heldout_scores = result_from_run_dir(heldout).scores  # its last validation
    setup = {
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"),
        "wall_minutes": clock.total_minutes,  # summed over every invocation on this output folder
        "stages": {name: sec / 60 for name, sec in clock.seconds.items()},
        "real": cfg.real.dataset or "procedural textured look",
        "eval": str(stores.eval),
        "eval_frames": len(FrameStore.open(stores.eval)),
        "sim_frames": len(FrameStore.open(stores.sim_train)),
        "test_frames": len(FrameStore.open(stores.sim_test)),
        "styles": cfg.translate.styles,
        "translated_images": len(FrameStore.open(stores.sim_test)) * cfg.translate.styles,
        "heldout_encoder": compose_training_config("segmenter", cfg.segmenters.heldout).model.encoder_name
        or "resnet50",
        "heldout_miou": heldout_scores.get("miou"),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "notes": [
            "Training curves: `translators/<name>/metrics.jsonl` and TensorBoard logs; sample grids under each run.",
        ],
    }
    budget = bench.get("budget", {})
    return {
        "setup": setup,
        "consistency": rows,
        "targets": check_targets(rows, translators, heldout_scores.get("miou"), bench.get("mixes", [])),
        "downstream": bench.get("mixes", []),
        "bench_budget": ", ".join(f"{key} {value}" for key, value in budget.items()),
    }


def _named(store: dict[str, Any], sim_name: str) -> dict[str, Any]:
    """Score entries named by translator (the translated store's file stem) or as the raw sim frames."""
    name = store["name"] if store["name"] == sim_name else Path(store["path"]).stem
    return {**store, "name": name}
