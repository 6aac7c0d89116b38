"""The method contract: what a training method provides, for training and for inference.

A *method* (segmenter, LC-SAE, OASIS, ...) owns its networks, losses, phases and inference model; the loop
(``simreal.training.loop``) owns everything around them: seeding, data loading, the optimisation step, logging,
sample grids, checkpoints, resuming and distributed set-up. ``docs/adding-a-method.md`` walks through it.

Training
- ``data_roles``: the names of the datasets the method trains on, e.g. ``("data",)`` or ``("sim", "real")``; the
  config holds a store path per role (``data=STORE``); ``make_dataset(cfg, role, path)`` builds each, and every
  phase gets a dict batch ``{role: {"image": ..., "label": ..., "index": ...}}``.
- ``phases()``: ``Phase(name, interval, offset, networks=..., optimizer=..., gain=..., schedule=..., ema=...)``
  in the order they run within a step; a phase runs on steps where ``step % interval == offset``
  (stylegan2-ada's phases: ``[Phase("D", 2, 0, ...), Phase("G", 2, 1, ...)]`` alternates D and G, each on its own
  batch; a lazy regulariser runs every n-th D step with ``gain=n``).
- ``compute_losses(phase, batch, step)``: the phase's named, already weighted loss tensors (a mapping, or
  ``PhaseLosses`` to add logged-only values). The loop does the rest, see ``simreal.training.loop.run_phase``:
  schedule, zero_grad, the other phases' networks frozen, the NaN/Inf check of every term and their sum
  *before* backward (all ranks agree), backward of ``gain * sum``, gradient averaging across ranks (for networks
  that ``TrainContext.prepare`` did not wrap in DDP), the optimizer step and the EMA update.
- ``state_dict()`` / ``load_state_dict()``: everything needed to continue bit-for-bit (networks, optimizers, EMA)
  and to rebuild the inference model; the loop adds RNG and data-loader positions. ``load_weights(saved, source)``
  takes the network weights of another run's checkpoint (``init=RUN_DIR``).
- ``sample_images(batch)`` -> ``[(title, uint8 HxWx3), ...]`` for sample grids; ``evaluate()`` -> validation
  scores. Both optional.

Inference
- ``inference_kind``: ``"label_to_image"``, ``"structure_texture"`` or ``"segmenter"`` (``simreal.inference``);
  ``""`` for a method that has none.
- ``build_inference(saved, device)``: the inference model rebuilt from a checkpoint of this method (the dict the
  loop saved: ``{"method_name", "method": state_dict(), ...}``) without datasets or downloads. ``translate``,
  ``synthesize``, ``score``, ``bench`` and ``checkpoints import`` reach it through ``simreal.inference``.

Configuration
- ``config_class``: the dataclass (a ``simreal.training.schema.TrainingConfig`` subclass, types only) that types
  ``configs/train/<name>.yaml``; Hydra validates every value against it when it composes the config.

Methods are constructed as ``cls(cfg, ctx, datasets)`` with the composed config (a DictConfig typed by
``config_class``), a ``TrainContext`` (device, precision, rank; it places and wraps networks) and the datasets by
role. One registry line (``@register_method``) and one config file (``configs/train/<name>.yaml``, its presets in
``configs/train/<name>/preset/``) make the method known.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from simreal.device import autocast
from simreal.training.errors import InitWeightsError, TrainingError
from simreal.training.schema import TrainingConfig

if TYPE_CHECKING:
    from simreal.inference import InferenceModel
    from simreal.labels import LabelTable
    from simreal.training.ema import ExponentialMovingAverage


@dataclass(frozen=True, eq=False)
class Phase:
    """One optimisation phase; it runs on steps where ``step % interval == offset``.

    - ``networks``: the bare networks this phase trains; while it runs, the loop turns ``requires_grad`` off for
      the networks of the other phases (and back on after), so no gradient reaches them; frozen helpers such as a
      loss network are never touched.
    - ``optimizer``: stepped after the phase's backward; the loop zeroes its gradients before the phase.
    - ``gain``: the sum of the losses is multiplied by it before backward: lazy regularisation run every n-th
      regular step passes ``gain=n`` (stylegan2-ada); logged values stay unscaled.
    - ``schedule``: called with the step before the phase, e.g. ``LRSchedule(optimizer, poly_decay(...))``.
    - ``ema``: updated from its source network after the optimizer step.
    """

    name: str
    interval: int = 1
    offset: int = 0
    networks: tuple[nn.Module, ...] = field(default=(), kw_only=True)
    optimizer: torch.optim.Optimizer | None = field(default=None, kw_only=True)
    gain: float = field(default=1.0, kw_only=True)
    schedule: Callable[[int], None] | None = field(default=None, kw_only=True)
    ema: ExponentialMovingAverage | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ValueError(f"phase {self.name!r}: interval must be >= 1, got {self.interval}")
        if not 0 <= self.offset < self.interval:
            raise ValueError(f"phase {self.name!r}: offset must be in [0, {self.interval}), got {self.offset}")

    def due(self, step: int) -> bool:
        return step % self.interval == self.offset


@dataclass
class PhaseLosses:
    """What ``compute_losses`` may return instead of a plain mapping: the losses plus values only logged."""

    losses: Mapping[str, torch.Tensor]
    logs: Mapping[str, float] = field(default_factory=dict)


class LRSchedule:
    """Sets every parameter group's learning rate to its initial value times ``factor(step)`` (stateless, so
    resuming needs nothing saved). Make it right after the optimizer, before any state is loaded into it."""

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Callable[[int], float]) -> None:
        self.optimizer = optimizer
        self.factor = factor
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]

    def __call__(self, step: int) -> None:
        factor = self.factor(step)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base_lr * factor


def poly_decay(total_steps: int, power: float) -> Callable[[int], float]:
    """``(1 - step / total) ** power``, the 'poly' schedule; 0 from ``total_steps`` on."""
    return lambda step: max(0.0, 1.0 - step / max(total_steps, 1)) ** power


def linear_decay(total_steps: int, constant_steps: int) -> Callable[[int], float]:
    """1 for ``constant_steps``, then linearly down to 0 at ``total_steps`` (pix2pixHD's schedule)."""
    decay_steps = max(total_steps - constant_steps, 1)
    return lambda step: min(1.0, max(0.0, 1.0 - (step - constant_steps) / decay_steps))


@dataclass
class TrainContext:
    """Where and how a method runs: device, precision flags and distributed rank."""

    device: torch.device
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    rank: int = 0
    world_size: int = 1
    #: ids of the parameters whose gradients DDP averages (networks ``prepare`` wrapped); the loop averages the rest
    ddp_parameters: set[int] = field(default_factory=set, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA when enabled; a no-op elsewhere (CPU runs stay exact and deterministic)."""
        return autocast(self.device, self.bf16)

    def place(self, module: nn.Module) -> nn.Module:
        """Move a network (in place) to the device, in channels_last when configured; no wrappers."""
        module = module.to(self.device)
        if self.channels_last and self.device.type == "cuda":
            module = module.to(memory_format=torch.channels_last)
        return module

    def prepare(self, module: nn.Module) -> nn.Module:
        """Place a trainable network (``place``), then wrap it in DDP and torch.compile as configured.

        Keep a reference to the bare module for ``state_dict`` and ``Phase.networks`` (the wrapper prefixes keys).
        """
        module = self.place(module)
        if self.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_parameters.update(id(p) for p in module.parameters())
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


Batch = Mapping[str, Mapping[str, torch.Tensor]]


class TrainingMethod:
    """Base class of all methods; see the module docstring for the contract."""

    data_roles: ClassVar[tuple[str, ...]] = ("data",)
    #: further config keys that hold filesystem paths (made absolute before launching remote workers)
    path_keys: ClassVar[tuple[str, ...]] = ()
    sample_columns: ClassVar[int | None] = None
    #: "label_to_image", "structure_texture", "segmenter" (see ``simreal.inference``), or "" for none
    inference_kind: ClassVar[str] = ""
    #: the dataclass typing ``configs/train/<name>.yaml`` (its data roles and ``path_keys`` included)
    config_class: ClassVar[type[TrainingConfig]] = TrainingConfig

    def __init__(self, cfg: TrainingConfig, ctx: TrainContext, datasets: Mapping[str, Dataset]) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.datasets = dict(datasets)

    @classmethod
    def make_dataset(cls, cfg: TrainingConfig, role: str, store_path: str) -> Dataset:
        """The training dataset of one role (dict samples, see ``simreal.data.dataset.FrameDataset``)."""
        raise NotImplementedError

    def phases(self) -> Sequence[Phase]:
        """The phases in the order they run within a step; may be called more than once, so make optimizers and
        ``LRSchedule`` s in ``__init__``."""
        raise NotImplementedError

    def compute_losses(self, phase: str, batch: Batch, step: int) -> Mapping[str, torch.Tensor] | PhaseLosses:
        """The named, weighted loss tensors of ``phase`` on ``batch``; their sum is backpropagated by the loop.

        An empty mapping skips the phase (e.g. a regulariser whose weights are all 0).
        """
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: Mapping) -> None:
        raise NotImplementedError

    def load_weights(self, saved: Mapping, source: str) -> None:
        """Start from the network weights of another run's checkpoint ``saved`` (loaded from ``source``)."""
        raise InitWeightsError(f"init={source}: method {self.cfg.method!r} cannot start from another run's weights")

    def sample_images(self, batch: Batch) -> list[tuple[str, np.ndarray]]:
        return []

    def evaluate(self) -> dict[str, float]:
        return {}

    def shared_class_set(self, first: str = "sim", second: str = "real") -> LabelTable:
        """The class set the stores of two data roles share; a sim/real pair labelled differently is refused."""
        a, b = self.datasets[first].class_set, self.datasets[second].class_set
        if a.name != b.name:
            raise TrainingError(
                f"{first} store uses class set {a.name!r} but {second} store uses {b.name!r}; "
                "relabel one of them so both share a class set"
            )
        return a

    def load_frozen_segmenter(self, error: type[Exception], without: str, num_classes: int) -> nn.Module:
        """The segmenter of the run named by ``outer_segmenter``, on the device, in eval mode and frozen.

        The semantic losses of LC-SAE, SemanticGAN and the semantic-guided cGAN all read one. ``error`` is the
        method's error class; ``without`` ends the message when the key is missing (what needs it, and how to do
        without it); the segmenter must predict ``num_classes`` classes.
        """
        from simreal.errors import SimrealError
        from simreal.inference import load_segmenter

        path = self.cfg.get("outer_segmenter")
        if not path:
            raise error(
                "pass outer_segmenter=RUN_DIR_OR_CHECKPOINT, a segmenter trained on the real domain (e.g. from "
                f"`simreal train segmenter preset=outer`); {without}"
            )
        try:
            segmenter = load_segmenter(str(path))
        except SimrealError as err:
            raise error(f"outer_segmenter={path}: {err}") from err
        if segmenter.spec.num_classes != num_classes:
            raise error(
                f"outer_segmenter={path} predicts {segmenter.spec.num_classes} classes but the store uses "
                f"{num_classes}; train the segmenter on the same class set"
            )
        return self.ctx.place(segmenter).eval().requires_grad_(False)

    @classmethod
    def build_inference(cls, saved: Mapping, device: torch.device) -> InferenceModel:
        """The inference model of a checkpoint ``saved`` of this method, on ``device``, in eval mode."""
        raise NotImplementedError(f"{cls.__name__} has no inference model")


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
