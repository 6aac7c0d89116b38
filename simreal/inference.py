"""Rebuilding any method's inference model from its checkpoint, through the method registry.

A checkpoint names its method (``method_name``); the method's ``inference_kind`` says which of three protocols its
inference model follows, and its ``build_inference(saved, device)`` rebuilds it from the saved state alone:

- ``label_to_image``: a ``simreal.synthesize.Synthesizer``: ``paint(labels, noise_seed=...)`` label maps ->
  images, ``paint_frames`` with per-frame noise seeds (``synthesize`` and ``translate`` use it);
- ``structure_texture``: a ``TextureModel``: encoder (image -> structure, texture codes) and generator
  (structure, texture, noise_seeds) -> image, a sim frame translated with the texture of a real frame
  (``translate``);
- ``image_to_image``: an ``ImageModel``: a generator editing a frame into the target domain as a whole, no style
  frame (``translate``);
- ``segmenter``: a ``SegmenterModel``: a network taking [-1, 1] RGB to class logits (``score``, ``bench``, the
  LC-SAE outer loss).

``translate``, ``synthesize``, ``score``, ``bench`` and ``checkpoints import`` go through ``load_inference`` (or
``inference_kind_of`` to refuse a request before loading any weights), never through per-method tables.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from simreal.errors import ModelError
from simreal.labels import LabelTable
from simreal.training.checkpoint import checkpoint_file
from simreal.training.checkpoint import load as load_checkpoint

if TYPE_CHECKING:
    from simreal.synthesize import Synthesizer
    from simreal.training.method import TrainingMethod

LABEL_TO_IMAGE = "label_to_image"
STRUCTURE_TEXTURE = "structure_texture"
IMAGE_TO_IMAGE = "image_to_image"
SEGMENTER = "segmenter"
INFERENCE_KINDS = (LABEL_TO_IMAGE, STRUCTURE_TEXTURE, IMAGE_TO_IMAGE, SEGMENTER)


class InferenceModelError(ModelError):
    """A checkpoint whose method has no inference model of the kind asked for."""


@dataclass
class TextureModel:
    """Structure + texture translator: ``encoder(images) -> (structure, texture)`` and
    ``generator(structure, texture, noise_seeds=[...]) -> images`` in [-1, 1], both in eval mode."""

    method: str
    encoder: nn.Module
    generator: nn.Module
    class_set: LabelTable
    device: torch.device
    checkpoint: Path | None = None
    checkpoint_hash: str = ""


@dataclass
class ImageModel:
    """A whole-domain translator: ``generator(images, labels=None, noise=None) -> images`` in [-1, 1], eval mode.

    ``generator.spec.label_channels`` (0 or the one-hot channels) and ``generator.spec.noise_inputs`` say which
    extra inputs it reads; frame sides must be multiples of ``generator.spec.size_multiple``."""

    method: str
    generator: nn.Module
    class_set: LabelTable
    device: torch.device
    checkpoint: Path | None = None
    checkpoint_hash: str = ""


@dataclass
class SegmenterModel:
    """A segmenter: ``net(images in [-1, 1]) -> (B, num_classes, H, W)`` logits, in eval mode."""

    method: str
    net: nn.Module
    class_set: LabelTable | None
    device: torch.device
    checkpoint: Path | None = None
    checkpoint_hash: str = ""


if TYPE_CHECKING:
    InferenceModel = Synthesizer | TextureModel | ImageModel | SegmenterModel


def file_digest(path: Path, length: int = 16) -> str:
    """Leading hex digits of the file's SHA-256 (identifies the checkpoint in provenance)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def read_checkpoint(path: str | Path, what: str = "") -> tuple[Path, dict[str, Any]]:
    """(checkpoint file, its saved dict) of a run directory or checkpoint, loaded on the CPU; ``what`` names the
    kind of run expected when there is none."""
    file = checkpoint_file(path, what)
    return file, load_checkpoint(file)


def method_class(saved: dict[str, Any], source: str | Path) -> type[TrainingMethod]:
    """The registered method class that wrote ``saved``."""
    from simreal.training.registry import UnknownMethodError, get_method

    name = saved.get("method_name") if isinstance(saved, dict) else None
    if not name:
        raise InferenceModelError(f"{source} is not a simreal training checkpoint (it names no method)")
    try:
        return get_method(str(name)).cls
    except UnknownMethodError as err:
        raise InferenceModelError(f"{source} was written by method {name!r}, which is not registered") from err


def inference_kind_of(path: str | Path) -> tuple[Path, str, str]:
    """(checkpoint file, method name, inference kind) of a run, without building any network."""
    file, saved = read_checkpoint(path)
    return file, str(saved.get("method_name")), method_class(saved, file).inference_kind


def load_inference(path: str | Path, device: torch.device | str = "cpu", kind: str | None = None) -> InferenceModel:
    """The inference model of the run at ``path`` (a run directory or its checkpoint.pt), in eval mode on
    ``device``; ``kind`` refuses any other inference kind with a message naming the method."""
    device = torch.device(device)
    file, saved = read_checkpoint(path, "segmenter" if kind == SEGMENTER else "")
    cls = method_class(saved, file)
    method = str(saved["method_name"])
    if kind is not None and cls.inference_kind != kind:
        what = cls.inference_kind.replace("_", "-") or "no inference model"
        raise InferenceModelError(f"{file} is a {method!r} run ({what}), not a {kind.replace('_', '-')} model")
    model = cls.build_inference(saved, device)
    model.checkpoint = file
    model.checkpoint_hash = file_digest(file)
    return model


def load_segmenter(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """The network of a segmenter run (eval mode, [-1, 1] RGB in, logits out), via the registry."""
    return load_inference(path, device, kind=SEGMENTER).net
