"""Parked and moving road users and pedestrians, placed as closed-form functions of time.

Agent ``i`` of a lane sits at ``i * spacing + jitter_i + speed * t``: any frame can be built directly, and the
traffic is the same whether a stream started at frame 0 or resumed later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simreal.sim import tags as T
from simreal.sim.hashing import hash_uniform
from simreal.sim.mesh import FaceSet, MeshBuilder
from simreal.sim.presets import TownPreset
from simreal.sim.world import CURB, PARKING_WIDTH, road_half_width

PAINT = [
    (180, 30, 30),
    (230, 230, 230),
    (30, 30, 35),
    (40, 70, 150),
    (150, 150, 155),
    (200, 160, 40),
    (60, 110, 70),
    (120, 30, 40),
]
CLOTHES = [
    (40, 50, 90),
    (150, 40, 40),
    (60, 60, 60),
    (200, 190, 170),
    (40, 100, 60),
    (120, 80, 140),
    (210, 140, 40),
    (30, 30, 30),
]
SKIN = [(225, 185, 150), (170, 120, 85), (110, 75, 55)]
VEHICLE_KINDS = ("car", "car", "car", "car", "car", "car", "truck", "bus", "motorcycle", "bicycle")
TIRE = (25, 25, 28)
LOD_DISTANCE = 45.0  # agents farther ahead or behind than this are drawn as one box
FAR_VEHICLE_BOXES = {
    "car": (T.CAR, (2.2, 0.9, 1.4)),
    "truck": (T.TRUCK, (3.5, 1.25, 3.4)),
    "bus": (T.BUS, (5.5, 1.25, 3.2)),
    "motorcycle": (T.MOTORCYCLE, (0.95, 0.25, 1.5)),
    "bicycle": (T.BICYCLE, (0.95, 0.2, 1.5)),
}
WINDSHIELD = (50, 60, 75)
HEADLIGHT = (235, 235, 215)
TAILLIGHT = (200, 20, 20)


def _car(mb: MeshBuilder, paint: tuple) -> None:
    body_lo, body_hi = (-2.2, -0.9, 0.3), (2.2, 0.9, 1.0)
    body = mb.box(body_lo, body_hi, paint, T.CAR)
    for sign, colour in ((1.0, HEADLIGHT), (-1.0, TAILLIGHT)):  # lamps on the front and rear faces
        x = sign * 2.21
        for y in (-0.6, 0.6):
            lamp = [(x, y - 0.2, 0.7), (x, y + 0.2, 0.7), (x, y + 0.2, 0.88), (x, y - 0.2, 0.88)]
            mb.decal(body, lamp, (sign, 0.0, 0.0), colour, T.CAR, body_lo, body_hi)
    cab_lo, cab_hi = (-1.2, -0.8, 1.0), (1.0, 0.8, 1.5)
    cab = mb.box(cab_lo, cab_hi, paint, T.CAR)
    for x, n in ((1.01, 1.0), (-1.21, -1.0)):  # windscreen and rear window
        glass = [(x, -0.7, 1.03), (x, 0.7, 1.03), (x, 0.7, 1.45), (x, -0.7, 1.45)]
        mb.decal(cab, glass, (n, 0.0, 0.0), WINDSHIELD, T.CAR, cab_lo, cab_hi)
    for y in (-0.81, 0.81):  # side windows
        glass = [(-1.1, y, 1.05), (0.9, y, 1.05), (0.9, y, 1.45), (-1.1, y, 1.45)]
        mb.decal(cab, glass, (0.0, float(np.sign(y)), 0.0), WINDSHIELD, T.CAR, cab_lo, cab_hi)
    for x in (-1.4, 1.4):
        mb.box((x - 0.35, -0.95, 0.0), (x + 0.35, 0.95, 0.6), TIRE, T.CAR)


def _truck(mb: MeshBuilder, paint: tuple) -> None:
    mb.box((1.6, -1.2, 0.4), (3.4, 1.2, 2.8), paint, T.TRUCK)
    mb.box((3.35, -1.0, 1.7), (3.42, 1.0, 2.5), WINDSHIELD, T.TRUCK)
    mb.box((-3.6, -1.25, 0.8), (1.5, 1.25, 3.6), (215, 215, 210), T.TRUCK)
    for x in (-2.6, -1.4, 2.5):
        mb.box((x - 0.45, -1.25, 0.0), (x + 0.45, 1.25, 0.9), TIRE, T.TRUCK)


def _bus(mb: MeshBuilder, paint: tuple) -> None:
    g = mb.box((-5.5, -1.25, 0.4), (5.5, 1.25, 3.2), paint, T.BUS)
    for side in (-1, 1):
        y = side * 1.27
        mb.decal(
            g,
            [(-5.0, y, 1.6), (4.8, y, 1.6), (4.8, y, 2.8), (-5.0, y, 2.8)],
            (0.0, float(side), 0.0),
            WINDSHIELD,
            T.BUS,
            (-5.5, -1.25, 0.4),
            (5.5, 1.25, 3.2),
        )
    for x in (-3.8, 3.8):
        mb.box((x - 0.5, -1.2, 0.0), (x + 0.5, 1.2, 1.0), TIRE, T.BUS)


def _two_wheeler(mb: MeshBuilder, paint: tuple, tag: int, shirt: tuple) -> None:
    heavy = tag == T.MOTORCYCLE
    mb.box((-0.95, -0.1 - 0.1 * heavy, 0.05), (0.95, 0.1 + 0.1 * heavy, 0.7 + 0.25 * heavy), paint, tag)
    mb.box((-0.95, -0.06, 0.0), (-0.5, 0.06, 0.65), TIRE, tag)
    mb.box((0.5, -0.06, 0.0), (0.95, 0.06, 0.65), TIRE, tag)
    mb.box((-0.4, -0.2, 0.9), (0.1, 0.2, 1.6), shirt, T.RIDER)
    mb.box((-0.25, -0.12, 1.6), (0.0, 0.12, 1.85), SKIN[0] if not heavy else (30, 30, 30), T.RIDER)


def _pedestrian(mb: MeshBuilder, shirt: tuple, trousers: tuple, skin: tuple, height: float, stride: float) -> None:
    leg = 0.47 * height
    for offset, y in ((stride, -0.1), (-stride, 0.1)):
        mb.box((offset - 0.09, y - 0.08, 0.0), (offset + 0.09, y + 0.08, leg), trousers, T.PEDESTRIANS)
    mb.box((-0.13, -0.22, leg), (0.13, 0.22, 0.85 * height), shirt, T.PEDESTRIANS)
    mb.box((-0.1, -0.1, 0.86 * height), (0.1, 0.1, height), skin, T.PEDESTRIANS)


@dataclass(frozen=True)
class Lane:
    """A line agents move along: lateral position, speed (signed, along x), spacing between agents."""

    lane_id: int
    y: float
    z: float
    speed: float
    spacing: float
    pedestrian: bool
    keep_clear: tuple[float, float] | None = None  # relative x range around the ego left free (its own lane)


class Agents:
    """All road users and pedestrians of one world; ``faces(t, x_min, x_max)`` places them at time ``t``."""

    def __init__(self, town: TownPreset, seed: int, stream: int, ego_lane: int) -> None:
        self.town, self.seed, self.stream = town, seed, stream
        self._vehicle_templates = {
            (kind, p, far): self._vehicle_template(kind, p, far)
            for kind in set(VEHICLE_KINDS)
            for p in range(len(PAINT))
            for far in (False, True)
        }
        self._pedestrian_templates = {
            (c, phase, far): self._pedestrian_template(c, phase, far)
            for c in range(len(CLOTHES))
            for phase in range(4)
            for far in (False, True)
        }
        self.lanes = self._lanes(ego_lane)
        self._flip_cache: dict[int, FaceSet] = {}

    @staticmethod
    def _vehicle_template(kind: str, paint_index: int, far: bool) -> FaceSet:
        mb = MeshBuilder()
        paint = PAINT[paint_index]
        if far:  # a single box is all a distant vehicle needs
            tag, (half_length, half_width, height) = FAR_VEHICLE_BOXES[kind]
            mb.box((-half_length, -half_width, 0.0), (half_length, half_width, height), paint, tag)
        elif kind == "car":
            _car(mb, paint)
        elif kind == "truck":
            _truck(mb, paint)
        elif kind == "bus":
            _bus(mb, paint)
        else:
            tag = T.MOTORCYCLE if kind == "motorcycle" else T.BICYCLE
            _two_wheeler(mb, paint, tag, CLOTHES[paint_index % len(CLOTHES)])
        return mb.build()

    @staticmethod
    def _pedestrian_template(clothes: int, phase: int, far: bool) -> FaceSet:
        mb = MeshBuilder()
        height = 1.65 + 0.05 * (clothes % 5)
        if far:
            mb.box((-0.15, -0.22, 0.0), (0.15, 0.22, height), CLOTHES[clothes], T.PEDESTRIANS)
            return mb.build()
        stride = 0.18 * np.sin(phase * np.pi / 2)
        trousers = CLOTHES[(clothes * 3 + 1) % len(CLOTHES)]
        _pedestrian(mb, CLOTHES[clothes], trousers, SKIN[clothes % len(SKIN)], height, stride)
        return mb.build()

    def _lanes(self, ego_lane: int) -> list[Lane]:
        town = self.town
        lanes: list[Lane] = []
        lw = town.lane_width
        v = town.ego_speed
        if town.traffic_per_100m > 0:
            spacing = 100.0 / town.traffic_per_100m
            for k in range(town.lanes_per_direction):
                y = (k + 0.5) * lw
                same_speed = v * (1.0 + 0.12 * (k - ego_lane))
                keep = (-14.0, 9.0) if k == ego_lane else None
                lanes.append(Lane(len(lanes), -y, 0.0, same_speed, spacing, False, keep))
                lanes.append(Lane(len(lanes), y, 0.0, -v * (0.9 + 0.1 * k), spacing, False))
        rh = road_half_width(town)
        if town.parked_per_100m > 0:
            for side in (-1, 1):
                lanes.append(
                    Lane(
                        len(lanes),
                        side * (rh - PARKING_WIDTH / 2),
                        0.0,
                        0.0,
                        100.0 / town.parked_per_100m,
                        False,
                    )
                )
        if town.pedestrians_per_100m > 0:
            sw = town.sidewalk_width if town.sidewalk_width > 0 else 2.0
            z = CURB if town.sidewalk_width > 0 else 0.0
            spacing = 2 * 100.0 / town.pedestrians_per_100m
            for side in (-1, 1):
                for frac, speed in ((0.35, 1.3), (0.7, -1.2)):
                    lanes.append(Lane(len(lanes), side * (rh + sw * frac), z, speed, spacing, True))
        return lanes

    def faces(self, t: float, ego_x: float, x_min: float, x_max: float) -> FaceSet:
        placed: list[FaceSet] = []
        offsets: list[tuple[float, float, float]] = []
        for lane in self.lanes:
            first = int(np.floor((x_min - lane.speed * t) / lane.spacing)) - 1
            last = int(np.ceil((x_max - lane.speed * t) / lane.spacing)) + 1
            index = np.arange(first, last + 1)
            rand = hash_uniform(self.seed, self.stream, lane.lane_id, index[:, None], np.arange(4))
            x = index * lane.spacing + (rand[:, 0] - 0.5) * 0.6 * lane.spacing + lane.speed * t
            present = (rand[:, 1] < 0.85) & (x > x_min) & (x < x_max)
            if lane.keep_clear is not None:
                rel = x - ego_x
                present &= (rel < lane.keep_clear[0]) | (rel > lane.keep_clear[1])
            variant = rand[:, 2]
            wobble = (rand[:, 3] - 0.5) * (0.4 if not lane.pedestrian else 0.5)
            for i in np.flatnonzero(present):
                far = abs(x[i] - ego_x) > LOD_DISTANCE
                if lane.pedestrian:
                    phase = int(abs(x[i]) / 0.45) % 4 if lane.speed and not far else 0
                    faces = self._pedestrian_templates[(int(variant[i] * len(CLOTHES)), phase, far)]
                else:
                    kind = VEHICLE_KINDS[int(variant[i] * len(VEHICLE_KINDS))]
                    if lane.speed == 0.0 and kind in ("truck", "bus"):
                        kind = "car"
                    paint = int(variant[i] * 977) % len(PAINT)
                    faces = self._vehicle_templates[(kind, paint, far)]
                if lane.speed < 0 or (lane.speed == 0.0 and lane.y > 0):
                    faces = self._flipped(faces)
                placed.append(faces)
                offsets.append((x[i], lane.y + wobble[i], lane.z))
        return FaceSet.concat(placed).translated_each(
            np.asarray(offsets, np.float32), np.array([len(p) for p in placed])
        )

    def _flipped(self, faces: FaceSet) -> FaceSet:
        key = id(faces)
        if key not in self._flip_cache:
            self._flip_cache[key] = faces.flipped()
        return self._flip_cache[key]
