"""The inference side of every translation method, behind one interface that bulk translation drives.

Two families:

- structure + texture (``lcsae``, ``sae``): a sim frame gives the structure code, a real frame of the ``--style``
  store gives the texture code (``random``: a seeded random real frame per output frame, ``fixed``: one frame,
  ``mean``: the mean texture code of the store);
- label-to-image (``dpgan``, ``oasis``, ``spade``): the frame's label map is painted with per-frame noise.

Output frame ``j`` is input frame ``j // variants`` with variant ``j % variants``; every random choice depends
only on (seed, input index, variant), so pixels do not depend on batching, actors or resuming.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from simreal.data.images import tensor_to_uint8, uint8_to_tensor
from simreal.data.store import FrameStore
from simreal.errors import TranslationError
from simreal.labels import LabelTable
from simreal.synthesize import SYNTHESIZER_METHODS, Synthesizer, file_digest, frame_noise_seed, load_synthesizer
from simreal.training.checkpoint import checkpoint_file

STYLE_POLICIES = ("random", "fixed", "mean")
STRUCTURE_TEXTURE_METHODS = ("lcsae", "sae")


@dataclass(frozen=True)
class StyleOptions:
    store: Path | None = None
    policy: str = "random"
    fixed_index: int = 0
    mean_frames: int = 256  # frames averaged for the ``mean`` policy (evenly spread over the store)


class Translator(Protocol):
    method: str
    checkpoint_hash: str
    class_set: LabelTable

    def translate(
        self, rgb: np.ndarray, label: np.ndarray, jobs: list[tuple[int, int]], seed: int
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """uint8 (B,H,W,3) frames + (B,H,W) labels for output jobs (input index, variant) -> uint8 images and
        per-frame provenance entries."""
        ...


def style_index(seed: int, source_index: int, variant: int, n_style: int) -> int:
    """The real frame whose texture a sim frame borrows under the ``random`` policy."""
    return int(np.random.default_rng([seed, source_index, variant, 0x5EED]).integers(n_style))


def check_request(method: str, style: StyleOptions) -> None:
    """Refuse a translation that cannot work, before any model is loaded."""
    known = STRUCTURE_TEXTURE_METHODS + SYNTHESIZER_METHODS
    if method not in known:
        raise TranslationError(f"a {method!r} checkpoint cannot translate; translation takes {', '.join(known)}")
    if method not in STRUCTURE_TEXTURE_METHODS:
        return
    if style.policy not in STYLE_POLICIES:
        raise TranslationError(f"unknown style policy {style.policy!r}; choose from {', '.join(STYLE_POLICIES)}")
    if style.store is None:
        raise TranslationError(f"{method} translates sim structure with real texture: pass --style REAL_STORE")
    frames = len(FrameStore.open(style.store))
    if frames == 0:
        raise TranslationError(f"style store {style.store} holds no frames")
    if style.policy == "fixed" and not 0 <= style.fixed_index < frames:
        raise TranslationError(f"--style-index {style.fixed_index} outside the style store's {frames} frames")


class TextureTranslator:
    """Swapping-autoencoder inference: sim structure code x real texture code -> translated frame."""

    def __init__(
        self, encoder: torch.nn.Module, generator: torch.nn.Module, *, method: str, class_set: LabelTable,
        checkpoint_hash: str, style: StyleOptions, device: torch.device, bf16: bool = False,
    ) -> None:  # fmt: skip
        check_request(method, style)
        assert style.store is not None
        self.encoder, self.generator = encoder.eval(), generator.eval()
        self.method, self.class_set, self.checkpoint_hash = method, class_set, checkpoint_hash
        self.device, self.bf16 = device, bf16
        self.policy = style.policy
        self.style_store = FrameStore.open(style.store)
        self._fixed_code: torch.Tensor | None = None
        if style.policy == "fixed":
            self.fixed_index = style.fixed_index
            self._fixed_code = self._texture(self.style_store.rgb(style.fixed_index)[None])
        elif style.policy == "mean":
            picks = np.unique(np.linspace(0, len(self.style_store) - 1, style.mean_frames).round().astype(int))
            codes = torch.cat([self._texture(self.style_store.rgb(int(i))[None]) for i in picks])
            self._fixed_code = torch.nn.functional.normalize(codes.mean(0, keepdim=True), dim=1)

    def _autocast(self):  # type: ignore[no-untyped-def]
        enabled = self.bf16 and self.device.type == "cuda"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    @torch.no_grad()
    def _texture(self, rgb: np.ndarray) -> torch.Tensor:
        with self._autocast():
            _, texture = self.encoder(uint8_to_tensor(rgb, self.device))
        return texture.float()

    @torch.no_grad()
    def translate(
        self, rgb: np.ndarray, label: np.ndarray, jobs: list[tuple[int, int]], seed: int
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        if self.policy == "random":
            picks = [style_index(seed, index, variant, len(self.style_store)) for index, variant in jobs]
            texture = self._texture(np.stack([self.style_store.rgb(i) for i in picks]))
            extras = [{"style_policy": "random", "style_index": i} for i in picks]
        else:
            assert self._fixed_code is not None
            texture = self._fixed_code.expand(len(jobs), -1)
            entry = {"style_policy": self.policy, "style_index": getattr(self, "fixed_index", None)}
            extras = [dict(entry) for _ in jobs]
        # Generator noise is seeded per frame, so a frame's pixels depend on neither its batch nor where a run resumed.
        noise_seeds = [frame_noise_seed(seed, index, variant) for index, variant in jobs]
        with self._autocast():
            structure, _ = self.encoder(uint8_to_tensor(rgb, self.device))
            images = self.generator(structure, texture.to(structure.dtype), noise_seeds=noise_seeds)
        for extra, noise_seed in zip(extras, noise_seeds, strict=True):
            extra["style_store"] = str(self.style_store.path)
            extra["noise_seed"] = noise_seed
        return tensor_to_uint8(images), extras


class LabelTranslator:
    """Label-to-image inference: the label map painted with noise drawn per output frame."""

    def __init__(self, synthesizer: Synthesizer, bf16: bool = False) -> None:
        self.synthesizer = synthesizer
        self.bf16 = bf16 and synthesizer.device.type == "cuda"
        self.method = synthesizer.method
        self.class_set = synthesizer.class_set
        self.checkpoint_hash = synthesizer.checkpoint_hash

    @torch.no_grad()
    def translate(
        self, rgb: np.ndarray, label: np.ndarray, jobs: list[tuple[int, int]], seed: int
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self.bf16):
            images, seeds = self.synthesizer.paint_frames(label, jobs, seed)
        return images, [{"noise_seed": s} for s in seeds]


def checkpoint_method(path: str | Path) -> tuple[Path, str, dict]:
    """(checkpoint file, method name, saved method state) of a run directory or checkpoint."""
    path = checkpoint_file(path)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return path, str(saved.get("method_name")), saved.get("method", {})


def load_translator(
    checkpoint: str | Path, device: torch.device, style: StyleOptions = StyleOptions(), bf16: bool = False
) -> Translator:
    """The translator of any translation run (``lcsae``, ``sae``, ``dpgan``, ``oasis``, ``spade``)."""
    path, method, state = checkpoint_method(checkpoint)
    if method in SYNTHESIZER_METHODS:
        return LabelTranslator(load_synthesizer(path, device), bf16=bf16)
    if method in STRUCTURE_TEXTURE_METHODS:
        from simreal.models.sae import SAEConfig, build_networks

        nets = build_networks(SAEConfig.from_dict(state["model_config"]))
        nets.load_state_dict(state["networks"])
        encoder, generator = nets.encoder, nets.generator
        if "ema" in state:  # the averaged weights translate better than the raw ones
            averaged = torch.nn.ModuleDict({"encoder": encoder, "generator": generator})
            averaged.load_state_dict(state["ema"]["module"])
        return TextureTranslator(
            encoder.to(device), generator.to(device), method=method,
            class_set=LabelTable.from_dict(state["class_set"]), checkpoint_hash=file_digest(path), style=style,
            device=device, bf16=bf16,
        )  # fmt: skip
    raise TranslationError(f"{path} is a {method!r} checkpoint, which cannot translate")
