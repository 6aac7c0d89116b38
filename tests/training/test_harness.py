"""The training loop with a toy method: run directory, resume == uninterrupted, NaN stop, atomic checkpoints."""

from __future__ import annotations

import json
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from simreal.config import ConfigError, as_overrides, compose_config
from simreal.training import checkpoint as ckpt
from simreal.training.config import compose_training_config
from simreal.training.ema import ExponentialMovingAverage
from simreal.training.errors import DatasetTooSmallError, NonFiniteLossError, RunDirectoryError
from simreal.training.loop import train
from simreal.training.method import Phase, TrainContext, TrainingMethod
from simreal.training.registry import UnknownMethodError, get_method, register_method


class ToyDataset(Dataset):
    """Fixed images with an augmentation that draws from the global torch RNG, as FrameDataset does."""

    def __init__(self, size: int = 10) -> None:
        generator = torch.Generator().manual_seed(1)
        self.images = torch.rand(size, 3, 8, 8, generator=generator) * 2 - 1
        self.labels = torch.randint(0, 3, (size, 8, 8), generator=generator)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        noise = 0.1 * torch.randn(3, 8, 8)
        return {"image": self.images[index] + noise, "label": self.labels[index], "index": index}


@register_method("toy", "1x1-conv classifier with a lazy weight penalty (tests only)")
class ToyMethod(TrainingMethod):
    data_roles = ("data",)

    @classmethod
    def make_dataset(cls, cfg: DictConfig, role: str, store_path: str) -> Dataset:
        return ToyDataset(int(cfg.dataset_size))

    def __init__(self, cfg: DictConfig, ctx: TrainContext, datasets: Mapping[str, Dataset]) -> None:
        super().__init__(cfg, ctx, datasets)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Dropout(0.5), nn.Conv2d(8, 3, 1))
        self.train_net = ctx.prepare(self.net)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        self.reg_steps: list[int] = []

    def phases(self) -> Sequence[Phase]:
        return [
            Phase("main", 1, networks=(self.net,), optimizer=self.optimizer),
            Phase("reg", 2, networks=(self.net,), optimizer=self.optimizer),
        ]

    def compute_losses(self, name: str, batch: Mapping, step: int) -> dict[str, torch.Tensor]:
        if name == "main":
            logits = self.train_net(batch["data"]["image"])
            loss = nn.functional.cross_entropy(logits, batch["data"]["label"])
            if step == int(self.cfg.nan_at_step):
                loss = loss * float("nan")
            if step == int(self.cfg.interrupt_at_step):
                signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C during this step
            losses = {"ce": loss}
        else:
            self.reg_steps.append(step)
            losses = {"l2": 1e-3 * sum(p.square().sum() for p in self.net.parameters())}
        return losses

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])

    def sample_images(self, batch: Mapping) -> list[tuple[str, np.ndarray]]:
        image = ((batch["data"]["image"][0].clamp(-1, 1) + 1) * 127.5).byte().permute(1, 2, 0).numpy()
        return [("input", image), ("again", image)]


def toy_cfg(out: Path, **overrides: object) -> DictConfig:
    cfg = compose_config("train/harness", [])
    OmegaConf.set_struct(cfg, False)
    settings = {
        "method": "toy",
        "data": "in-memory",
        "dataset_size": 10,
        "nan_at_step": -1,
        "interrupt_at_step": -1,
        "out": str(out),
        "steps": 6,
        "batch_size": 4,
        "num_workers": 0,
        "device": "cpu",
        "log_every": 1,
        "sample_every": 3,
        "eval_every": 0,
        "checkpoint_every": 3,
        "progress": False,
        "tensorboard": False,
    }
    return OmegaConf.merge(cfg, settings, overrides)


def logged_losses(run_dir: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["train/main/ce"]) for r in records if "train/main/ce" in r]


def test_toy_method_trains_and_fills_the_run_directory(tmp_path: Path) -> None:
    result = train(toy_cfg(tmp_path / "run", tensorboard=True, progress=True, steps=7))
    run_dir = tmp_path / "run"
    assert result.step == 7 and result.checkpoint == run_dir / "checkpoint.pt"
    assert OmegaConf.load(run_dir / "config.yaml").method == "toy"
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]
    assert np.asarray(Image.open(run_dir / "samples" / "step_0000003.png")).shape[2] == 3
    assert any((run_dir / "tensorboard").iterdir())
    losses = logged_losses(run_dir)
    assert [step for step, _ in losses] == list(range(1, 8))
    assert losses[-1][1] < losses[0][1]  # it learns
    saved = ckpt.load(run_dir / "checkpoint.pt")
    assert saved["step"] == 7 and saved["method_name"] == "toy"  # written at exit, not only every 3 steps
    assert not list(run_dir.glob(".*.tmp"))


def test_lazy_phase_runs_on_its_interval(tmp_path: Path) -> None:
    records = [json.loads(line) for line in _run_lines(tmp_path)]
    assert [r["step"] for r in records if "train/reg/l2" in r] == [1, 3, 5]  # steps 0, 2, 4 completed


def test_logged_means_count_only_the_steps_a_phase_ran(tmp_path: Path) -> None:
    train(toy_cfg(tmp_path / "every", steps=4))
    train(toy_cfg(tmp_path / "pairs", steps=4, log_every=2))
    every = [json.loads(line) for line in (tmp_path / "every" / "metrics.jsonl").read_text().splitlines()]
    pairs = [json.loads(line) for line in (tmp_path / "pairs" / "metrics.jsonl").read_text().splitlines()]
    # reg runs on steps 0 and 2 only: each two-step window holds one reg value, logged as is (not halved).
    assert [r["train/reg/l2"] for r in pairs] == pytest.approx([every[0]["train/reg/l2"], every[2]["train/reg/l2"]])
    assert pairs[0]["train/main/ce"] == pytest.approx((every[0]["train/main/ce"] + every[1]["train/main/ce"]) / 2)


def test_phase_offsets_stagger_phases() -> None:
    d_step, g_step, lazy = Phase("D", 2, 0), Phase("G", 2, 1), Phase("Dreg", 8, 6)
    assert [s for s in range(10) if d_step.due(s)] == [0, 2, 4, 6, 8]
    assert [s for s in range(10) if g_step.due(s)] == [1, 3, 5, 7, 9]
    assert [s for s in range(16) if lazy.due(s)] == [6, 14]
    with pytest.raises(ValueError, match="offset"):
        Phase("G", 2, 2)


def _run_lines(tmp_path: Path) -> list[str]:
    train(toy_cfg(tmp_path / "run"))
    return (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()


def test_resumed_run_repeats_the_uninterrupted_losses(tmp_path: Path) -> None:
    train(toy_cfg(tmp_path / "straight", steps=8))
    # 8 steps over 10 samples in batches of 4: the resume point (step 3) sits mid-epoch.
    train(toy_cfg(tmp_path / "resumed", steps=3))
    result = train(toy_cfg(tmp_path / "resumed", steps=8, resume=True))
    assert result.step == 8
    assert logged_losses(tmp_path / "resumed") == logged_losses(tmp_path / "straight")
    straight = ckpt.load(tmp_path / "straight" / "checkpoint.pt")["method"]["net"]
    resumed = ckpt.load(tmp_path / "resumed" / "checkpoint.pt")["method"]["net"]
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as caught:
        train(toy_cfg(run_dir, nan_at_step=4))
    message = str(caught.value)
    assert "'main/ce'" in message and "step 4" in message and str(run_dir / "checkpoint.pt") in message
    saved = ckpt.load(run_dir / "checkpoint.pt")
    assert saved["step"] == 3
    assert all(torch.isfinite(v).all() for v in saved["method"]["net"].values())
    # The kept checkpoint resumes and finishes once the cause is gone.
    assert train(toy_cfg(run_dir)).step == 6


def test_non_finite_loss_before_any_checkpoint_says_so(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match="no checkpoint had been written yet"):
        train(toy_cfg(tmp_path / "run", nan_at_step=0))


def test_ctrl_c_finishes_the_step_saves_and_resumes(tmp_path: Path) -> None:
    result = train(toy_cfg(tmp_path / "run", interrupt_at_step=1))
    assert result.interrupted and result.step == 2
    assert ckpt.load(tmp_path / "run" / "checkpoint.pt")["step"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert train(toy_cfg(tmp_path / "run")).step == 6


def test_crash_during_save_leaves_the_previous_checkpoint_intact(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "checkpoint.pt"
    ckpt.save_atomic({"step": 1, "weights": torch.ones(3)}, path)
    real_save = torch.save

    def crash_half_way(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)
        handle.flush()
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_atomic({"step": 2, "weights": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert ckpt.read_torch_file(path, "checkpoint")["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left behind


def test_resume_flags_guard_the_run_directory(tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match="does not exist"):
        train(toy_cfg(tmp_path / "empty", resume=True))
    train(toy_cfg(tmp_path / "run", steps=2))
    with pytest.raises(RunDirectoryError, match="resume=false"):
        train(toy_cfg(tmp_path / "run", resume=False))
    assert train(toy_cfg(tmp_path / "run", steps=3)).step == 3  # auto: continues


def test_dataset_smaller_than_a_batch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetTooSmallError, match="fewer than one batch"):
        train(toy_cfg(tmp_path / "run", dataset_size=3))


def test_registry_lookup_and_errors() -> None:
    assert get_method("toy").cls is ToyMethod
    assert get_method("segmenter").description
    with pytest.raises(UnknownMethodError, match="registered: .*segmenter"):
        get_method("nope")
    with pytest.raises(TypeError):
        register_method("bad", "not a method")(object)  # type: ignore[arg-type]


def test_presets_apply_before_user_overrides() -> None:
    cfg = compose_training_config("segmenter", ["preset=tiny", "steps=7", "data=/x"])
    assert cfg.steps == 7 and cfg.batch_size == 2 and cfg.model.architecture == "tiny"
    assert cfg.model.encoder_weights is None
    assert compose_training_config("segmenter", []).model.architecture == "outer"
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        compose_training_config("segmenter", ["preset=huge"])
    with pytest.raises(ConfigError, match="stepz"):
        compose_training_config("segmenter", ["stepz=3"])
    assert as_overrides({"model": {"name": "a b", "w": None}, "crop": [1, 2]}) == [
        'model.name="a b"',
        "model.w=null",
        "crop=[1, 2]",
    ]


def test_ema_tracks_the_average_and_round_trips() -> None:
    net = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(net.weight)
    ema = ExponentialMovingAverage(net, decay=0.5)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net)
    ema.update(net)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 0.75))
    assert not ema.module.weight.requires_grad
    other = ExponentialMovingAverage(nn.Linear(2, 1, bias=False), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert torch.equal(other.module.weight, ema.module.weight) and other.updates == 2
