"""``ProceduralSource``: the CARLA-free FrameSource (world + ego route + traffic + renderer)."""

from __future__ import annotations

from collections.abc import Iterator

from simreal.collect.frame import SensorFrame
from simreal.errors import ConfigError
from simreal.sim.agents import Agents
from simreal.sim.camera import SIM_DT, EgoRoute, Intrinsics, Pose
from simreal.sim.frame_renderer import FrameRenderer
from simreal.sim.mesh import LAYER_GROUND, FaceSet, MeshBuilder
from simreal.sim.presets import check_look, town_preset, weather_preset
from simreal.sim.tags import TAG_SCHEME, TERRAIN
from simreal.sim.world import GRASS, StreetWorld

BEHIND = 30.0  # metres of world kept behind the camera (wide fov sees some of it sideways)


class ProceduralSource:
    """Endless frames of a seeded street world seen from an ego vehicle, in CARLA's BGRA layout.

    ``(seed, stream)`` picks the world and route; frame ``k`` is a pure function of ``(town, weather, seed,
    stream, look, k)``, so a stream resumed with ``frame_offset=k`` continues exactly where it stopped.
    """

    def __init__(
        self,
        town: str = "Town10HD",
        weather: str = "ClearNoon",
        seed: int = 0,
        width: int = 800,
        height: int = 600,
        fov: float = 90.0,
        look: str = "flat",
        stream: int = 0,
        capture_every: int = 1,
        frame_offset: int = 0,
    ) -> None:
        for name, value in (("width", width), ("height", height), ("capture_every", capture_every)):
            if int(value) != value or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if frame_offset < 0 or int(frame_offset) != frame_offset:
            raise ConfigError(f"frame_offset must be a non-negative integer, got {frame_offset!r}")
        if not 1.0 <= fov <= 170.0:
            raise ConfigError(f"fov must be between 1 and 170 degrees, got {fov!r}")
        self.town_name, self.weather_name, self.look = town, weather, check_look(look)
        self.town = town_preset(town)
        self.weather = weather_preset(weather)
        self.seed, self.stream = int(seed), int(stream)
        self.width, self.height, self.fov = int(width), int(height), float(fov)
        self.capture_every, self.frame_offset = int(capture_every), int(frame_offset)
        self.world = StreetWorld(self.town, self.seed, self.stream)
        self.route = EgoRoute(self.town, self.seed, self.stream)
        self.agents = Agents(self.town, self.seed, self.stream, self.route.lane)
        self.renderer = FrameRenderer(Intrinsics(self.width, self.height, self.fov), self.weather, look, self.seed)

    def __enter__(self) -> ProceduralSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.world.block_faces.cache_clear()

    def pose(self, frame: int) -> Pose:
        """Camera pose at simulation frame ``frame``."""
        return self.route.pose(frame)

    def scene(self, frame: int) -> FaceSet:
        """Everything that may be visible at ``frame``: static blocks, agents and the distant ground."""
        x = self.route.ego_x(frame)
        reach = self.renderer.view_distance
        far = MeshBuilder()
        far.flat(x + reach, x + reach + 4000.0, -4000.0, 4000.0, 0.0, GRASS, TERRAIN, LAYER_GROUND)
        return FaceSet.concat(
            [
                self.world.faces(x - BEHIND, x + reach),
                self.agents.faces(frame * SIM_DT, x, x - BEHIND, x + reach),
                far.build(),
            ]
        )

    def render_frame(self, frame: int) -> SensorFrame:
        rgb, semantic = self.renderer.render(self.scene(frame), self.pose(frame), frame)
        meta = {
            "backend": "procedural",
            "town": self.town_name,
            "weather": self.weather_name,
            "frame": int(frame),
            "stream": self.stream,
            "seed": self.seed,
            "look": self.look,
            "server_version": "procedural",
            "tag_scheme": TAG_SCHEME,
            "width": self.width,
            "height": self.height,
            "fov": self.fov,
        }
        return SensorFrame(rgb_bgra=rgb, semantic_bgra=semantic, meta=meta)

    def reject(self) -> None:
        """Nothing to adapt: frame k is a pure function of k, so a dropped frame changes nothing that follows."""

    def frames(self) -> Iterator[SensorFrame]:
        """Endless; frame ids start at ``frame_offset`` and step by ``capture_every``."""
        frame = self.frame_offset
        while True:
            yield self.render_frame(frame)
            frame += self.capture_every
