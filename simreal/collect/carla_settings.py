"""Plain-value settings of the CARLA frame source (Hydra- and pickle-friendly, no `carla` import)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from simreal.collect.carla_errors import CarlaSettingsError


@dataclass
class CarlaSettings:
    """Where the server is, what to simulate and how to capture it.

    ``schedule`` lists (town, weather, kept frames) steps: the source drives in each (town, weather) until that
    many of its frames were kept (0 = stay), then moves to the next step, cyclically (see
    simreal.collect.schedule). A town the server already has loaded (``Town10HD`` vs ``Town10HD_Opt``) is not
    reloaded.
    """

    host: str = "localhost"
    port: int = 2000
    tm_port: int = 8000
    timeout_s: float = 10.0
    load_timeout_s: float = 300.0  # loading a town (a large map above all) takes far longer than an ordinary call
    schedule: list[tuple[str, str, int]] = field(default_factory=lambda: [("Town10HD", "ClearNoon", 0)])
    width: int = 800
    height: int = 600
    fov: float = 90.0
    fixed_delta_seconds: float = 0.05
    capture_every: int = 5
    n_vehicles: int = 30
    n_walkers: int = 20
    walker_cross_factor: float = 0.05
    camera_x: float = 1.5
    camera_y: float = 0.0
    camera_z: float = 2.4
    camera_pitch: float = 0.0
    camera_yaw: float = 0.0
    postprocess_effects: bool = False  # keep the RGB camera's motion blur, bloom, lens flare (edges off the labels)
    warmup_ticks: int = 10  # ticks not captured after a spawn or weather change: auto-exposure settles
    max_rejects_in_a_row: int = 50  # frames the filters drop in a row before the ego moves (stuck, gridlock)
    max_respawns: int = 3  # ego moves without a kept frame before the source moves on to the next (town, weather)
    seed: int = 0
    sensor_timeout_s: float = 5.0
    max_missed_captures: int = 3
    max_reconnects: int = 5
    reconnect_backoff_s: float = 2.0

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise CarlaSettingsError("invalid CARLA settings: " + "; ".join(problems))

    def _problems(self) -> Iterator[str]:
        for name in ("port", "tm_port"):
            value = getattr(self, name)
            if not 1 <= value <= 65535:
                yield f"{name}={value} is not a TCP port"
        if self.tm_port in (self.port, self.port + 1):
            yield (f"tm_port={self.tm_port} collides with the server's RPC/streaming ports {self.port}/{self.port + 1}")
        if not self.schedule:
            yield "schedule is empty (give at least one step, e.g. ('Town10HD', 'ClearNoon', 0))"
        for step in self.schedule:
            if len(step) != 3 or not (isinstance(step[0], str) and isinstance(step[1], str)) or int(step[2]) < 0:
                yield f"schedule step {step!r} is not (town, weather, kept frames >= 0)"
        for name in ("width", "height", "capture_every"):
            if getattr(self, name) < 1:
                yield f"{name}={getattr(self, name)} must be >= 1"
        for name in ("n_vehicles", "n_walkers", "max_reconnects", "warmup_ticks", "max_respawns"):
            if getattr(self, name) < 0:
                yield f"{name}={getattr(self, name)} must be >= 0"
        for name in ("max_missed_captures", "max_rejects_in_a_row"):
            if getattr(self, name) < 1:
                yield f"{name}={getattr(self, name)} must be >= 1"
        if not 0.0 < self.fov < 180.0:
            yield f"fov={self.fov} must be in (0, 180) degrees"
        for name in ("fixed_delta_seconds", "timeout_s", "load_timeout_s", "sensor_timeout_s"):
            if getattr(self, name) <= 0:
                yield f"{name}={getattr(self, name)} must be > 0"
        if self.reconnect_backoff_s < 0:
            yield f"reconnect_backoff_s={self.reconnect_backoff_s} must be >= 0"
        if not 0.0 <= self.walker_cross_factor <= 1.0:
            yield f"walker_cross_factor={self.walker_cross_factor} must be in [0, 1]"
