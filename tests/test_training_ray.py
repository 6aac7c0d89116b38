"""Launchers: the local path never touches Ray; the Ray Train path runs a 1-worker CPU job end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.train import absolute_paths, choose_launcher, run_training
from simreal.config import ConfigError
from simreal.data.store import FrameStore
from simreal.training import checkpoint as ckpt
from simreal.training.config import compose_training_config

REPO = Path(__file__).resolve().parents[1]


def make_store(path: Path, frames: int = 4) -> Path:
    rng = np.random.default_rng(0)
    store = FrameStore.create(path, height=32, width=32)
    labels = rng.integers(0, 16, (frames, 32, 32), dtype=np.uint8)
    store.append(rng.integers(0, 256, (frames, 32, 32, 3), dtype=np.uint8), labels, [{}] * frames)
    return path


def test_launcher_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_launcher(compose_training_config("segmenter", [])) == "local"
    assert choose_launcher(compose_training_config("segmenter", ["ray.address=10.0.0.1:6379"])) == "ray"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_launcher(compose_training_config("segmenter", [])) == "ray"
    assert choose_launcher(compose_training_config("segmenter", ["launcher=local"])) == "local"
    with pytest.raises(ConfigError, match="launcher"):
        choose_launcher(compose_training_config("segmenter", ["launcher=slurm"]))


def test_paths_become_absolute_for_remote_workers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = absolute_paths(compose_training_config("segmenter", ["data=stores/a", "val=stores/b", "out=runs/x"]))
    assert (cfg.data, cfg.val, cfg.out) == tuple(str(tmp_path / p) for p in ("stores/a", "stores/b", "runs/x"))


def test_local_training_does_not_import_ray(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store")
    script = textwrap.dedent(
        f"""
        import sys
        from pipelines.train import run_training
        from simreal.training.config import compose_training_config
        cfg = compose_training_config("segmenter", ["preset=tiny", "steps=1", "data={store}", "out={tmp_path}/run"])
        assert run_training(cfg).step == 1
        assert "ray" not in sys.modules, "the CPU path imported ray"
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_ray_train_job_on_one_cpu_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the workers import pipelines.train
    store = make_store(tmp_path / "store")
    cfg = compose_training_config(
        "segmenter",
        ["preset=tiny", "steps=2", f"data={store}", f"out={tmp_path}/run", "launcher=ray"]
        + ["ray.use_gpu=false", "ray.cpus_per_worker=1"],
    )
    result = run_training(cfg)
    assert result.step == 2 and "seg/ce" in result.losses
    assert ckpt.load(tmp_path / "run" / "checkpoint.pt")["step"] == 2
