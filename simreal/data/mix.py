"""Weighted mixes of frame stores: a mix file on disk and the dataset that samples stores by weight.

For your own loop::

    mix = MixedFrames.of_stores(["data/cs_train.zarr", "data/town10_lccut.zarr"], weights=[0.5, 0.5], crop=(256, 256))
    loader = DataLoader(mix, batch_size=8, sampler=mix.sampler(num_samples=10_000, seed=0))

A mix file is YAML listing stores and their sampling weights::

    parts:
      - {store: /data/cityscapes-train, weight: 0.75}
      - {store: /data/town10-lcsae, weight: 0.25}

Weights are shares of the *sampled frames*, whatever the stores' sizes: with the file above three of every four
training samples come from Cityscapes. ``MixedFrames`` concatenates the stores and exposes one
``sample_weights`` entry per frame (``weight / store size``), which the training loader
(``simreal.training.data.InfiniteLoader``) honours. ``simreal train segmenter data=MIX.yaml`` trains on a mix.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import Dataset, WeightedRandomSampler

from simreal.data.location import store_location
from simreal.errors import StoreError

MIX_SUFFIXES = (".yaml", ".yml")


class MixError(StoreError):
    """A mix that cannot be built: bad weights, unreadable file, stores that do not fit together."""


@dataclass(frozen=True)
class MixPart:
    store: str
    weight: float


def normalized_parts(parts: Sequence[MixPart]) -> list[MixPart]:
    """The parts with weights scaled to sum to 1; every weight must be a finite number > 0."""
    if not parts:
        raise MixError("a mix needs at least one store")
    for part in parts:
        if not (np.isfinite(part.weight) and part.weight > 0):
            raise MixError(f"mix weight of {part.store} must be a number > 0, got {part.weight}")
    total = sum(part.weight for part in parts)
    return [MixPart(part.store, part.weight / total) for part in parts]


def is_mix_file(path: str | Path) -> bool:
    path = Path(path)
    return path.suffix in MIX_SUFFIXES and path.is_file()


def write_mix_file(path: str | Path, parts: Sequence[MixPart]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = [{"store": str(part.store), "weight": float(part.weight)} for part in normalized_parts(parts)]
    path.write_text(yaml.safe_dump({"parts": entries}, sort_keys=False), encoding="utf-8")
    return path


def read_mix_file(path: str | Path) -> list[MixPart]:
    """The normalised parts of a mix file; relative store paths are taken from the file's folder."""
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise MixError(f"cannot read mix file {path}: {err}") from err
    entries = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "store" in e for e in entries):
        raise MixError(f"{path}: a mix file holds 'parts: [{{store: PATH, weight: W}}, ...]'")
    parts = []
    for entry in entries:
        store = store_location(str(entry["store"]))
        try:
            weight = float(entry.get("weight", 1.0))
        except (TypeError, ValueError) as err:
            raise MixError(f"{path}: weight of {store} is not a number: {entry.get('weight')!r}") from err
        relative = isinstance(store, Path) and not store.is_absolute()
        parts.append(MixPart(str(path.parent / store if relative else store), weight))
    return normalized_parts(parts)


class MixedFrames(Dataset):
    """The concatenation of several datasets with per-sample weights giving each dataset its share.

    Samples are those of the parts plus ``"store"``: the position of the part they came from. Every part must use
    the same class set (the labels of one store must mean what they mean in the others).
    """

    def __init__(self, datasets: Sequence[Dataset], weights: Sequence[float], names: Sequence[str] | None = None):
        if len(datasets) != len(weights) or not datasets:
            raise MixError(f"a mix needs one weight per dataset, got {len(datasets)} datasets, {len(weights)} weights")
        names = list(names) if names is not None else [f"part {i}" for i in range(len(datasets))]
        parts = normalized_parts([MixPart(name, float(w)) for name, w in zip(names, weights, strict=True)])
        self.datasets = list(datasets)
        self.weights = [part.weight for part in parts]
        self.class_set = getattr(datasets[0], "class_set", None)
        self.evaluable_classes = getattr(datasets[0], "evaluable_classes", None)
        for name, dataset in zip(names[1:], datasets[1:]):
            other = getattr(dataset, "class_set", None)
            if self.class_set is not None and other is not None and other.to_attrs() != self.class_set.to_attrs():
                raise MixError(
                    f"{name} uses class set {other.name!r}, {names[0]} uses {self.class_set.name!r}; "
                    "a mix needs stores with one class set (re-import them with the same --classes)"
                )
        sizes = [len(dataset) for dataset in datasets]  # type: ignore[arg-type]
        if min(sizes) == 0:
            raise MixError(f"{names[sizes.index(0)]} is empty")
        self.offsets = np.cumsum([0, *sizes]).tolist()
        self.sample_weights = np.concatenate(
            [np.full(size, weight / size) for size, weight in zip(sizes, self.weights, strict=True)]
        )

    @classmethod
    def of_stores(
        cls, stores: Sequence[str | Path], weights: Sequence[float] | None = None, **frames: Any
    ) -> MixedFrames:
        """Frame stores mixed by ``weights`` (shares of the sampled frames; default equal), each read as
        ``FrameDataset(store, **frames)`` (crop, hflip, normalize, transform, ...)."""
        from simreal.data.dataset import FrameDataset

        weights = list(weights) if weights is not None else [1.0] * len(stores)
        return cls([FrameDataset(store, **frames) for store in stores], weights, [str(s) for s in stores])

    def sampler(self, num_samples: int, seed: int = 0) -> WeightedRandomSampler:
        """A seeded sampler drawing ``num_samples`` frames with the mix's shares (the same seed, the same draws)."""
        generator = torch.Generator().manual_seed(seed)
        weights = torch.as_tensor(self.sample_weights, dtype=torch.float64)
        return WeightedRandomSampler(weights, num_samples, replacement=True, generator=generator)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def store_of(self, item: int) -> int:
        """The position of the part that holds concatenated sample ``item``."""
        if not 0 <= item < len(self):
            raise IndexError(f"sample {item} out of range for a mix of {len(self)} samples")
        return bisect.bisect_right(self.offsets, item) - 1

    def __getitem__(self, item: int) -> dict:
        part = self.store_of(item)
        sample = dict(self.datasets[part][item - self.offsets[part]])
        sample["store"] = part
        return sample


def load_mix_dataset(path: str | Path, store_dataset: Callable[[str], Dataset]) -> MixedFrames:
    """The mix of a mix file, each store opened with ``store_dataset(path)`` (crop, flips, normalisation)."""
    parts = read_mix_file(path)
    return MixedFrames(
        [store_dataset(part.store) for part in parts], [part.weight for part in parts], [p.store for p in parts]
    )
