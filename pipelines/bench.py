"""``simreal bench``: every (mix, seed) run of a benchmark definition as a Ray task, then the report.

Each task trains the segmenter recipe on its mix with the shared training loop and scores it on the evaluation
store (``simreal.benchmark.run.execute_run``). Tasks take one GPU each when the Ray cluster has GPUs and CPUs only
otherwise (asking for a GPU that does not exist would leave them pending forever). Finished runs are read back
instead of trained again, so an interrupted benchmark continues where it stopped. Output in ``out/``:
``results.json``, ``report.md``, ``report.html``, ``miou.png`` and ``runs/<mix>/seed<k>/`` (the training runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines.ray_runtime import Demand, ray_session, require_resources, require_shared_folder, task_error_cause
from simreal.benchmark.aggregate import best_mix, summarize
from simreal.benchmark.chart import draw_score_chart
from simreal.benchmark.config import BenchConfig
from simreal.benchmark.definition import (
    Mix,
    RunSpec,
    check_stores,
    plan_runs,
    planned_mixes,
    resolve_encoder_weights,
    training_config,
)
from simreal.benchmark.report import write_html, write_markdown
from simreal.benchmark.run import BenchRunError, execute_run, finished_result, write_json_atomic
from simreal.data.store import FrameStore
from simreal.errors import SimrealError
from simreal.progress import progress_bar

QUESTION = (
    "Does training a real-world segmenter on translated frames make it better? Every mix trains the same network "
    "with the same budget; only the training data differs."
)
CHART_FILE = "miou.png"
WEIGHTS_DECISION_FILE = "encoder_weights.json"  # pretrained or from scratch, decided once per out/


@dataclass
class BenchOutcome:
    out_dir: Path
    results: dict[str, Any]
    trained: int  # runs trained by this invocation
    reused: int  # finished runs found on disk


def run_benchmark(cfg: BenchConfig, benchmark: str = "default") -> BenchOutcome:
    """Run (or continue) the benchmark ``cfg`` and write its results and report under ``cfg.out``."""
    mixes, notes = planned_mixes(cfg)
    out_dir = Path(cfg.out).expanduser().resolve()
    eval_store = check_stores(cfg, mixes, list(training_config(cfg, 0, out_dir, None).crop))
    encoder_weights, pretrained = resolve_encoder_weights(cfg, out_dir / WEIGHTS_DECISION_FILE)
    specs = plan_runs(cfg, mixes, encoder_weights)
    records = [record for record in (finished_result(spec) for spec in specs) if record is not None]
    done = {(r["mix"], r["seed"]) for r in records}
    pending = [spec for spec in specs if (spec.mix.name, spec.seed) not in done]
    reused = len(records)
    if pending:
        records += _run_with_ray(cfg, pending, mixes, records, len(specs))
    results = assemble_results(cfg, benchmark, mixes, records, notes, specs[0], eval_store, pretrained)
    write_outputs(results, out_dir)
    return BenchOutcome(out_dir=out_dir, results=results, trained=len(pending), reused=reused)


def _run_with_ray(
    cfg: BenchConfig, pending: list[RunSpec], mixes: list[Mix], finished: list[dict], total: int
) -> list[dict[str, Any]]:
    import ray

    records: list[dict[str, Any]] = []
    with ray_session(cfg.ray.address, cfg.ray.num_cpus):
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = max(1, min(cfg.ray.cpus_per_run, int(resources.get("CPU", 1))))
        gpus_per_run = cfg.ray.gpus_per_run if gpus else 0.0
        require_resources(
            Demand(
                "bench runs",
                len(pending),
                cpus,
                gpus_per_run,
                together=False,
                cpus_key="ray.cpus_per_run",
                gpus_key="ray.gpus_per_run",
            )
        )
        require_shared_folder(Path(cfg.out).expanduser(), "the bench folder")
        task = ray.remote(execute_run).options(num_cpus=cpus, num_gpus=gpus_per_run, max_retries=0)
        threads = None if gpus else cpus
        refs = {task.remote(spec, threads): spec for spec in pending}
        with progress_bar("bench", total=total, completed=total - len(pending), unit="runs") as bar:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                spec = refs.pop(ready[0])
                try:
                    records.append(ray.get(ready[0]))
                except Exception as err:
                    for ref in refs:
                        ray.cancel(ref)
                    cause = task_error_cause(err, f"training run {spec.mix.name} seed {spec.seed}")
                    if not isinstance(cause, SimrealError):
                        raise cause from None  # a bug: keep Ray's error with the remote traceback
                    raise BenchRunError(f"run {spec.mix.name} seed {spec.seed} failed: {cause}") from cause
                bar.advance()
                best = best_mix(summarize(mixes, finished + records, {}))
                if best is not None:
                    bar.info(f"best: {best['label']} mIoU {100 * best['miou']['mean']:.1f}")
    return records


def assemble_results(
    cfg: BenchConfig,
    benchmark: str,
    mixes: list[Mix],
    records: list[dict[str, Any]],
    notes: list[str],
    example: RunSpec,
    eval_store: FrameStore,
    pretrained: str,
) -> dict[str, Any]:
    """Everything the report shows, as one JSON-able dict (written to ``results.json``)."""
    train = example.train_config
    baselines = {short: name for short, name in cfg.baselines.items() if name in {m.name for m in mixes}}
    classes = [eval_store.class_set.name_of(c) for c in eval_store.evaluable_classes]
    order = {mix.name: i for i, mix in enumerate(mixes)}
    return {
        "benchmark": benchmark,
        "question": QUESTION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "evaluation": {"store": example.eval_store, "frames": len(eval_store), "classes": classes},
        "budget": {
            "architecture": train["model"]["architecture"],
            "encoder": train["model"]["encoder_name"] or _default_encoder(train["model"]["architecture"]),
            "output_stride": train["model"]["output_stride"],
            "steps": train["steps"],
            "batch_size": train["batch_size"],
            "crop": train["crop"],
            "hflip": train["hflip"],
            **{key: train["optim"][key] for key in ("lr", "momentum", "weight_decay", "encoder_lr_mult", "poly_power")},
        },
        "pretrained": pretrained,
        "seeds": list(range(cfg.seeds)),
        "hardware": sorted({record["device"] for record in records}),
        "train_seconds": sum(record["train_seconds"] for record in records),
        "baselines": baselines,
        "skipped": notes,
        "mixes": summarize(mixes, records, baselines),
        "runs": sorted(records, key=lambda r: (order[r["mix"]], r["seed"])),
    }


def write_outputs(results: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "results.json", results)
    draw_score_chart(results["mixes"], out_dir / CHART_FILE, baselines=list(results["baselines"].values()))
    write_markdown(results, out_dir / "report.md", chart=CHART_FILE)
    write_html(results, out_dir / "report.html", chart=CHART_FILE)


def _default_encoder(architecture: str) -> str:
    from simreal.models.segmenter import ARCHITECTURES

    return str(ARCHITECTURES[architecture]["encoder_name"])
