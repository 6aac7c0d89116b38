"""Plain-value settings of the CARLA frame source (Hydra- and pickle-friendly, no `carla` import)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from simreal.collect.carla_errors import CarlaSettingsError

EXPOSURE_MODES = ("histogram", "manual")
MANUAL_EXPOSURE = ("shutter_speed", "iso", "fstop")  # sensor.camera.rgb attributes of the manual exposure


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
    schedule_start: int = 0  # frames this stream already kept (earlier runs, a restarted worker): continue from there
    width: int = 800
    height: int = 600
    fov: float = 90.0
    fixed_delta_seconds: float = 0.05
    capture_every: int = 5
    sensor_tick: bool = True  # cameras render and stream only every capture_every-th tick (their `sensor_tick`)
    n_vehicles: int = 30
    n_walkers: int = 20
    walker_cross_factor: float = 0.05
    camera_x: float = 1.5
    camera_y: float = 0.0
    camera_z: float = 2.4
    camera_pitch: float = 0.0
    camera_yaw: float = 0.0
    postprocess_effects: bool = False  # keep the RGB camera's motion blur, bloom, lens flare (edges off the labels)
    # simulated seconds not captured after a spawn, respawn, town or weather change: UE's eye adaptation (exposure
    # speeds 3 up, 1 down) takes about 1 s of game time to settle
    warmup_s: float = 2.0
    exposure_mode: str = "histogram"  # histogram (UE's auto exposure) | manual (fixed: shutter_speed, iso, fstop)
    exposure_compensation: float | None = None  # EV offset (both modes); None: the server's default
    shutter_speed: float | None = None  # manual exposure: 1/s; None: the server's default (200)
    iso: float | None = None  # manual exposure; None: the server's default (100)
    fstop: float | None = None  # manual exposure (and depth of field); None: the server's default (1.4)
    max_rejects_in_a_row: int = 50  # frames the filters drop in a row before the ego moves (stuck, gridlock)
    max_respawns: int = 3  # ego moves without a kept frame before the source moves on to the next (town, weather)
    seed: int = 0
    sensor_timeout_s: float = 5.0
    max_missed_captures: int = 3

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
        for name in ("n_vehicles", "n_walkers", "warmup_s", "max_respawns", "schedule_start"):
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
        if not 0.0 <= self.walker_cross_factor <= 1.0:
            yield f"walker_cross_factor={self.walker_cross_factor} must be in [0, 1]"
        if self.exposure_mode not in EXPOSURE_MODES:
            yield f"exposure_mode={self.exposure_mode!r} must be one of {', '.join(EXPOSURE_MODES)}"
        fixed = [name for name in MANUAL_EXPOSURE if getattr(self, name) is not None]
        if fixed and self.exposure_mode != "manual":
            yield f"{', '.join(fixed)} set the exposure only with exposure_mode=manual"
        for name in MANUAL_EXPOSURE:
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                yield f"{name}={getattr(self, name)} must be > 0"

    @property
    def warmup_ticks(self) -> int:
        """``warmup_s`` in ticks of ``fixed_delta_seconds`` (rounded up: never shorter than asked)."""
        return math.ceil(self.warmup_s / self.fixed_delta_seconds - 1e-9)

    @property
    def exposure_attributes(self) -> dict[str, str]:
        """The RGB camera's exposure blueprint attributes these settings ask for."""
        values = {"exposure_mode": self.exposure_mode}
        for name in ("exposure_compensation", *MANUAL_EXPOSURE):
            if getattr(self, name) is not None:
                values[name] = f"{getattr(self, name):g}"
        return values

    @property
    def camera_sensor_tick(self) -> float:
        """The cameras' ``sensor_tick`` (simulated seconds between images; 0 = every tick).

        UE ticks an actor with a tick interval once that much game time has passed, so a camera at
        ``capture_every * fixed_delta_seconds`` renders and streams on one tick in ``capture_every``.
        """
        return self.capture_every * self.fixed_delta_seconds if self.sensor_tick and self.capture_every > 1 else 0.0


def check_run_ports(servers: list[tuple[str, int]], tm_ports: list[int]) -> None:
    """Fail fast when the servers of one run, or their Traffic Manager ports, would collide.

    A TM listens on its port on the node of the source that drives it, which may be the node of any server, so a TM
    port must not be any server's RPC or streaming port (port, port + 1), nor another source's TM port.
    """
    problems = []
    seen: dict[tuple[str, int], int] = {}
    for index, server in enumerate(servers):
        if server in seen:
            problems.append(f"server {server[0]}:{server[1]} is listed twice (sources {seen[server]} and {index})")
        seen.setdefault(server, index)
    server_ports = {p: f"{h}:{port}" for h, port in servers for p in (port, port + 1)}
    for index, tm_port in enumerate(tm_ports):
        if not 1 <= tm_port <= 65535:
            problems.append(f"Traffic Manager port {tm_port} of source {index} is not a TCP port")
        if tm_port in server_ports:
            problems.append(
                f"Traffic Manager port {tm_port} of source {index} is a port of CARLA server {server_ports[tm_port]}"
            )
        if tm_ports.index(tm_port) != index:
            problems.append(f"Traffic Manager port {tm_port} is used by sources {tm_ports.index(tm_port)} and {index}")
    if problems:
        raise CarlaSettingsError("CARLA ports collide: " + "; ".join(problems) + " (change tm_port_base or --servers)")
