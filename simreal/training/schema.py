"""The training loop's typed settings, shared by every method (the keys of ``configs/train/harness.yaml``).

A method's ``config_class`` subclasses ``TrainingConfig`` with its own keys; ``register_method`` registers it as
Hydra's structured config ``schema/train/<method>``, so Hydra checks and converts every value once, when it composes
the config. The classes carry types only: the values and their documentation live in the YAML files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING


@dataclass
class RayTrainConfig:
    address: str | None = MISSING
    num_workers: int = MISSING
    use_gpu: bool = MISSING
    cpus_per_worker: float = MISSING
    max_failures: int = MISSING
    storage_path: str | None = MISSING


@dataclass
class TrainingConfig:
    method: str = MISSING
    preset: str = MISSING
    out: str = MISSING
    resume: Any = MISSING  # auto | true | false: Hydra has no str-or-bool type, the loop checks it
    init: str | None = MISSING
    seed: int = MISSING
    steps: int = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    device: str = MISSING
    bf16: bool = MISSING
    channels_last: bool = MISSING
    compile: bool = MISSING
    progress: bool = MISSING
    tensorboard: bool = MISSING
    log_every: int = MISSING
    sample_every: int = MISSING
    eval_every: int = MISSING
    checkpoint_every: int = MISSING
    launcher: str = MISSING
    ray: RayTrainConfig = MISSING


@dataclass
class EMASwitchConfig:
    """An ``ema:`` section of the translators that may keep a moving average of their generator."""

    enabled: bool = MISSING
    decay: float = MISSING
    warmup_steps: int = MISSING
