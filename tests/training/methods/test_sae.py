"""sae / lcsae on the method contract: D and G alternate, lazy R1 gains its interval, the structure grid is kept."""

from __future__ import annotations

from pathlib import Path

import torch
from stores import make_procedural_store
from typer.testing import CliRunner

from simreal.cli.train import train_app
from simreal.inference import load_inference
from simreal.training.config import compose_training_config
from simreal.training.method import TrainContext
from simreal.training.registry import get_method


def test_lazy_r1_runs_every_interval_d_steps_with_the_interval_as_gain(tmp_path: Path) -> None:
    stores = {
        "sim": make_procedural_store(tmp_path / "sim", "flat"),
        "real": make_procedural_store(tmp_path / "real", "textured"),
    }
    cfg = compose_training_config(
        "sae", ["preset=tiny", "loss.r1_interval=4", *(f"{k}={v}" for k, v in stores.items())]
    )
    cls = get_method("sae").cls
    method = cls(
        cfg, TrainContext(device=torch.device("cpu")), {r: cls.make_dataset(cfg, r, str(p)) for r, p in stores.items()}
    )
    phases = {phase.name: phase for phase in method.phases()}
    # D on even steps; R1 after every 4th D step (steps 6, 14, ...), backpropagated x4 as in stylegan2-ada
    assert [step for step in range(16) if phases["D"].due(step)] == list(range(0, 16, 2))
    assert [step for step in range(16) if phases["Dreg"].due(step)] == [6, 14]
    assert phases["Dreg"].gain == 4 and phases["D"].gain == phases["G"].gain == 1
    assert phases["Dreg"].optimizer is phases["D"].optimizer is method.optimizers.discriminator
    assert phases["G"].ema is method.ema and {id(n) for n in phases["G"].networks} == {
        id(method.nets.encoder),
        id(method.nets.generator),
        id(method.nets.semantic_head),
    }


def test_structure_code_grid_is_configurable_and_rebuilt_for_inference(tmp_path: Path) -> None:
    sim = make_procedural_store(tmp_path / "sim", "flat")
    real = make_procedural_store(tmp_path / "real", "textured")
    image = torch.zeros(1, 3, 64, 128)
    for downsamplings, grid in ((None, (4, 8)), (3, (8, 16))):
        out = tmp_path / f"sae-{downsamplings}"
        overrides = [f"sim={sim}", f"real={real}", "preset=tiny", "steps=2", f"out={out}"]
        if downsamplings is not None:
            overrides.append(f"model.structure_downsamplings={downsamplings}")
        result = CliRunner().invoke(train_app, ["sae", *overrides])
        assert result.exit_code == 0, result.output
        encoder = load_inference(out, "cpu").encoder
        structure, _ = encoder(image)
        assert tuple(structure.shape[2:]) == grid  # 1/16 of 64x128 by default (the reference), 1/8 when asked
