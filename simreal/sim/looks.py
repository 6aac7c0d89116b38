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


def lambert(normals: np.ndarray, colours: np.ndarray, layers: np.ndarray, weather: WeatherPreset,
            sun: np.ndarray, sun_gain: float = 1.0, ambient_gain: float = 1.0) -> np.ndarray:
    """Per-face colour: ambient sky light (brighter facing up) plus direct sun light."""
    direct = np.clip(normals @ sun, 0.0, None) * weather.sun_intensity * sun_gain
    ambient = weather.ambient * ambient_gain * (0.8 + 0.2 * normals[:, 2])
    light = ambient[:, None] + direct[:, None] * (np.array(weather.sun_colour, np.float32) / 255.0)
    lit = colours * light
    if weather.wetness > 0:  # wet ground is darker
        lit[layers < LAYER_OBJECT] *= 1.0 - 0.35 * weather.wetness
    return np.clip(lit, 0.0, 255.0)


def apply_fog(rgb: np.ndarray, depth: np.ndarray, weather: WeatherPreset) -> np.ndarray:
    amount = 1.0 - np.exp(-weather.fog_density * depth)
    fog = np.array(weather.fog_colour, np.float32)
    return rgb + (fog - rgb) * amount[..., None]


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
    for (xa, ya), (xb, yb) in zip(starts.astype(int).tolist(), ends.astype(int).tolist()):
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

    def __init__(self, intr: Intrinsics, seed: int) -> None:
        rng = key_rng(seed, 9001)
        self.ground_noise = periodic_noise(self.size, rng, 1.3)
        self.screen_noise = periodic_noise(self.size, rng, 0.9)
        self.rays = pixel_rays(intr)
        h, w = intr.height, intr.width
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        self.vignette = (1.0 - 0.22 * r2).astype(np.float32)
        self.screen_rows = (yy.astype(np.int32) * 2) % self.size
        self.screen_cols = (xx.astype(np.int32) * 2) % self.size
        self.sensor_noise = rng.normal(0.0, 3.5, size=(h + 64, w + 64, 3)).astype(np.float32)
        gamma = np.arange(256, dtype=np.float32) / 255.0
        self.tone = np.clip(255.0 * (gamma**1.1 * 1.08 - 0.02), 0, 255).astype(np.uint8)

    @staticmethod
    def face_jitter(tags: np.ndarray, colours: np.ndarray, box_min: np.ndarray, box_max: np.ndarray) -> np.ndarray:
        """A stable per-part brightness/tint factor (keyed by what the part is, not where it is drawn)."""
        height = np.round((box_max[:, 2] - box_min[:, 2]) * 10).astype(np.int64)
        key = colours.astype(np.int64) @ np.array([65536, 256, 1]) + tags.astype(np.int64) * (1 << 24)
        base = hash_uniform(key, height, 1)
        tint = hash_uniform(key, height, 2)
        factor = np.stack([0.85 + 0.3 * base, 0.9 + 0.2 * tint, 0.85 + 0.3 * base], axis=1)
        return factor.astype(np.float32)

    def finish(self, rgb: np.ndarray, semantic: np.ndarray, pose: Pose, frame: int, seed: int) -> np.ndarray:
        """Textures, lens blur, vignette, sensor noise and tone curve on a float RGB image -> uint8 RGB."""
        world = self.rays @ pose.rotation.astype(np.float32)
        down = np.maximum(-world[..., 2], 1e-4)
        t = pose.position[2] / down
        wx = pose.position[0] + t * world[..., 0]
        wy = pose.position[1] + t * world[..., 1]
        ground = _IS_GROUND[semantic]
        gx = (np.floor(wx * 6.0).astype(np.int64) % self.size)
        gy = (np.floor(wy * 6.0).astype(np.int64) % self.size)
        noise = np.where(ground, self.ground_noise[gy, gx], self.screen_noise[self.screen_rows, self.screen_cols])
        slabs = ground & (semantic == T.SIDEWALKS) & (((wx % 1.5) < 0.06) | ((wy % 1.5) < 0.06))
        modulation = 1.0 + _TEXTURE_AMPLITUDE[semantic] * (noise - 0.5) * 2.0 - 0.25 * slabs
        rgb = rgb * modulation[..., None]
        rgb = cv2.GaussianBlur(rgb, (0, 0), 0.9)
        rgb *= self.vignette[..., None]
        oy, ox = (int(v) for v in (hash_uniform(seed, frame, 77, [0, 1]) * 64))
        h, w = rgb.shape[:2]
        rgb += self.sensor_noise[oy : oy + h, ox : ox + w]
        return cv2.LUT(np.clip(rgb, 0, 255).astype(np.uint8), self.tone)
