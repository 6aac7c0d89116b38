"""Spawning and removing everything the CARLA source puts into a world: ego, cameras, traffic, walkers.

Follows the pattern of CARLA's generate_traffic.py: batch spawning with per-command error responses,
autopilot on the source's own Traffic Manager port, one AI controller per walker started after a tick.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from simreal.collect.carla_errors import CarlaSpawnError
from simreal.collect.carla_settings import CarlaSettings

log = logging.getLogger(__name__)

DEFAULT_WALKER_SPEED = 1.4  # m/s, CARLA's default for WalkerAIController.set_max_speed
# RGB post-process effects that smear or glow across object edges, where the semantic camera stays crisp
# (sensor.camera.rgb attributes; each is set only where the server's blueprint has it)
EDGE_BLURRING_EFFECTS = {
    "motion_blur_intensity": "0.0",
    "motion_blur_max_distortion": "0.0",
    "bloom_intensity": "0.0",
    "lens_flare_intensity": "0.0",
    "chromatic_aberration_intensity": "0.0",
}


def ego_blueprints(vehicle_blueprints: list[Any]) -> list[Any]:
    """The cars among the vehicle blueprints (``base_type`` car: no truck, van, bus, motorcycle or bicycle).

    Servers whose blueprints carry no ``base_type`` (before 0.9.14) leave every vehicle, with a warning.
    """
    cars = [
        b
        for b in vehicle_blueprints
        if b.has_attribute("base_type") and b.get_attribute("base_type").as_str().lower() == "car"
    ]
    if not cars:
        log.warning("no vehicle blueprint has base_type 'car' on this server; the ego may be any vehicle")
        return vehicle_blueprints
    return cars


class BestEffort:
    """Runs cleanup calls one by one, logging failures instead of raising.

    After the first RuntimeError (the real client's "time-out ... waiting for the simulator") the server is
    taken as gone and later server calls are skipped, so cleanup of a dead server costs one timeout, not one
    per actor.
    """

    def __init__(self) -> None:
        self.server_down = False
        self.failures: list[str] = []

    def call(self, what: str, action: Callable[[], Any], needs_server: bool = True) -> Any:
        if needs_server and self.server_down:
            self.failures.append(f"{what}: skipped, server not answering")
            return None
        try:
            return action()
        except RuntimeError as error:
            self.server_down = self.server_down or needs_server
            self.failures.append(f"{what}: {error}")
            log.warning("CARLA cleanup step failed (%s): %s", what, error)
            return None


class Scene:
    """The actors this source spawned into one world, and their removal."""

    def __init__(self, carla: Any, client: Any, world: Any, settings: CarlaSettings, rng: random.Random) -> None:
        self._carla = carla
        self._client = client
        self._world = world
        self._settings = settings
        self._rng = rng
        self.ego: Any = None
        self.ego_spawn_point: Any = None
        self.cameras: list[Any] = []
        self.vehicle_ids: list[int] = []
        self.walker_ids: list[int] = []
        self.controllers: list[Any] = []  # the started ones (they must be stopped before destruction)
        self.controller_ids: list[int] = []
        self.counts = {
            "vehicles_spawned": 0,
            "vehicles_failed": 0,
            "walkers_spawned": 0,
            "walkers_failed": 0,
            "walker_controllers_failed": 0,
        }

    # -- spawning ---------------------------------------------------------------------------------------
    def populate(self, on_rgb: Callable[[Any], None], on_semantic: Callable[[Any], None]) -> None:
        """Spawn ego + cameras (required, errors raise) and traffic (failures are only counted)."""
        library = self._world.get_blueprint_library()
        spawn_points = list(self._world.get_map().get_spawn_points())
        self._rng.shuffle(spawn_points)
        vehicle_blueprints = list(library.filter("vehicle.*"))
        if not vehicle_blueprints:
            raise CarlaSpawnError("the server's blueprint library has no 'vehicle.*' blueprints")
        self._spawn_ego(ego_blueprints(vehicle_blueprints), spawn_points)
        self._spawn_cameras(library, on_rgb, on_semantic)
        self._spawn_vehicles(vehicle_blueprints, spawn_points)
        self._spawn_walkers(library)

    def respawn_ego(self, on_rgb: Callable[[Any], None], on_semantic: Callable[[Any], None]) -> None:
        """Put the ego, cameras and all, at another free spawn point (it was stuck); server errors raise."""
        for camera in self.cameras:
            camera.stop()
        ids = [c.id for c in self.cameras] + [self.ego.id]
        command = self._carla.command
        self._client.apply_batch_sync([command.DestroyActor(i) for i in ids], False)
        self.ego, self.cameras = None, []
        library = self._world.get_blueprint_library()
        spawn_points = list(self._world.get_map().get_spawn_points())
        self._rng.shuffle(spawn_points)
        # the last spawn point goes to the front: tried (from the back) only when no other point is free
        spawn_points.sort(key=lambda point: point != self.ego_spawn_point)
        self._spawn_ego(ego_blueprints(list(library.filter("vehicle.*"))), spawn_points)
        self._spawn_cameras(library, on_rgb, on_semantic)

    def _spawn_ego(self, blueprints: list[Any], spawn_points: list[Any]) -> None:
        blueprint = self._rng.choice(blueprints)
        blueprint.set_attribute("role_name", "hero")  # large maps stream tiles around the hero
        tried = len(spawn_points)
        while spawn_points and self.ego is None:
            self.ego_spawn_point = spawn_points.pop()
            self.ego = self._world.try_spawn_actor(blueprint, self.ego_spawn_point)
        if self.ego is None:
            raise CarlaSpawnError(f"could not place the ego vehicle at any of the map's {tried} spawn points")
        self.ego.set_autopilot(True, self._settings.tm_port)

    def _spawn_cameras(self, library: Any, on_rgb: Callable, on_semantic: Callable) -> None:
        carla, s = self._carla, self._settings
        pose = carla.Transform(
            carla.Location(x=s.camera_x, y=s.camera_y, z=s.camera_z),
            carla.Rotation(pitch=s.camera_pitch, yaw=s.camera_yaw),
        )
        for blueprint_id, callback in (
            ("sensor.camera.rgb", on_rgb),
            ("sensor.camera.semantic_segmentation", on_semantic),
        ):
            blueprint = library.find(blueprint_id)
            # identical size/fov/pose and a rigid mount: pixel (u, v) of both images sees the same point
            blueprint.set_attribute("image_size_x", str(s.width))
            blueprint.set_attribute("image_size_y", str(s.height))
            blueprint.set_attribute("fov", str(s.fov))
            # both cameras image only the ticks a capture can use (the server skips rendering and streaming the rest)
            blueprint.set_attribute("sensor_tick", f"{s.camera_sensor_tick:.6g}")
            if blueprint_id == "sensor.camera.rgb":
                self._set_exposure(blueprint)
                if not s.postprocess_effects:
                    for name, value in EDGE_BLURRING_EFFECTS.items():
                        if blueprint.has_attribute(name):
                            blueprint.set_attribute(name, value)
            camera = self._world.spawn_actor(
                blueprint, pose, attach_to=self.ego, attachment_type=carla.AttachmentType.Rigid
            )
            self.cameras.append(camera)
            camera.listen(callback)

    def _set_exposure(self, blueprint: Any) -> None:
        """Auto exposure (UE's histogram eye adaptation) or the fixed exposure the settings give."""
        for name, value in self._settings.exposure_attributes.items():
            if blueprint.has_attribute(name):
                blueprint.set_attribute(name, value)
            elif name != "exposure_mode" or value != "histogram":
                raise CarlaSpawnError(
                    f"this server's RGB camera has no '{name}' attribute (CARLA before 0.9.10?): it cannot take "
                    f"{name}={value}"
                )

    def _spawn_vehicles(self, blueprints: list[Any], spawn_points: list[Any]) -> None:
        command, tm_port = self._carla.command, self._settings.tm_port
        wanted = self._settings.n_vehicles
        points = spawn_points[:wanted]
        self.counts["vehicles_failed"] += wanted - len(points)  # more vehicles asked for than free spawn points
        batch = []
        for point in points:
            blueprint = self._rng.choice(blueprints)
            if blueprint.has_attribute("color"):
                blueprint.set_attribute("color", self._rng.choice(blueprint.get_attribute("color").recommended_values))
            blueprint.set_attribute("role_name", "autopilot")
            batch.append(
                command.SpawnActor(blueprint, point).then(command.SetAutopilot(command.FutureActor, True, tm_port))
            )
        ids = self._spawn_batch(batch, "vehicles")
        self.vehicle_ids.extend(ids)

    def _spawn_walkers(self, library: Any) -> None:
        wanted = self._settings.n_walkers
        if wanted == 0:
            return
        carla, world = self._carla, self._world
        world.set_pedestrians_seed(self._settings.seed)
        walker_blueprints = list(library.filter("walker.pedestrian.*"))
        if not walker_blueprints:
            self.counts["walkers_failed"] += wanted
            log.warning("no 'walker.pedestrian.*' blueprints on this server; spawning no walkers")
            return
        batch, speeds = [], []
        for _ in range(wanted):
            location = world.get_random_location_from_navigation()
            if location is None:  # no navigation mesh point found
                self.counts["walkers_failed"] += 1
                continue
            blueprint = self._rng.choice(walker_blueprints)
            if blueprint.has_attribute("is_invincible"):
                blueprint.set_attribute("is_invincible", "false")
            speeds.append(self._walking_speed(blueprint))
            batch.append(carla.command.SpawnActor(blueprint, carla.Transform(location)))
        responses = self._client.apply_batch_sync(batch, False)
        walker_speeds = {}
        for response, speed in zip(responses, speeds, strict=True):
            if response.has_error():
                self.counts["walkers_failed"] += 1
                log.debug("walker spawn failed: %s", response.error)
            else:
                self.walker_ids.append(response.actor_id)
                walker_speeds[response.actor_id] = speed
        self.counts["walkers_spawned"] += len(walker_speeds)
        if not self.walker_ids:
            return

        controller_blueprint = library.find("controller.ai.walker")
        batch = [carla.command.SpawnActor(controller_blueprint, carla.Transform(), wid) for wid in self.walker_ids]
        controller_ids = self._spawn_batch(batch, "walker_controllers", count_spawned=False)
        self.controller_ids.extend(controller_ids)  # owned from now on, even if the tick below fails
        world.tick()  # the client needs one tick to know the controllers' transforms before starting them
        world.set_pedestrians_cross_factor(self._settings.walker_cross_factor)
        for controller in world.get_actors(controller_ids):
            self.controllers.append(controller)
            controller.start()
            destination = world.get_random_location_from_navigation()
            if destination is not None:
                controller.go_to_location(destination)
            walker_id = getattr(controller.parent, "id", None)
            controller.set_max_speed(walker_speeds.get(walker_id, DEFAULT_WALKER_SPEED))

    @staticmethod
    def _walking_speed(blueprint: Any) -> float:
        if not blueprint.has_attribute("speed"):
            return DEFAULT_WALKER_SPEED
        values = blueprint.get_attribute("speed").recommended_values  # [idle, walk, run]
        return float(values[1]) if len(values) > 1 else DEFAULT_WALKER_SPEED

    def _spawn_batch(self, batch: list[Any], kind: str, count_spawned: bool = True) -> list[int]:
        if not batch:
            return []
        ids = []
        for response in self._client.apply_batch_sync(batch, False):
            if response.has_error():
                self.counts[f"{kind}_failed"] += 1
                log.debug("%s spawn failed: %s", kind, response.error)
            else:
                ids.append(response.actor_id)
        if count_spawned:
            self.counts[f"{kind}_spawned"] += len(ids)
        return ids

    # -- removal ----------------------------------------------------------------------------------------
    def actor_ids(self) -> list[int]:
        """Every actor id this scene owns, sensors first (they are attached to the ego)."""
        ego_ids = [self.ego.id] if self.ego is not None else []
        return [c.id for c in self.cameras] + self.controller_ids + self.walker_ids + self.vehicle_ids + ego_ids

    def stop_sensors(self, steps: BestEffort) -> None:
        """Stop the camera streams first so no callback runs into a destroyed actor."""
        for camera in self.cameras:
            steps.call(f"stop camera {camera.id}", camera.stop, needs_server=False)

    def destroy(self, steps: BestEffort) -> list[int]:
        """Stop walker controllers, destroy every actor; returns the ids that could not be destroyed."""
        for controller in self.controllers:
            steps.call(f"stop walker controller {controller.id}", controller.stop)
        ids = self.actor_ids()
        leftover = list(ids)
        if ids:
            command = self._carla.command
            responses = steps.call(
                f"destroy {len(ids)} actors",
                lambda: self._client.apply_batch_sync([command.DestroyActor(i) for i in ids], False),
            )
            if responses is not None:
                leftover = [i for i, r in zip(ids, responses, strict=True) if r.has_error()]
        self.ego, self.cameras, self.vehicle_ids, self.walker_ids, self.controllers = None, [], [], [], []
        self.controller_ids = []
        return leftover
