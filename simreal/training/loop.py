"""The training loop shared by every method: seeding, loaders, the optimisation step, logging, samples,
checkpoints, resume. ``run_phase`` is the one optimisation step of every method (see ``simreal.training.method``).

Run directory layout (``cfg.out``)::

    config.yaml        resolved config of the latest (re)start
    metrics.jsonl      one JSON record per logged step: train/<phase>/<loss> means (over the steps that ran the
                       phase in the logging window), it_s, eval/<score>
    tensorboard/       the same scalars plus sample grids
    samples/step_XXXXXXX.png
    checkpoint.pt      method state + RNG states + loader positions, replaced atomically

Rerunning on a run directory that holds a checkpoint continues from it (``resume=auto``, the default);
``resume=true`` insists on a checkpoint and ``resume=false`` refuses to start over one. ``init=RUN_DIR`` starts a
new run from the network weights of another run (not its optimizer state or step), e.g. one made by
``simreal checkpoints import``; a run that resumes ignores it.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import Dataset

from simreal.device import pick_device
from simreal.progress import progress_bar
from simreal.training import checkpoint as ckpt
from simreal.training.data import InfiniteLoader
from simreal.training.errors import NonFiniteLossError, RunDirectoryError, TrainingError
from simreal.training.grid import save_grid
from simreal.training.method import Batch, Phase, PhaseLosses, TrainContext, TrainingMethod, iterate_phases
from simreal.training.registry import get_method
from simreal.training.run_log import RunLog
from simreal.training.schema import TrainingConfig


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    checkpoint: Path | None
    losses: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False


def train(
    cfg: TrainingConfig, *, rank: int = 0, world_size: int = 1, device: torch.device | None = None
) -> TrainResult:
    """Train ``cfg.method`` for ``cfg.steps`` steps into ``cfg.out``, resuming from its checkpoint if present."""
    spec = get_method(cfg.method)
    run_dir = Path(cfg.out).expanduser().resolve()
    checkpoint_path = run_dir / ckpt.CHECKPOINT_NAME
    saved = _load_for_resume(cfg, checkpoint_path, spec.name)
    ctx = TrainContext(
        device=device or pick_device(cfg.device),
        bf16=cfg.bf16,
        channels_last=cfg.channels_last,
        compile=cfg.compile,
        rank=rank,
        world_size=world_size,
    )
    seed_everything(cfg.seed + rank)
    datasets = _build_datasets(cfg, spec.cls)
    method = spec.cls(cfg, ctx, datasets)
    phases = list(method.phases())
    loaders = _build_loaders(cfg, datasets, ctx)
    step = 0
    if saved is None and cfg.init:
        method.load_weights(load_init_weights(cfg.init), cfg.init)
    if saved is not None:
        try:
            method.load_state_dict(saved["method"])
        except (TrainingError, RuntimeError, KeyError, ValueError) as err:
            raise RunDirectoryError(
                f"{checkpoint_path} does not fit the current config ({type(err).__name__}: {str(err)[:300]}); "
                "train with the settings it was made with, or choose another out="
            ) from err
        for role, loader in loaders.items():
            loader.load_state_dict(saved["loaders"][role])
        step = int(saved["step"])
        if world_size == 1:
            ckpt.restore_rng_state(saved["rng"])
        else:  # only rank 0's RNG is saved; give every rank a fresh, distinct stream
            seed_everything(cfg.seed + rank + 1_000_003 * step)

    log = None
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
        log = RunLog(run_dir, tensorboard=cfg.tensorboard)
    try:
        return _run(cfg, spec.name, method, phases, loaders, ctx, log, run_dir, checkpoint_path, step)
    finally:
        if log is not None:
            log.close()


def _run(
    cfg: TrainingConfig,
    method_name: str,
    method: TrainingMethod,
    phases: Sequence[Phase],
    loaders: Mapping[str, InfiniteLoader],
    ctx: TrainContext,
    log: RunLog | None,
    run_dir: Path,
    checkpoint_path: Path,
    step: int,
) -> TrainResult:
    total_steps = cfg.steps
    result = TrainResult(run_dir=run_dir, step=step, checkpoint=checkpoint_path if checkpoint_path.exists() else None)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}  # per loss: phases with an interval > 1 do not run on every step
    count, window_start = 0, time.perf_counter()
    saved_step = step if result.checkpoint is not None else None
    show = ctx.is_main and cfg.progress
    with progress_bar("train", total_steps, completed=step, unit="it", enabled=show) as bar, _stop_on_sigint() as stop:
        while step < total_steps and not stop.is_set():
            batch = {role: _to_device(next(loader), ctx) for role, loader in loaders.items()}
            losses: dict[str, float] = {}
            for phase in iterate_phases(phases, step):
                try:
                    for name, value in run_phase(method, phase, batch, step, phases).items():
                        if not np.isfinite(value):
                            raise NonFiniteLossError(name, value)
                        losses[f"{phase.name}/{name}"] = float(value)
                except NonFiniteLossError as err:
                    kept = checkpoint_path if saved_step is not None else None
                    raise err.at(phase.name, step, kept) from None
            step += 1
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
            count += 1
            result.losses = losses
            bar.advance()
            if show:
                bar.info(" ".join(f"{name}={value:.4g}" for name, value in losses.items()))

            if not ctx.is_main:
                continue
            assert log is not None
            if step % cfg.log_every == 0 or step == total_steps:
                elapsed = time.perf_counter() - window_start
                scalars = {f"train/{key}": value / counts[key] for key, value in sums.items()}
                scalars["it_s"] = count / elapsed if elapsed > 0 else float("nan")
                log.scalars(step, scalars)
                sums, counts, count, window_start = {}, {}, 0, time.perf_counter()
            if cfg.sample_every > 0 and step % cfg.sample_every == 0:
                _write_samples(method, batch, run_dir, log, step)
            if cfg.eval_every > 0 and step % cfg.eval_every == 0:
                result.scores = _evaluate(method, log, step)
            if step % cfg.checkpoint_every == 0:
                save_checkpoint(checkpoint_path, method_name, method, loaders, step)
                saved_step = step

    result.step = step
    result.interrupted = stop.is_set()
    if ctx.is_main and saved_step != step:
        save_checkpoint(checkpoint_path, method_name, method, loaders, step)
    if ctx.is_main and cfg.eval_every > 0 and step % cfg.eval_every != 0 and step == total_steps:
        assert log is not None
        result.scores = _evaluate(method, log, step)
    result.checkpoint = checkpoint_path if checkpoint_path.exists() else None
    return result


def run_phase(
    method: TrainingMethod, phase: Phase | str, batch: Batch, step: int, phases: Sequence[Phase] | None = None
) -> dict[str, float]:
    """One optimisation step of ``phase`` (or the phase of that name); returns the logged values.

    Schedule, zero_grad, the method's losses with the other phases' networks frozen (restored afterwards), the
    NaN/Inf check before backward, backward of ``gain * total``, gradient averaging across ranks for what DDP
    does not average, the optimizer step, the EMA update.
    """
    phases = list(method.phases()) if phases is None else phases
    if isinstance(phase, str):
        phase = next((p for p in phases if p.name == phase), None) or _unknown_phase(method, phase, phases)
    if phase.optimizer is None:
        raise TrainingError(f"phase {phase.name!r} of {type(method).__name__} has no optimizer")
    if phase.schedule is not None:
        phase.schedule(step)
    phase.optimizer.zero_grad(set_to_none=True)
    with _frozen_except(phase.networks, [net for other in phases for net in other.networks]):
        result = method.compute_losses(phase.name, batch, step)
        losses, logs = (result.losses, result.logs) if isinstance(result, PhaseLosses) else (result, {})
        if not losses:
            return {key: float(value) for key, value in logs.items()}
        total = torch.stack([loss.float().reshape(()) for loss in losses.values()]).sum()
        check_finite({**losses, "total": total}, method.ctx)
        (total * phase.gain if phase.gain != 1 else total).backward()
    if method.ctx.distributed:
        params = [p for group in phase.optimizer.param_groups for p in group["params"]]
        average_gradients([p for p in params if id(p) not in method.ctx.ddp_parameters], method.ctx.world_size)
    phase.optimizer.step()
    if phase.ema is not None:
        phase.ema.update()
    values = {name: float(loss.detach()) for name, loss in losses.items()}
    return {**values, "total": float(total.detach()), **{key: float(value) for key, value in logs.items()}}


def _unknown_phase(method: TrainingMethod, name: str, phases: Sequence[Phase]) -> Phase:
    known = ", ".join(p.name for p in phases)
    raise TrainingError(f"{type(method).__name__} has no phase {name!r}; its phases: {known}")


@contextlib.contextmanager
def _frozen_except(trained: Sequence[torch.nn.Module], every: Sequence[torch.nn.Module]) -> Iterator[None]:
    """No parameter gradients for the networks of ``every`` outside ``trained`` (restored afterwards)."""
    trained_ids = {id(p) for net in trained for p in net.parameters()}
    frozen = {id(p): p for net in every for p in net.parameters() if p.requires_grad and id(p) not in trained_ids}
    for param in frozen.values():
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in frozen.values():
            param.requires_grad_(True)


def check_finite(losses: Mapping[str, torch.Tensor], ctx: TrainContext) -> None:
    """Raise ``NonFiniteLossError`` naming the first NaN/Inf loss; called before ``backward``.

    In DDP every rank learns whether any rank failed, so all ranks stop together instead of hanging in the next
    collective.
    """
    values = torch.stack([loss.detach().float().reshape(()) for loss in losses.values()])
    bad = (~torch.isfinite(values)).float()
    if ctx.distributed:
        torch.distributed.all_reduce(bad)
    if bool(bad.any()):
        index = int(bad.nonzero()[0])
        name = list(losses)[index]
        value = float(values[index])
        raise NonFiniteLossError(name, value if not math.isfinite(value) else float("nan"))


def average_gradients(params: Sequence[torch.nn.Parameter], world_size: int) -> None:
    """All-reduce the gradients of ``params`` (one flat bucket) and divide by the number of ranks."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world_size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def save_checkpoint(
    path: Path, method_name: str, method: TrainingMethod, loaders: Mapping[str, InfiniteLoader], step: int
) -> None:
    ckpt.save_atomic(
        {
            "format": ckpt.CHECKPOINT_FORMAT,
            "method_name": method_name,
            "step": step,
            "method": method.state_dict(),
            "loaders": {role: loader.state_dict() for role, loader in loaders.items()},
            "rng": ckpt.capture_rng_state(),
        },
        path,
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_init_weights(path: str) -> dict:
    """The checkpoint of the run named by ``init=`` (a run directory or its checkpoint.pt)."""
    return ckpt.load(ckpt.checkpoint_file(path))


def _load_for_resume(cfg: TrainingConfig, checkpoint_path: Path, method_name: str) -> dict | None:
    resume = cfg.resume
    if resume not in (True, False, "auto"):
        raise RunDirectoryError(f"resume must be true, false or auto, got {resume!r}")
    exists = checkpoint_path.is_file()
    if resume is True and not exists:
        raise RunDirectoryError(f"resume=true but {checkpoint_path} does not exist; check out={cfg.out}")
    if resume is False and exists:
        raise RunDirectoryError(
            f"{checkpoint_path} exists and resume=false; pass resume=true to continue it or choose another out="
        )
    if not exists:
        return None
    saved = ckpt.load(checkpoint_path)
    if "imported" in saved:
        raise RunDirectoryError(
            f"{checkpoint_path} holds weights imported from reference files, with no optimizer state to resume; "
            f"start a new run from them with init={checkpoint_path.parent} and another out="
        )
    if saved["method_name"] != method_name:
        raise RunDirectoryError(
            f"{checkpoint_path} belongs to method {saved['method_name']!r}, not {method_name!r}; choose another out="
        )
    return saved


def _build_datasets(cfg: TrainingConfig, method_cls: type[TrainingMethod]) -> dict[str, Dataset]:
    datasets = {}
    for role in method_cls.data_roles:
        store_path = cfg[role]
        if not store_path:
            raise TrainingError(f"method {cfg.method!r} needs a dataset for role {role!r}: pass {role}=STORE_PATH")
        datasets[role] = method_cls.make_dataset(cfg, role, store_path)
    return datasets


def _build_loaders(
    cfg: TrainingConfig, datasets: Mapping[str, Dataset], ctx: TrainContext
) -> dict[str, InfiniteLoader]:
    batch_size = cfg.batch_size
    if batch_size % ctx.world_size:
        raise TrainingError(f"batch_size={batch_size} must be divisible by the {ctx.world_size} workers")
    loaders = {}
    for role, dataset in datasets.items():
        loaders[role] = InfiniteLoader(
            dataset,
            batch_size // ctx.world_size,
            seed=cfg.seed,
            num_workers=cfg.num_workers,
            rank=ctx.rank,
            world_size=ctx.world_size,
            pin_memory=ctx.device.type == "cuda",
            role=role,
        )
    return loaders


def _to_device(batch: Mapping[str, torch.Tensor], ctx: TrainContext) -> dict[str, torch.Tensor]:
    return {
        key: value.to(ctx.device, non_blocking=True) if isinstance(value, torch.Tensor) else value
        for key, value in batch.items()
    }


def _write_samples(method: TrainingMethod, batch: Mapping, run_dir: Path, log: RunLog, step: int) -> None:
    samples = method.sample_images(batch)
    if samples:
        grid = save_grid(samples, run_dir / "samples" / f"step_{step:07d}.png", method.sample_columns)
        log.image("samples", step, grid)


def _evaluate(method: TrainingMethod, log: RunLog, step: int) -> dict[str, float]:
    scores = method.evaluate()
    if scores:
        log.scalars(step, {f"eval/{key}": value for key, value in scores.items()})
    return scores


@contextlib.contextmanager
def _stop_on_sigint() -> Iterator[threading.Event]:
    """First Ctrl-C finishes the current step, saves and exits cleanly; a second one aborts at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request_stop(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
