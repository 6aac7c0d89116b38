"""Frames from a live CARLA server: synchronous ticking, matched RGB + semantic cameras, always cleaned up.

The `carla` client is imported lazily (in ``__enter__``) so this module imports without it; tests put a fake
into ``sys.modules['carla']`` and run exactly this code.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from simreal.collect.carla_actors import BestEffort, Scene
from simreal.collect.carla_errors import (
    CarlaClientMissingError,
    CarlaConnectionLostError,
    CarlaNothingKeptError,
    CarlaSensorTimeoutError,
    CarlaServerError,
    CarlaSettingsError,
    CarlaSourceError,
    CarlaSpawnError,
    CarlaUnreachableError,
    CollectionStoppedError,
    unreachable_message,
)
from simreal.collect.carla_sensors import FrameBuffer, decode_bgra
from simreal.collect.carla_settings import CarlaSettings
from simreal.collect.frame import SensorFrame
from simreal.collect.schedule import schedule_position, town_key
from simreal.labels.carla_versions import carla_scheme_for_version

__all__ = [
    "CarlaClientMissingError",
    "CarlaConnectionLostError",
    "CarlaNothingKeptError",
    "CarlaSensorTimeoutError",
    "CarlaServerError",
    "CarlaSettings",
    "CarlaSettingsError",
    "CarlaSource",
    "CarlaSourceError",
    "CarlaSpawnError",
    "CarlaUnreachableError",
    "CollectionStoppedError",
    "import_carla",
]

log = logging.getLogger(__name__)

TICK_WATCHDOG_FACTOR = 2.0  # a tick not back within this many client timeouts is stuck (e.g. in the TM step)
CLEANUP_LIMIT = 4.0  # client timeouts the cleanup after a failure may take (its calls stop at the first time-out)
IMAGE_POLL_S = 0.005


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


def call_with_watchdog(action: Callable[[], Any], timeout_s: float) -> tuple[bool, Any]:
    """(True, result) of ``action()`` run on a daemon thread, or (False, None) if it did not return in time.

    A call blocked inside the client (which no client timeout bounds) is left behind on its thread: the caller must
    treat the connection as lost and the process as one to replace. Exceptions of ``action`` are raised here.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = action()
        except BaseException as error:  # noqa: BLE001 - handed to the caller, KeyboardInterrupt included
            outcome["error"] = error

    thread = threading.Thread(target=run, name="carla-watchdog", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return False, None
    if "error" in outcome:
        raise outcome["error"]
    return True, outcome["result"]


def weather_presets(carla: ModuleType) -> list[str]:
    """Names of the `carla.WeatherParameters` presets this client knows (ClearNoon, WetSunset, ...)."""
    presets = carla.WeatherParameters
    return sorted(n for n in dir(presets) if not n.startswith("_") and isinstance(getattr(presets, n), presets))


class CarlaSource:
    """A FrameSource backed by a CARLA server (see simreal.collect.frame).

    ``with CarlaSource(settings) as source: for frame in source.frames(): ...`` connects, loads the town in
    synchronous mode with a fixed step, spawns ego (autopilot), traffic, walkers and two rigidly attached
    cameras, then yields one matched RGB + semantic pair every ``capture_every`` ticks (the cameras' ``sensor_tick``
    makes the server render only those ticks). Every yielded frame counts as kept unless the consumer calls
    ``reject()`` before asking for the next one; kept frames drive the (town, weather) schedule, entered
    ``schedule_start`` kept frames in. Leaving the block by any route (end, exception, Ctrl-C) stops the cameras,
    restores the server's original settings and destroys every spawned actor.

    A server that stops answering, crashes or stalls a tick ends the stream with CarlaConnectionLostError: the
    source never reconnects in its own process (the client's process-wide Traffic Manager map would hand it the
    dead TM again); the caller continues in a fresh process (the collection pipeline restarts its worker).
    ``request_stop()`` (any thread) ends ``frames()`` at the next tick. ``stats`` counts spawns, failures and
    discarded images.
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
        self._step, self._kept_in_step = schedule_position(settings.schedule, settings.schedule_start)
        self._rejected = False  # the consumer dropped the frame just yielded
        self._rejects_in_a_row = 0
        self._respawns_without_keep = 0
        self._abandoned_in_a_row = 0
        self._maps: dict[str, str] = {}  # town -> the server's map name for it
        self._buffers = self._new_buffers()
        self._discarded_by_old_buffers = 0
        self._carla: ModuleType | None = None
        self._client: Any = None
        self._world: Any = None
        self._traffic_manager: Any = None
        self._scene: Scene | None = None
        self._original_settings: Any = None
        self._names_checked = False
        self._warmup_left = 0  # ticks to let pass uncaptured (auto-exposure after a spawn or weather change)
        self._due: int | None = None  # the oldest frame id a capture may use; None: from the next tick on
        self._expected: int | None = None  # the frame the capture period predicts next; None: not known
        self._last_frame = -1  # the server frame this source last saw (ticked or read after setup)
        self._server_failed = False
        self._stop = threading.Event()
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

    def request_stop(self) -> None:
        """Make ``frames()`` raise CollectionStoppedError before its next tick (safe from any thread)."""
        self._stop.set()

    # -- lifecycle ----------------------------------------------------------------------------------------
    def __enter__(self) -> CarlaSource:
        self._carla = import_carla()
        try:
            self._connect()
            self._server_call(self._setup_world)
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
        missed_in_a_row = 0
        while True:
            if self._stop.is_set():
                raise CollectionStoppedError(f"CARLA stream {self.stream} stopped on request")
            frame = self._tick()
            if self._warmup_left > 0:
                self._warmup_left -= 1
                self.stats["warmup_ticks"] += 1
                continue
            if self._due is None:
                self._due = frame  # the first frame after a (re)spawn or warm-up
            pair = self._next_pair(frame)
            if pair is None:
                continue
            rgb, semantic, missing = pair
            if missing:
                missed_in_a_row += 1
                self.stats["captures_missed"] += 1
                if missed_in_a_row >= self.settings.max_missed_captures:
                    raise CarlaSensorTimeoutError(
                        f"the {missing} camera delivered no image for frame {missing_frame(rgb, semantic, frame)} "
                        f"within {self.settings.sensor_timeout_s:g}s, {missed_in_a_row} captures in a row "
                        f"(server at {self.settings.host}:{self.settings.port} overloaded? raise "
                        "sensor_timeout_s or lower the image size)"
                    )
                continue
            missed_in_a_row = 0
            self.stats["frames"] += 1
            self._rejected = False
            yield self._make_frame(rgb, semantic)
            if self._rejected:
                self._rejects_in_a_row += 1
                if self._rejects_in_a_row >= self.settings.max_rejects_in_a_row:
                    self._unstick()
            else:
                self._rejects_in_a_row = self._respawns_without_keep = self._abandoned_in_a_row = 0
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
        self._last_frame = world.get_snapshot().frame  # from here on only this source moves the frame on
        self._traffic_manager = client.get_trafficmanager(s.tm_port)
        self._traffic_manager.set_synchronous_mode(True)
        self._traffic_manager.set_random_device_seed(s.seed)
        world.set_weather(getattr(self._carla.WeatherParameters, self.weather))
        # fresh buffers per scene: late images of old cameras cannot mix in
        self._renew_buffers()
        self._scene = Scene(self._carla, client, world, s, self._rng)
        try:
            self._scene.populate(self._buffers["rgb"].put, self._buffers["semantic"].put)
        finally:
            for key, value in self._scene.counts.items():
                self.stats[key] += value
        self._last_frame = world.get_snapshot().frame  # populate ticked once for the walker controllers
        self._restart_capture()

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
        """One synchronous tick under a watchdog: world.tick() can block without limit inside the TM step."""
        limit = self.settings.timeout_s * TICK_WATCHDOG_FACTOR
        try:
            returned, frame = call_with_watchdog(lambda: self._world.tick(self.settings.timeout_s), limit)
        except RuntimeError as error:  # the real client's "time-out ... while waiting for the simulator"
            raise self._lost(str(error)) from error
        if not returned:
            raise self._lost(f"world.tick() did not return within {limit:g}s (stalled in the server or the TM step)")
        self._last_frame = frame
        self.stats["ticks"] += 1
        return frame

    def _restart_capture(self) -> None:
        """New cameras or new light: skip the warm-up ticks, then capture from the first frame after them."""
        self._warmup_left = self.settings.warmup_ticks
        self._due = self._expected = None

    def _next_pair(self, frame: int) -> tuple[Any, Any, str] | None:
        """Both images of the next capture (or the camera that missed it); None while its tick is still ahead.

        Without ``sensor_tick`` every tick is imaged and a capture is due every ``capture_every`` frames. With it, the
        server picks the imaged ticks (UE's tick interval, phase set at spawn, possibly off by one now and then), so
        the source takes whichever frame in the window is imaged: the first window after new cameras spans a whole
        period, later ones end one tick after the frame the period predicts.
        """
        s = self.settings
        server_picks = s.camera_sensor_tick > 0
        if self._expected is not None:
            last_tick = self._expected + server_picks
        else:
            last_tick = self._due + (s.capture_every - 1 if server_picks else 0)
        if frame < last_tick:
            return None
        imaged = self._imaged(self._due, wait_s=s.sensor_timeout_s)
        if not imaged:
            self._due, self._expected = frame + 1, None
            return None, None, "rgb and semantic"
        capture = min(imaged)
        rgb, semantic, missing = self._take_pair(capture)
        self._due = capture + (1 if missing or server_picks else s.capture_every)
        self._expected = None if missing else capture + s.capture_every
        return rgb, semantic, missing

    def _imaged(self, since: int, wait_s: float = 0.0) -> set[int]:
        """Frames at or after ``since`` that either camera delivered, polling up to ``wait_s`` until there is one."""
        deadline = time.monotonic() + wait_s
        while True:
            imaged = self._buffers["rgb"].delivered(since) | self._buffers["semantic"].delivered(since)
            if imaged or time.monotonic() >= deadline:
                return imaged
            time.sleep(IMAGE_POLL_S)

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
        s = self.settings
        if self._respawns_without_keep < s.max_respawns:
            self._respawns_without_keep += 1
            self.stats["ego_respawns"] += 1
            self._server_call(self._respawn_ego)
            return
        self._respawns_without_keep = 0
        self._abandoned_in_a_row += 1
        self.stats["conditions_abandoned"] += 1
        if self._abandoned_in_a_row >= len(s.schedule):
            raise CarlaNothingKeptError(
                f"CARLA stream {self.stream}: no frame kept in any of its {len(s.schedule)} (town, weather) "
                f"conditions, each given {s.max_respawns} ego respawns after {s.max_rejects_in_a_row} drops in a "
                "row; the filters reject everything this server renders (see the filter report, loosen filter.*)"
            )
        log.warning(
            "CARLA stream %d: no frame kept in %s / %s after %d ego respawns; moving on",
            self.stream,
            self.town,
            self.weather,
            s.max_respawns,
        )
        self._go_to_step((self._step + 1) % len(s.schedule), new_scene=True)

    def _respawn_ego(self) -> None:
        self._renew_buffers()  # late images of the old cameras cannot mix in
        self._scene.respawn_ego(self._buffers["rgb"].put, self._buffers["semantic"].put)
        self._restart_capture()

    def _go_to_step(self, step: int, new_scene: bool = False) -> None:
        """Drive on in the next (town, weather): a new map (and scene) only when the town changes or asked for."""
        old_town, old_weather = self.town, self.weather
        self._step, self._kept_in_step = step, 0
        if new_scene or town_key(self.town) != town_key(old_town):
            self._server_call(self._switch_town)
            self.stats["town_switches"] += town_key(self.town) != town_key(old_town)
        elif self.weather != old_weather:
            self._server_call(lambda: self._world.set_weather(getattr(self._carla.WeatherParameters, self.weather)))
            self._restart_capture()  # the exposure adapts to the new light
        if self.weather != old_weather:
            self.stats["weather_switches"] += 1

    def _switch_town(self) -> None:
        steps = BestEffort()
        self._remove_scene(steps)
        if steps.server_down:
            raise RuntimeError("; ".join(steps.failures))
        self._setup_world()

    # -- failure handling and cleanup ---------------------------------------------------------------------
    def _server_call(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except RuntimeError as error:  # the client's time-outs and lost connections are RuntimeErrors
            raise self._lost(str(error)) from error

    def _lost(self, reason: str) -> CarlaConnectionLostError:
        self._server_failed = True
        s = self.settings
        return CarlaConnectionLostError(
            f"lost the CARLA server at {s.host}:{s.port}: {reason}. Its state cannot be trusted in this process; "
            "the collection restarts this stream's worker in a fresh one"
        )

    def _same_server_run(self, steps: BestEffort) -> bool:
        """Whether the server still holds this source's world after a failure: in synchronous mode at our frame.

        A restarted server counts its frames afresh and starts asynchronous; actor ids it hands out are reused, so
        the ids this source spawned must not be destroyed there, nor settings applied.
        """

        def check() -> bool:
            frame, last = self._world.get_snapshot().frame, self._last_frame
            return bool(self._world.get_settings().synchronous_mode) and frame in (last, last + 1)

        return bool(steps.call("check the server still runs this source's world", check))

    def _remove_scene(self, steps: BestEffort) -> None:
        if self._scene is None:
            return
        self._scene.stop_sensors(steps)
        leftover = self._scene.destroy(steps)
        self._scene = None
        if leftover:
            log.warning("could not destroy CARLA actors %s (server not answering)", leftover)
        self.stats["cleanup_failures"] += len(steps.failures)
        steps.failures.clear()

    def _cleanup(self) -> None:
        """Restore the server and remove the scene; after a failure, within a bounded time.

        A server that stalled a tick may block every later call as well (no client timeout bounds that): cleanup
        then gives up after CLEANUP_LIMIT client timeouts, leaving the rest to the end of this process.
        """
        if not self._server_failed:
            self._cleanup_steps()
            return
        limit = self.settings.timeout_s * CLEANUP_LIMIT
        returned, _ = call_with_watchdog(self._cleanup_steps, limit)
        if not returned:
            s = self.settings
            log.warning(
                "CARLA cleanup at %s:%s did not finish within %gs; left to the process's end", s.host, s.port, limit
            )
            self.stats["cleanup_failures"] += 1
            self._world = self._traffic_manager = self._client = None

    def _cleanup_steps(self) -> None:
        steps = BestEffort()
        if self._scene is not None:
            self._scene.stop_sensors(steps)
        world, tm, original = self._world, self._traffic_manager, self._original_settings
        if tm is not None:  # a TM of a dead connection fails here; the world may still answer
            steps.call("Traffic Manager back to asynchronous", lambda: tm.set_synchronous_mode(False), False)
        if world is not None and self._server_failed and not self._same_server_run(steps):
            s = self.settings
            log.warning(
                "CARLA server at %s:%s restarted or is not answering: its settings and actors are left alone "
                "(actor ids are reused after a restart)",
                s.host,
                s.port,
            )
            self._scene = None
        else:
            if world is not None and original is not None:
                steps.call("restore the original world settings", lambda: world.apply_settings(original))
            self._remove_scene(steps)
        self.stats["cleanup_failures"] += len(steps.failures)
        self._world = self._traffic_manager = self._client = None


def missing_frame(rgb: Any, semantic: Any, frame: int) -> int:
    """The frame a half-delivered capture was for (whichever image came), else the tick's frame."""
    image = rgb if rgb is not None else semantic
    return int(image.frame) if image is not None else frame
