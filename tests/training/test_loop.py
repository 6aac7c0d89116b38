"""``run_phase``, the one optimisation step of every method: gain, frozen networks, NaN check, schedules, EMA."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import torch
from torch import nn

from simreal.training.ema import ExponentialMovingAverage
from simreal.training.errors import NonFiniteLossError, TrainingError
from simreal.training.loop import run_phase
from simreal.training.method import (
    LRSchedule,
    Phase,
    PhaseLosses,
    TrainContext,
    TrainingMethod,
    linear_decay,
)


class TwoNetMethod(TrainingMethod):
    """G maps x to y, D scores y; phase "G" trains G through D, "Dreg" is a lazy penalty on D."""

    def __init__(self, gain: float = 1.0, loss_scale: float = 1.0, ctx: TrainContext | None = None) -> None:
        ctx = ctx or TrainContext(device=torch.device("cpu"))
        super().__init__(cfg=None, ctx=ctx, datasets={})  # type: ignore[arg-type]
        torch.manual_seed(0)
        self.g, self.d = nn.Linear(3, 3), nn.Linear(3, 1)
        self.train_g = ctx.prepare(self.g)  # DDP averages G's gradients, the loop D's
        self.opt_g = torch.optim.SGD(self.g.parameters(), lr=0.1)
        self.opt_d = torch.optim.SGD(self.d.parameters(), lr=0.1)
        self.ema = ExponentialMovingAverage(self.g, decay=0.5)
        self.gain, self.loss_scale = gain, loss_scale
        self.requires_grad_seen: dict[str, bool] = {}

    def phases(self) -> Sequence[Phase]:
        return [
            Phase("G", networks=(self.g,), optimizer=self.opt_g, ema=self.ema),
            Phase("Dreg", 4, networks=(self.d,), optimizer=self.opt_d, gain=self.gain),
        ]

    def compute_losses(self, phase: str, batch: Mapping, step: int) -> Mapping[str, torch.Tensor] | PhaseLosses:
        x = batch["data"]["image"]
        self.requires_grad_seen = {"g": self.g.weight.requires_grad, "d": self.d.weight.requires_grad}
        if phase == "G":
            return PhaseLosses({"adv": self.loss_scale * self.d(self.train_g(x)).mean()}, logs={"step": float(step)})
        return {"penalty": self.d.weight.square().sum() + self.d(x).mean().square()}


BATCH = {"data": {"image": torch.ones(2, 3)}}


def test_a_phase_steps_only_its_networks_and_freezes_the_others_meanwhile() -> None:
    method = TwoNetMethod()
    d_before = method.d.weight.detach().clone()
    g_before = method.g.weight.detach().clone()

    logged = run_phase(method, "G", BATCH, 5)

    assert method.requires_grad_seen == {"g": True, "d": False}
    assert method.d.weight.requires_grad  # restored after the phase
    assert method.d.weight.grad is None and torch.equal(method.d.weight, d_before)
    assert not torch.equal(method.g.weight, g_before)
    assert set(logged) == {"adv", "total", "step"} and logged["step"] == 5.0
    assert logged["total"] == pytest.approx(logged["adv"])


def test_gain_scales_the_gradient_not_the_logged_loss() -> None:
    plain, lazy = TwoNetMethod(gain=1.0), TwoNetMethod(gain=4.0)
    before = plain.d.weight.detach().clone()
    logged_plain = run_phase(plain, "Dreg", BATCH, 0)
    logged_lazy = run_phase(lazy, "Dreg", BATCH, 0)
    assert logged_lazy["penalty"] == pytest.approx(logged_plain["penalty"])
    # SGD: the step is lr * gradient, so the lazy phase moved 4x as far
    torch.testing.assert_close(before - lazy.d.weight, 4 * (before - plain.d.weight))


def test_non_finite_loss_stops_before_backward() -> None:
    method = TwoNetMethod(loss_scale=float("nan"))
    before = method.g.weight.detach().clone()
    with pytest.raises(NonFiniteLossError, match="adv"):
        run_phase(method, "G", BATCH, 0)
    assert method.g.weight.grad is None and torch.equal(method.g.weight, before)
    assert method.d.weight.requires_grad  # the frozen networks are restored on the way out


def test_ema_follows_the_phase_it_is_attached_to() -> None:
    method = TwoNetMethod()
    shadow = method.ema.module.weight.detach().clone()
    run_phase(method, "Dreg", BATCH, 0)
    assert torch.equal(method.ema.module.weight, shadow)
    run_phase(method, "G", BATCH, 0)
    torch.testing.assert_close(method.ema.module.weight, 0.5 * shadow + 0.5 * method.g.weight.detach())


def test_unknown_phase_and_phase_without_optimizer_are_refused() -> None:
    method = TwoNetMethod()
    with pytest.raises(TrainingError, match="no phase 'E'"):
        run_phase(method, "E", BATCH, 0)
    with pytest.raises(TrainingError, match="no optimizer"):
        run_phase(method, Phase("G", networks=(method.g,)), BATCH, 0)


def test_lr_schedule_is_stateless_and_survives_loading_optimizer_state() -> None:
    net = nn.Linear(2, 2)
    optimizer = torch.optim.SGD([{"params": [net.weight], "lr": 0.01}, {"params": [net.bias]}], lr=0.1)
    schedule = LRSchedule(optimizer, linear_decay(total_steps=10, constant_steps=4))
    schedule(2)
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.1]
    schedule(7)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.005, 0.05])
    saved = optimizer.state_dict()  # decayed learning rates, as a checkpoint holds them

    resumed = torch.optim.SGD([{"params": [net.weight], "lr": 0.01}, {"params": [net.bias]}], lr=0.1)
    resumed_schedule = LRSchedule(resumed, linear_decay(total_steps=10, constant_steps=4))
    resumed.load_state_dict(saved)
    resumed_schedule(8)
    assert [g["lr"] for g in resumed.param_groups] == pytest.approx([0.01 / 3, 0.1 / 3])
    resumed_schedule(12)
    assert [g["lr"] for g in resumed.param_groups] == [0.0, 0.0]


def _step_on_rank(rank: int, init_file: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        method = TwoNetMethod(ctx=TrainContext(device=torch.device("cpu"), rank=rank, world_size=2))
        batch = {"data": {"image": torch.full((2, 3), float(rank + 1))}}  # every rank sees other data
        run_phase(method, "G", batch, 0)
        run_phase(method, "Dreg", batch, 0)
        torch.save({"g": method.g.state_dict(), "d": method.d.state_dict()}, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_ranks_step_on_the_mean_gradient(tmp_path: Path) -> None:
    """G is DDP-wrapped (DDP averages), D is not (the loop averages): both end as one process on the mean gradient
    of the two ranks' batches would."""
    torch.multiprocessing.spawn(_step_on_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]

    expected = TwoNetMethod()
    for phase in ("G", "Dreg"):
        grads = []
        for value in (1.0, 2.0):
            expected.opt_g.zero_grad(), expected.opt_d.zero_grad()
            losses = expected.compute_losses(phase, {"data": {"image": torch.full((2, 3), value)}}, 0)
            sum((losses.losses if isinstance(losses, PhaseLosses) else losses).values()).backward()
            net = expected.g if phase == "G" else expected.d
            grads.append([p.grad.clone() for p in net.parameters()])
        with torch.no_grad():
            for param, *rank_grads in zip(net.parameters(), *grads, strict=True):
                param -= 0.1 * sum(rank_grads) / 2
    for name, net in (("g", expected.g), ("d", expected.d)):
        for key, value in net.state_dict().items():
            torch.testing.assert_close(ranks[0][name][key], value)
            torch.testing.assert_close(ranks[1][name][key], value)
