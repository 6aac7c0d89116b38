"""Pinhole camera (CARLA's model: fov is horizontal) mounted on an ego vehicle that drives along the road."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simreal.sim.hashing import hash_uniform
from simreal.sim.presets import TownPreset

SIM_DT = 0.05  # seconds per simulation frame (CARLA's usual fixed_delta_seconds)
MOUNT_FORWARD, MOUNT_HEIGHT, MOUNT_PITCH_DEG = 1.5, 2.4, -4.0


@dataclass(frozen=True)
class Pose:
    """Camera position (world metres) and world->camera rotation (rows: right, down, forward)."""

    position: np.ndarray
    rotation: np.ndarray


@dataclass(frozen=True)
class Intrinsics:
    width: int
    height: int
    fov: float

    @property
    def focal(self) -> float:
        return self.width / (2.0 * np.tan(np.radians(self.fov) / 2.0))

    @property
    def centre(self) -> tuple[float, float]:
        return self.width / 2.0, self.height / 2.0


def camera_rotation(yaw: float, pitch: float) -> np.ndarray:
    """World->camera rotation; camera axes x right, y down, z forward (OpenCV convention)."""
    forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


class EgoRoute:
    """The ego drives its lane at constant speed with a slight weave; the pose depends only on the frame."""

    def __init__(self, town: TownPreset, seed: int, stream: int) -> None:
        self.town = town
        self.lane = int(hash_uniform(seed, stream, 11)[0] * town.lanes_per_direction)
        self.start_x = float(hash_uniform(seed, stream, 12)[0] * 5000.0)
        self.phase = float(hash_uniform(seed, stream, 13)[0] * 2 * np.pi)
        self.speed = town.ego_speed

    def ego_x(self, frame: int) -> float:
        return self.start_x + self.speed * frame * SIM_DT

    def pose(self, frame: int) -> Pose:
        t = frame * SIM_DT
        omega = 0.25
        lateral = 0.25 * np.sin(omega * t + self.phase)
        yaw = np.arctan2(0.25 * omega * np.cos(omega * t + self.phase), self.speed)
        x = self.ego_x(frame)
        y = -(self.lane + 0.5) * self.town.lane_width + lateral
        position = np.array([x + MOUNT_FORWARD * np.cos(yaw), y + MOUNT_FORWARD * np.sin(yaw), MOUNT_HEIGHT])
        return Pose(position, camera_rotation(yaw, np.radians(MOUNT_PITCH_DEG)))
