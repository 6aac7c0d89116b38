"""Every registered training method trains for 2 steps on a CPU with its ``tiny`` preset (like nerfstudio's test_train),
then its inference model, rebuilt from the checkpoint through the registry, translates / synthesizes / segments.

A new method needs no edit here as long as its data roles and path keys are among ``ROLE_STORES`` and
``PATH_VALUES``; a role this file does not know fails with a message that says where to add it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from stores import make_procedural_store
from torch import nn
from torch.utils.data import Dataset, default_collate

from simreal.data.images import uint8_to_tensor
from simreal.data.store import FrameStore
from simreal.inference import INFERENCE_KINDS, LABEL_TO_IMAGE, SEGMENTER, STRUCTURE_TEXTURE, load_inference
from simreal.synthesize import load_synthesizer
from simreal.training import checkpoint as ckpt
from simreal.training.config import compose_training_config
from simreal.training.loop import run_phase, train
from simreal.training.method import TrainContext, TrainingMethod
from simreal.training.registry import load_builtin_methods
from simreal.translate import StyleOptions, load_translator

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
    _infer_with(method, result.checkpoint, request)


def _infer_with(method: str, checkpoint: Path, request: pytest.FixtureRequest) -> None:
    """Rebuild the run's inference model through the registry and use it as ``translate`` / ``synthesize`` /
    ``score`` do, on two frames of the sim store."""
    kind = load_builtin_methods()[method].cls.inference_kind
    assert kind in INFERENCE_KINDS, f"{method} declares no inference kind"
    sim = FrameStore.open(request.getfixturevalue("sim_store"))
    rgb, label = sim.read_range(0, 2)
    cpu = torch.device("cpu")
    if kind == SEGMENTER:
        model = load_inference(checkpoint, cpu, kind=SEGMENTER)
        with torch.no_grad():
            logits = model.net(uint8_to_tensor(rgb))
        assert model.method == method and not model.net.training
        assert logits.shape == (2, max(sim.class_set.ids) + 1, *rgb.shape[1:3]) and torch.isfinite(logits).all()
        return
    style = StyleOptions(request.getfixturevalue("real_store"), "random") if kind == STRUCTURE_TEXTURE else None
    translator = load_translator(checkpoint, cpu, style or StyleOptions())
    jobs = [(0, 0), (1, 1)]
    images, provenance = translator.translate(rgb, label, jobs, seed=7)
    assert translator.method == method and len(provenance) == 2
    assert images.shape == rgb.shape and images.dtype == np.uint8
    again, _ = translator.translate(rgb, label, jobs, seed=7)
    np.testing.assert_array_equal(images, again)  # per-frame seeds: the same frames again
    if kind == LABEL_TO_IMAGE:
        painted, _ = load_synthesizer(checkpoint).paint_frames(label, jobs, seed=7)
        np.testing.assert_array_equal(painted, images)  # `synthesize` paints what `translate` does


def _tensors_of(obj: object, where: str, seen: set[int]) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor a method holds: module parameters and buffers, EMA copies, optimizer states, nested holders."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        yield where, obj
    elif isinstance(obj, nn.Module):
        for name, tensor in [*obj.named_parameters(), *obj.named_buffers()]:
            yield f"{where}.{name}", tensor
    elif isinstance(obj, torch.optim.Optimizer):
        for index, group in enumerate(obj.param_groups):
            for p, param in enumerate(group["params"]):
                yield f"{where}.param_groups[{index}][{p}]", param
        for state in obj.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.ndim > 0:  # Adam's step counter stays on the CPU
                    yield f"{where}.state.{key}", value
    elif isinstance(obj, (list, tuple)):
        for index, item in enumerate(obj):
            yield from _tensors_of(item, f"{where}[{index}]", seen)
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from _tensors_of(item, f"{where}[{key!r}]", seen)
    elif type(obj).__module__.startswith("simreal.") and not isinstance(obj, Dataset) and hasattr(obj, "__dict__"):
        for name, item in vars(obj).items():
            yield from _tensors_of(item, f"{where}.{name}", seen)


@pytest.mark.parametrize("method", BUILTIN_METHODS)
@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter:UserWarning")  # loading into meta: no-op
def test_method_setup_places_every_tensor_on_the_context_device(method: str, request: pytest.FixtureRequest) -> None:
    """A device other than the tests' CPU (``meta``: no memory, no kernels) stands in for a GPU: after set-up, and
    after resuming a CPU run's state, every network, EMA copy, loss network and optimizer state must live where the
    context says."""
    cls = load_builtin_methods()[method].cls
    overrides = ["preset=tiny"]
    for key in cls.path_keys:
        if key in PATH_VALUES:
            overrides.append(f"{key}={request.getfixturevalue(PATH_VALUES[key])}")
    cfg = compose_training_config(method, overrides)
    datasets = {
        role: cls.make_dataset(cfg, role, str(request.getfixturevalue(ROLE_STORES[role]))) for role in cls.data_roles
    }
    device = torch.device("meta")

    instance = cls(cfg, TrainContext(device=device), datasets)

    _assert_all_on(device, instance, method)
    on_cpu = cls(cfg, TrainContext(device=torch.device("cpu")), datasets)
    batch = {role: default_collate([datasets[role][i] for i in range(int(cfg.batch_size))]) for role in cls.data_roles}
    for phase in on_cpu.phases():  # one step of every phase, so that the optimizers hold state
        run_phase(on_cpu, phase, batch, 0)
    instance.load_state_dict(on_cpu.state_dict())
    _assert_all_on(device, instance, f"{method} resumed")


def _assert_all_on(device: torch.device, method: TrainingMethod, what: str) -> None:
    tensors = list(_tensors_of(method, what, set()))
    assert tensors, f"{what}: found no tensors to check"
    misplaced = sorted({f"{where} on {tensor.device}" for where, tensor in tensors if tensor.device != device})
    assert not misplaced, f"{what}: {len(misplaced)} tensors not on {device}: {misplaced[:5]}"
