"""Turns a set of faces and a camera pose into CARLA-layout BGRA RGB and semantic images."""

from __future__ import annotations

import cv2
import numpy as np

from simreal.sim import tags as T
from simreal.sim.camera import MOUNT_HEIGHT, MOUNT_PITCH_DEG, Intrinsics, Pose, camera_rotation
from simreal.sim.hashing import key_rng
from simreal.sim.looks import (
    TexturedLook,
    draw_rain,
    fog_amount,
    fog_faces,
    fog_ground,
    ground_distance,
    lambert,
    sky_image,
    sun_direction,
)
from simreal.sim.mesh import FaceSet
from simreal.sim.presets import WeatherPreset, check_look
from simreal.sim.render import build_draw_list, rasterise

# Geometry farther than this is not drawn. It does not depend on the weather: like CARLA's, the semantic
# image must not change when only the weather does.
VIEW_DISTANCE = 200.0


class FrameRenderer:
    """Renders faces seen from a pose; sky, fog depth and textures are prepared once per camera."""

    def __init__(self, intr: Intrinsics, weather: WeatherPreset, look: str = "flat", seed: int = 0) -> None:
        self.intr, self.weather, self.look, self.seed = intr, weather, check_look(look), seed
        textured = look == "textured"
        # The textured domain is lit from elsewhere and a little harder, like a different camera day.
        self.sun = sun_direction(weather, azimuth_shift=50.0 if textured else 0.0)
        self.sun_gain, self.ambient_gain = (1.15, 0.9) if textured else (1.0, 1.0)
        nominal = camera_rotation(0.0, np.radians(MOUNT_PITCH_DEG))
        self.sky = np.clip(sky_image(intr, nominal, weather, self.sun), 0, 255).astype(np.uint8)
        self.ground_fog = fog_amount(ground_distance(intr, nominal, MOUNT_HEIGHT), weather)
        self.fog_image = np.empty_like(self.sky)
        self.fog_image[:] = weather.fog_colour
        self.view_distance = VIEW_DISTANCE
        self.textured = TexturedLook(intr, seed) if textured else None

    def render(self, faces: FaceSet, pose: Pose, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(rgb_bgra, semantic_bgra), both uint8 (H, W, 4); the tag is in channel 2."""
        draw = build_draw_list(faces, pose, self.intr, self.view_distance)
        idx = draw.index
        colours = faces.colours[idx]
        if self.textured is not None:
            colours = colours * self.textured.face_jitter(
                faces.tags[idx], faces.colours[idx], faces.box_min[idx], faces.box_max[idx]
            )
        shaded = lambert(
            faces.normals[idx],
            colours,
            faces.layers[idx],
            self.weather,
            self.sun,
            self.sun_gain,
            self.ambient_gain,
        )
        shaded = fog_faces(shaded, draw.depth, draw.is_object, self.weather)
        rgb = self.sky.copy()
        semantic = np.full((self.intr.height, self.intr.width), T.SKY, np.uint8)
        rasterise(draw, shaded, faces.tags[idx], rgb, semantic)
        rgb = fog_ground(rgb, semantic, self.ground_fog, self.fog_image)
        if self.textured is not None:
            rgb = self.textured.finish(rgb, semantic, pose, frame, self.seed)
        draw_rain(rgb, self.weather, key_rng(self.seed, frame, 31))
        semantic_bgra = np.zeros((self.intr.height, self.intr.width, 4), np.uint8)
        semantic_bgra[..., 2] = semantic
        semantic_bgra[..., 3] = 255
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA), semantic_bgra
