"""The contract between the training loop and a training method.

A *method* (segmenter, LC-SAE, ...) owns its networks, losses and optimizers; the loop owns everything around them
(seeding, data loading, logging, sample grids, checkpoints, resuming, distributed set-up). They meet here:

- ``data_roles``: the names of the datasets the method trains on, e.g. ``("data",)`` for the segmenter or
  ``("sim", "real")`` for LC-SAE. The config holds a store path under each role's name (``data=STORE``); the loop
  asks the method class for a dataset per role (``make_dataset``), builds one endless, resumable loader per role
  and hands every phase a dict batch ``{role: {"image": ..., "label": ..., "index": ...}}`` already on the device.
- ``phases()``: the optimisation phases in the order they run within a step, each with an interval, in the
  stylegan2-ada manner: e.g. ``[Phase("G", 1), Phase("D", 1), Phase("D_reg", 16)]`` runs lazy regularisation
  every 16th step; an ``offset`` staggers phases, e.g. ``[Phase("D", 2, 0), Phase("G", 2, 1)]`` alternates D and G
  steps, each on its own batch (the loop draws a fresh batch every step). ``run_phase(name, batch, step)`` does
  forward, backward and optimizer step for that phase and returns its losses as floats. Losses go through
  ``check_finite`` *before* backward, so a NaN never reaches the weights.
- ``state_dict()`` / ``load_state_dict()``: everything needed to continue bit-for-bit (networks, optimizers,
  schedulers, EMA); the loop adds RNG and data-loader positions. ``load_weights(saved, source)`` takes only the
  network weights of another run's checkpoint (``init=RUN_DIR``), for methods that can start from one.
- ``sample_images(batch)``: ``[(title, uint8 HxWx3), ...]`` drawn into a grid PNG every ``sample_every`` steps,
  ``sample_columns`` images per row (a square-ish grid when None).
- ``evaluate()``: optional validation scores, logged under ``eval/`` every ``eval_every`` steps and at the end.

Methods are constructed as ``cls(cfg, ctx, datasets)`` with the composed config, a ``TrainContext`` that tells them
the device, precision and distributed rank and prepares their networks (device, channels_last, DDP,
torch.compile), and the datasets by role (to read class sets and sizes).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import Dataset

from simreal.training.errors import InitWeightsError, NonFiniteLossError


@dataclass(frozen=True)
class Phase:
    """One optimisation phase; it runs on steps where ``step % interval == offset``."""

    name: str
    interval: int = 1
    offset: int = 0

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ValueError(f"phase {self.name!r}: interval must be >= 1, got {self.interval}")
        if not 0 <= self.offset < self.interval:
            raise ValueError(f"phase {self.name!r}: offset must be in [0, {self.interval}), got {self.offset}")

    def due(self, step: int) -> bool:
        return step % self.interval == self.offset


@dataclass
class TrainContext:
    """Where and how a method runs: device, precision flags and distributed rank."""

    device: torch.device
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA when enabled; a no-op elsewhere (CPU runs stay exact and deterministic)."""
        if self.bf16 and self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def place(self, module: nn.Module) -> nn.Module:
        """Move a network (in place) to the device, in channels_last when configured; no wrappers."""
        module = module.to(self.device)
        if self.channels_last and self.device.type == "cuda":
            module = module.to(memory_format=torch.channels_last)
        return module

    def prepare(self, module: nn.Module) -> nn.Module:
        """Place a trainable network (``place``), then wrap it in DDP and torch.compile as configured.

        Keep a reference to the bare module for ``state_dict`` (the returned wrapper prefixes keys).
        """
        module = self.place(module)
        if self.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            module = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
        if self.compile:
            module = torch.compile(module)
        return module

    def images_to_device(self, images: torch.Tensor) -> torch.Tensor:
        """An image batch in the memory format the networks were prepared with."""
        images = images.to(self.device, non_blocking=True)
        if self.channels_last and self.device.type == "cuda" and images.ndim == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images


class TrainingMethod:
    """Base class of all training methods; see the module docstring for the contract."""

    data_roles: tuple[str, ...] = ("data",)
    #: further config keys that hold filesystem paths (made absolute before launching remote workers)
    path_keys: tuple[str, ...] = ()
    sample_columns: int | None = None

    def __init__(self, cfg: DictConfig, ctx: TrainContext, datasets: Mapping[str, Dataset]) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.datasets = dict(datasets)

    @classmethod
    def make_dataset(cls, cfg: DictConfig, role: str, store_path: str) -> Dataset:
        """The training dataset of one role (dict samples, see ``simreal.data.dataset.FrameDataset``)."""
        raise NotImplementedError

    def phases(self) -> Sequence[Phase]:
        raise NotImplementedError

    def run_phase(self, name: str, batch: Mapping[str, Mapping[str, torch.Tensor]], step: int) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: Mapping) -> None:
        raise NotImplementedError

    def load_weights(self, saved: Mapping, source: str) -> None:
        """Start from the network weights of another run's checkpoint ``saved`` (loaded from ``source``)."""
        raise InitWeightsError(f"init={source}: method {self.cfg.method!r} cannot start from another run's weights")

    def sample_images(self, batch: Mapping[str, Mapping[str, torch.Tensor]]) -> list[tuple[str, np.ndarray]]:
        return []

    def evaluate(self) -> dict[str, float]:
        return {}

    def check_finite(self, losses: Mapping[str, torch.Tensor]) -> None:
        """Raise ``NonFiniteLossError`` naming the first NaN/Inf loss; call before ``backward``.

        In DDP every rank learns whether any rank failed, so all ranks stop together instead of hanging in the
        next collective.
        """
        values = torch.stack([loss.detach().float().reshape(()) for loss in losses.values()])
        bad = (~torch.isfinite(values)).float()
        if self.ctx.distributed:
            torch.distributed.all_reduce(bad)
        if bool(bad.any()):
            index = int(bad.nonzero()[0])
            name = list(losses)[index]
            value = float(values[index])
            raise NonFiniteLossError(name, value if not math.isfinite(value) else float("nan"))


def load_matching_weights(module: nn.Module, state: Mapping[str, torch.Tensor], what: str, source: str) -> None:
    """Load ``state`` into ``module``, refusing missing or unexpected keys and other shapes with their names."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k} {tuple(state[k].shape)} there, {tuple(v.shape)} here"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{label}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shapes", wrong))
        if keys
    ]
    if problems:
        raise InitWeightsError(
            f"init={source}: the {what} does not fit this run's ({'; '.join(problems)}); configure the networks as "
            "that run was (see its config.yaml)"
        )
    module.load_state_dict(state)


def iterate_phases(phases: Sequence[Phase], step: int) -> Iterator[Phase]:
    """The phases due at ``step``, in declaration order."""
    return (phase for phase in phases if phase.due(step))
