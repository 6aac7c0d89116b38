"""Painting label maps into images with a trained label-to-image generator (any ``label_to_image`` method).

Two layers, both reusable by pipelines:

- ``load_synthesizer(ckpt)`` -> ``Synthesizer``: the generator of a training run as its method rebuilds it
  (``build_inference``, through the registry), with ``paint(labels, noise_seed=... | z=...)`` for one batch.
- ``open_synthesis_job(synth, labels_store, out_store, variants, seed)`` -> ``SynthesisJob``: paints every label
  map of a store ``variants`` times into a new store (labels copied through, provenance per frame), one append
  per batch by a single writer; rerunning the same job on the same output skips the frames already committed.

Output frame ``j`` is source frame ``j // variants`` painted with variant ``j % variants``; its noise depends only
on (seed, source index, variant), so a frame's pixels do not depend on the batch size or on resuming.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from simreal.data.images import tensor_to_uint8
from simreal.data.lock import writer_lock
from simreal.data.store import FrameStore, open_derived
from simreal.device import pick_device
from simreal.errors import TranslationError
from simreal.inference import LABEL_TO_IMAGE, InferenceModelError, load_inference
from simreal.labels import LabelTable
from simreal.models.spade_blocks import LabelMapError, one_hot_labels


class SynthesisError(TranslationError):
    """A checkpoint, label store or output store that cannot be used for synthesis as asked."""


def frame_noise_seed(seed: int, source_index: int, variant: int) -> int:
    """A 63-bit seed for one output frame, independent of batching."""
    state = np.random.SeedSequence([seed, source_index, variant]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


@dataclass
class Synthesizer:
    """A trained generator in eval mode, ready to paint label maps of its class set (the ``label_to_image``
    inference model). ``generator(segmap, z)``: one-hot labels ``(B, num_classes, H, W)`` and ``(B, z_dim)``
    noise (``None`` when ``z_dim`` is 0) -> ``(B, 3, H, W)`` in [-1, 1]."""

    method: str
    generator: nn.Module
    class_set: LabelTable
    device: torch.device
    z_dim: int  # 0: a noise-free generator
    size_multiple: int = 1  # label maps' sides must be divisible by it
    fixed_size: tuple[int, int] | None = None  # the only (H, W) it paints, if any
    checkpoint: Path | None = None
    checkpoint_hash: str = ""

    @property
    def num_classes(self) -> int:
        return max(self.class_set.ids) + 1

    @property
    def stochastic(self) -> bool:
        """False for generators that take no noise (SPADE without VAE): every variant would be identical."""
        return self.z_dim > 0

    def noise(self, batch: int, seed: int) -> torch.Tensor:
        """(batch, z_dim) standard-normal noise drawn on the CPU from ``seed``."""
        return torch.randn(batch, self.z_dim, generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def paint(self, labels: torch.Tensor, noise_seed: int | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, W) class ids (255 = don't-care) -> (B, 3, H, W) float images in [-1, 1] on ``self.device``.

        Noise: ``z`` as given ((B, z_dim), or (B, z_dim, H, W) per pixel for OASIS/DP-GAN), else drawn from
        ``noise_seed``, else fresh random noise. Noise-free generators refuse both.
        """
        if noise_seed is not None and z is not None:
            raise SynthesisError("pass noise_seed or z, not both")
        if not self.stochastic:
            if noise_seed is not None or z is not None:
                raise SynthesisError(f"this {self.method} generator takes no noise (it was trained without a VAE)")
        elif z is None:
            z = self.noise(len(labels), noise_seed) if noise_seed is not None else torch.randn(len(labels), self.z_dim)
        segmap = one_hot_labels(labels.to(self.device), self.num_classes)
        images = self.generator(segmap, z.to(self.device) if z is not None else None)
        return images.float().clamp(-1, 1)

    def paint_frames(
        self, labels: np.ndarray, jobs: list[tuple[int, int]], seed: int
    ) -> tuple[np.ndarray, list[int | None]]:
        """Paint uint8 label maps for output jobs (source index, variant) with per-frame noise seeds.

        Returns uint8 (B, H, W, 3) images and each frame's noise seed (None for noise-free generators).
        """
        seeds = [frame_noise_seed(seed, index, variant) for index, variant in jobs]
        z = torch.cat([self.noise(1, s) for s in seeds]) if self.stochastic else None
        images = self.paint(torch.from_numpy(np.ascontiguousarray(labels)).long(), z=z)
        return tensor_to_uint8(images), (seeds if self.stochastic else [None] * len(jobs))

    def check_size(self, height: int, width: int) -> None:
        """Raise ``LabelMapError`` if the generator cannot paint ``height`` x ``width`` maps."""
        factor = self.size_multiple
        if height % factor or width % factor:
            raise LabelMapError(
                f"{self.method} generator paints sizes divisible by {factor}; labels are {height}x{width}"
            )
        if self.fixed_size is not None and tuple(self.fixed_size) != (height, width):
            raise LabelMapError(
                f"this {self.method} generator paints {self.fixed_size} only; labels are {height}x{width}"
            )


def load_synthesizer(path: str | Path, device: str | torch.device = "cpu") -> Synthesizer:
    """The painting generator of any label-to-image run directory or its checkpoint.pt."""
    device = pick_device(device) if isinstance(device, str) else device
    try:
        return load_inference(path, device, kind=LABEL_TO_IMAGE)
    except InferenceModelError as err:
        raise SynthesisError(f"{err}; synthesis takes a label-to-image run") from err


@dataclass
class SynthesisJob:
    """Painting one label store into one output store; ``run`` continues after the committed frames."""

    synthesizer: Synthesizer
    labels: FrameStore
    out: FrameStore
    variants: int
    seed: int

    @property
    def total(self) -> int:
        return len(self.labels) * self.variants

    @property
    def done(self) -> int:
        return len(self.out)

    def run(self, batch_size: int = 8, on_batch: Callable[[int], None] | None = None) -> int:
        """Paint the remaining frames in batches; returns how many were painted now."""
        if batch_size < 1:
            raise SynthesisError(f"batch size must be >= 1, got {batch_size}")
        with writer_lock(self.out.path):
            # Reopened under the lock: another job may have continued the store since it was opened.
            self.out = FrameStore.open(self.out.path, mode="a")
            return self._paint(batch_size, on_batch)

    def _paint(self, batch_size: int, on_batch: Callable[[int], None] | None) -> int:
        start = self.done
        has_source = self.labels.has_source_label
        for first in range(start, self.total, batch_size):
            jobs = [divmod(j, self.variants) for j in range(first, min(first + batch_size, self.total))]
            labels = np.stack([self.labels.label(index) for index, _ in jobs])
            rgb, seeds = self.synthesizer.paint_frames(labels, jobs, self.seed)
            provenance = [
                {
                    "source_store": str(self.labels.path),
                    "source_index": index,
                    "variant": variant,
                    "seed": self.seed,
                    "noise_seed": noise_seed,
                    "method": self.synthesizer.method,
                    "checkpoint": self.synthesizer.checkpoint_hash,
                    "source_provenance": self.labels.provenance(index),
                }
                for (index, variant), noise_seed in zip(jobs, seeds, strict=True)
            ]
            source = np.stack([self.labels.array("source_label")[i] for i, _ in jobs]) if has_source else None
            self.out.append(rgb, labels, provenance, source_label=source)
            if on_batch is not None:
                on_batch(len(jobs))
        return self.total - start


def open_synthesis_job(
    synthesizer: Synthesizer, labels_path: str | Path, out_path: str | Path, *, variants: int = 1, seed: int = 0
) -> SynthesisJob:
    """Check the inputs and create (or reopen, to resume) the output store."""
    if variants < 1:
        raise SynthesisError(f"variants must be >= 1, got {variants}")
    if variants > 1 and not synthesizer.stochastic:
        raise SynthesisError(
            f"this {synthesizer.method} generator takes no noise, so {variants} variants would be identical; "
            "use --variants 1 (or train SPADE with model.use_vae=true)"
        )
    labels = FrameStore.open(labels_path)
    if labels.class_set.name != synthesizer.class_set.name or labels.class_set.ids != synthesizer.class_set.ids:
        raise SynthesisError(
            f"{labels_path} is labelled in {labels.class_set.name!r} but the generator was trained on "
            f"{synthesizer.class_set.name!r}; convert the labels to its class set first"
        )
    synthesizer.check_size(labels.height, labels.width)
    settings = {
        "labels": str(Path(labels_path).resolve()),
        "checkpoint": synthesizer.checkpoint_hash,
        "method": synthesizer.method,
        "variants": variants,
        "seed": seed,
    }
    with writer_lock(out_path):
        out = open_derived(
            out_path, labels, role="synthesize", settings=settings, with_source_label=labels.has_source_label,
            description=f"{synthesizer.method} synthesis of {labels_path} ({variants} variant(s), seed {seed})",
        )  # fmt: skip
    return SynthesisJob(synthesizer, labels, out, variants, seed)
