"""Endless, resumable data loaders: one per data role of a method.

Each epoch visits a permutation drawn from ``(seed, epoch)``, split across distributed ranks; the loader's position
is ``(epoch, batches consumed in the epoch)``, saved in checkpoints, so a resumed run continues with the very
next batch. Augmentation randomness inside the dataset comes from the global RNGs when ``num_workers == 0``
(restored from the checkpoint: bit-exact resume on CPU), and from per-worker seeds derived from
``(seed, epoch, position)`` otherwise (deterministic, but not identical to an uninterrupted run).

A dataset with a ``sample_weights`` attribute (one non-negative weight per sample, e.g. a weighted mix of stores)
is sampled in proportion to those weights instead: each epoch draws ``len(dataset)`` indices with replacement from
``(seed, epoch)``, so positions and resuming work the same way.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from simreal.errors import TrainingError
from simreal.training.errors import DatasetTooSmallError


class _EpochSampler(Sampler[int]):
    """This rank's share of the epoch's permutation, starting at a given sample offset."""

    def __init__(
        self,
        size: int,
        seed: int,
        epoch: int,
        start: int,
        rank: int,
        world_size: int,
        weights: torch.Tensor | None = None,
    ) -> None:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        if weights is None:
            permutation = torch.randperm(size, generator=generator)
        else:
            permutation = torch.multinomial(weights, size, replacement=True, generator=generator)
        per_rank = size // world_size  # equal share per rank keeps DDP steps in lockstep
        self._indices = permutation[rank * per_rank : (rank + 1) * per_rank][start:].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices)

    def __len__(self) -> int:
        return len(self._indices)


class InfiniteLoader:
    """Yields collated batches forever; ``state_dict()`` records the position for resuming."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        seed: int,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pin_memory: bool = False,
        role: str = "data",
    ) -> None:
        size = len(dataset)  # type: ignore[arg-type]
        if size // world_size < batch_size:
            raise DatasetTooSmallError(
                f"dataset of role {role!r} has {size} samples, fewer than one batch of {batch_size} per rank "
                f"on {world_size} rank(s); lower batch_size or add data"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.rank = rank
        self.world_size = world_size
        self.pin_memory = pin_memory
        self.sample_weights = _sample_weights(dataset, size, role)
        self.epoch = 0
        self.batches_in_epoch = 0
        self._iterator: Iterator | None = None

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> dict:
        while True:
            if self._iterator is None:
                self._iterator = iter(self._epoch_loader())
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                self.epoch += 1
                self.batches_in_epoch = 0
                continue
            self.batches_in_epoch += 1
            return batch

    def _epoch_loader(self) -> DataLoader:
        sampler = _EpochSampler(
            len(self.dataset),  # type: ignore[arg-type]
            self.seed,
            self.epoch,
            self.batches_in_epoch * self.batch_size,
            self.rank,
            self.world_size,
            self.sample_weights,
        )
        # Worker seeds come from this generator: fixed by the position, so restarts are reproducible.
        worker_seed = (self.seed * 1_000_003 + self.epoch) * 1_000_003 + self.batches_in_epoch + self.rank * 7919
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(worker_seed),
        )

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.batches_in_epoch = int(state["batches_in_epoch"])
        self._iterator = None


def _sample_weights(dataset: Dataset, size: int, role: str) -> torch.Tensor | None:
    """The dataset's ``sample_weights`` as a float64 tensor, checked; None for uniform sampling."""
    weights = getattr(dataset, "sample_weights", None)
    if weights is None:
        return None
    weights = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
    if len(weights) != size or not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise TrainingError(f"dataset of role {role!r}: sample_weights must be {size} finite weights >= 0")
    if float(weights.sum()) <= 0:
        raise TrainingError(f"dataset of role {role!r}: sample_weights are all zero")
    return weights
