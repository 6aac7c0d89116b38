"""Procedural street world: a CARLA-like frame source that needs no simulator server."""

from simreal.sim.presets import LOOKS, TOWNS, WEATHERS, TownPreset, WeatherPreset
from simreal.sim.source import ProceduralSource

__all__ = ["LOOKS", "TOWNS", "WEATHERS", "ProceduralSource", "TownPreset", "WeatherPreset"]
