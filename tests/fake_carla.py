"""An in-process fake of the parts of the `carla` client API that simreal's CARLA source uses.

``FakeCarla().module`` is a module object to put into ``sys.modules['carla']``; its ``Client`` talks to
``FakeServer`` objects registered by address. A server behaves like CARLA in synchronous mode: ``tick``
advances the frame id, every listening camera then gets one ``Image`` on a timer thread (optionally late,
dropped or reordered), a stalled server raises the real client's time-out RuntimeError, an unknown address
times out like an unreachable server. The server records its actors, settings and Traffic Managers so tests
can check cleanup.

Like the real 0.9.16 client, Traffic Managers live in a process-wide map keyed by port (``TrafficManager::_tm_map``;
here one map per ``FakeCarla``, i.e. per client process): after a server crash, even a new ``Client`` gets the old
TM back, bound to the dead connection, and every call on it (and every synchronous tick while it is registered)
fails. Cameras honour ``sensor_tick``: one with a tick interval renders and streams only on the ticks where that much
simulated time has passed since its last image, like UE's actor tick interval.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import random
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CLIENT_VERSION = "0.9.16"
WEATHER_PRESETS = (
    "Default ClearNoon CloudyNoon WetNoon WetCloudyNoon MidRainyNoon HardRainNoon SoftRainNoon "
    "ClearSunset CloudySunset WetSunset WetCloudySunset MidRainSunset HardRainSunset SoftRainSunset "
    "ClearNight CloudyNight WetNight WetCloudyNight SoftRainNight MidRainyNight HardRainNight DustStorm"
).split()


def tag_count(version: str) -> int:
    """23 tags up to 0.9.13, 29 from 0.9.14 on (enough for the fake's test pattern)."""
    minor_patch = tuple(int(p) for p in version.split(".")[1:3])
    return 29 if minor_patch >= (9, 14) else 23


def semantic_tags(frame: int, height: int, width: int, version: str) -> np.ndarray:
    """The tag image the fake semantic camera renders for ``frame`` (uint8, H x W)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return ((frame + 3 * rows + cols) % tag_count(version)).astype(np.uint8)


def rgb_frame_id(bgra: np.ndarray) -> int:
    """The frame id the fake RGB camera writes into its blue/green channels."""
    return int(bgra[0, 0, 0]) + 256 * int(bgra[0, 0, 1])


def _render(kind: str, frame: int, height: int, width: int, version: str) -> bytes:
    image = np.zeros((height, width, 4), np.uint8)
    image[..., 3] = 255
    if kind == "semantic":
        image[..., 0], image[..., 1] = 11, 22  # non-zero B/G so reading the wrong channel is visible
        image[..., 2] = semantic_tags(frame, height, width, version)
    else:
        image[..., 0], image[..., 1] = frame % 256, (frame // 256) % 256
        image[..., 2] = (frame * 7 + np.arange(width)[None, :]) % 256
    return image.tobytes()


# -- plain value types ------------------------------------------------------------------------------------
@dataclass
class Location:
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@dataclass
class Rotation:
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0


@dataclass
class Transform:
    location: Location = field(default_factory=Location)
    rotation: Rotation = field(default_factory=Rotation)


class AttachmentType:
    Rigid, SpringArm, SpringArmGhost = 0, 1, 2


class ColorConverter:
    Raw, Depth, LogarithmicDepth, CityScapesPalette = 0, 1, 2, 3


class WeatherParameters:
    def __init__(self, name: str = "custom") -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"WeatherParameters({self.name})"


for _preset in WEATHER_PRESETS:
    setattr(WeatherParameters, _preset, WeatherParameters(_preset))


@dataclass
class WorldSettings:
    synchronous_mode: bool = False
    fixed_delta_seconds: float | None = None
    no_rendering_mode: bool = False
    substepping: bool = True
    max_substep_delta_time: float = 0.01
    max_substeps: int = 10


# -- blueprints -------------------------------------------------------------------------------------------
class ActorAttribute:
    def __init__(self, value: str, recommended_values: list[str] | None = None) -> None:
        self.value = value
        self.recommended_values = recommended_values or []

    def as_str(self) -> str:
        return self.value


class ActorBlueprint:
    def __init__(self, blueprint_id: str, **attributes: ActorAttribute) -> None:
        self.id = blueprint_id
        self._attributes = {"role_name": ActorAttribute(""), **attributes}

    def has_attribute(self, name: str) -> bool:
        return name in self._attributes

    def get_attribute(self, name: str) -> ActorAttribute:
        return self._attributes[name]

    def set_attribute(self, name: str, value: str) -> None:
        if name not in self._attributes:
            raise IndexError(f"blueprint {self.id} has no attribute {name!r}")
        self._attributes[name] = ActorAttribute(value, self._attributes[name].recommended_values)

    def values(self) -> dict[str, str]:
        return {k: a.value for k, a in self._attributes.items()}


class BlueprintLibrary:
    def __init__(self, blueprints: list[ActorBlueprint]) -> None:
        self._blueprints = blueprints

    def filter(self, pattern: str) -> BlueprintLibrary:
        return BlueprintLibrary([b for b in self._blueprints if fnmatch.fnmatch(b.id, pattern)])

    def find(self, blueprint_id: str) -> ActorBlueprint:
        for blueprint in self._blueprints:
            if blueprint.id == blueprint_id:
                return copy.deepcopy(blueprint)
        raise IndexError(f"blueprint {blueprint_id!r} not found")

    def __iter__(self):  # noqa: ANN204
        return iter([copy.deepcopy(b) for b in self._blueprints])

    def __len__(self) -> int:
        return len(self._blueprints)


# 0.9.16 defaults of the RGB camera's post-process effects (the semantic camera has none of them)
RGB_EFFECTS = {
    "motion_blur_intensity": "0.45",
    "motion_blur_max_distortion": "0.35",
    "motion_blur_min_object_screen_size": "0.1",
    "bloom_intensity": "0.675",
    "lens_flare_intensity": "0.1",
    "chromatic_aberration_intensity": "0.0",
    "enable_postprocess_effects": "True",
}
# 0.9.16 exposure attributes of the RGB camera; in histogram mode its images settle EYE_ADAPTATION_S simulated
# seconds after the camera spawns or the light changes (UE's eye adaptation, exposure speeds 3 up and 1 down)
RGB_EXPOSURE = {"exposure_mode": "histogram", "exposure_compensation": "0.0", "shutter_speed": "200.0",
                "iso": "100.0", "fstop": "1.4"}  # fmt: skip
EYE_ADAPTATION_S = 1.0
VEHICLES = {  # blueprint id -> base_type (0.9.14+ blueprints carry it)
    "vehicle.tesla.model3": "car",
    "vehicle.audi.a2": "car",
    "vehicle.carlamotors.carlacola": "truck",
    "vehicle.mercedes.sprinter": "van",
    "vehicle.mitsubishi.fusorosa": "bus",
    "vehicle.yamaha.yzf": "motorcycle",
    "vehicle.bh.crossbike": "bicycle",
}


def _library(vehicle_base_types: bool = True) -> BlueprintLibrary:
    camera = {
        "image_size_x": ActorAttribute("800"),
        "image_size_y": ActorAttribute("600"),
        "fov": ActorAttribute("90"),
        "sensor_tick": ActorAttribute("0.0"),
    }
    vehicles = [
        ActorBlueprint(
            name,
            color=ActorAttribute("0,0,0", ["255,0,0", "0,0,255"]),
            **({"base_type": ActorAttribute(base_type)} if vehicle_base_types else {}),
        )
        for name, base_type in VEHICLES.items()
    ]
    walkers = [
        ActorBlueprint(
            f"walker.pedestrian.000{i}",
            is_invincible=ActorAttribute("true"),
            speed=ActorAttribute("1.0", ["0.0", "1.3", "2.6"]),
        )
        for i in (1, 2)
    ]
    return BlueprintLibrary(
        vehicles
        + walkers
        + [
            ActorBlueprint("controller.ai.walker"),
            ActorBlueprint(
                "sensor.camera.rgb",
                **copy.deepcopy(camera),
                **{name: ActorAttribute(value) for name, value in {**RGB_EFFECTS, **RGB_EXPOSURE}.items()},
            ),
            ActorBlueprint("sensor.camera.semantic_segmentation", **copy.deepcopy(camera)),
        ]
    )


# -- actors and sensor data -------------------------------------------------------------------------------
class Image:
    def __init__(self, kind: str, frame: int, timestamp: float, width: int, height: int, fov: float, version: str):
        self.frame, self.timestamp, self.width, self.height, self.fov = frame, timestamp, width, height, fov
        self.kind = kind
        self.transform = Transform()
        self.raw_data = _render(kind, frame, height, width, version)

    def convert(self, converter: int) -> None:
        """Like CARLA: overwrites the pixels in place (the tags are gone afterwards)."""
        if converter == ColorConverter.CityScapesPalette:
            pixels = np.frombuffer(self.raw_data, np.uint8).reshape(self.height, self.width, 4).copy()
            pixels[..., :3] = np.stack(
                [pixels[..., 2] * 9 % 256, pixels[..., 2] * 5 % 256, 128 + 0 * pixels[..., 2]], -1
            )
            self.raw_data = pixels.tobytes()


class Actor:
    def __init__(self, server: FakeServer, actor_id: int, blueprint: ActorBlueprint, transform: Any, parent: Any):
        self.server = server
        self.id = actor_id
        self.type_id = blueprint.id
        self.attributes = blueprint.values()
        self.transform = transform
        self.parent = parent
        self.listening = False
        self.callback: Callable[[Any], None] | None = None
        self.running = False  # walker controllers
        self.autopilot_port: int | None = None
        self.sensor_tick = float(self.attributes.get("sensor_tick", "0") or 0)
        self.time_since_image = 0.0
        self.spawned_at = server.sim_time  # simulated seconds

    def destroy(self) -> bool:
        self.server.rpc()
        return self.server.destroy(self.id)

    # vehicle
    def set_autopilot(self, enabled: bool = True, port: int = 8000) -> None:
        self.server.rpc()
        self.autopilot_port = port if enabled else None

    # sensor (listen/stop are client-side in CARLA: no RPC gate)
    def listen(self, callback: Callable[[Any], None]) -> None:
        self.callback, self.listening = callback, True

    def stop(self) -> None:
        if self.type_id.startswith("sensor."):
            self.listening = False
        else:
            self.server.rpc()
            self.running = False

    def is_listening(self) -> bool:
        return self.listening

    # walker controller
    def start(self) -> None:
        self.server.rpc()
        self.running = True

    def go_to_location(self, destination: Location) -> None:
        self.destination = destination

    def set_max_speed(self, speed: float = 1.4) -> None:
        self.max_speed = speed


class Map:
    def __init__(self, name: str, n_spawn_points: int) -> None:
        self.name = f"Carla/Maps/{name}"
        self._points = [Transform(Location(x=10.0 * i)) for i in range(n_spawn_points)]

    def get_spawn_points(self) -> list[Transform]:
        return list(self._points)


class TrafficManager:
    """Bound to the server incarnation it was created for; after a crash every call fails."""

    def __init__(self, server: FakeServer, port: int) -> None:
        self.server, self.port = server, port
        self.incarnation = server.incarnation
        self.synchronous = False
        self.seed: int | None = None

    def _alive(self) -> None:
        if self.server.incarnation != self.incarnation:
            raise RuntimeError(f"trafficmanager at port {self.port}: connection to the simulator lost")

    def set_synchronous_mode(self, mode_switch: bool = True) -> None:
        self._alive()
        self.server.rpc()
        self.synchronous = mode_switch

    def set_random_device_seed(self, value: int) -> None:
        self._alive()
        self.seed = value

    def synchronous_tick(self) -> None:
        """What the client's world.tick() does for every synchronous TM of the process."""
        self._alive()


# -- commands ---------------------------------------------------------------------------------------------
class FutureActor:
    pass


class Response:
    def __init__(self, actor_id: int = 0, error: str = "") -> None:
        self.actor_id, self.error = actor_id, error

    def has_error(self) -> bool:
        return bool(self.error)


class _Command:
    def __init__(self) -> None:
        self.followers: list[_Command] = []

    def then(self, other: _Command) -> _Command:
        self.followers.append(other)
        return self


class SpawnActor(_Command):
    def __init__(self, blueprint: ActorBlueprint, transform: Transform, parent: Any = None) -> None:
        super().__init__()
        self.blueprint, self.transform = copy.deepcopy(blueprint), transform
        self.parent = parent.id if isinstance(parent, Actor) else parent


class SetAutopilot(_Command):
    def __init__(self, actor: Any, enabled: bool, port: int = 8000) -> None:
        super().__init__()
        self.actor, self.enabled, self.port = actor, enabled, port


class DestroyActor(_Command):
    def __init__(self, actor: Any) -> None:
        super().__init__()
        self.actor_id = actor.id if isinstance(actor, Actor) else actor


command = types.SimpleNamespace(
    SpawnActor=SpawnActor,
    SetAutopilot=SetAutopilot,
    DestroyActor=DestroyActor,
    FutureActor=FutureActor,
    Response=Response,
)


# -- the server -------------------------------------------------------------------------------------------
@dataclass
class FakeServerConfig:
    version: str = "0.9.15"
    maps: tuple[str, ...] = ("Town01", "Town02", "Town03", "Town10HD", "Town10HD_Opt")
    initial_map: str = "Town10HD_Opt"
    spawn_points: int = 20
    first_frame: int = 1000
    max_image_delay_s: float = 0.0  # every image waits uniform(0, this) on its own thread: late and reordered
    drop_probability: float = 0.0
    dropped: set[tuple[str, int]] = field(default_factory=set)  # (kind 'rgb'|'semantic', frame) never sent
    late: dict[tuple[str, int], float] = field(default_factory=dict)  # (kind, frame) -> extra delay
    vehicle_spawn_failures: int = 0  # the first n batch-spawned vehicles fail (collision at spawn point)
    walker_spawn_failures: int = 0
    navigation_misses: int = 0  # the first n get_random_location_from_navigation calls return None
    stall_at_tick: int | None = None  # the n-th tick call (1-based) and the next stall_calls - 1 RPCs time out
    stall_calls: int = 1
    restart_on_stall: bool = False  # the stall is a crash: actors gone, settings default, frame counter reset
    interrupt_at_tick: int | None = None  # the n-th tick raises KeyboardInterrupt (Ctrl-C while blocked)
    hang_at_tick: int | None = None  # the n-th tick blocks until release() (a TM step that never returns)
    hang_blocks_all: bool = False  # while it hangs, every other call to the server blocks too (a wedged server)
    down_after_crash_s: float = 0.0  # a crashed server answers nothing for this long (UE restart + map load)
    vehicle_base_types: bool = True  # False: blueprints without base_type, as before 0.9.14
    seed: int = 0


class FakeServer:
    def __init__(self, config: FakeServerConfig | None = None, host: str = "localhost", port: int = 2000) -> None:
        self.config = config or FakeServerConfig()
        self.host, self.port = host, port
        self.lock = threading.RLock()
        self.rng = random.Random(self.config.seed)
        self.frame = self.config.first_frame
        self.incarnation = 0  # bumped by a crash: Traffic Managers of an earlier incarnation are dead
        self.down_until = 0.0
        self.images_sent = 0
        self.released = threading.Event()
        self.tick_calls = 0
        self.settings = WorldSettings()
        self.map_name = self.config.initial_map
        self.weather = WeatherParameters.Default
        self.weather_history: list[str] = []
        self.spawned: list[Actor] = []  # every actor ever spawned, destroyed ones included
        self.light_changed_at = 0.0  # simulated seconds of the last weather change
        self.adapting_frames: set[int] = set()  # frames whose RGB image was sent while its exposure was settling
        self.load_world_calls: list[tuple[str, bool]] = []
        self.load_world_timeouts: list[float] = []
        self.actors: dict[int, Actor] = {}
        self.traffic_managers: dict[int, TrafficManager] = {}
        self.destroyed_while_listening: list[int] = []
        self.destroyed_while_running: list[int] = []
        self.pedestrians_seed: int | None = None
        self._ids = itertools.count(1)
        self._stalled_calls = 0
        self._vehicle_failures_left = self.config.vehicle_spawn_failures
        self._walker_failures_left = self.config.walker_spawn_failures
        self._navigation_misses_left = self.config.navigation_misses
        self._deliveries: list[threading.Timer] = []
        self.library = _library(self.config.vehicle_base_types)

    # ---- failure injection
    def rpc(self) -> None:
        with self.lock:
            if self._stalled_calls > 0 or time.monotonic() < self.down_until:
                self._stalled_calls = max(0, self._stalled_calls - 1)
                raise RuntimeError(
                    "time-out of 10000ms while waiting for the simulator, make sure the simulator is ready "
                    f"and connected to {self.host}:{self.port}"
                )

    def _crash(self) -> None:
        for actor in self.actors.values():
            actor.listening = False
        self.actors.clear()
        self.traffic_managers.clear()
        self.settings = WorldSettings()
        self.frame = 1
        self.incarnation += 1
        self._ids = itertools.count(1)  # a new server process hands out the same actor ids again
        self.down_until = time.monotonic() + self.config.down_after_crash_s

    def crash(self) -> None:
        """The server process dies and comes back (after ``down_after_crash_s``) with a fresh world."""
        with self.lock:
            self._crash()

    def release(self) -> None:
        """Let a tick blocked by ``hang_at_tick`` return."""
        self.released.set()

    # ---- world state
    def tick(self) -> int:
        with self.lock:
            self.tick_calls += 1
            if self.tick_calls == self.config.interrupt_at_tick:
                raise KeyboardInterrupt
            if self.tick_calls == self.config.stall_at_tick:
                self._stalled_calls = self.config.stall_calls
                if self.config.restart_on_stall:
                    self._crash()
            hang = self.tick_calls == self.config.hang_at_tick
        if hang and self.config.hang_blocks_all:
            with self.lock:
                self.released.wait()
        elif hang:
            self.released.wait()
        self.rpc()
        with self.lock:
            self.frame += 1
            step = self.settings.fixed_delta_seconds or 0.05
            for actor in list(self.actors.values()):
                if actor.listening and not self.settings.no_rendering_mode:  # no rendering: cameras get nothing
                    actor.time_since_image += step
                    if actor.time_since_image >= actor.sensor_tick - 1e-6:  # UE's tick interval
                        actor.time_since_image = 0.0
                        self._send_image(actor, self.frame)
            return self.frame

    @property
    def sim_time(self) -> float:
        return self.frame * (self.settings.fixed_delta_seconds or 0.05)

    def _send_image(self, camera: Actor, frame: int) -> None:
        kind = "rgb" if camera.type_id == "sensor.camera.rgb" else "semantic"
        config = self.config
        self.images_sent += 1
        auto_exposure = kind == "rgb" and camera.attributes.get("exposure_mode") == "histogram"
        settled_from = max(camera.spawned_at, self.light_changed_at) + EYE_ADAPTATION_S
        if auto_exposure and self.sim_time < settled_from - 1e-9:
            self.adapting_frames.add(frame)
        if (kind, frame) in config.dropped or self.rng.random() < config.drop_probability:
            return
        attrs = camera.attributes
        step = self.settings.fixed_delta_seconds or 0.05
        image = Image(
            kind, frame, frame * step, int(attrs["image_size_x"]), int(attrs["image_size_y"]),
            float(attrs["fov"]), config.version,
        )  # fmt: skip
        delay = self.rng.uniform(0.0, config.max_image_delay_s) + config.late.get((kind, frame), 0.0)

        def deliver() -> None:
            if camera.listening and camera.callback is not None:
                camera.callback(image)

        timer = threading.Timer(delay, deliver)
        timer.daemon = True
        self._deliveries.append(timer)
        timer.start()

    def wait_for_deliveries(self) -> None:
        for timer in list(self._deliveries):
            timer.join(5.0)

    def spawn(self, blueprint: ActorBlueprint, transform: Any, parent: Any = None) -> Actor:
        with self.lock:
            if parent is not None and parent not in self.actors:
                raise RuntimeError(f"spawn failed: parent actor {parent} does not exist")
            actor = Actor(self, next(self._ids), blueprint, transform, self.actors.get(parent))
            self.actors[actor.id] = actor
            self.spawned.append(actor)
            return actor

    def destroy(self, actor_id: int) -> bool:
        with self.lock:
            actor = self.actors.pop(actor_id, None)
            if actor is None:
                return False
            if actor.listening:
                self.destroyed_while_listening.append(actor_id)
            if actor.running:
                self.destroyed_while_running.append(actor_id)
            return True

    def alive(self, prefix: str = "") -> list[Actor]:
        with self.lock:
            return [a for a in self.actors.values() if a.type_id.startswith(prefix)]

    def random_navigation_location(self) -> Location | None:
        with self.lock:
            if self._navigation_misses_left > 0:
                self._navigation_misses_left -= 1
                return None
            return Location(self.rng.uniform(-100, 100), self.rng.uniform(-100, 100), 0.5)

    def run_spawn(self, cmd: SpawnActor) -> Response:
        kind = cmd.blueprint.id
        with self.lock:
            if kind.startswith("vehicle.") and self._vehicle_failures_left > 0:
                self._vehicle_failures_left -= 1
                return Response(error="Spawn failed because of collision at spawn position")
            if kind.startswith("walker.") and self._walker_failures_left > 0:
                self._walker_failures_left -= 1
                return Response(error="Spawn failed because of collision at spawn position")
        try:
            actor = self.spawn(cmd.blueprint, cmd.transform, cmd.parent)
        except RuntimeError as error:
            return Response(error=str(error))
        for follower in cmd.followers:
            if isinstance(follower, SetAutopilot):
                actor.autopilot_port = follower.port if follower.enabled else None
        return Response(actor_id=actor.id)


class World:
    def __init__(self, server: FakeServer, tm_map: dict[int, TrafficManager]) -> None:
        self.server = server
        self._tm_map = tm_map

    def get_settings(self) -> WorldSettings:
        self.server.rpc()
        return copy.deepcopy(self.server.settings)

    def apply_settings(self, settings: WorldSettings) -> int:
        self.server.rpc()
        self.server.settings = copy.deepcopy(settings)
        return self.server.frame

    def tick(self, seconds: float = 10.0) -> int:
        for tm in list(self._tm_map.values()):  # the client steps every synchronous TM of the process
            if tm.synchronous:
                tm.synchronous_tick()
        return self.server.tick()

    def get_snapshot(self) -> types.SimpleNamespace:
        self.server.rpc()
        return types.SimpleNamespace(frame=self.server.frame)

    def get_map(self) -> Map:
        self.server.rpc()
        return Map(self.server.map_name, self.server.config.spawn_points)

    def get_blueprint_library(self) -> BlueprintLibrary:
        self.server.rpc()
        return self.server.library

    def try_spawn_actor(self, blueprint: ActorBlueprint, transform: Transform, attach_to: Any = None) -> Any:
        self.server.rpc()
        return self.server.spawn(blueprint, transform, attach_to.id if attach_to else None)

    def spawn_actor(
        self, blueprint: ActorBlueprint, transform: Transform, attach_to: Any = None, attachment_type: int = 0
    ) -> Actor:
        self.server.rpc()
        actor = self.server.spawn(blueprint, transform, attach_to.id if attach_to else None)
        actor.attachment_type = attachment_type
        return actor

    def get_actors(self, actor_ids: list[int] | None = None) -> list[Actor]:
        self.server.rpc()
        with self.server.lock:
            if actor_ids is None:
                return list(self.server.actors.values())
            return [self.server.actors[i] for i in actor_ids if i in self.server.actors]

    def get_random_location_from_navigation(self) -> Location | None:
        return self.server.random_navigation_location()

    def set_pedestrians_seed(self, seed: int) -> None:
        self.server.pedestrians_seed = seed

    def set_pedestrians_cross_factor(self, percentage: float) -> None:
        self.server.cross_factor = percentage

    def set_weather(self, weather: WeatherParameters) -> None:
        self.server.rpc()
        self.server.weather = weather
        self.server.weather_history.append(weather.name)
        self.server.light_changed_at = self.server.sim_time

    def get_weather(self) -> WeatherParameters:
        return self.server.weather


class FakeClient:
    registry: dict[tuple[str, int], FakeServer] = {}
    tm_map: dict[int, TrafficManager] = {}  # process-wide, like TrafficManager::_tm_map

    def __init__(self, host: str = "127.0.0.1", port: int = 2000, worker_threads: int = 0) -> None:
        self.host, self.port = host, port
        self.timeout = 5.0

    def set_timeout(self, seconds: float) -> None:
        self.timeout = seconds

    @property
    def _server(self) -> FakeServer:
        server = self.registry.get((self.host, self.port))
        if server is None:  # nothing listens: the real client waits its whole timeout
            time.sleep(self.timeout)
            raise RuntimeError(
                f"time-out of {int(self.timeout * 1000)}ms while waiting for the simulator, make sure the "
                f"simulator is ready and connected to {self.host}:{self.port}"
            )
        server.rpc()
        return server

    def get_server_version(self) -> str:
        return self._server.config.version

    def get_client_version(self) -> str:
        return CLIENT_VERSION

    def get_world(self) -> World:
        return World(self._server, self.tm_map)

    def get_available_maps(self) -> list[str]:
        return [f"/Game/Carla/Maps/{name}" for name in self._server.config.maps]

    def load_world(self, map_name: str, reset_settings: bool = True, map_layers: int = 0) -> World:
        server = self._server
        name = map_name.rsplit("/", 1)[-1]
        if name not in server.config.maps:
            raise RuntimeError(f"map '{map_name}' not found")
        with server.lock:
            server.load_world_calls.append((name, reset_settings))
            server.load_world_timeouts.append(self.timeout)
            for actor in list(server.actors.values()):  # a new world has none of the old actors
                actor.listening = False
            server.actors.clear()
            server.map_name = name
            server.weather = WeatherParameters.Default
            if reset_settings:
                server.settings = WorldSettings()
        return World(server, self.tm_map)

    def get_trafficmanager(self, client_connection: int = 8000) -> TrafficManager:
        server = self._server
        if client_connection in self.tm_map:  # whatever server it was made for, dead or alive
            return self.tm_map[client_connection]
        tm = TrafficManager(server, client_connection)
        self.tm_map[client_connection] = server.traffic_managers[client_connection] = tm
        return tm

    def apply_batch_sync(self, commands: list[Any], do_tick: bool = False) -> list[Response]:
        server = self._server
        responses = []
        for cmd in commands:
            if isinstance(cmd, SpawnActor):
                responses.append(server.run_spawn(cmd))
            elif isinstance(cmd, DestroyActor):
                ok = server.destroy(cmd.actor_id)
                responses.append(Response(cmd.actor_id, "" if ok else f"actor {cmd.actor_id} not found"))
            else:
                raise TypeError(f"fake apply_batch_sync does not know {type(cmd).__name__}")
        if do_tick:
            server.tick()
        return responses


class FakeCarla:
    """A fresh fake `carla` module plus the servers its clients can reach."""

    def __init__(self) -> None:
        self.servers: dict[tuple[str, int], FakeServer] = {}
        self.tm_map: dict[int, TrafficManager] = {}
        client_class = type("Client", (FakeClient,), {"registry": self.servers, "tm_map": self.tm_map})
        self.module = types.ModuleType("carla")
        for name, value in {
            "Client": client_class,
            "Location": Location,
            "Rotation": Rotation,
            "Transform": Transform,
            "AttachmentType": AttachmentType,
            "ColorConverter": ColorConverter,
            "WeatherParameters": WeatherParameters,
            "WorldSettings": WorldSettings,
            "command": command,
        }.items():
            setattr(self.module, name, value)

    def add_server(
        self, config: FakeServerConfig | None = None, host: str = "localhost", port: int = 2000
    ) -> FakeServer:
        server = FakeServer(config, host, port)
        self.servers[(host, port)] = server
        return server
