"""Frames from a live CARLA server: synchronous ticking, matched RGB + semantic cameras, always cleaned up.

The `carla` client is imported lazily (in ``__enter__``) so this module imports without it; tests put a fake
into ``sys.modules['carla']`` and run exactly this code.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from simreal.collect.carla_actors import BestEffort, Scene
from simreal.collect.carla_errors import (
    CarlaClientMissingError,
    CarlaConnectionLostError,
    CarlaSensorTimeoutError,
    CarlaSettingsError,
    CarlaSourceError,
    CarlaSpawnError,
    CarlaUnreachableError,
    unreachable_message,
)
from simreal.collect.carla_sensors import FrameBuffer, decode_bgra
from simreal.collect.carla_settings import CarlaSettings
from simreal.collect.frame import SensorFrame
from simreal.collect.schedule import town_key
from simreal.labels.carla_versions import carla_scheme_for_version

__all__ = [
    "CarlaClientMissingError",
    "CarlaConnectionLostError",
    "CarlaSensorTimeoutError",
    "CarlaSettings",
    "CarlaSettingsError",
    "CarlaSource",
    "CarlaSourceError",
    "CarlaSpawnError",
    "CarlaUnreachableError",
    "import_carla",
]

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0


def import_carla() -> ModuleType:
    """The `carla` client module, or a clear error saying how to get it."""
    try:
        import carla
    except ImportError as error:
        raise CarlaClientMissingError(
            "the CARLA backend needs the `carla` Python client: `pip install carla==0.9.16` (wheels for "
            "Python 3.10-3.12; use the client version matching your server), or collect without CARLA "
            "using `--backend procedural`."
        ) from error
    return carla


def weather_presets(carla: ModuleType) -> list[str]:
    """Names of the `carla.WeatherParameters` presets this client knows (ClearNoon, WetSunset, ...)."""
    presets = carla.WeatherParameters
    return sorted(n for n in dir(presets) if not n.startswith("_") and isinstance(getattr(presets, n), presets))


class CarlaSource:
    """A FrameSource backed by a CARLA server (see simreal.collect.frame).

    ``with CarlaSource(settings) as source: for frame in source.frames(): ...`` connects, loads the town in
    synchronous mode with a fixed step, spawns ego (autopilot), traffic, walkers and two rigidly attached
    cameras, then yields one matched RGB + semantic pair every ``capture_every`` ticks. Every yielded frame
    counts as kept unless the consumer calls ``reject()`` before asking for the next one; kept frames drive
    the (town, weather) schedule. Leaving the block by any route (end, exception, Ctrl-C) stops the cameras,
    restores the server's original settings and destroys every spawned actor. ``stats`` counts spawns,
    failures, discarded images and reconnects.
    """

    def __init__(self, settings: CarlaSettings, stream: int = 0) -> None:
        self.settings = settings
        self.stream = stream
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "vehicles_spawned",
                "vehicles_failed",
                "walkers_spawned",
                "walkers_failed",
                "walker_controllers_failed",
                "ticks",
                "frames",
                "captures_missed",
                "sensor_frames_discarded",
                "reconnects",
                "town_switches",
                "weather_switches",
                "cleanup_failures",
                "warmup_ticks",
                "ego_respawns",
                "conditions_abandoned",
            ),
            0,
        )
        self._rng = random.Random(f"{settings.seed}:{stream}")
        self._step = 0  # index into settings.schedule
        self._kept_in_step = 0
        self._rejected = False  # the consumer dropped the frame just yielded
        self._rejects_in_a_row = 0
        self._respawns_without_keep = 0
        self._maps: dict[str, str] = {}  # town -> the server's map name for it
        self._buffers = self._new_buffers()
        self._discarded_by_old_buffers = 0
        self._carla: ModuleType | None = None
        self._client: Any = None
        self._world: Any = None
        self._traffic_manager: Any = None
        self._scene: Scene | None = None
        self._original_settings: Any = None
        self._undestroyed_ids: list[int] = []
        self._names_checked = False
        self._warmup_left = 0  # ticks to let pass uncaptured (auto-exposure after a spawn or weather change)
        self.server_version = ""
        self.client_version = ""
        self.tag_scheme = ""

    @property
    def town(self) -> str:
        return self.settings.schedule[self._step][0]

    @property
    def weather(self) -> str:
        return self.settings.schedule[self._step][1]

    def reject(self) -> None:
        """The consumer dropped the frame just yielded: it does not count towards the schedule."""
        self._rejected = True

    # -- lifecycle ----------------------------------------------------------------------------------------
    def __enter__(self) -> CarlaSource:
        self._carla = import_carla()
        self._original_settings = None  # read afresh from this server; kept across reconnects
        try:
            self._connect()
            self._setup_world()
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._cleanup()

    def frames(self) -> Iterator[SensorFrame]:
        """Endless stream of matched frames; ticks the world itself (this must be the only ticking client)."""
        if self._world is None:
            raise CarlaSourceError("CarlaSource.frames() needs the connection made by `with CarlaSource(...)`")
        ticks_since_capture, missed_in_a_row = 0, 0
        while True:
            frame = self._tick()
            if self._warmup_left > 0:
                self._warmup_left -= 1
                self.stats["warmup_ticks"] += 1
                continue
            ticks_since_capture += 1
            if ticks_since_capture < self.settings.capture_every:
                continue
            rgb, semantic, missing = self._take_pair(frame)
            if missing:
                missed_in_a_row += 1
                self.stats["captures_missed"] += 1
                if missed_in_a_row >= self.settings.max_missed_captures:
                    raise CarlaSensorTimeoutError(
                        f"the {missing} camera delivered no image for frame {frame} within "
                        f"{self.settings.sensor_timeout_s:g}s, {missed_in_a_row} captures in a row "
                        f"(server at {self.settings.host}:{self.settings.port} overloaded? raise "
                        "sensor_timeout_s or lower the image size)"
                    )
                continue  # this capture is lost; try again on the next tick
            missed_in_a_row, ticks_since_capture = 0, 0
            self.stats["frames"] += 1
            self._rejected = False
            yield self._make_frame(rgb, semantic)
            if self._rejected:
                self._rejects_in_a_row += 1
                if self._rejects_in_a_row >= self.settings.max_rejects_in_a_row:
                    self._unstick()
            else:
                self._rejects_in_a_row = self._respawns_without_keep = 0
                self._kept_in_step += 1
                self._advance_schedule()

    # -- connection and world setup -----------------------------------------------------------------------
    def _connect(self) -> None:
        s, carla = self.settings, self._carla
        try:
            client = carla.Client(s.host, s.port)
            client.set_timeout(s.timeout_s)
            self.server_version = client.get_server_version()
        except RuntimeError as error:
            raise CarlaUnreachableError(unreachable_message(s.host, s.port, s.timeout_s, error)) from error
        self._client = client
        self.client_version = client.get_client_version()
        self.tag_scheme = carla_scheme_for_version(self.server_version)
        if self.server_version != self.client_version:
            log.warning(
                "CARLA client %s talks to server %s; the API may differ",
                self.client_version,
                self.server_version,
            )

    def _setup_world(self) -> None:
        """Town, sync settings, Traffic Manager, weather and actors on the current client."""
        s, client = self.settings, self._client
        world = client.get_world()
        if self._original_settings is None:
            self._original_settings = self._settings_to_restore(world.get_settings())
        self._world = world
        if not self._names_checked:
            self._check_names()
        if town_key(world.get_map().name) != town_key(self.town):  # Town10HD_Opt is Town10HD: no reload
            client.set_timeout(max(s.timeout_s, s.load_timeout_s))
            try:
                world = client.load_world(self._maps[self.town], reset_settings=False)  # keep sync mode
            finally:
                client.set_timeout(s.timeout_s)
            self._world = world
        sync = world.get_settings()
        sync.synchronous_mode = True
        sync.fixed_delta_seconds = s.fixed_delta_seconds
        sync.no_rendering_mode = False  # with it on, the cameras deliver nothing
        world.apply_settings(sync)
        self._traffic_manager = client.get_trafficmanager(s.tm_port)
        self._traffic_manager.set_synchronous_mode(True)
        self._traffic_manager.set_random_device_seed(s.seed)
        world.set_weather(getattr(self._carla.WeatherParameters, self.weather))
        self._destroy_undestroyed()
        # fresh buffers per scene: late images of old cameras (or of a restarted server) cannot mix in
        self._renew_buffers()
        self._scene = Scene(self._carla, client, world, s, self._rng)
        try:
            self._scene.populate(self._buffers["rgb"].put, self._buffers["semantic"].put)
        finally:
            for key, value in self._scene.counts.items():
                self.stats[key] += value
        self._warmup_left = s.warmup_ticks

    def _settings_to_restore(self, found: Any) -> Any:
        """The settings found at connect, unless they are a synchronous mode leaked by a killed run.

        Nobody else should be ticking a server this source drives, so synchronous mode at connect is left over
        from a client that died before restoring it; restoring that would leave the server frozen, waiting for
        ticks. Such a server goes back to asynchronous mode on exit instead.
        """
        if found.synchronous_mode:
            log.warning(
                "CARLA server at %s:%s is already in synchronous mode (left by a killed run?); "
                "it will be set back to asynchronous mode on exit",
                self.settings.host,
                self.settings.port,
            )
            found.synchronous_mode = False
            found.fixed_delta_seconds = None
        return found

    def _renew_buffers(self) -> None:
        self._discarded_by_old_buffers += sum(b.discarded for b in self._buffers.values())
        self._buffers = self._new_buffers()

    @staticmethod
    def _new_buffers() -> dict[str, FrameBuffer]:
        return {"rgb": FrameBuffer("rgb"), "semantic": FrameBuffer("semantic")}

    def _check_names(self) -> None:
        known_weathers = weather_presets(self._carla)
        unknown = sorted({w for _, w, _ in self.settings.schedule if w not in known_weathers})
        if unknown:
            raise CarlaSettingsError(f"unknown CARLA weather preset(s) {unknown}; known: {', '.join(known_weathers)}")
        maps = sorted({m.rsplit("/", 1)[-1] for m in self._client.get_available_maps()})
        for town in dict.fromkeys(t for t, _, _ in self.settings.schedule):
            # the exact map if the server has it, else its _Opt (or plain) twin
            same_town = [m for m in maps if m == town] or [m for m in maps if town_key(m) == town_key(town)]
            if same_town:
                self._maps[town] = same_town[0]
        missing = [t for t in dict.fromkeys(t for t, _, _ in self.settings.schedule) if t not in self._maps]
        if missing:
            raise CarlaSettingsError(
                f"town(s) {missing} are not on the server at {self.settings.host}:{self.settings.port}; "
                f"available: {', '.join(maps)}"
            )
        self._names_checked = True

    # -- ticking, matching, schedules ---------------------------------------------------------------------
    def _tick(self) -> int:
        while True:
            try:
                frame = self._world.tick(self.settings.timeout_s)
            except RuntimeError as error:  # the real client's "time-out ... while waiting for the simulator"
                self._reconnect(error)
                continue
            self.stats["ticks"] += 1
            return frame

    def _take_pair(self, frame: int) -> tuple[Any, Any, str]:
        """Images of exactly ``frame`` from both cameras, or the name of the camera that missed it."""
        deadline = time.monotonic() + self.settings.sensor_timeout_s
        images = {}
        for name, buffer in self._buffers.items():
            images[name] = buffer.take(frame, max(0.0, deadline - time.monotonic()))
        self.stats["sensor_frames_discarded"] = self._discarded_by_old_buffers + sum(
            b.discarded for b in self._buffers.values()
        )
        missing = " and ".join(name for name, image in images.items() if image is None)
        return images["rgb"], images["semantic"], missing

    def _make_frame(self, rgb: Any, semantic: Any) -> SensorFrame:
        s = self.settings
        meta = {
            "backend": "carla",
            "host": s.host,
            "port": s.port,
            "town": self.town,
            "weather": self.weather,
            "frame": int(rgb.frame),
            "timestamp": float(rgb.timestamp),
            "stream": self.stream,
            "seed": s.seed,
            "server_version": self.server_version,
            "client_version": self.client_version,
            "tag_scheme": self.tag_scheme,
            "width": s.width,
            "height": s.height,
            "fov": s.fov,
        }
        return SensorFrame(decode_bgra(rgb, s.width, s.height), decode_bgra(semantic, s.width, s.height), meta)

    def _advance_schedule(self) -> None:
        steps = self.settings.schedule
        quota = steps[self._step][2]
        if quota and self._kept_in_step >= quota:
            self._go_to_step((self._step + 1) % len(steps))

    def _unstick(self) -> None:
        """Too many frames dropped in a row: move the ego elsewhere, or after that failed, leave this condition."""
        self._rejects_in_a_row = 0
        if self._respawns_without_keep < self.settings.max_respawns:
            self._respawns_without_keep += 1
            self.stats["ego_respawns"] += 1
            self._with_reconnect(self._respawn_ego)
            return
        self._respawns_without_keep = 0
        self.stats["conditions_abandoned"] += 1
        log.warning(
            "CARLA stream %d: no frame kept in %s / %s after %d ego respawns; moving on",
            self.stream,
            self.town,
            self.weather,
            self.settings.max_respawns,
        )
        self._go_to_step((self._step + 1) % len(self.settings.schedule), new_scene=True)

    def _respawn_ego(self) -> None:
        self._renew_buffers()  # late images of the old cameras cannot mix in
        self._scene.respawn_ego(self._buffers["rgb"].put, self._buffers["semantic"].put)
        self._warmup_left = self.settings.warmup_ticks

    def _go_to_step(self, step: int, new_scene: bool = False) -> None:
        """Drive on in the next (town, weather): a new map (and scene) only when the town changes or asked for."""
        old_town, old_weather = self.town, self.weather
        self._step, self._kept_in_step = step, 0
        if new_scene or town_key(self.town) != town_key(old_town):
            self._with_reconnect(self._switch_town)
            self.stats["town_switches"] += town_key(self.town) != town_key(old_town)
        elif self.weather != old_weather:
            self._with_reconnect(lambda: self._world.set_weather(getattr(self._carla.WeatherParameters, self.weather)))
            self._warmup_left = self.settings.warmup_ticks  # the exposure adapts to the new light
        if self.weather != old_weather:
            self.stats["weather_switches"] += 1

    def _switch_town(self) -> None:
        self._remove_scene(BestEffort())
        self._setup_world()

    # -- failure handling and cleanup ---------------------------------------------------------------------
    def _with_reconnect(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except (RuntimeError, CarlaUnreachableError) as error:  # the client's time-outs are RuntimeErrors
            self._reconnect(error)

    def _reconnect(self, error: Exception) -> None:
        """Drop what is left of the old session, then reconnect and rebuild the world with backoff."""
        s = self.settings
        log.warning("CARLA server at %s:%s stopped answering (%s); reconnecting", s.host, s.port, error)
        self._remove_scene(BestEffort())
        last_error: BaseException = error
        for attempt in range(s.max_reconnects):
            time.sleep(min(MAX_BACKOFF_S, s.reconnect_backoff_s * 2**attempt))
            try:
                self._connect()
                self._setup_world()
            except (RuntimeError, CarlaUnreachableError) as retry_error:
                last_error = retry_error
                log.warning("reconnect attempt %d/%d failed: %s", attempt + 1, s.max_reconnects, retry_error)
                self._remove_scene(BestEffort())
                continue
            self.stats["reconnects"] += 1
            return
        raise CarlaConnectionLostError(
            f"lost the CARLA server at {s.host}:{s.port} ({error}) and {s.max_reconnects} reconnect attempts "
            f"failed; last error: {last_error}. Restart the server and the collection "
            "(or use `--backend procedural`)."
        ) from last_error

    def _remove_scene(self, steps: BestEffort) -> None:
        if self._scene is None:
            return
        self._scene.stop_sensors(steps)
        self._undestroyed_ids += self._scene.destroy(steps)
        self._scene = None
        self.stats["cleanup_failures"] += len(steps.failures)
        steps.failures.clear()

    def _destroy_undestroyed(self) -> None:
        """Actors a dead connection could not destroy are removed as soon as the server answers again."""
        if self._undestroyed_ids:
            for actor in self._world.get_actors(self._undestroyed_ids):
                if actor.type_id == "controller.ai.walker":
                    actor.stop()
            command = self._carla.command
            self._client.apply_batch_sync([command.DestroyActor(i) for i in self._undestroyed_ids], False)
            self._undestroyed_ids = []

    def _cleanup(self) -> None:
        steps = BestEffort()
        if self._scene is not None:
            self._scene.stop_sensors(steps)
        world, tm, original = self._world, self._traffic_manager, self._original_settings
        if tm is not None:
            steps.call("Traffic Manager back to asynchronous", lambda: tm.set_synchronous_mode(False))
        if world is not None and original is not None:
            steps.call("restore the original world settings", lambda: world.apply_settings(original))
        self._remove_scene(steps)
        if self._undestroyed_ids and self._client is not None and not steps.server_down:
            steps.call("destroy actors left from a lost connection", self._destroy_undestroyed)
        self.stats["cleanup_failures"] += len(steps.failures)
        if self._undestroyed_ids:
            log.warning("could not destroy CARLA actors %s (server not answering)", self._undestroyed_ids)
        self._world = self._traffic_manager = self._client = None
