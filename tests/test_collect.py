from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fake_carla import FakeCarla, FakeServerConfig
from typer.testing import CliRunner

from pipelines.collect import CollectJob, run_collect, source_specs
from simreal.cli.main import app
from simreal.collect.backend import choose_backend
from simreal.collect.collector import SourceSpec, StreamCollector
from simreal.collect.config import compose_collect_config
from simreal.collect.filters import (
    KEPT,
    LOW_TRAFFIC,
    NEAR_DUPLICATE,
    SIZE_MISMATCH,
    UNIFORM_IMAGE,
    UNLABELLED,
    FilterConfig,
    FrameFilter,
    captured_count,
    check_filter_fits,
    traffic_ids,
)
from simreal.data.convert import FrameSpec
from simreal.data.store import FrameStore
from simreal.data.verify import verify_store
from simreal.errors import ConfigError, LabelError
from simreal.labels import get_class_set

REPO = Path(__file__).resolve().parents[1]
SHARED16 = get_class_set("shared16")
VEHICLE, PERSON, ROAD = (SHARED16.id_of(n) for n in ("vehicle", "person", "road"))

# Small camera and store so the end-to-end runs take seconds on two cores.
SMALL = [
    "backend=procedural",
    "camera.width=160",
    "camera.height=120",
    "store.size=[64,32]",
    "store.shard_size=4",
    "filter.min_blob_pixels=4",
    "camera.capture_every=2",
]


def procedural_job(out: Path, frames: int, workers: int = 2, **kw) -> CollectJob:
    params = dict(town="Town10HD", weather="ClearNoon", seed=3, width=160, height=120, capture_every=2)
    sources = [SourceSpec("procedural", dict(params), stream=i) for i in range(workers)]
    base = dict(
        out=out,
        frames=frames,
        sources=sources,
        frame_spec=FrameSpec(size=(64, 32)),
        filter=FilterConfig(min_blob_pixels=4),
        shard_size=4,
    )
    base.update(kw)
    return CollectJob(**base)


# ------------------------------------------------------------------ filter rules on crafted frames
def street(vehicle_box: tuple[int, int, int, int] | None = (10, 20, 10, 30), seed: int = 0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (32, 64, 3), dtype=np.uint8)
    label = np.full((32, 64), ROAD, np.uint8)
    if vehicle_box:
        y0, y1, x0, x1 = vehicle_box
        label[y0:y1, x0:x1] = VEHICLE
    return rgb, label


def make_filter(**kw) -> FrameFilter:
    return FrameFilter(FilterConfig(min_blob_pixels=20, **kw), (VEHICLE, PERSON))


def test_filter_keeps_a_street_with_traffic_and_counts_reasons() -> None:
    f = make_filter()
    assert f.check(*street()) == KEPT
    assert f.check(*street(vehicle_box=None, seed=1)) == LOW_TRAFFIC
    assert f.check(*street(vehicle_box=(0, 2, 0, 2), seed=2)) == LOW_TRAFFIC  # a speck is no traffic actor
    assert f.check(np.full((32, 64, 3), 90, np.uint8), street()[1]) == UNIFORM_IMAGE
    assert f.check(street(seed=3)[0], np.full((32, 64), 255, np.uint8)) == UNLABELLED
    assert f.check_sizes((32, 64), (32, 60), (32, 64)) == SIZE_MISMATCH
    assert f.check_sizes((30, 64), (30, 64), (32, 64)) == SIZE_MISMATCH
    assert f.counts == {KEPT: 1, LOW_TRAFFIC: 2, UNIFORM_IMAGE: 1, UNLABELLED: 1, SIZE_MISMATCH: 2}


def test_blob_rule_counts_separate_traffic_actors() -> None:
    f = make_filter(min_traffic_share=0.0, min_traffic_blobs=2)
    rgb, label = street(vehicle_box=(10, 20, 10, 30))
    assert f.check(rgb, label) == LOW_TRAFFIC
    label[10:20, 40:50] = PERSON
    assert f.check(rgb, label) == KEPT


def test_near_duplicates_of_the_last_kept_frame_are_dropped() -> None:
    f = make_filter()
    rgb, label = street()
    assert f.check(rgb, label) == KEPT
    nudged = np.clip(rgb.astype(int) + 1, 0, 255).astype(np.uint8)
    assert f.check(nudged, label) == NEAR_DUPLICATE
    assert f.check(street(seed=9)[0], label) == KEPT


def test_rules_can_be_switched_off() -> None:
    f = make_filter(enabled=(NEAR_DUPLICATE,))
    assert f.check(*street(vehicle_box=None)) == KEPT


# ------------------------------------------------------------------ the pipeline, in Ray local mode
@pytest.mark.usefixtures("ray_local")
def test_procedural_collection_end_to_end(tmp_path: Path) -> None:
    result = run_collect(procedural_job(tmp_path / "c.zarr", frames=10))
    assert result.frames == 10 and result.added == 10
    report = verify_store(tmp_path / "c.zarr")
    assert report.ok, report.problems
    store = FrameStore.open(tmp_path / "c.zarr")
    assert (store.height, store.width) == (32, 64)
    provenance = store.provenance_table()
    assert {p["stream"] for p in provenance} == {0, 1}
    assert all(p["backend"] == "procedural" and p["tag_scheme"] == "carla-0.9.14" for p in provenance)
    assert len({(p["stream"], p["frame"]) for p in provenance}) == 10
    assert sum(store.attrs["filter_report"].values()) == result.captured >= 10
    assert store.attrs["filter_report"]["kept"] == 10
    # every kept frame has traffic, as the rule demands
    for i in range(len(store)):
        assert np.isin(store.label(i), [VEHICLE, PERSON]).mean() >= 0.005
    # rerunning with a higher count continues; the same count does nothing
    assert run_collect(procedural_job(tmp_path / "c.zarr", frames=10)).added == 0
    assert run_collect(procedural_job(tmp_path / "c.zarr", frames=14)).added == 4
    store = FrameStore.open(tmp_path / "c.zarr")
    assert len({(p["stream"], p["frame"]) for p in store.provenance_table()}) == 14
    # which Ray node wrote what, summed over both invocations (one node here)
    assert len(store.attrs["written_by"]) == 1 and sum(store.attrs["written_by"].values()) == 14


@pytest.mark.usefixtures("ray_local")
def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    target = 240  # long enough (a few seconds) that the kill lands mid-run even on an idle machine
    args = ["collect", "--frames", str(target), "--out", str(tmp_path / "killed.zarr"), "workers=1", *SMALL]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simreal.cli.main", *args],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            path = tmp_path / "killed.zarr"
            if (path / "zarr.json").is_file() and len(FrameStore.open(path)) >= 4:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the collection never committed a shard")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and every Ray process it started
        proc.wait()
    killed_at = len(FrameStore.open(tmp_path / "killed.zarr"))
    assert verify_store(tmp_path / "killed.zarr").ok
    assert killed_at < target, "the run finished before it was killed; nothing was resumed"

    runner = CliRunner()
    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    fresh = runner.invoke(app, [*args[:3], "--out", str(tmp_path / "fresh.zarr"), *args[5:]])
    assert fresh.exit_code == 0, fresh.output
    a, b = FrameStore.open(tmp_path / "killed.zarr"), FrameStore.open(tmp_path / "fresh.zarr")
    assert len(a) == len(b) == target
    assert verify_store(tmp_path / "killed.zarr").uncommitted == [], "the resumed run left rows past its commits"
    assert [p["frame"] for p in a.provenance_table()] == [p["frame"] for p in b.provenance_table()]
    np.testing.assert_array_equal(a.array("rgb")[:target], b.array("rgb")[:target])
    np.testing.assert_array_equal(a.array("label")[:target], b.array("label")[:target])


@pytest.mark.usefixtures("ray_local")
def test_unreachable_carla_server_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "collect",
            "--backend",
            "carla",
            "--servers",
            "127.0.0.1:9",
            "--out",
            str(tmp_path / "x.zarr"),
            "--frames",
            "4",
            "carla.timeout_s=1.0",
        ],
    )
    assert result.exit_code == 1
    assert "127.0.0.1:9" in result.output and "--backend procedural" in result.output


def test_bad_overrides_are_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["collect", "--out", str(tmp_path / "x.zarr"), "camera.fovv=3"])
    assert result.exit_code == 1 and "camera.fovv" in result.output


# ------------------------------------------------------------------ CARLA frames through the shared code path
@pytest.mark.parametrize(("version", "scheme"), [("0.9.13", "carla-0.9.13"), ("0.9.15", "carla-0.9.14")])
def test_carla_frames_use_the_servers_tag_scheme(monkeypatch: pytest.MonkeyPatch, version: str, scheme: str) -> None:
    fake = FakeCarla()
    monkeypatch.setitem(sys.modules, "carla", fake.module)
    server = fake.add_server(FakeServerConfig(version=version))
    params = dict(
        width=16,
        height=8,
        capture_every=1,
        n_vehicles=2,
        n_walkers=1,
        timeout_s=0.5,
        sensor_timeout_s=0.5,
    )
    collector = StreamCollector(
        SourceSpec("carla", params),
        FrameSpec(size=(16, 8), keep_source_label=True),
        FilterConfig(enabled=()),  # the fake's tag pattern is not a street: keep everything
    )
    collector.start()
    try:
        batch = collector.collect(3)
    finally:
        collector.close()
    from simreal.labels import get_mapping

    lut = get_mapping(scheme).lut
    np.testing.assert_array_equal(batch.label, lut[batch.source_label])
    assert {p["tag_scheme"] for p in batch.provenance} == {scheme}
    assert server.alive() == []  # cleanup ran
    server.wait_for_deliveries()


# ------------------------------------------------------------------ backend auto: CARLA when a server answers
def test_auto_backend_uses_carla_servers_that_answer(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    fake = FakeCarla()
    monkeypatch.setitem(sys.modules, "carla", fake.module)
    fake.add_server(FakeServerConfig(), port=2000)
    cfg = compose_collect_config(["servers=[localhost:2000,localhost:3000]", "auto_probe_s=0.2"])
    assert cfg.backend == "auto"  # the default
    specs = source_specs(cfg)
    assert [(s.backend, s.params["port"]) for s in specs] == [("carla", 2000)]
    assert "localhost:3000 did not answer" in capsys.readouterr().err


def test_auto_backend_without_carla_server_falls_back_to_procedural_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "carla", FakeCarla().module)  # the client is there, no server is
    started = time.monotonic()
    specs = source_specs(compose_collect_config(["servers=[localhost:2000,localhost:3000]", "auto_probe_s=0.3"]))
    assert time.monotonic() - started < 0.3 + 1.0  # both servers probed at once, with the short probe timeout
    assert {s.backend for s in specs} == {"procedural"}
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "procedural" in lines[0] and "--backend carla" in lines[0]


def test_auto_backend_without_carla_client_falls_back_to_procedural(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "carla", None)  # `import carla` raises ImportError
    choice = choose_backend("auto", [("localhost", 2000)], probe_timeout_s=0.1)
    assert choice.backend == "procedural" and "not installed" in choice.notice and "--backend carla" in choice.notice


def test_explicit_carla_backend_is_not_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "carla", FakeCarla().module)  # no server: an explicit choice still stands
    specs = source_specs(compose_collect_config(["backend=carla", "servers=[localhost:2000]"]))
    assert [s.backend for s in specs] == ["carla"]
    with pytest.raises(ConfigError, match="unknown backend 'carl'"):
        choose_backend("carl", [], 0.1)


def test_carla_specs_give_one_server_every_town_and_weather(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "carla", FakeCarla().module)
    overrides = ["backend=carla", "towns=[Town01,Town02]", "weathers=[ClearNoon,WetNoon]", "frames=10"]
    (spec,) = source_specs(compose_collect_config(overrides))
    assert spec.params["schedule"] == [
        ("Town01", "ClearNoon", 3),
        ("Town01", "WetNoon", 3),
        ("Town02", "ClearNoon", 2),
        ("Town02", "WetNoon", 2),
    ]
    assert spec.params["load_timeout_s"] == 300.0
    (fixed,) = source_specs(compose_collect_config([*overrides, "frames_per_condition=50"]))
    assert {n for *_, n in fixed.params["schedule"]} == {50}


def fake_carla_collector(monkeypatch: pytest.MonkeyPatch, **params: object) -> tuple[StreamCollector, object]:
    """A stream collector on one fake CARLA server, dropping near-duplicates (the fake's consecutive frames differ
    a little, so some are near-duplicates of the last kept one)."""
    fake = FakeCarla()
    monkeypatch.setitem(sys.modules, "carla", fake.module)
    server = fake.add_server(FakeServerConfig())
    base = dict(width=16, height=8, capture_every=1, n_vehicles=1, n_walkers=0, timeout_s=0.5, sensor_timeout_s=0.5)
    collector = StreamCollector(
        SourceSpec("carla", {**base, **params}),
        FrameSpec(size=(16, 8)),
        FilterConfig(enabled=("near_duplicate",), duplicate_threshold=0.02),
    )
    return collector, server


def test_carla_schedule_counts_only_frames_the_filters_keep(monkeypatch: pytest.MonkeyPatch) -> None:
    collector, server = fake_carla_collector(
        monkeypatch, schedule=[("Town01", "ClearNoon", 2), ("Town02", "ClearNoon", 2)]
    )
    collector.start()
    try:
        batch = collector.collect(4)
    finally:
        collector.close()
    assert collector.counts()["near_duplicate"] > 0
    assert [p["town"] for p in batch.provenance] == ["Town01", "Town01", "Town02", "Town02"]
    server.wait_for_deliveries()


@pytest.mark.parametrize("class_set", ["cityscapes19", "cityscapes-labelids"])
def test_collect_in_any_class_set_counts_its_own_traffic_classes(class_set: str) -> None:
    table = get_class_set(class_set)
    names = {c.name for c in table.classes if c.id in traffic_ids(table)}
    assert {"car", "person", "bicycle"} <= names and "ego vehicle" not in names and "road" not in names
    collector = StreamCollector(
        SourceSpec("procedural", {"town": "Town10HD", "weather": "ClearNoon", "width": 160, "height": 120}),
        FrameSpec(size=(64, 32)),
        FilterConfig(min_blob_pixels=4),
        class_set=class_set,
    )
    collector.start()
    try:
        batch = collector.collect(3)
    finally:
        collector.close()
    assert len(batch.label) == 3 and set(np.unique(batch.label)) <= {*table.ids, table.ignore_index}
    assert np.isin(batch.label, traffic_ids(table)).any(axis=(1, 2)).all()  # kept for traffic it can name


def test_a_class_set_without_traffic_classes_is_refused_before_any_capture() -> None:
    from simreal.labels import LabelClass, LabelTable

    classes = (LabelClass(0, "road", (0, 0, 0)), LabelClass(1, "sky", (1, 1, 1)))
    scenery = LabelTable("scenery", "no road users", classes)
    with pytest.raises(LabelError, match=r"class set 'scenery' has no traffic classes .* leave it out of filter.rules"):
        check_filter_fits(FilterConfig(), scenery)
    check_filter_fits(FilterConfig(enabled=(NEAR_DUPLICATE,)), scenery)  # without the traffic rule it can work


def collect_through_warmups(monkeypatch: pytest.MonkeyPatch, frames: int, **params: object) -> tuple[list, object]:
    """Frames a fake-CARLA collection keeps across weather changes and ego respawns (every near-duplicate moves
    the ego: max_rejects_in_a_row=1), and the server that recorded which RGB images were still adapting."""
    schedule = [("Town10HD", "ClearNoon", 3), ("Town10HD", "WetSunset", 3), ("Town10HD", "ClearNight", 3)]
    collector, server = fake_carla_collector(
        monkeypatch, schedule=schedule, max_rejects_in_a_row=1, max_respawns=100, **params
    )
    collector.start()
    try:
        batch = collector.collect(frames)
        counts = collector.counts()
    finally:
        collector.close()
    server.wait_for_deliveries()
    assert counts["ego_respawns"] > 0 and server.weather_history.count("WetSunset") >= 1
    return [p["frame"] for p in batch.provenance], server


@pytest.mark.parametrize("step", [0.05, 0.1])
def test_no_stored_carla_frame_falls_inside_the_exposure_warmup(monkeypatch: pytest.MonkeyPatch, step: float) -> None:
    stored, server = collect_through_warmups(monkeypatch, 9, fixed_delta_seconds=step)  # default warmup_s
    assert server.adapting_frames, "the fake's exposure never adapted: the test shows nothing"
    assert not set(stored) & server.adapting_frames


def test_a_warmup_shorter_than_the_eye_adaptation_stores_adapting_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    # the old default, 10 ticks of 0.05 s: half of the fake's 1 s adaptation (the check above can fail)
    stored, server = collect_through_warmups(monkeypatch, 9, fixed_delta_seconds=0.05, warmup_s=0.5)
    assert set(stored) & server.adapting_frames


def test_manual_exposure_frames_do_not_depend_on_adaptation(monkeypatch: pytest.MonkeyPatch) -> None:
    stored, server = collect_through_warmups(
        monkeypatch, 9, warmup_s=0, exposure_mode="manual", shutter_speed=120.0, iso=200.0
    )
    cameras = [a.attributes for a in server.spawned if a.type_id == "sensor.camera.rgb"]
    assert len(cameras) > 1, "no respawn: the fixed exposure was not shown to survive one"
    assert all((c["exposure_mode"], c["shutter_speed"], c["iso"]) == ("manual", "120", "200") for c in cameras)
    assert len(stored) == 9 and not server.adapting_frames


def test_carla_respawns_are_counted_next_to_the_filter_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    collector, server = fake_carla_collector(monkeypatch, warmup_s=0, max_rejects_in_a_row=1, max_respawns=100)
    collector.start()
    try:
        collector.collect(4)
        counts = collector.counts()
    finally:
        collector.close()
    assert counts["ego_respawns"] == counts["near_duplicate"] > 0  # every drop moved the ego
    assert captured_count(counts) == counts["kept"] + counts["near_duplicate"] == collector.captured
    server.wait_for_deliveries()
