"""The inference side of every translation method, behind one interface that bulk translation drives.

Three families, by the method's inference kind (``simreal.inference``; the method registry says which):

- structure + texture (e.g. ``lcsae``, ``sae``): a sim frame gives the structure code, a real frame of the
  ``--style`` store gives the texture code (``random``: a seeded random real frame per output frame, ``fixed``:
  one frame, ``mean``: the mean texture code of the store);
- label-to-image (e.g. ``dpgan``, ``oasis``, ``spade``): the frame's label map is painted with per-frame noise;
- image-to-image (e.g. ``lccut``, ``cut``): the frame itself is edited into the real domain as a whole (no style
  frame; its label map and per-frame noise as the generator's extra inputs when it reads them).

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
from simreal.device import autocast
from simreal.errors import TranslationError
from simreal.inference import (
    IMAGE_TO_IMAGE,
    LABEL_TO_IMAGE,
    STRUCTURE_TEXTURE,
    ImageModel,
    TextureModel,
    file_digest,
    load_inference,
    read_checkpoint,
)
from simreal.labels import LabelTable
from simreal.synthesize import Synthesizer, frame_noise_seed

STYLE_POLICIES = ("random", "fixed", "mean")
TRANSLATING_KINDS = (STRUCTURE_TEXTURE, LABEL_TO_IMAGE, IMAGE_TO_IMAGE)


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


def translating_methods() -> list[str]:
    """The registered methods whose inference model translates."""
    from simreal.training.registry import load_builtin_methods

    return sorted(name for name, spec in load_builtin_methods().items() if spec.cls.inference_kind in TRANSLATING_KINDS)


def check_request(method: str, style: StyleOptions) -> None:
    """Refuse a translation that cannot work, before any model is loaded."""
    from simreal.training.registry import METHODS, load_builtin_methods

    load_builtin_methods()
    kind = METHODS[method].cls.inference_kind if method in METHODS else ""
    if kind not in TRANSLATING_KINDS:
        known = ", ".join(translating_methods())
        raise TranslationError(f"a {method!r} checkpoint cannot translate; translation takes {known}")
    if kind != STRUCTURE_TEXTURE:
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

    def __init__(self, model: TextureModel, style: StyleOptions, bf16: bool = False) -> None:
        check_request(model.method, style)
        assert style.store is not None
        self.encoder, self.generator = model.encoder.eval(), model.generator.eval()
        self.method, self.class_set, self.checkpoint_hash = model.method, model.class_set, model.checkpoint_hash
        self.device, self.bf16 = model.device, bf16
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

    @torch.no_grad()
    def _texture(self, rgb: np.ndarray) -> torch.Tensor:
        with autocast(self.device, self.bf16):
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
        with autocast(self.device, self.bf16):
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
        self.bf16 = bf16
        self.method = synthesizer.method
        self.class_set = synthesizer.class_set
        self.checkpoint_hash = synthesizer.checkpoint_hash

    @torch.no_grad()
    def translate(
        self, rgb: np.ndarray, label: np.ndarray, jobs: list[tuple[int, int]], seed: int
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        with autocast(self.synthesizer.device, self.bf16):
            images, seeds = self.synthesizer.paint_frames(label, jobs, seed)
        return images, [{"noise_seed": s} for s in seeds]


class ImageTranslator:
    """Whole-domain inference: the frame edited by the generator, with its label map and per-frame noise."""

    def __init__(self, model: ImageModel, bf16: bool = False) -> None:
        self.generator = model.generator.eval()
        self.method, self.class_set, self.checkpoint_hash = model.method, model.class_set, model.checkpoint_hash
        self.device, self.bf16 = model.device, bf16
        self.spec = self.generator.spec
        self.num_classes = max(self.class_set.ids) + 1

    @torch.no_grad()
    def translate(
        self, rgb: np.ndarray, label: np.ndarray, jobs: list[tuple[int, int]], seed: int
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        from simreal.models.spade_blocks import one_hot_labels

        h, w = rgb.shape[1:3]
        if h % self.spec.size_multiple or w % self.spec.size_multiple:
            raise TranslationError(
                f"{self.method} translates frames whose sides are multiples of {self.spec.size_multiple}; the input "
                f"store's are {w}x{h}: resize it (datasets import/collect store.size=[W,H])"
            )
        images = uint8_to_tensor(rgb, self.device)
        segmap = None
        if self.spec.label_channels:
            segmap = one_hot_labels(torch.from_numpy(np.array(label, dtype=np.int64)).to(self.device), self.num_classes)
        noise_seeds = [frame_noise_seed(seed, index, variant) for index, variant in jobs]
        noise = None
        if self.spec.noise_inputs:
            noise = torch.stack([
                torch.randn(self.spec.noise_inputs, h, w, generator=torch.Generator().manual_seed(s))
                for s in noise_seeds
            ]).to(self.device)  # fmt: skip
        with autocast(self.device, self.bf16):
            out = self.generator(images, segmap, noise)
        extras = [{"noise_seed": s} if noise is not None else {} for s in noise_seeds]
        return tensor_to_uint8(out), extras


def checkpoint_method(path: str | Path) -> tuple[Path, str, dict]:
    """(checkpoint file, method name, saved method state) of a run directory or checkpoint."""
    file, saved = read_checkpoint(path)
    return file, str(saved.get("method_name")), saved.get("method", {})


def load_translator(
    checkpoint: str | Path, device: torch.device, style: StyleOptions = StyleOptions(), bf16: bool = False
) -> Translator:
    """The translator of any run whose method translates (structure + texture or label-to-image)."""
    _, method, _ = checkpoint_method(checkpoint)
    check_request(method, style)
    model = load_inference(checkpoint, device)
    if isinstance(model, Synthesizer):
        return LabelTranslator(model, bf16=bf16)
    if isinstance(model, ImageModel):
        return ImageTranslator(model, bf16=bf16)
    return TextureTranslator(model, style, bf16=bf16)


def check_scorer(checkpoint: Path, scorer: Path, store: FrameStore) -> str:
    """The digest of the scorer segmenter that grades a translation's frames, refused when it cannot: another class
    set than the store's, or one of the segmenters the translator trained with (a translator is never graded by
    its own loss's segmenter: it learnt to please that one)."""
    import yaml

    from simreal.metrics.consistency import check_class_sets_match, segmenter_class_set
    from simreal.training.checkpoint import checkpoint_file

    scorer_file = checkpoint_file(scorer, "segmenter")
    check_class_sets_match(segmenter_class_set(scorer_file), store)
    digest = file_digest(scorer_file)
    config_file = checkpoint.parent / "config.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    for key in ("outer_segmenter", "inner_segmenter", "task_segmenter"):
        used = (config or {}).get(key)
        if used and Path(used).exists() and file_digest(checkpoint_file(used, "segmenter")) == digest:
            raise TranslationError(
                f"--scorer {scorer} is the {key} {checkpoint} was trained with: its scores would flatter the "
                "translator; grade with a held-out segmenter (simreal train segmenter preset=heldout)"
            )
    return digest
