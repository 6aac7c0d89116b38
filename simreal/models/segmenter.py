"""DeepLabV3+ segmenters (segmentation_models_pytorch) with named architectures and offline-safe weights.

Architectures: ``outer`` (MobileNetV2 encoder; the frozen network inside LC-SAE's outer semantic loss),
``heldout`` (ResNet50; the independent scorer of translated datasets), ``tiny`` (MobileNetV2 cut to depth 3 with a
32-channel decoder, for CPU tests). Every one uses output stride 16 as in the LC-SAE report's Table 4.1.

Input convention: ``SegmenterNet`` takes RGB in **[-1, 1]** (the ``tanh`` range that translators output and
``FrameDataset(normalize="tanh")`` yields) and applies the ImageNet mean/std itself, so callers never normalise.
Any height and width work: inputs are padded to the encoder's stride and logits cropped back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from simreal.errors import ModelError
from simreal.training.checkpoint import CHECKPOINT_FORMAT, checkpoint_file, read_torch_file
from simreal.training.checkpoint import load as load_checkpoint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")


class WeightsUnavailableError(ModelError):
    """Pretrained encoder weights could not be found locally nor downloaded."""


class SegmenterConfigError(ModelError):
    """An architecture that segmentation_models_pytorch cannot build."""


@dataclass(frozen=True)
class SegmenterSpec:
    """Everything needed to rebuild the network (stored in checkpoints; no weights source in here)."""

    num_classes: int
    encoder_name: str = "mobilenet_v2"
    encoder_depth: int = 5
    output_stride: int = 16
    decoder_channels: int = 256
    decoder_atrous_rates: tuple[int, int, int] = (12, 24, 36)
    aspp_dropout: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["decoder_atrous_rates"] = list(self.decoder_atrous_rates)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmenterSpec:
        return cls(**{**data, "decoder_atrous_rates": tuple(data["decoder_atrous_rates"])})


ARCHITECTURES: dict[str, dict[str, Any]] = {
    "outer": {"encoder_name": "mobilenet_v2", "encoder_depth": 5, "decoder_channels": 256},
    "heldout": {"encoder_name": "resnet50", "encoder_depth": 5, "decoder_channels": 256},
    "tiny": {"encoder_name": "mobilenet_v2", "encoder_depth": 3, "decoder_channels": 32},
}


def segmenter_spec(architecture: str, num_classes: int, **overrides: Any) -> SegmenterSpec:
    """The named architecture with ``overrides`` (``None`` values keep the architecture's choice)."""
    if architecture not in ARCHITECTURES:
        raise SegmenterConfigError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    spec = SegmenterSpec(num_classes=num_classes, **ARCHITECTURES[architecture])
    return replace(spec, **{key: value for key, value in overrides.items() if value is not None})


class SegmenterNet(nn.Module):
    """DeepLabV3+ taking [-1, 1] RGB (N,3,H,W) and returning class logits (N,C,H,W)."""

    def __init__(self, spec: SegmenterSpec, encoder_weights: str | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.deeplab = _build_deeplab(spec, encoder_weights)
        self.stride = int(getattr(self.deeplab.encoder, "output_stride", 32))
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # [-1,1] -> ImageNet normalisation as one affine map: ((x + 1) / 2 - mean) / std
        self.register_buffer("input_scale", 0.5 / std, persistent=False)
        self.register_buffer("input_shift", (0.5 - mean) / std, persistent=False)

    @property
    def encoder(self) -> nn.Module:
        return self.deeplab.encoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        x = images * self.input_scale + self.input_shift
        pad_h, pad_w = (-height) % self.stride, (-width) % self.stride
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return self.deeplab(x)[..., :height, :width]


def build_segmenter(
    architecture: str = "outer",
    num_classes: int = 16,
    encoder_weights: str | None = None,
    **overrides: Any,
) -> SegmenterNet:
    """A fresh segmenter. ``encoder_weights``: ``None`` (random), ``"imagenet"`` (``$SIMREAL_WEIGHTS_DIR`` or
    download), or a local ``.safetensors``/``.pth`` file of encoder (or whole-model ``encoder.*``) weights."""
    return SegmenterNet(segmenter_spec(architecture, num_classes, **overrides), encoder_weights)


def load_segmenter(path: str | Path, map_location: str | torch.device = "cpu") -> SegmenterNet:
    """Rebuild a trained segmenter from a training run directory or its ``checkpoint.pt``, without downloads.

    The returned network is in eval mode and takes [-1, 1] RGB input.
    """
    path = checkpoint_file(path, "segmenter")
    saved = load_checkpoint(path, map_location)
    return segmenter_from_state(saved["method"], str(path)).eval()


def segmenter_from_state(state: dict[str, Any], source: str = "the checkpoint") -> SegmenterNet:
    """The trained network of a segmenter's saved state (``model_spec`` + ``model`` weights)."""
    if "model_spec" not in state or "model" not in state:
        raise ModelError(f"{source} is not a segmenter checkpoint (no model_spec/model entries)")
    net = SegmenterNet(SegmenterSpec.from_dict(state["model_spec"]), encoder_weights=None)
    net.load_state_dict(state["model"])
    return net


def save_segmenter(net: SegmenterNet, path: str | Path, class_set: dict[str, Any] | None = None) -> Path:
    """A checkpoint of ``net`` alone (no optimiser or run state) in the layout ``load_segmenter`` reads: for
    segmenters made outside a training run (random ones for speed checks, tests)."""
    state: dict[str, Any] = {"model_spec": net.spec.to_dict(), "model": net.state_dict()}
    if class_set is not None:
        state["class_set"] = class_set
    path = Path(path)
    torch.save({"format": CHECKPOINT_FORMAT, "method_name": "segmenter", "method": state}, path)
    return path


def _build_deeplab(spec: SegmenterSpec, encoder_weights: str | None) -> nn.Module:
    if not spec.encoder_name.startswith("tu-") and spec.encoder_name not in smp.encoders.get_encoder_names():
        raise SegmenterConfigError(
            f"unknown encoder {spec.encoder_name!r}; use a segmentation_models_pytorch encoder "
            "(smp.encoders.get_encoder_names()) or a timm one as 'tu-<name>'"
        )
    named_weights, local_file = _resolve_weights(spec.encoder_name, encoder_weights)
    kwargs = dict(
        encoder_name=spec.encoder_name,
        encoder_depth=spec.encoder_depth,
        encoder_output_stride=spec.output_stride,
        decoder_channels=spec.decoder_channels,
        decoder_atrous_rates=spec.decoder_atrous_rates,
        decoder_aspp_dropout=spec.aspp_dropout,
        classes=spec.num_classes,
    )
    if named_weights is None:
        model = _construct(kwargs, None)
    else:
        try:
            model = _construct(kwargs, named_weights)
        except SegmenterConfigError:
            raise
        except Exception as err:  # any network/hub failure: the user needs the offline options, not a traceback
            raise WeightsUnavailableError(
                f"could not obtain {named_weights!r} weights for encoder {spec.encoder_name!r} "
                f"({type(err).__name__}: {err}). Offline? Use encoder_weights=null for random init, "
                f"encoder_weights=/path/to/weights.safetensors, or put {spec.encoder_name}.{named_weights}"
                "{.safetensors,.pth} into $SIMREAL_WEIGHTS_DIR"
            ) from err
    if local_file is not None:
        _load_encoder_file(model.encoder, local_file)
    return model


def _construct(kwargs: dict[str, Any], weights: str | None) -> nn.Module:
    try:
        return smp.DeepLabV3Plus(encoder_weights=weights, **kwargs)
    except (ValueError, AssertionError) as err:
        raise SegmenterConfigError(f"cannot build DeepLabV3+ with {kwargs}: {err}") from err
    except KeyError as err:  # smp: unknown pretrained weights name for this encoder
        raise SegmenterConfigError(str(err.args[0]) if err.args else str(err)) from err


def _resolve_weights(encoder_name: str, weights: str | None) -> tuple[str | None, Path | None]:
    """(named weights for smp to fetch, local file to load): at most one is set."""
    if weights is None or str(weights).lower() in ("", "none", "null"):
        return None, None
    candidate = Path(str(weights)).expanduser()
    if candidate.suffix in WEIGHT_SUFFIXES or os.sep in str(weights):
        if not candidate.is_file():
            raise WeightsUnavailableError(f"encoder weights file {candidate} does not exist")
        return None, candidate
    weights_dir = os.environ.get("SIMREAL_WEIGHTS_DIR")
    if weights_dir:
        for suffix in WEIGHT_SUFFIXES:
            local = Path(weights_dir).expanduser() / f"{encoder_name}.{weights}{suffix}"
            if local.is_file():
                return None, local
    return str(weights), None


def _load_encoder_file(encoder: nn.Module, path: Path) -> None:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        state = read_torch_file(path, "weights file")
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise WeightsUnavailableError(f"{path} holds a {type(state).__name__}, not a state dict of encoder weights")
    if all(key.startswith("encoder.") for key in state):
        state = {key.removeprefix("encoder."): value for key, value in state.items()}
    expected = encoder.state_dict()
    missing = [key for key in expected if key not in state]
    if missing:
        raise WeightsUnavailableError(
            f"{path} does not fit encoder {type(encoder).__name__}: {len(missing)} missing keys, e.g. {missing[:3]}"
        )
    # Extra entries (a classifier head of an ImageNet checkpoint) are not part of the encoder.
    encoder.load_state_dict({key: state[key] for key in expected})
