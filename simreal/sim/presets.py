"""Town and weather presets, named after CARLA's towns and ``carla.WeatherParameters`` presets.

Colours are RGB tuples in 0..255; the renderer converts to CARLA's BGRA layout at the very end.
"""

from __future__ import annotations

from dataclasses import dataclass

from simreal.errors import ConfigError

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class TownPreset:
    """Layout style of a procedural town: road cross-section, block rhythm, what lines the street."""

    name: str
    style: str  # "downtown", "urban", "suburb", "rural", "highway": picks palettes and lot contents
    lanes_per_direction: int
    lane_width: float
    sidewalk_width: float  # 0 means no sidewalk: a terrain verge meets the road
    block_length: float
    intersection_prob: float
    building_height: tuple[float, float]
    building_width: tuple[float, float]
    building_depth: tuple[float, float]
    setback: tuple[float, float]  # gap between the sidewalk's outer edge and the facade
    empty_lot_prob: float  # lots left as grass, parking or a small park instead of a building
    tree_spacing: float  # metres between street trees, 0 = none
    lamp_spacing: float
    parked_per_100m: float
    traffic_per_100m: float  # moving vehicles per lane
    pedestrians_per_100m: float  # per side
    ego_speed: float  # m/s
    pitched_roofs: bool = False


@dataclass(frozen=True)
class WeatherPreset:
    """Sun, sky and fog of one weather; ``wetness`` darkens the ground, ``rain`` draws streaks."""

    name: str
    sun_elevation: float  # degrees above the horizon
    sun_azimuth: float  # degrees, relative to the main road's direction of travel
    sun_colour: RGB
    sun_intensity: float
    ambient: float
    sky_top: RGB
    sky_horizon: RGB
    fog_colour: RGB
    fog_density: float  # per metre; fraction fogged = 1 - exp(-density * depth)
    wetness: float = 0.0
    rain: float = 0.0


def _town(**kwargs: object) -> TownPreset:
    return TownPreset(**kwargs)  # type: ignore[arg-type]


TOWNS: dict[str, TownPreset] = {
    t.name: t
    for t in [
        _town(
            name="Town01",
            style="suburb",
            lanes_per_direction=1,
            lane_width=3.5,
            sidewalk_width=3.0,
            block_length=70.0,
            intersection_prob=0.6,
            building_height=(6.0, 12.0),
            building_width=(8.0, 16.0),
            building_depth=(8.0, 14.0),
            setback=(0.0, 2.0),
            empty_lot_prob=0.15,
            tree_spacing=16.0,
            lamp_spacing=30.0,
            parked_per_100m=3.0,
            traffic_per_100m=2.0,
            pedestrians_per_100m=4.0,
            ego_speed=8.0,
            pitched_roofs=True,
        ),
        _town(
            name="Town02",
            style="suburb",
            lanes_per_direction=1,
            lane_width=3.3,
            sidewalk_width=2.5,
            block_length=55.0,
            intersection_prob=0.7,
            building_height=(5.0, 10.0),
            building_width=(7.0, 13.0),
            building_depth=(8.0, 12.0),
            setback=(0.0, 1.5),
            empty_lot_prob=0.1,
            tree_spacing=14.0,
            lamp_spacing=25.0,
            parked_per_100m=4.0,
            traffic_per_100m=1.5,
            pedestrians_per_100m=4.0,
            ego_speed=7.0,
            pitched_roofs=True,
        ),
        _town(
            name="Town03",
            style="urban",
            lanes_per_direction=2,
            lane_width=3.5,
            sidewalk_width=4.0,
            block_length=80.0,
            intersection_prob=0.7,
            building_height=(8.0, 30.0),
            building_width=(10.0, 24.0),
            building_depth=(12.0, 22.0),
            setback=(0.0, 1.0),
            empty_lot_prob=0.1,
            tree_spacing=18.0,
            lamp_spacing=25.0,
            parked_per_100m=2.0,
            traffic_per_100m=3.0,
            pedestrians_per_100m=6.0,
            ego_speed=9.0,
        ),
        _town(
            name="Town04",
            style="highway",
            lanes_per_direction=3,
            lane_width=3.7,
            sidewalk_width=0.0,
            block_length=120.0,
            intersection_prob=0.0,
            building_height=(6.0, 14.0),
            building_width=(10.0, 20.0),
            building_depth=(10.0, 16.0),
            setback=(25.0, 60.0),
            empty_lot_prob=0.7,
            tree_spacing=20.0,
            lamp_spacing=40.0,
            parked_per_100m=0.0,
            traffic_per_100m=2.5,
            pedestrians_per_100m=0.0,
            ego_speed=20.0,
            pitched_roofs=True,
        ),
        _town(
            name="Town05",
            style="urban",
            lanes_per_direction=2,
            lane_width=3.5,
            sidewalk_width=3.5,
            block_length=75.0,
            intersection_prob=0.8,
            building_height=(10.0, 40.0),
            building_width=(12.0, 26.0),
            building_depth=(12.0, 24.0),
            setback=(0.0, 2.0),
            empty_lot_prob=0.1,
            tree_spacing=20.0,
            lamp_spacing=25.0,
            parked_per_100m=1.5,
            traffic_per_100m=3.0,
            pedestrians_per_100m=5.0,
            ego_speed=10.0,
        ),
        _town(
            name="Town06",
            style="highway",
            lanes_per_direction=3,
            lane_width=3.7,
            sidewalk_width=0.0,
            block_length=150.0,
            intersection_prob=0.1,
            building_height=(5.0, 10.0),
            building_width=(10.0, 18.0),
            building_depth=(10.0, 14.0),
            setback=(30.0, 80.0),
            empty_lot_prob=0.8,
            tree_spacing=25.0,
            lamp_spacing=45.0,
            parked_per_100m=0.0,
            traffic_per_100m=3.0,
            pedestrians_per_100m=0.0,
            ego_speed=22.0,
            pitched_roofs=True,
        ),
        _town(
            name="Town07",
            style="rural",
            lanes_per_direction=1,
            lane_width=3.0,
            sidewalk_width=0.0,
            block_length=90.0,
            intersection_prob=0.3,
            building_height=(4.0, 8.0),
            building_width=(8.0, 16.0),
            building_depth=(8.0, 14.0),
            setback=(6.0, 20.0),
            empty_lot_prob=0.55,
            tree_spacing=10.0,
            lamp_spacing=0.0,
            parked_per_100m=0.5,
            traffic_per_100m=1.0,
            pedestrians_per_100m=1.0,
            ego_speed=8.0,
            pitched_roofs=True,
        ),
        _town(
            name="Town10HD",
            style="downtown",
            lanes_per_direction=2,
            lane_width=3.5,
            sidewalk_width=4.5,
            block_length=80.0,
            intersection_prob=0.8,
            building_height=(15.0, 60.0),
            building_width=(12.0, 28.0),
            building_depth=(15.0, 25.0),
            setback=(0.0, 0.5),
            empty_lot_prob=0.05,
            tree_spacing=15.0,
            lamp_spacing=20.0,
            parked_per_100m=3.0,
            traffic_per_100m=4.0,
            pedestrians_per_100m=10.0,
            ego_speed=8.0,
        ),
    ]
}


def _weather(**kwargs: object) -> WeatherPreset:
    return WeatherPreset(**kwargs)  # type: ignore[arg-type]


_NOON = dict(sun_elevation=65.0, sun_azimuth=35.0, sun_colour=(255, 250, 240))
_SUNSET = dict(sun_elevation=9.0, sun_azimuth=15.0, sun_colour=(255, 170, 110))

WEATHERS: dict[str, WeatherPreset] = {
    w.name: w
    for w in [
        _weather(
            name="ClearNoon",
            **_NOON,
            sun_intensity=0.75,
            ambient=0.45,
            sky_top=(70, 130, 215),
            sky_horizon=(180, 210, 235),
            fog_colour=(190, 210, 230),
            fog_density=0.002,
        ),
        _weather(
            name="CloudyNoon",
            **_NOON,
            sun_intensity=0.35,
            ambient=0.65,
            sky_top=(150, 160, 172),
            sky_horizon=(200, 204, 210),
            fog_colour=(195, 198, 204),
            fog_density=0.004,
        ),
        _weather(
            name="WetNoon",
            **_NOON,
            sun_intensity=0.7,
            ambient=0.45,
            sky_top=(80, 135, 210),
            sky_horizon=(185, 210, 230),
            fog_colour=(190, 205, 220),
            fog_density=0.003,
            wetness=0.6,
        ),
        _weather(
            name="WetCloudyNoon",
            **_NOON,
            sun_intensity=0.3,
            ambient=0.6,
            sky_top=(135, 142, 152),
            sky_horizon=(185, 190, 196),
            fog_colour=(180, 184, 190),
            fog_density=0.006,
            wetness=0.7,
        ),
        _weather(
            name="SoftRainNoon",
            **_NOON,
            sun_intensity=0.25,
            ambient=0.6,
            sky_top=(125, 130, 140),
            sky_horizon=(175, 180, 186),
            fog_colour=(170, 175, 182),
            fog_density=0.01,
            wetness=0.8,
            rain=0.3,
        ),
        _weather(
            name="MidRainyNoon",
            **_NOON,
            sun_intensity=0.2,
            ambient=0.55,
            sky_top=(110, 115, 125),
            sky_horizon=(160, 165, 172),
            fog_colour=(158, 163, 170),
            fog_density=0.016,
            wetness=0.9,
            rain=0.6,
        ),
        _weather(
            name="HardRainNoon",
            **_NOON,
            sun_intensity=0.12,
            ambient=0.5,
            sky_top=(90, 95, 105),
            sky_horizon=(140, 145, 152),
            fog_colour=(135, 140, 148),
            fog_density=0.028,
            wetness=1.0,
            rain=1.0,
        ),
        _weather(
            name="ClearSunset",
            **_SUNSET,
            sun_intensity=0.8,
            ambient=0.35,
            sky_top=(60, 80, 150),
            sky_horizon=(250, 160, 100),
            fog_colour=(230, 160, 120),
            fog_density=0.003,
        ),
        _weather(
            name="CloudySunset",
            **_SUNSET,
            sun_intensity=0.4,
            ambient=0.45,
            sky_top=(100, 95, 120),
            sky_horizon=(215, 150, 120),
            fog_colour=(200, 150, 125),
            fog_density=0.005,
        ),
        _weather(
            name="WetSunset",
            **_SUNSET,
            sun_intensity=0.75,
            ambient=0.35,
            sky_top=(65, 80, 145),
            sky_horizon=(245, 155, 100),
            fog_colour=(225, 155, 115),
            fog_density=0.004,
            wetness=0.6,
        ),
        _weather(
            name="HardRainSunset",
            **_SUNSET,
            sun_intensity=0.15,
            ambient=0.4,
            sky_top=(75, 72, 85),
            sky_horizon=(140, 115, 105),
            fog_colour=(130, 112, 105),
            fog_density=0.03,
            wetness=1.0,
            rain=1.0,
        ),
    ]
}

LOOKS: tuple[str, ...] = ("flat", "textured")


def _lookup(kind: str, name: str, table: dict) -> object:
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; valid names: {', '.join(sorted(table))}")
    return table[name]


def town_preset(name: str) -> TownPreset:
    """The town preset called ``name``; ValueError listing the valid names otherwise."""
    return _lookup("town", name, TOWNS)  # type: ignore[return-value]


def weather_preset(name: str) -> WeatherPreset:
    """The weather preset called ``name``; ValueError listing the valid names otherwise."""
    return _lookup("weather", name, WEATHERS)  # type: ignore[return-value]


def check_look(name: str) -> str:
    """``name`` if it is a known look; ValueError listing the valid looks otherwise."""
    _lookup("look", name, dict.fromkeys(LOOKS))
    return name
