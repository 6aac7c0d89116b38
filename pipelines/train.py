"""Run a training method: in this process (CPU, the default without a GPU), or as a Ray Train job.

The Ray path starts a ``TorchTrainer`` with one worker per GPU (DDP across GPUs and nodes; Ray sets up the process
group) and runs the same loop in each worker; rank 0 writes the run directory, which must be on storage that every
node sees. A worker failure restarts the workers (``ray.max_failures``), which resume from ``out/checkpoint.pt``.
Ray is imported only on that path.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from simreal.config import ConfigError
from simreal.data.location import absolute_location
from simreal.training.checkpoint import CHECKPOINT_NAME
from simreal.training.config import typed_training_config
from simreal.training.errors import TrainingError
from simreal.training.loop import TrainResult, train
from simreal.training.registry import get_method
from simreal.training.schema import TrainingConfig

LAUNCHERS = ("auto", "local", "ray")


def run_training(cfg: TrainingConfig) -> TrainResult:
    """Train ``cfg.method`` with the launcher that ``cfg.launcher`` selects."""
    if choose_launcher(cfg) == "ray":
        return train_with_ray(cfg)
    return train(cfg)


def choose_launcher(cfg: TrainingConfig) -> str:
    """``auto`` picks Ray when a GPU or a Ray cluster address is available, the local loop otherwise."""
    launcher = cfg.launcher
    if launcher not in LAUNCHERS:
        raise ConfigError(f"launcher must be one of {', '.join(LAUNCHERS)}, got {launcher!r}")
    if launcher != "auto":
        return launcher
    if cfg.ray.address or os.environ.get("RAY_ADDRESS") or torch.cuda.is_available():
        return "ray"
    return "local"


def train_with_ray(cfg: TrainingConfig) -> TrainResult:
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from pipelines.ray_runtime import Demand, ray_session, require_resources, require_shared_folder

    cfg = absolute_paths(cfg)
    run_dir = Path(cfg.out)
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"cfg": OmegaConf.to_container(cfg, resolve=True)},
        scaling_config=ScalingConfig(
            num_workers=cfg.ray.num_workers,
            use_gpu=cfg.ray.use_gpu,
            resources_per_worker={"CPU": cfg.ray.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=run_dir.name,
            storage_path=str(Path(cfg.ray.storage_path or run_dir / "ray").expanduser().resolve()),
            failure_config=FailureConfig(max_failures=cfg.ray.max_failures),
        ),
    )
    sigint_handler = signal.getsignal(signal.SIGINT)
    workers = Demand(
        "Ray Train workers",
        cfg.ray.num_workers,
        cfg.ray.cpus_per_worker,
        1.0 if cfg.ray.use_gpu else 0.0,
        count_key="ray.num_workers",
        cpus_key="ray.cpus_per_worker",
        gpus_off="ray.use_gpu=false",
    )
    with ray_session(cfg.ray.address or None):
        require_resources(workers)
        require_shared_folder(run_dir, "the run directory")
        try:
            trainer.fit()
        except Exception as err:  # Ray wraps worker errors; keep the worker's message, drop Ray's traceback noise
            raise TrainingError(f"Ray training job failed: {err}") from err
        finally:  # Ray Train leaves its own SIGINT handler installed after fit(); Ctrl-C must work as before
            signal.signal(signal.SIGINT, sigint_handler)
    return result_from_run_dir(run_dir)


def result_from_run_dir(run_dir: Path) -> TrainResult:
    """The outcome of a run read back from its files (rank 0 wrote them; the driver holds no state)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    last_train = next((r for r in reversed(records) if any(k.startswith("train/") for k in r)), {})
    last_eval = next((r for r in reversed(records) if any(k.startswith("eval/") for k in r)), {})
    checkpoint = run_dir / CHECKPOINT_NAME
    return TrainResult(
        run_dir=run_dir,
        step=max((int(r["step"]) for r in records), default=0),
        checkpoint=checkpoint if checkpoint.exists() else None,
        losses={k.removeprefix("train/"): v for k, v in last_train.items() if k.startswith("train/")},
        scores={k.removeprefix("eval/"): v for k, v in last_eval.items() if k.startswith("eval/")},
    )


def absolute_paths(cfg: TrainingConfig) -> TrainingConfig:
    """A copy of ``cfg`` whose run directory and dataset paths are absolute (workers run in other directories)."""
    cfg = cfg.copy()
    method_cls = get_method(cfg.method).cls
    for key in ("out", "init", *method_cls.data_roles, *method_cls.path_keys):
        if cfg[key]:
            cfg[key] = str(absolute_location(cfg[key]))
    return cfg


def _ray_worker(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    train(
        typed_training_config(config["cfg"]),
        rank=context.get_world_rank(),
        world_size=context.get_world_size(),
        device=ray.train.torch.get_device(),
    )
