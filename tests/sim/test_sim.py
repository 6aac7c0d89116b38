"""Tests of the procedural street world (simreal.sim)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simreal.collect.frame import SensorFrame
from simreal.errors import ConfigError
from simreal.sim import LOOKS, TOWNS, WEATHERS, ProceduralSource
from simreal.sim import tags as T
from simreal.sim.camera import Intrinsics, Pose, camera_rotation
from simreal.sim.frame_renderer import FrameRenderer
from simreal.sim.mesh import LAYER_ROAD, MeshBuilder

W, H = 160, 80
META_KEYS = {
    "backend",
    "town",
    "weather",
    "frame",
    "stream",
    "seed",
    "look",
    "server_version",
    "tag_scheme",
    "width",
    "height",
    "fov",
}


def take(source: ProceduralSource, n: int) -> list[SensorFrame]:
    with source:
        return list(itertools.islice(source.frames(), n))


def small(**kwargs: object) -> ProceduralSource:
    return ProceduralSource(width=W, height=H, **kwargs)  # type: ignore[arg-type]


def test_same_seed_is_byte_identical_and_other_seeds_or_streams_differ() -> None:
    a = take(small(seed=5, capture_every=7), 3)
    b = take(small(seed=5, capture_every=7), 3)
    for fa, fb in zip(a, b, strict=True):
        assert fa.rgb_bgra.tobytes() == fb.rgb_bgra.tobytes()
        assert fa.semantic_bgra.tobytes() == fb.semantic_bgra.tobytes()
    other_seed = small(seed=6).render_frame(14)
    other_stream = small(seed=5, stream=1).render_frame(14)
    assert not np.array_equal(other_seed.semantic_bgra, a[2].semantic_bgra)
    assert not np.array_equal(other_stream.semantic_bgra, a[2].semantic_bgra)


def test_images_use_carla_bgra_layout_and_meta_is_complete() -> None:
    frame = small(town="Town03", weather="CloudyNoon", seed=2, stream=3, frame_offset=40).render_frame(40)
    for image in (frame.rgb_bgra, frame.semantic_bgra):
        assert image.shape == (H, W, 4) and image.dtype == np.uint8
        assert (image[..., 3] == 255).all()
    assert not frame.semantic_bgra[..., :2].any(), "tags live in the red channel only"
    assert set(frame.meta) == META_KEYS
    assert frame.meta["backend"] == "procedural" and frame.meta["server_version"] == "procedural"
    assert frame.meta["tag_scheme"] == "carla-0.9.14"
    assert (frame.meta["town"], frame.meta["frame"], frame.meta["stream"]) == ("Town03", 40, 3)
    assert (frame.meta["width"], frame.meta["height"], frame.meta["fov"]) == (W, H, 90.0)


@pytest.mark.parametrize("town", sorted(TOWNS))
def test_every_town_renders_valid_tags_with_road_and_sky(town: str) -> None:
    frame = small(town=town, seed=1).render_frame(60)
    tags = np.unique(frame.semantic_bgra[..., 2])
    assert set(tags.tolist()) <= set(range(T.NUM_TAGS))
    assert T.NONE not in tags, "every pixel is covered by something"
    assert {T.ROADS, T.SKY} <= set(tags.tolist())


def test_weathers_change_the_rgb_only() -> None:
    assert len(WEATHERS) >= 6 and {"ClearSunset", "HardRainNoon"} <= set(WEATHERS)
    frames = {w: small(weather=w, seed=4).render_frame(30) for w in ("ClearNoon", "ClearSunset", "HardRainNoon")}
    reference = frames["ClearNoon"]
    for name in ("ClearSunset", "HardRainNoon"):
        assert np.array_equal(frames[name].semantic_bgra, reference.semantic_bgra)
        diff = np.abs(frames[name].rgb_bgra.astype(int) - reference.rgb_bgra.astype(int)).mean()
        assert diff > 10, name


@pytest.mark.parametrize("weather", sorted(WEATHERS))
def test_every_weather_renders(weather: str) -> None:
    frame = ProceduralSource(width=64, height=32, weather=weather, seed=2).render_frame(10)
    assert frame.meta["weather"] == weather
    assert frame.rgb_bgra[..., :3].std() > 3, "an image, not a flat colour"


def test_town_presets_set_the_layout_style() -> None:
    def tags_over(town: str) -> set[int]:
        frames = take(small(town=town, seed=5, capture_every=40), 5)
        return set(np.unique(np.stack([f.semantic_bgra[..., 2] for f in frames])).tolist())

    downtown, rural = tags_over("Town10HD"), tags_over("Town07")
    assert T.SIDEWALKS in downtown and T.SIDEWALKS not in rural
    assert T.TERRAIN in rural


def test_town10hd_shows_the_main_classes() -> None:
    frames = take(ProceduralSource(width=400, height=200, seed=0, capture_every=20), 20)
    seen = set()
    for frame in frames:
        seen |= set(np.unique(frame.semantic_bgra[..., 2]).tolist())
    wanted = {
        T.ROADS,
        T.SIDEWALKS,
        T.BUILDINGS,
        T.VEGETATION,
        T.SKY,
        T.PEDESTRIANS,
        T.POLES,
        T.ROAD_LINES,
        T.TRAFFIC_LIGHT,
        T.TRAFFIC_SIGNS,
        T.CAR,
    }
    assert wanted <= seen, f"missing {sorted(wanted - seen)}"
    assert seen & {T.TRUCK, T.BUS, T.MOTORCYCLE, T.BICYCLE}, "only cars on the road"
    assert seen <= set(range(T.NUM_TAGS))


def _crafted_render(boxes: list[tuple[tuple, tuple, int]]) -> np.ndarray:
    mb = MeshBuilder()
    mb.flat(-10.0, 200.0, -50.0, 50.0, 0.0, (80, 80, 80), T.ROADS, LAYER_ROAD)
    for lo, hi, tag in boxes:
        mb.box(lo, hi, (200, 50, 50), tag)
    renderer = FrameRenderer(Intrinsics(200, 100, 90.0), WEATHERS["ClearNoon"])
    pose = Pose(np.array([0.0, 0.0, 1.5]), camera_rotation(0.0, 0.0))
    _, semantic = renderer.render(mb.build(), pose, frame=0)
    return semantic[..., 2]


@pytest.mark.parametrize("near_first", [True, False])
def test_near_box_hides_far_box(near_first: bool) -> None:
    near = ((8.0, -1.0, 0.0), (10.0, 1.0, 3.0), T.CAR)
    far = ((30.0, -10.0, 0.0), (32.0, 10.0, 10.0), T.BUILDINGS)
    tags = _crafted_render([near, far] if near_first else [far, near])
    assert tags[50, 100] == T.CAR  # the image centre looks straight through the near box
    assert tags[50, 75] == T.BUILDINGS  # beside the near box the far one shows
    assert tags[95, 100] == T.ROADS and tags[2, 100] == T.SKY


def test_box_behind_the_camera_is_invisible() -> None:
    tags = _crafted_render([((-6.0, -3.0, 0.0), (-4.0, 3.0, 5.0), T.TRUCK)])
    assert T.TRUCK not in tags


def test_consecutive_frames_are_coherent_and_distant_frames_differ() -> None:
    source = small(seed=3)
    first, second, later = (source.render_frame(k) for k in (100, 101, 700))

    def changed(a: SensorFrame, b: SensorFrame) -> float:
        return float((a.semantic_bgra[..., 2] != b.semantic_bgra[..., 2]).mean())

    assert changed(first, second) < 0.12
    assert changed(first, later) > 2 * changed(first, second)
    assert changed(first, later) > 0.15


def test_frame_offset_resumes_the_same_stream() -> None:
    full = take(small(seed=9, stream=2, capture_every=3), 4)  # frames 0, 3, 6, 9
    assert [f.meta["frame"] for f in full] == [0, 3, 6, 9]
    resumed = take(small(seed=9, stream=2, capture_every=3, frame_offset=6), 2)
    assert [f.meta["frame"] for f in resumed] == [6, 9]
    for a, b in zip(full[2:], resumed, strict=True):
        assert a.rgb_bgra.tobytes() == b.rgb_bgra.tobytes()
        assert a.semantic_bgra.tobytes() == b.semantic_bgra.tobytes()
    fresh, continued = small(seed=9, stream=2), small(seed=9, stream=2, frame_offset=9)
    assert np.array_equal(fresh.pose(9).position, continued.pose(9).position)
    assert not np.array_equal(fresh.pose(9).position, fresh.pose(0).position)


def test_textured_look_keeps_semantics_and_changes_rgb() -> None:
    assert set(LOOKS) == {"flat", "textured"}
    flat = small(seed=7).render_frame(50)
    textured = small(seed=7, look="textured").render_frame(50)
    again = small(seed=7, look="textured").render_frame(50)
    assert textured.rgb_bgra.tobytes() == again.rgb_bgra.tobytes()
    assert np.array_equal(flat.semantic_bgra, textured.semantic_bgra)
    assert textured.meta["look"] == "textured"
    assert np.abs(flat.rgb_bgra.astype(int) - textured.rgb_bgra.astype(int))[..., :3].mean() > 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"town": "Town99"}, "Town10HD"),
        ({"weather": "Sunny"}, "ClearNoon"),
        ({"look": "photoreal"}, "textured"),
        ({"width": 0}, "width"),
        ({"capture_every": 0}, "capture_every"),
        ({"frame_offset": -1}, "frame_offset"),
        ({"fov": 0.0}, "fov"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProceduralSource(**kwargs)
