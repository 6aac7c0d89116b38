"""The typed keys of a benchmark definition, ``configs/bench/<name>.yaml`` (values and their documentation live in
the YAML files).

One schema serves every definition: it is registered once as Hydra's structured config ``schema/bench``, and each
``configs/bench/<name>.yaml`` (the built-in ``default`` and the user's own) lists ``/schema/bench@_here_`` first in
its defaults. Store roles, mixes and baselines are named by the definition, so they are mappings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from simreal.config import register_schema


@dataclass
class MixEntry:
    """One entry of ``mixes``: the store roles it samples from and their shares."""

    label: str | None = None  # None: the mix's name
    parts: dict[str, float] = field(default_factory=dict)  # store role -> share (scaled to sum to 1)


@dataclass
class SegmenterRecipe:
    preset: str = MISSING  # a preset of configs/train/segmenter.yaml
    encoder_weights: str | None = MISSING
    overrides: dict[str, Any] = MISSING  # keys of configs/train/segmenter.yaml, typed by that config's schema


@dataclass
class BenchRayConfig:
    address: str | None = MISSING
    num_cpus: int | None = MISSING
    cpus_per_run: int = MISSING
    gpus_per_run: float = MISSING


@dataclass
class BenchConfig:
    name: str = MISSING
    preset: str | None = MISSING  # None: a definition without presets
    out: str = MISSING
    eval: str | None = MISSING
    seeds: int = MISSING
    stores: dict[str, str | None] = MISSING  # store role -> training store (None: not given)
    mixes: dict[str, MixEntry] = MISSING
    only: list[str] | None = MISSING
    baselines: dict[str, str] = MISSING  # short name -> the mix every other mix's gain is measured against
    segmenter: SegmenterRecipe = MISSING
    ray: BenchRayConfig = MISSING


register_schema("bench", BenchConfig)
