"""Every registered training method trains for 2 steps on a CPU with its ``tiny`` preset (like nerfstudio's test_train).

A new method needs no edit here as long as its data roles and path keys are among ``ROLE_STORES`` and
``PATH_VALUES``; a role this file does not know fails with a message that says where to add it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from stores import make_procedural_store

from simreal.training import checkpoint as ckpt
from simreal.training.config import compose_training_config
from simreal.training.loop import train
from simreal.training.registry import load_builtin_methods

# Data role -> fixture that provides a store for it.
ROLE_STORES = {"data": "real_store", "sim": "sim_store", "real": "real_store"}
# Path config key -> fixture that provides its value (keys not listed are left at their defaults).
PATH_VALUES = {"val": "real_store", "outer_segmenter": "outer_segmenter"}

# Only the built-in methods: test modules may register toy methods that have no config file.
BUILTIN_METHODS = sorted(
    name for name, spec in load_builtin_methods().items() if spec.cls.__module__.startswith("simreal.training.methods")
)


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_procedural_store(tmp_path_factory.mktemp("sim") / "store", "flat")


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_procedural_store(tmp_path_factory.mktemp("real") / "store", "textured")


@pytest.fixture(scope="module")
def outer_segmenter(real_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny segmenter run (1 step on the real store), in the format ``load_segmenter`` reads."""
    out = tmp_path_factory.mktemp("segmenter") / "run"
    train(compose_training_config("segmenter", ["preset=tiny", "steps=1", f"data={real_store}", f"out={out}"]))
    return out


def test_every_builtin_method_is_covered() -> None:
    assert {"segmenter", "lcsae", "sae"} <= set(BUILTIN_METHODS)


@pytest.mark.parametrize("method", BUILTIN_METHODS)
def test_method_trains_two_steps_on_cpu(method: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cls = load_builtin_methods()[method].cls
    overrides = ["preset=tiny", "steps=2", "checkpoint_every=2", "device=cpu", f"out={tmp_path / 'run'}"]
    for role in cls.data_roles:
        if role not in ROLE_STORES:
            pytest.fail(f"{method} has data role {role!r}: add a store fixture for it to ROLE_STORES in {__file__}")
        overrides.append(f"{role}={request.getfixturevalue(ROLE_STORES[role])}")
    for key in cls.path_keys:
        if key in PATH_VALUES:
            overrides.append(f"{key}={request.getfixturevalue(PATH_VALUES[key])}")

    result = train(compose_training_config(method, overrides))

    assert result.step == 2
    assert result.losses, f"{method} logged no losses"
    bad = {name: value for name, value in result.losses.items() if not math.isfinite(value)}
    assert not bad, f"{method}: non-finite losses {bad}"
    assert result.checkpoint == tmp_path / "run" / "checkpoint.pt"
    saved = ckpt.load(result.checkpoint)
    assert saved["step"] == 2 and saved["method_name"] == method
    assert saved["method"], f"{method} saved an empty state"
