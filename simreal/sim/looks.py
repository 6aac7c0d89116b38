"""How surfaces are coloured: the ``flat`` look (CARLA-like, per-face Lambert) and the ``textured`` look
(a second domain for the same worlds: noise textures, other light, lens blur and sensor noise).

A look only changes colours; geometry and therefore the semantic image are identical between looks.
"""

from __future__ import annotations

import cv2
import numpy as np

from simreal.sim import tags as T
from simreal.sim.camera import Intrinsics, Pose
from simreal.sim.hashing import hash_uniform, key_rng
from simreal.sim.mesh import LAYER_OBJECT
from simreal.sim.presets import WeatherPreset


def sun_direction(weather: WeatherPreset, azimuth_shift: float = 0.0) -> np.ndarray:
    el, az = np.radians(weather.sun_elevation), np.radians(weather.sun_azimuth + azimuth_shift)
    return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], np.float32)


def pixel_rays(intr: Intrinsics) -> np.ndarray:
    """(H, W, 3) float32 camera-space ray directions (z = 1) through pixel centres."""
    cx, cy = intr.centre
    u = (np.arange(intr.width, dtype=np.float32) + 0.5 - cx) / intr.focal
    v = (np.arange(intr.height, dtype=np.float32) + 0.5 - cy) / intr.focal
    rays = np.empty((intr.height, intr.width, 3), np.float32)
    rays[..., 0] = u[None, :]
    rays[..., 1] = v[:, None]
    rays[..., 2] = 1.0
    return rays


def sky_image(intr: Intrinsics, rotation: np.ndarray, weather: WeatherPreset, sun: np.ndarray) -> np.ndarray:
    """Sky gradient (zenith colour to horizon colour by elevation) with a glow around the sun, RGB float32."""
    world = pixel_rays(intr) @ rotation.astype(np.float32)  # camera -> world (rotation is orthonormal)
    world /= np.linalg.norm(world, axis=2, keepdims=True)
    elevation = np.clip(world[..., 2], 0.0, 1.0)
    blend = (elevation / 0.5).clip(0, 1) ** 0.6
    top, horizon = np.array(weather.sky_top, np.float32), np.array(weather.sky_horizon, np.float32)
    sky = horizon + (top - horizon) * blend[..., None]
    cos_sun = world @ sun
    glow = np.exp((cos_sun - 1.0) * 60.0) * 0.8 + np.exp((cos_sun - 1.0) * 2000.0)
    sky += (np.array(weather.sun_colour, np.float32) * 1.2 - sky) * np.clip(glow, 0, 1)[..., None]
    return sky


def ground_distance(intr: Intrinsics, rotation: np.ndarray, height: float) -> np.ndarray:
    """Distance along each pixel's ray to the ground plane; 0 where the ray never meets it (sky)."""
    world = pixel_rays(intr) @ rotation.astype(np.float32)
    down = -world[..., 2]
    dist = np.where(down > 1e-4, height / np.maximum(down, 1e-4) * np.linalg.norm(world, axis=2), 0.0)
    return dist.astype(np.float32)


def lambert(
    normals: np.ndarray,
    colours: np.ndarray,
    layers: np.ndarray,
    weather: WeatherPreset,
    sun: np.ndarray,
    sun_gain: float = 1.0,
    ambient_gain: float = 1.0,
) -> np.ndarray:
    """Per-face colour: ambient sky light (brighter facing up) plus direct sun light."""
    direct = np.clip(normals @ sun, 0.0, None) * weather.sun_intensity * sun_gain
    ambient = weather.ambient * ambient_gain * (0.8 + 0.2 * normals[:, 2])
    light = ambient[:, None] + direct[:, None] * (np.array(weather.sun_colour, np.float32) / 255.0)
    lit = colours * light
    if weather.wetness > 0:  # wet ground is darker
        lit[layers < LAYER_OBJECT] *= 1.0 - 0.35 * weather.wetness
    return np.clip(lit, 0.0, 255.0)


def fog_amount(depth: np.ndarray, weather: WeatherPreset) -> np.ndarray:
    """Fraction of the fog colour seen through ``depth`` metres of air."""
    return (1.0 - np.exp(-weather.fog_density * depth)).astype(np.float32)


def fog_faces(colours: np.ndarray, depth: np.ndarray, is_object: np.ndarray, weather: WeatherPreset) -> np.ndarray:
    """Bakes fog into object faces (one depth per face); ground pieces are fogged per pixel later."""
    amount = np.where(is_object, fog_amount(depth, weather), 0.0)[:, None]
    return colours + (np.array(weather.fog_colour, np.float32) - colours) * amount


def fog_ground(rgb: np.ndarray, semantic: np.ndarray, ground_fog: np.ndarray, fog_image: np.ndarray) -> np.ndarray:
    """Per-pixel fog on ground pixels, whose distance follows from the row (flat ground plane)."""
    weight = ground_fog * _IS_GROUND[semantic]
    return cv2.blendLinear(fog_image, rgb, weight, 1.0 - weight)


def draw_rain(rgb: np.ndarray, weather: WeatherPreset, rng: np.random.Generator) -> None:
    """Faint slanted streaks, RGB only (rain has no semantic tag in CARLA's camera)."""
    count = int(weather.rain * rgb.shape[0] * rgb.shape[1] / 600)
    if count == 0:
        return
    h, w = rgb.shape[:2]
    overlay = rgb.copy()
    starts = rng.uniform([0, 0], [w, h], size=(count, 2))
    lengths = rng.uniform(0.03, 0.08, size=count) * h
    ends = starts + np.stack([lengths * 0.15, lengths], axis=1)
    for (xa, ya), (xb, yb) in zip(starts.astype(int).tolist(), ends.astype(int).tolist(), strict=True):
        cv2.line(overlay, (xa, ya), (xb, yb), (210, 215, 220), 1)
    cv2.addWeighted(overlay, 0.35, rgb, 0.65, 0.0, dst=rgb)


def periodic_noise(size: int, rng: np.random.Generator, falloff: float = 1.6) -> np.ndarray:
    """Tileable fractal noise in [0, 1] (white noise shaped by 1/f^falloff in the Fourier domain)."""
    spectrum = np.fft.fft2(rng.standard_normal((size, size)))
    freq = np.sqrt(np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None, :] ** 2)
    freq[0, 0] = 1.0
    noise = np.real(np.fft.ifft2(spectrum / freq**falloff))
    noise -= noise.min()
    return (noise / noise.max()).astype(np.float32)


# Texture strength per tag for the textured look (0 = untouched).
_TEXTURE_AMPLITUDE = np.full(256, 0.12, np.float32)
_TEXTURE_AMPLITUDE[[T.SKY, T.NONE]] = 0.05
_TEXTURE_AMPLITUDE[T.ROADS] = 0.22
_TEXTURE_AMPLITUDE[[T.TERRAIN, T.VEGETATION]] = 0.45
_TEXTURE_AMPLITUDE[[T.SIDEWALKS, T.GROUND]] = 0.2
_TEXTURE_AMPLITUDE[T.BUILDINGS] = 0.25
_IS_GROUND = np.zeros(256, bool)
_IS_GROUND[list(T.GROUND_TAGS)] = True


class TexturedLook:
    """Post-processing of the textured look; built once per source (textures are seeded)."""

    size = 256
    texels_per_metre = 6.0

    def __init__(self, intr: Intrinsics, seed: int) -> None:
        rng = key_rng(seed, 9001)
        self.ground_noise = periodic_noise(self.size, rng, 1.3) * 2.0 - 1.0
        screen = periodic_noise(self.size, rng, 0.9) * 2.0 - 1.0
        self.rays = pixel_rays(intr).reshape(-1, 3)
        h, w = intr.height, intr.width
        yy, xx = np.mgrid[0:h, 0:w]
        self.screen_noise = screen[(yy * 2) % self.size, (xx * 2) % self.size]
        r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        self.vignette = (1.0 - 0.22 * r2).astype(np.float32)
        self.sensor_noise = np.round(rng.normal(0.0, 3.5, size=(h + 64, w + 64, 3))).astype(np.int16)
        level = np.arange(256, dtype=np.float32) / 255.0
        self.tone = np.clip(255.0 * (level**1.1 * 1.08 - 0.02), 0, 255).astype(np.uint8)

    @staticmethod
    def face_jitter(tags: np.ndarray, colours: np.ndarray, box_min: np.ndarray, box_max: np.ndarray) -> np.ndarray:
        """A stable per-part brightness/tint factor (keyed by what the part is, not where it is drawn)."""
        height = np.round((box_max[:, 2] - box_min[:, 2]) * 10).astype(np.int64)
        key = colours.astype(np.int64) @ np.array([65536, 256, 1]) + tags.astype(np.int64) * (1 << 24)
        base = hash_uniform(key, height, 1)
        tint = hash_uniform(key, height, 2)
        factor = np.stack([0.85 + 0.3 * base, 0.9 + 0.2 * tint, 0.85 + 0.3 * base], axis=1)
        return factor.astype(np.float32)

    def _ground_texture(self, pose: Pose, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Noise sampled where each pixel's ray meets the ground (it moves with the world), slab joints."""
        world = self.rays @ pose.rotation.astype(np.float32)
        t = np.float32(pose.position[2]) / np.maximum(-world[:, 2], 1e-3)
        period = self.size / self.texels_per_metre  # keep coordinates small before float32 maths
        wx = (np.float32(pose.position[0] % period) + t * world[:, 0]).reshape(shape)
        wy = (np.float32(pose.position[1] % period) + t * world[:, 1]).reshape(shape)
        scale = np.float32(self.texels_per_metre)
        noise = cv2.remap(self.ground_noise, wx * scale, wy * scale, cv2.INTER_NEAREST, borderMode=cv2.BORDER_WRAP)
        joints = ((wx % 1.5) < 0.06) | ((wy % 1.5) < 0.06)
        return noise, joints

    def finish(self, rgb: np.ndarray, semantic: np.ndarray, pose: Pose, frame: int, seed: int) -> np.ndarray:
        """Textures, vignette, lens blur, sensor noise and a tone curve on a uint8 RGB image."""
        ground_noise, joints = self._ground_texture(pose, semantic.shape)
        ground = _IS_GROUND[semantic]
        noise = np.where(ground, ground_noise, self.screen_noise)
        modulation = 1.0 + _TEXTURE_AMPLITUDE[semantic] * noise - 0.25 * (joints & (semantic == T.SIDEWALKS))
        modulation *= self.vignette
        shaded = rgb * modulation[..., None]
        image = cv2.GaussianBlur(np.clip(shaded, 0, 255).astype(np.uint8), (5, 5), 0.9)
        oy, ox = (int(v) for v in (hash_uniform(seed, frame, 77, [0, 1]) * 64))
        h, w = semantic.shape
        image = cv2.add(image, self.sensor_noise[oy : oy + h, ox : ox + w], dtype=cv2.CV_8U)
        return cv2.LUT(image, self.tone)
