"""Exponential moving average of a network's weights, for methods that sample from an averaged generator."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from simreal.errors import ConfigError


class ExponentialMovingAverage:
    """Keeps ``shadow = decay * shadow + (1 - decay) * weights`` after every ``update``.

    ``warmup_steps`` ramps the decay from 0 so the average does not carry the random initialisation for long.
    Buffers (e.g. BatchNorm statistics) are copied, not averaged. The shadow network is in eval mode and never
    requires gradients; use ``ema.module`` for sampling. The shadow is a copy made at construction, on the device
    the network is on then: place the network on its training device first (``TrainContext.place``). ``update()``
    without an argument averages the network it was made from (what ``Phase(ema=...)`` does after the step).
    """

    def __init__(self, module: nn.Module, decay: float = 0.999, warmup_steps: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup_steps = warmup_steps
        self.updates = 0
        self.source = _unwrap(module)
        self.module = copy.deepcopy(self.source).eval().requires_grad_(False)

    def current_decay(self) -> float:
        if self.warmup_steps <= 0:
            return self.decay
        return min(self.decay, (1 + self.updates) / (self.warmup_steps + self.updates + 1))

    @torch.no_grad()
    def update(self, module: nn.Module | None = None) -> None:
        decay = self.current_decay()
        source = self.source if module is None else _unwrap(module)
        for shadow, live in zip(self.module.parameters(), source.parameters(), strict=True):
            shadow.lerp_(live.detach().to(shadow.dtype), 1.0 - decay)
        for shadow, live in zip(self.module.buffers(), source.buffers(), strict=True):
            shadow.copy_(live)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: Mapping) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def _unwrap(module: nn.Module) -> nn.Module:
    """The bare network inside DDP / torch.compile wrappers."""
    module = getattr(module, "_orig_mod", module)
    return getattr(module, "module", module) if isinstance(module, nn.parallel.DistributedDataParallel) else module
