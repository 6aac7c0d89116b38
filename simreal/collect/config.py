"""The typed keys of ``configs/collect.yaml`` (values and their documentation live in the YAML).

Registered as Hydra's structured config ``schema/collect``: Hydra refuses unknown keys and converts every value to
its type once, when ``compose_collect_config`` composes the config.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING, DictConfig

from simreal.config import compose_config, register_schema


@dataclass
class CameraConfig:
    width: int = MISSING
    height: int = MISSING
    fov: float = MISSING
    capture_every: int = MISSING
    sensor_tick: bool = MISSING
    x: float = MISSING
    z: float = MISSING
    pitch: float = MISSING
    postprocess_effects: bool = MISSING


@dataclass
class TrafficConfig:
    vehicles: int = MISSING
    walkers: int = MISSING


@dataclass
class CarlaConfig:
    timeout_s: float = MISSING
    load_timeout_s: float = MISSING
    warmup_s: float = MISSING
    exposure_mode: str = MISSING
    exposure_compensation: float | None = MISSING
    shutter_speed: float | None = MISSING
    iso: float | None = MISSING
    fstop: float | None = MISSING
    max_rejects_in_a_row: int = MISSING
    max_respawns: int = MISSING
    fixed_delta_seconds: float = MISSING
    sensor_timeout_s: float = MISSING
    restart_budget_s: float = MISSING
    restart_backoff_s: float = MISSING


@dataclass
class ProceduralConfig:
    look: str = MISSING


@dataclass
class FilterRulesConfig:
    rules: list[str] = MISSING
    min_traffic_share: float = MISSING
    min_traffic_blobs: int = MISSING
    min_blob_pixels: int = MISSING
    duplicate_threshold: float = MISSING
    uniform_std: float = MISSING


@dataclass
class StoreConfig:
    size: list[int] = MISSING
    policy: str = MISSING
    interpolation: str = MISSING
    class_set: str = MISSING
    unknown: str = MISSING
    keep_source_label: bool = MISSING
    shard_size: int = MISSING


@dataclass
class CollectConfig:
    backend: str = MISSING
    auto_probe_s: float = MISSING
    frames: int = MISSING
    out: str = MISSING
    seed: int = MISSING
    address: str | None = MISSING
    workers: int = MISSING
    cpus_per_source: float = MISSING
    towns: list[str] = MISSING
    weathers: list[str] = MISSING
    frames_per_condition: int = MISSING
    servers: list[str] = MISSING
    tm_port_base: int = MISSING
    camera: CameraConfig = MISSING
    traffic: TrafficConfig = MISSING
    carla: CarlaConfig = MISSING
    procedural: ProceduralConfig = MISSING
    filter: FilterRulesConfig = MISSING
    store: StoreConfig = MISSING


register_schema("collect", CollectConfig)


def compose_collect_config(overrides: list[str] | None = None) -> DictConfig:
    """``configs/collect.yaml`` with ``overrides`` (Hydra ``key=value`` grammar), typed by ``CollectConfig``."""
    return compose_config("collect", overrides, what="collect")
