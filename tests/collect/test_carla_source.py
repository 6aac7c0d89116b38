"""CarlaSource against the fake `carla` API in tests/fake_carla.py (the production code path runs)."""

from __future__ import annotations

import importlib
import itertools
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from simreal.collect.carla_actors import EDGE_BLURRING_EFFECTS
from simreal.collect.carla_sensors import FrameBuffer
from simreal.collect.carla_source import (
    CarlaClientMissingError,
    CarlaConnectionLostError,
    CarlaNothingKeptError,
    CarlaSensorTimeoutError,
    CarlaServerError,
    CarlaSettings,
    CarlaSettingsError,
    CarlaSource,
    CarlaSourceError,
    CarlaSpawnError,
    CarlaUnreachableError,
    CollectionStoppedError,
)
from simreal.collect.collector import SourceSpec, StreamCollector
from simreal.collect.filters import FilterConfig
from simreal.collect.schedule import plan_schedules, schedule_position, town_key
from simreal.data.convert import FrameSpec
from simreal.errors import CollectionError, SimrealError
from tests.fake_carla import (
    RGB_EFFECTS,
    VEHICLES,
    FakeCarla,
    FakeServerConfig,
    WorldSettings,
    rgb_frame_id,
    semantic_tags,
    tag_count,
)

ORIGINAL = WorldSettings(synchronous_mode=False, fixed_delta_seconds=None, max_substeps=7)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    carla = FakeCarla()
    monkeypatch.setitem(sys.modules, "carla", carla.module)
    yield carla
    for server in carla.servers.values():
        server.wait_for_deliveries()


def add_server(fake: FakeCarla, **config):
    server = fake.add_server(FakeServerConfig(**config))
    server.settings = WorldSettings(**vars(ORIGINAL))
    return server


def settings(**overrides) -> CarlaSettings:
    values = dict(
        width=8, height=6, fov=70.0, capture_every=1, n_vehicles=3, n_walkers=2, timeout_s=0.5,
        sensor_timeout_s=0.3, fixed_delta_seconds=0.1, warmup_s=0,
    )  # fmt: skip
    values.update(overrides)
    return CarlaSettings(**values)


def take(source: CarlaSource, n: int) -> list:
    return list(itertools.islice(source.frames(), n))


def assert_matched(frame, version: str) -> None:
    frame_id = frame.meta["frame"]
    assert rgb_frame_id(frame.rgb_bgra) == frame_id % 65536
    h, w = frame.semantic_bgra.shape[:2]
    np.testing.assert_array_equal(frame.semantic_bgra[..., 2], semantic_tags(frame_id, h, w, version))


def assert_clean(server) -> None:
    assert server.alive() == []
    assert server.settings == ORIGINAL
    assert all(not tm.synchronous for tm in server.traffic_managers.values())
    assert server.destroyed_while_listening == []  # cameras stopped before destruction
    assert server.destroyed_while_running == []  # walker controllers stopped before destruction


def test_frames_matched_by_id_under_delays_drops_and_reordering(fake: FakeCarla) -> None:
    server = add_server(
        fake,
        max_image_delay_s=0.03,  # images arrive late and out of order
        dropped={("rgb", 1009), ("semantic", 1018)},
        late={("semantic", 1006): 0.15},  # late but within sensor_timeout_s
    )
    with CarlaSource(settings(capture_every=3)) as source:
        frames = take(source, 6)
    # the cameras (sensor_tick 0.3 s = 3 ticks) image every 3rd tick after their spawn at 1000; a half-delivered
    # capture is lost and the next imaged tick is taken
    assert [f.meta["frame"] for f in frames] == [1003, 1006, 1012, 1015, 1021, 1024]
    for frame in frames:
        assert_matched(frame, "0.9.15")
    assert source.stats["captures_missed"] == 2
    assert_clean(server)


@pytest.mark.parametrize("sensor_tick", [True, False])
def test_capture_every_k_ticks(fake: FakeCarla, sensor_tick: bool) -> None:
    server = add_server(fake)
    with CarlaSource(settings(capture_every=4, sensor_tick=sensor_tick)) as source:
        frames = take(source, 5)
        cameras = server.alive("sensor.camera.")
        assert {c.attributes["sensor_tick"] for c in cameras} == {"0.4" if sensor_tick else "0"}
    ids = [f.meta["frame"] for f in frames]
    assert np.diff(ids).tolist() == [4, 4, 4, 4]
    for frame in frames:
        assert_matched(frame, "0.9.15")
    assert source.stats["frames"] == 5 and source.stats["ticks"] <= 5 * 4 + 1
    # images the server rendered and streamed: one pair per capture with sensor_tick, one per tick without (the
    # walker-controller tick included)
    assert server.images_sent == (2 * len(frames) if sensor_tick else 2 * (source.stats["ticks"] + 1))


@pytest.mark.parametrize(("version", "scheme"), [("0.9.13", "carla-0.9.13"), ("0.9.15", "carla-0.9.14")])
def test_tags_from_red_channel_and_scheme_from_server_version(fake: FakeCarla, version: str, scheme: str) -> None:
    add_server(fake, version=version)
    with CarlaSource(settings(seed=7), stream=0) as source:
        frame = take(source, 1)[0]
    assert_matched(frame, version)
    assert frame.semantic_bgra.shape == (6, 8, 4) and frame.rgb_bgra.shape == (6, 8, 4)
    assert frame.semantic_bgra[..., 2].max() < tag_count(version)
    assert frame.meta == {
        "backend": "carla",
        "host": "localhost",
        "port": 2000,
        "town": "Town10HD",
        "weather": "ClearNoon",
        "frame": frame.meta["frame"],
        "timestamp": pytest.approx(frame.meta["frame"] * 0.1),
        "stream": 0,
        "seed": 7,
        "server_version": version,
        "client_version": "0.9.16",
        "tag_scheme": scheme,
        "width": 8,
        "height": 6,
        "fov": 70.0,
    }


def test_world_setup_and_cleanup_after_normal_exit(fake: FakeCarla) -> None:
    server = add_server(fake)
    with CarlaSource(settings(tm_port=8123, seed=3)) as source:
        take(source, 2)
        assert server.settings.synchronous_mode and server.settings.fixed_delta_seconds == 0.1
        assert server.settings.max_substeps == 7  # other settings kept
        assert server.map_name == "Town10HD_Opt" and server.load_world_calls == []  # the same town: no reload
        assert server.traffic_managers[8123].synchronous and server.traffic_managers[8123].seed == 3
        assert server.weather.name == "ClearNoon"
        cameras = server.alive("sensor.camera.")
        assert [c.attributes["image_size_x"] for c in cameras] == ["8", "8"]
        assert {c.attributes["fov"] for c in cameras} == {"70.0"}
        assert {c.parent.attributes["role_name"] for c in cameras} == {"hero"}
        assert {c.attachment_type for c in cameras} == {0}  # Rigid
        assert all(v.autopilot_port == 8123 for v in server.alive("vehicle."))
        assert len(server.alive("vehicle.")) == 4 and len(server.alive("walker.")) == 2
        assert all(c.running for c in server.alive("controller.ai.walker"))
    assert_clean(server)


class ConsumerError(Exception):
    pass


def test_cleanup_after_consumer_exception(fake: FakeCarla) -> None:
    server = add_server(fake)
    with pytest.raises(ConsumerError):
        with CarlaSource(settings()) as source:
            for _ in source.frames():
                raise ConsumerError
    assert_clean(server)


@pytest.mark.parametrize("where", ["consumer", "blocked_in_tick"])
def test_cleanup_after_keyboard_interrupt(fake: FakeCarla, where: str) -> None:
    server = add_server(fake, interrupt_at_tick=4 if where == "blocked_in_tick" else None)
    with pytest.raises(KeyboardInterrupt):
        with CarlaSource(settings()) as source:
            for index, _ in enumerate(source.frames()):
                if index == 1 and where == "consumer":
                    raise KeyboardInterrupt
    assert_clean(server)


def test_cleanup_when_setup_fails(fake: FakeCarla) -> None:
    server = add_server(fake, spawn_points=0)
    with pytest.raises(CarlaSpawnError, match="ego vehicle"):
        with CarlaSource(settings()):
            pass
    assert_clean(server)


def test_a_stalled_server_ends_the_stream_and_is_cleaned_up_when_it_answers_again(fake: FakeCarla) -> None:
    # the tick times out once; the server is still the same run (synchronous, at our frame): cleanup restores it
    server = add_server(fake, stall_at_tick=6)
    with pytest.raises(CarlaConnectionLostError, match=r"localhost:2000.*fresh one"):
        with CarlaSource(settings()) as source:
            take(source, 10)
    assert isinstance(CarlaConnectionLostError("x"), CarlaServerError)  # the pipeline restarts on these
    assert_clean(server)


def test_after_a_crash_the_process_wide_traffic_manager_is_dead_even_for_a_new_client(fake: FakeCarla) -> None:
    server = add_server(fake)
    with CarlaSource(settings(tm_port=8123)) as source:
        take(source, 1)
    server.crash()
    stale = fake.module.Client("localhost", 2000).get_trafficmanager(8123)  # a new client, the same process
    assert stale is fake.tm_map[8123]
    with pytest.raises(RuntimeError, match="connection to the simulator lost"):
        stale.set_synchronous_mode(True)
    with pytest.raises(CarlaConnectionLostError):  # so a source cannot restart in this process ...
        with CarlaSource(settings(tm_port=8123)):
            pass
    fake.tm_map.clear()  # ... but a fresh process (an empty TM map) can
    with CarlaSource(settings(tm_port=8123)) as source:
        assert len(take(source, 2)) == 2
    assert server.alive() == []


def test_actor_ids_from_before_a_server_restart_are_never_destroyed(fake: FakeCarla) -> None:
    server = add_server(fake)
    with pytest.raises(CarlaConnectionLostError, match="connection to the simulator lost"):
        with CarlaSource(settings()) as source:
            for index, _ in enumerate(source.frames()):
                if index == 2:
                    ours = {a.id for a in server.alive()}
                    server.crash()  # the server restarts; another client spawns into the new world
                    blueprint = server.library.find("vehicle.audi.a2")
                    others = [server.spawn(blueprint, None) for _ in range(len(ours) + 2)]
    assert ours <= {a.id for a in others}  # the ids are reused ...
    assert server.alive() == others  # ... and the other client's actors survive our cleanup
    assert not server.settings.synchronous_mode and server.settings == WorldSettings()  # nothing applied either


@pytest.mark.parametrize("wedged", [False, True])
def test_a_tick_that_never_returns_is_caught_by_the_watchdog(fake: FakeCarla, wedged: bool) -> None:
    # blocked inside the TM step: the client's own timeout never fires; a wedged server blocks every other call too
    server = add_server(fake, hang_at_tick=5, hang_blocks_all=wedged)
    started = time.monotonic()
    try:
        with pytest.raises(CarlaConnectionLostError, match=r"did not return within 1s"):
            with CarlaSource(settings(timeout_s=0.5)) as source:
                take(source, 10)
        assert time.monotonic() - started < 0.5 * (2 + 4) + 2.0  # the watchdog, then a bounded cleanup
        if not wedged:
            assert server.alive() == [] and server.settings == ORIGINAL  # the server still answers: cleaned up
        else:
            assert source.stats["cleanup_failures"] == 1 and len(server.actors) > 0  # left to the process's end
    finally:
        server.release()


def test_unreachable_server_names_address_and_suggests_procedural(fake: FakeCarla) -> None:
    start = time.monotonic()
    with pytest.raises(CarlaUnreachableError, match=r"localhost:2999.*--backend procedural") as caught:
        with CarlaSource(settings(port=2999, timeout_s=0.3)):
            pass
    assert time.monotonic() - start < 0.3 + 1.0
    assert isinstance(caught.value, SimrealError)  # one error line in the CLI


def test_missing_client_package_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "carla", None)  # `import carla` now raises ImportError
    monkeypatch.delitem(sys.modules, "simreal.collect.carla_source")
    module = importlib.import_module("simreal.collect.carla_source")  # importable without the client
    with pytest.raises(CarlaClientMissingError, match=r"pip install carla.*--backend procedural"):
        with module.CarlaSource(settings()):
            pass


def test_spawn_failures_are_counted_not_fatal(fake: FakeCarla) -> None:
    server = add_server(fake, spawn_points=5, vehicle_spawn_failures=1, walker_spawn_failures=1, navigation_misses=1)
    with CarlaSource(settings(n_vehicles=6, n_walkers=4)) as source:
        take(source, 1)
        assert len(server.alive("vehicle.")) == 1 + 3
        assert len(server.alive("walker.")) == 2 and len(server.alive("controller.")) == 2
    stats = source.stats
    # 4 spawn points left after the ego: 2 vehicles find none, 1 of the 4 batched collides
    assert (stats["vehicles_spawned"], stats["vehicles_failed"]) == (3, 3)
    # 1 walker finds no navigation point, 1 of the 3 batched collides
    assert (stats["walkers_spawned"], stats["walkers_failed"]) == (2, 2)
    assert_clean(server)


def test_schedule_counts_kept_frames_and_reloads_only_on_town_change(fake: FakeCarla) -> None:
    server = add_server(fake)
    schedule = [("Town01", "ClearNoon", 2), ("Town01", "WetSunset", 1), ("Town02", "HardRainNight", 2)]
    frames = []
    with CarlaSource(settings(schedule=schedule)) as source:
        for index, frame in enumerate(source.frames()):
            frames.append(frame)
            if index in (1, 2):  # the consumer drops these two: they do not count towards the schedule
                source.reject()
            if len(frames) == 9:
                break
        assert len(server.alive("vehicle.")) == 4  # the old town's actors are not carried over
    conditions = [(f.meta["town"], f.meta["weather"]) for f in frames]
    assert (
        conditions
        == [("Town01", "ClearNoon")] * 4
        + [("Town01", "WetSunset")]
        + [("Town02", "HardRainNight")] * 2
        + [("Town01", "ClearNoon")] * 2
    )
    assert server.load_world_calls == [("Town01", False), ("Town02", False), ("Town01", False)]
    assert server.weather_history[-1] == "ClearNoon"
    assert (source.stats["town_switches"], source.stats["weather_switches"]) == (2, 3)
    for frame in frames:
        assert_matched(frame, "0.9.15")
    assert_clean(server)


@pytest.mark.parametrize(
    ("loaded", "available", "town", "loads"),
    [
        ("Town10HD_Opt", ("Town10HD", "Town10HD_Opt"), "Town10HD", []),  # the _Opt twin is the same town
        ("Town10HD", ("Town10HD", "Town10HD_Opt"), "Town10HD_Opt", []),
        ("Town01", ("Town01", "Town10HD_Opt"), "Town10HD", [("Town10HD_Opt", False)]),  # only the twin exists
        ("Town01", ("Town01", "Town10HD", "Town10HD_Opt"), "Town10HD", [("Town10HD", False)]),
    ],
)
def test_a_town_already_loaded_is_not_reloaded(fake: FakeCarla, loaded, available, town, loads) -> None:
    server = add_server(fake, initial_map=loaded, maps=available)
    with CarlaSource(settings(schedule=[(town, "ClearNoon", 0)], load_timeout_s=42.0)) as source:
        meta = take(source, 1)[0].meta
    assert server.load_world_calls == loads and meta["town"] == town
    assert server.load_world_timeouts == [42.0] * len(loads)  # map loads get their own, longer timeout
    assert_clean(server)


@pytest.mark.parametrize("seed", range(6))
def test_ego_is_a_car_and_the_rgb_camera_has_no_edge_blurring_effects(fake: FakeCarla, seed: int) -> None:
    server = add_server(fake)
    with CarlaSource(settings(seed=seed, n_vehicles=15)) as source:
        take(source, 1)
        (ego,) = [v for v in server.alive("vehicle.") if v.attributes["role_name"] == "hero"]
        assert VEHICLES[ego.type_id] == "car"
        assert {VEHICLES[v.type_id] for v in server.alive("vehicle.")} != {"car"}  # traffic stays varied
        (rgb,) = server.alive("sensor.camera.rgb")
        for name in EDGE_BLURRING_EFFECTS:
            assert float(rgb.attributes[name]) == 0.0, name
        assert rgb.attributes["enable_postprocess_effects"] == "True"  # exposure and tone mapping stay
        (semantic,) = server.alive("sensor.camera.semantic_segmentation")
        assert not any(name in semantic.attributes for name in RGB_EFFECTS)  # set only where the blueprint has it


def test_postprocess_effects_can_be_kept(fake: FakeCarla) -> None:
    server = add_server(fake)
    with CarlaSource(settings(postprocess_effects=True)) as source:
        take(source, 1)
        (rgb,) = server.alive("sensor.camera.rgb")
        assert {name: rgb.attributes[name] for name in RGB_EFFECTS} == RGB_EFFECTS


def test_ego_from_any_vehicle_with_a_warning_when_blueprints_lack_base_type(fake: FakeCarla, caplog) -> None:
    server = add_server(fake, vehicle_base_types=False)
    with CarlaSource(settings()) as source:
        take(source, 1)
        assert len([v for v in server.alive("vehicle.") if v.attributes["role_name"] == "hero"]) == 1
    assert "base_type 'car'" in caplog.text
    assert_clean(server)


def test_the_warmup_is_given_in_simulated_seconds() -> None:
    assert settings(warmup_s=1.0, fixed_delta_seconds=0.05).warmup_ticks == 20
    assert settings(warmup_s=1.0, fixed_delta_seconds=0.1).warmup_ticks == 10
    assert settings(warmup_s=1.0, fixed_delta_seconds=0.3).warmup_ticks == 4  # rounded up: never shorter
    assert CarlaSettings().warmup_s >= 1.0  # UE's eye adaptation takes about 1 s of game time


def test_manual_exposure_settings_are_checked() -> None:
    with pytest.raises(CarlaSettingsError, match="only with exposure_mode=manual"):
        settings(iso=200.0)
    with pytest.raises(CarlaSettingsError, match="exposure_mode='auto'"):
        settings(exposure_mode="auto")
    assert settings(exposure_mode="manual", shutter_speed=100.0).exposure_attributes == {
        "exposure_mode": "manual",
        "shutter_speed": "100",
    }


def test_warmup_ticks_are_not_captured_after_spawn_and_weather_change(fake: FakeCarla) -> None:
    add_server(fake)
    schedule = [("Town10HD", "ClearNoon", 2), ("Town10HD", "WetSunset", 2)]
    with CarlaSource(settings(warmup_s=0.4, schedule=schedule)) as source:  # 4 ticks of 0.1 s
        frames = take(source, 4)
    # 1001: walker-controller tick; 1002-1005 warm-up; then 2 frames, a weather change, 4 warm-up ticks
    assert [f.meta["frame"] for f in frames] == [1006, 1007, 1012, 1013]
    assert source.stats["warmup_ticks"] == 8


def test_rendering_is_forced_on_and_the_original_setting_restored(fake: FakeCarla) -> None:
    server = add_server(fake)
    server.settings.no_rendering_mode = True  # left on by another client: cameras would deliver nothing
    original = WorldSettings(**vars(server.settings))
    with CarlaSource(settings()) as source:
        assert not server.settings.no_rendering_mode
        assert len(take(source, 2)) == 2
    assert server.settings == original


def test_leaked_synchronous_mode_is_not_restored(fake: FakeCarla, caplog) -> None:
    server = add_server(fake)
    server.settings = WorldSettings(synchronous_mode=True, fixed_delta_seconds=0.05, max_substeps=7)  # a killed run
    with CarlaSource(settings()) as source:
        take(source, 1)
    assert "already in synchronous mode" in caplog.text
    assert server.settings == ORIGINAL  # asynchronous, variable step; the other settings kept
    assert_clean(server)


def test_runs_of_dropped_frames_respawn_the_ego_then_move_on(fake: FakeCarla) -> None:
    server = add_server(fake)
    schedule = [("Town01", "ClearNoon", 0), ("Town02", "WetSunset", 0)]
    cap = settings(schedule=schedule, max_rejects_in_a_row=3, max_respawns=2)
    egos, points, towns = [], [], []
    with CarlaSource(cap) as source:
        for index, frame in enumerate(source.frames()):
            (ego,) = [v for v in server.alive("vehicle.") if v.attributes["role_name"] == "hero"]
            assert {c.parent.id for c in server.alive("sensor.camera.")} == {ego.id}  # cameras move with it
            egos.append(ego.id)
            points.append(ego.transform)
            towns.append(frame.meta["town"])
            if index == 13:
                break
            if index != 9:  # the consumer drops everything but frame 9
                source.reject()
        stats = dict(source.stats)
    # 3 drops: respawn; 3 more: respawn; 3 more: move on (new town); frame 9 kept resets; 3 drops: respawn
    assert (stats["ego_respawns"], stats["conditions_abandoned"]) == (3, 1)
    assert towns == ["Town01"] * 9 + ["Town02"] * 5
    assert len({egos[i] for i in (0, 3, 6, 9, 13)}) == 5  # a new ego per respawn and per scene
    assert egos[:3] == [egos[0]] * 3 and egos[9:13] == [egos[9]] * 4
    assert points[0] != points[3] != points[6]  # each respawn at another spawn point
    assert len(server.alive("vehicle.")) == 0 and server.load_world_calls[-1] == ("Town02", False)
    assert_clean(server)


def test_town_key_normalises_map_paths_and_opt_twins() -> None:
    names = ["/Game/Carla/Maps/Town10HD_Opt", "Carla/Maps/Town10HD", "Town10HD_Opt", "Town10HD"]
    assert {town_key(n) for n in names} == {"Town10HD"}
    assert town_key("/Game/Carla/Maps/Town01") != town_key("Town10HD")


def test_one_server_splits_the_budget_evenly_over_towns_and_weathers() -> None:
    (plan,) = plan_schedules(["Town01", "Town02"], ["ClearNoon", "WetNoon"], frames=2003, streams=1)
    assert plan == [
        ("Town01", "ClearNoon", 501),
        ("Town01", "WetNoon", 501),
        ("Town02", "ClearNoon", 501),
        ("Town02", "WetNoon", 500),
    ]  # town by town, so a map is loaded once per town and cycle


def test_parallel_servers_start_at_different_conditions_and_share_the_budget() -> None:
    plans = plan_schedules(["Town01", "Town02", "Town03"], ["ClearNoon"], frames=13, streams=2)
    assert [p[0][0] for p in plans] == ["Town01", "Town02"]  # different starting towns
    assert [sum(n for *_, n in p) for p in plans] == [7, 6]  # the budget split over the servers
    for plan in plans:  # every server visits every town
        assert sorted(t for t, _, _ in plan) == ["Town01", "Town02", "Town03"]
    totals = {t: sum(n for p in plans for tt, _, n in p if tt == t) for t in ("Town01", "Town02", "Town03")}
    assert max(totals.values()) - min(totals.values()) <= 1


def test_schedule_with_fixed_count_or_a_single_condition() -> None:
    assert plan_schedules(["Town01", "Town02"], ["ClearNoon"], 100, 1, frames_per_condition=7) == [
        [("Town01", "ClearNoon", 7), ("Town02", "ClearNoon", 7)]
    ]
    assert plan_schedules(["Town01"], ["ClearNoon"], 100, 2) == [[("Town01", "ClearNoon", 0)]] * 2  # stay
    # fewer frames than conditions: only the conditions that get a frame; a lone one is held
    assert plan_schedules(["Town01", "Town02", "Town03"], ["ClearNoon"], 2, 1) == [
        [("Town01", "ClearNoon", 1), ("Town02", "ClearNoon", 1)]
    ]
    assert plan_schedules(["Town01", "Town02"], ["ClearNoon"], 1, 1) == [[("Town01", "ClearNoon", 0)]]


def test_sensor_that_stops_delivering_times_out_with_clear_error(fake: FakeCarla) -> None:
    server = add_server(fake, dropped={("rgb", f) for f in range(1000, 1100)})
    with pytest.raises(CarlaSensorTimeoutError, match=r"rgb camera .* 2 captures in a row"):
        with CarlaSource(settings(max_missed_captures=2, sensor_timeout_s=0.1)) as source:
            take(source, 1)
    assert_clean(server)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"schedule": [("Town01", "Sunny", 0)]}, "unknown CARLA weather preset.*ClearNoon"),
        ({"schedule": [("Town99", "ClearNoon", 0)]}, r"Town99.*not on the server.*Town01"),
    ],
)
def test_unknown_names_rejected_before_spawning(fake: FakeCarla, overrides: dict, message: str) -> None:
    server = add_server(fake)
    with pytest.raises(CarlaSettingsError, match=message):
        with CarlaSource(settings(**overrides)):
            pass
    assert_clean(server)


@pytest.mark.parametrize(
    "overrides",
    [
        {"capture_every": 0},
        {"schedule": []},
        {"schedule": [("Town01", "ClearNoon", -1)]},
        {"tm_port": 2001},
        {"fov": 180.0},
        {"fixed_delta_seconds": 0.0},
        {"load_timeout_s": 0.0},
        {"max_rejects_in_a_row": 0},
        {"max_respawns": -1},
    ],
)
def test_invalid_settings_rejected(overrides: dict) -> None:
    with pytest.raises(CarlaSettingsError, match=next(iter(overrides))):
        settings(**overrides)


def test_frames_outside_with_block_is_an_error(fake: FakeCarla) -> None:
    add_server(fake)
    with pytest.raises(CarlaSourceError, match="with CarlaSource"):
        next(CarlaSource(settings()).frames())


def test_frame_buffer_matches_out_of_order_arrivals_from_other_threads() -> None:
    buffer = FrameBuffer("rgb")
    images = [SimpleNamespace(frame=f) for f in (7, 5, 6, 9)]
    threads = [threading.Timer(0.02 * i, buffer.put, (image,)) for i, image in enumerate(images)]
    for thread in threads:
        thread.start()
    assert buffer.take(6, timeout_s=2.0).frame == 6
    assert buffer.take(9, timeout_s=2.0).frame == 9
    assert buffer.discarded == 2  # 5 and 7 were stale once 6 and then 9 were asked for
    assert buffer.take(10, timeout_s=0.05) is None
    for thread in threads:
        thread.join()


def test_stop_requested_from_another_thread_ends_the_stream_between_ticks(fake: FakeCarla) -> None:
    server = add_server(fake)
    with pytest.raises(CollectionStoppedError, match="stopped on request"):
        with CarlaSource(settings()) as source:
            for index, _ in enumerate(source.frames()):
                if index == 1:
                    threading.Thread(target=source.request_stop).start()
                    time.sleep(0.1)
    assert_clean(server)


def test_close_does_not_wait_for_a_collect_that_never_ends(fake: FakeCarla) -> None:
    server = add_server(fake)
    collector = StreamCollector(
        SourceSpec("carla", dict(vars(settings(max_rejects_in_a_row=10**6)))),
        FrameSpec(size=(8, 6)),
        FilterConfig(enabled=("low_traffic",), min_traffic_share=1.0),  # nothing is ever kept
    )
    collector.start()
    errors = []
    collecting = threading.Thread(target=lambda: errors.append(pytest.raises(CollectionError, collector.collect, 3)))
    collecting.start()
    while server.tick_calls < 5:
        time.sleep(0.01)
    collector.close()  # from another thread, while collect() runs (a threaded Ray actor)
    collecting.join(5.0)
    assert not collecting.is_alive() and len(errors) == 1
    assert_clean(server)


def test_a_world_where_nothing_is_ever_kept_ends_with_a_clear_error(fake: FakeCarla) -> None:
    server = add_server(fake)
    schedule = [("Town01", "ClearNoon", 0), ("Town02", "WetSunset", 0)]
    with pytest.raises(CarlaNothingKeptError, match="any of its 2 .town, weather. conditions.*loosen filter"):
        with CarlaSource(settings(schedule=schedule, max_rejects_in_a_row=2, max_respawns=1)) as source:
            for _ in source.frames():
                source.reject()
    assert source.stats["conditions_abandoned"] == 2
    assert_clean(server)


def test_a_continued_stream_enters_its_schedule_where_it_left_off(fake: FakeCarla) -> None:
    add_server(fake)
    schedule = [("Town01", "ClearNoon", 2), ("Town02", "WetSunset", 3)]
    with CarlaSource(settings(schedule=schedule, schedule_start=2 * 5 + 3)) as source:  # 2 cycles, 3 kept
        conditions = [(f.meta["town"], f.meta["weather"]) for f in take(source, 4)]
    assert conditions == [("Town02", "WetSunset")] * 2 + [("Town01", "ClearNoon")] * 2
    assert schedule_position(schedule, 0) == (0, 0) and schedule_position(schedule, 4) == (1, 2)
    assert schedule_position([("Town01", "ClearNoon", 0)], 99) == (0, 0)  # a held condition stays


def test_a_server_that_stalls_during_setup_is_still_cleaned_up(fake: FakeCarla) -> None:
    server = add_server(fake, stall_at_tick=1)  # the walker-controller tick of the scene setup times out
    with pytest.raises(CarlaConnectionLostError, match="time-out"):
        with CarlaSource(settings()):
            pass
    assert_clean(server)
