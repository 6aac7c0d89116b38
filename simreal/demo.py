"""The typed keys of ``configs/demo.yaml`` and its presets (values and their documentation live in the YAML).

Registered as Hydra's structured config ``schema/demo``; the orchestration is ``pipelines/demo.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING, DictConfig

from simreal.config import compose_config, register_schema
from simreal.study import SegmenterPairConfig


@dataclass
class DemoFramesConfig:
    sim: int = MISSING
    real: int = MISSING
    eval: int = MISSING


@dataclass
class DemoTranslateConfig:
    batch_size: int = MISSING
    style_policy: str = MISSING


@dataclass
class DemoConfig:
    preset: str = MISSING
    out: str = MISSING
    real: str | None = MISSING
    real_split: str = MISSING
    eval_split: str = MISSING
    seed: int = MISSING
    address: str | None = MISSING
    size: list[int] = MISSING
    frames: DemoFramesConfig = MISSING
    segmenters: SegmenterPairConfig = MISSING
    translator: str = MISSING  # the method trained and translated with (a key of ``translators``)
    translators: dict[str, list[str]] = MISSING  # overrides of `simreal train <method>`, by method
    translate: DemoTranslateConfig = MISSING
    floor_split: str | None = MISSING  # split of a registered real dataset held out as the FID floor


register_schema("demo", DemoConfig)


def compose_demo_config(overrides: list[str] | None = None) -> DictConfig:
    """``configs/demo.yaml`` + its selected preset + ``overrides``, typed by ``DemoConfig``."""
    return compose_config("demo", overrides, what="demo")
