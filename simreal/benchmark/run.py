"""One benchmark run: train the segmenter recipe on a mix (the shared training loop), score it, record it.

A finished run leaves ``result.json`` in its run directory, written last and atomically; a rerun finds it and
skips the run, provided it was made with the same settings (its fingerprint). A run stopped half way resumes
from its training checkpoint (the loop's ``resume=auto``).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from simreal.benchmark.definition import RunSpec
from simreal.data.mix import write_mix_file
from simreal.errors import BenchError
from simreal.metrics.consistency import evaluate_on_store

RESULT_FILE = "result.json"


class BenchRunError(BenchError):
    """A run that cannot be carried out or reused as it stands."""


def finished_result(spec: RunSpec) -> dict[str, Any] | None:
    """The record of a finished run, or None; a record made with other settings is refused, not overwritten."""
    path = Path(spec.run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise BenchRunError(
            f"{path} is unreadable ({err}); delete it to run {spec.mix.name} seed {spec.seed} again"
        ) from err
    if record.get("fingerprint") != spec.fingerprint:
        raise BenchRunError(
            f"{spec.run_dir} holds a run made with other settings (budget, stores, seed or evaluation store); "
            "choose another out= or delete that folder"
        )
    return record


def execute_run(spec: RunSpec, threads: int | None = None) -> dict[str, Any]:
    """Train and score one run (or return its finished record); writes ``result.json`` and returns it."""
    from simreal.inference import load_segmenter
    from simreal.training.config import typed_training_config
    from simreal.training.loop import train

    done = finished_result(spec)
    if done is not None:
        return done
    if threads:
        torch.set_num_threads(threads)
    run_dir = Path(spec.run_dir)
    write_mix_file(run_dir / "mix.yaml", spec.mix_parts)
    cfg = typed_training_config(spec.train_config)
    start = time.perf_counter()
    result = train(cfg)
    train_seconds = time.perf_counter() - start
    if result.step < cfg.steps:
        raise BenchRunError(f"{spec.mix.name} seed {spec.seed} stopped at step {result.step} of {cfg.steps}")
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.device != "cpu" else "cpu")
    net = load_segmenter(run_dir, device)
    scores = evaluate_on_store(
        net, spec.eval_store, net.spec.num_classes, batch_size=cfg.eval_batch_size, device=device
    )
    record = {
        "mix": spec.mix.name,
        "seed": spec.seed,
        "fingerprint": spec.fingerprint,
        "scores": scores,
        "steps": result.step,
        "final_loss": result.losses.get("seg/ce"),
        "train_seconds": round(train_seconds, 2),
        "device": describe_device(device),
    }
    write_json_atomic(run_dir / RESULT_FILE, record)
    return record


def describe_device(device: torch.device) -> str:
    """A one-line name of the hardware a run used, for the report."""
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return f"CPU: {_cpu_model()} ({torch.get_num_threads()} torch threads)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json_atomic(path: Path, content: dict[str, Any]) -> None:
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(content, indent=2), encoding="utf-8")
    os.replace(temporary, path)
