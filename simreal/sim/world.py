"""Seeded street world: a main road along +x cut into blocks, each block built from its own seed.

Blocks are generated on demand and cached, so a frame only pays for the blocks it can see, and any block
(and so any frame) comes out the same no matter which frames were rendered before it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from simreal.sim import tags as T
from simreal.sim.hashing import key_rng
from simreal.sim.mesh import (
    LAYER_GROUND,
    LAYER_MARKING,
    LAYER_ROAD,
    LAYER_SIDEWALK,
    FaceSet,
    MeshBuilder,
)
from simreal.sim.presets import TownPreset

CURB = 0.15  # sidewalk height
SIDE_EXTENT = 400.0  # how far ground and cross roads reach sideways
PARKING_WIDTH = 2.4

ASPHALT = (72, 72, 76)
MARKING_WHITE = (225, 225, 215)
MARKING_YELLOW = (220, 180, 60)
SIDEWALK = (160, 155, 148)
GRASS = (92, 128, 58)
DIRT = (128, 112, 86)
PAVED_GROUND = (120, 118, 112)
FACADES = {
    "downtown": [
        (150, 150, 155),
        (185, 175, 160),
        (120, 130, 145),
        (200, 195, 185),
        (140, 110, 95),
        (95, 105, 120),
        (170, 160, 140),
    ],
    "urban": [
        (175, 150, 125),
        (150, 95, 75),
        (190, 185, 170),
        (135, 135, 140),
        (205, 190, 150),
        (120, 110, 100),
    ],
    "suburb": [
        (225, 215, 190),
        (200, 170, 140),
        (170, 190, 200),
        (230, 230, 225),
        (190, 140, 110),
        (215, 200, 160),
    ],
}
FACADES["rural"] = FACADES["suburb"] + [(160, 60, 50), (140, 120, 95)]
FACADES["highway"] = FACADES["suburb"]
ROOFS = [(150, 60, 45), (90, 70, 60), (70, 75, 85), (120, 95, 70)]
GLASS = [(60, 75, 95), (45, 55, 70), (80, 100, 120)]
FOLIAGE = [(60, 110, 45), (75, 125, 50), (50, 95, 40), (90, 130, 60)]
SIGN_PLATES = [(200, 30, 30), (30, 70, 180), (235, 235, 235), (230, 190, 30)]


def road_half_width(town: TownPreset) -> float:
    """Distance from the centre line to the curb (parking strip included)."""
    parking = PARKING_WIDTH if town.parked_per_100m > 0 else 0.0
    return town.lanes_per_direction * town.lane_width + parking


class StreetWorld:
    """Static geometry of one world (town style + seed + stream), block by block."""

    def __init__(self, town: TownPreset, seed: int, stream: int) -> None:
        self.town = town
        self.seed = seed
        self.stream = stream
        self.half_width = road_half_width(town)
        self.block_faces = lru_cache(maxsize=16)(self._build_block)

    def has_intersection(self, block: int) -> bool:
        rng = key_rng(self.seed, self.stream, block, 7001)
        return bool(rng.random() < self.town.intersection_prob)

    def cross_width(self) -> float:
        return 2 * max(1, self.town.lanes_per_direction - 1) * self.town.lane_width

    def visible_blocks(self, x_min: float, x_max: float) -> range:
        length = self.town.block_length
        return range(int(np.floor(x_min / length)), int(np.floor(x_max / length)) + 1)

    def faces(self, x_min: float, x_max: float) -> FaceSet:
        return FaceSet.concat([self.block_faces(b) for b in self.visible_blocks(x_min, x_max)])

    # -- block construction -------------------------------------------------------------------------------
    def _build_block(self, block: int) -> FaceSet:
        town, rh, sw = self.town, self.half_width, self.town.sidewalk_width
        rng = key_rng(self.seed, self.stream, block, 7002)
        mb = MeshBuilder()
        x0 = block * town.block_length
        x1 = x0 + town.block_length
        inter = self.has_intersection(block)
        next_inter = self.has_intersection(block + 1)
        cw = self.cross_width() if inter else 0.0
        ground_tag, ground_col = (T.GROUND, PAVED_GROUND) if town.style in ("downtown", "urban") else (T.TERRAIN, GRASS)
        mb.flat(x0, x1, -SIDE_EXTENT, SIDE_EXTENT, 0.0, ground_col, ground_tag, LAYER_GROUND)
        mb.flat(x0, x1, -rh, rh, 0.0, ASPHALT, T.ROADS, LAYER_ROAD)
        if inter:
            mb.flat(x0, x0 + cw, -SIDE_EXTENT, SIDE_EXTENT, 0.0, ASPHALT, T.ROADS, LAYER_ROAD)
        self._markings(mb, x0, x1, cw, inter, next_inter)
        street_start = x0 + cw + (sw if inter else 0.0)
        street_end = x1 - (sw if next_inter else 0.0)
        for side in (-1, 1):
            if sw > 0:
                self._sidewalks(mb, side, x0, x1, cw, inter)
            self._lots(mb, rng, side, street_start + 1.0, street_end - 1.0)
            self._street_furniture(mb, rng, side, x0 + cw, street_end, block)
            if inter:
                self._traffic_light(mb, side, x0, cw)
        return mb.build()

    def _markings(self, mb: MeshBuilder, x0: float, x1: float, cw: float, inter: bool, next_inter: bool) -> None:
        town, rh, z = self.town, self.half_width, 0.0
        lw = town.lane_width
        start = x0 + (cw + 5.0 if inter else 0.0)
        end = x1 - (5.0 if next_inter else 0.0)
        for y in (-0.18, 0.18):  # double centre line
            mb.flat(start, end, y - 0.06, y + 0.06, z, MARKING_YELLOW, T.ROAD_LINES, LAYER_MARKING)
        for k in range(1, town.lanes_per_direction):
            for side in (-1, 1):
                y = side * k * lw
                for xd in np.arange(start + 1.0, end - 3.0, 9.0):
                    mb.flat(xd, xd + 3.0, y - 0.07, y + 0.07, z, MARKING_WHITE, T.ROAD_LINES, LAYER_MARKING)
        edge = town.lanes_per_direction * lw
        for side in (-1, 1):  # edge line (or parking strip line)
            y = side * (edge if edge < rh else rh - 0.3)
            mb.flat(start, end, y - 0.07, y + 0.07, z, MARKING_WHITE, T.ROAD_LINES, LAYER_MARKING)
        if inter:
            for xs in (x0 - 4.0, x0 + cw + 1.0):  # zebra crossings over the main road
                for y in np.arange(-rh + 0.3, rh - 0.3, 1.0):
                    mb.flat(xs, xs + 3.0, y, y + 0.5, z, MARKING_WHITE, T.ROAD_LINES, LAYER_MARKING)
            mb.flat(x0 - 5.0, x0 - 4.6, -rh, 0.0, z, MARKING_WHITE, T.ROAD_LINES, LAYER_MARKING)  # stop line
            sw = max(town.sidewalk_width, 2.0)
            for side in (-1, 1):  # zebra crossings over the cross road
                ya, yb = sorted((side * (rh + 0.3), side * (rh + sw - 0.3)))
                for xs in np.arange(x0 + 0.4, x0 + cw - 0.4, 1.0):
                    mb.flat(xs, xs + 0.5, ya, yb, z, MARKING_WHITE, T.ROAD_LINES, LAYER_MARKING)

    def _sidewalks(self, mb: MeshBuilder, side: int, x0: float, x1: float, cw: float, inter: bool) -> None:
        rh, sw = self.half_width, self.town.sidewalk_width
        ya, yb = sorted((side * rh, side * (rh + sw)))
        mb.box((x0 + cw, ya, 0.0), (x1, yb, CURB), SIDEWALK, T.SIDEWALKS, LAYER_SIDEWALK)
        if inter:
            ya, yb = sorted((side * rh, side * SIDE_EXTENT))
            mb.box((x0 - sw, ya, 0.0), (x0, yb, CURB), SIDEWALK, T.SIDEWALKS, LAYER_SIDEWALK)
            mb.box((x0 + cw, ya, 0.0), (x0 + cw + sw, yb, CURB), SIDEWALK, T.SIDEWALKS, LAYER_SIDEWALK)

    def _lots(self, mb: MeshBuilder, rng: np.random.Generator, side: int, start: float, end: float) -> None:
        town = self.town
        front = self.half_width + town.sidewalk_width
        x = start
        while x < end - 4.0:
            width = min(float(rng.uniform(*town.building_width)), end - x)
            setback = float(rng.uniform(*town.setback))
            if rng.random() < town.empty_lot_prob:
                self._empty_lot(mb, rng, side, x, x + width, front)
            else:
                self._building(mb, rng, side, x, x + width - float(rng.uniform(0.0, 1.5)), front + setback)
                if setback > 2.5 and rng.random() < 0.6:
                    self._lot_edge(mb, rng, side, x, x + width, front + 0.4)
            x += width

    def _building(
        self, mb: MeshBuilder, rng: np.random.Generator, side: int, xa: float, xb: float, facade: float
    ) -> None:
        town = self.town
        height = float(rng.uniform(*town.building_height))
        depth = float(rng.uniform(*town.building_depth))
        colour = FACADES[town.style][rng.integers(len(FACADES[town.style]))]
        ya, yb = sorted((side * facade, side * (facade + depth)))
        group = mb.box((xa, ya, 0.0), (xb, yb, height), colour, T.BUILDINGS)
        if town.pitched_roofs:
            mb.gable_roof(
                xa - 0.3,
                xb + 0.3,
                ya - 0.3,
                yb + 0.3,
                height,
                float(rng.uniform(2.0, 4.0)),
                ROOFS[rng.integers(len(ROOFS))],
                T.BUILDINGS,
            )
        # Windows on the facade that faces the road, a hair in front of it.
        yf = side * (facade - 0.05)
        normal = (0.0, -float(side), 0.0)
        glass = GLASS[rng.integers(len(GLASS))]
        lo, hi = (xa, ya, 0.0), (xb, yb, height)
        floor_h = 3.2 if town.style in ("downtown", "urban") else 2.8
        floors = int((height - 1.0) // floor_h)
        if town.style in ("downtown", "urban") and rng.random() < 0.5:  # ribbon windows
            for f in range(1, min(floors, 18)):
                z = f * floor_h + 0.6
                mb.decal(
                    group,
                    [(xa + 0.8, yf, z), (xb - 0.8, yf, z), (xb - 0.8, yf, z + 1.7), (xa + 0.8, yf, z + 1.7)],
                    normal,
                    glass,
                    T.BUILDINGS,
                    lo,
                    hi,
                )
        else:
            spacing = float(rng.uniform(2.6, 3.6))
            cols = max(1, int((xb - xa - 1.0) // spacing))
            margin = (xb - xa - cols * spacing) / 2
            for f in range(min(floors, 10)):
                z = f * floor_h + 1.0
                for c in range(min(cols, 8)):
                    wx = xa + margin + c * spacing + 0.5
                    mb.decal(
                        group,
                        [
                            (wx, yf, z),
                            (wx + spacing - 1.0, yf, z),
                            (wx + spacing - 1.0, yf, z + 1.5),
                            (wx, yf, z + 1.5),
                        ],
                        normal,
                        glass,
                        T.BUILDINGS,
                        lo,
                        hi,
                    )
        door_x = (xa + xb) / 2
        mb.decal(
            group,
            [
                (door_x - 0.7, yf, 0.0),
                (door_x + 0.7, yf, 0.0),
                (door_x + 0.7, yf, 2.3),
                (door_x - 0.7, yf, 2.3),
            ],
            normal,
            (70, 55, 45),
            T.BUILDINGS,
            lo,
            hi,
        )

    def _empty_lot(
        self, mb: MeshBuilder, rng: np.random.Generator, side: int, xa: float, xb: float, front: float
    ) -> None:
        depth = 25.0
        ya, yb = sorted((side * (front + 0.5), side * (front + depth)))
        kind = rng.random()
        if self.town.style in ("downtown", "urban") and kind < 0.5:  # parking lot behind a low wall
            mb.flat(xa, xb, ya, yb, 0.0, (85, 85, 88), T.GROUND, LAYER_ROAD)
            wy = side * (front + 0.5)
            mb.box(
                (xa, min(wy, wy + side * 0.3), 0.0),
                (xb, max(wy, wy + side * 0.3), 1.1),
                (170, 165, 155),
                T.WALLS,
            )
            return
        mb.flat(xa, xb, ya, yb, 0.0, GRASS if kind < 0.8 else DIRT, T.TERRAIN, LAYER_ROAD)
        for _ in range(int(rng.integers(1, 4))):  # bushes and a tree or two
            cx = float(rng.uniform(xa + 2, xb - 2)) if xb - xa > 4 else (xa + xb) / 2
            cy = side * float(rng.uniform(front + 3, front + depth - 3))
            if rng.random() < 0.5:
                self._tree(mb, rng, cx, cy, scale=float(rng.uniform(1.0, 1.6)))
            else:
                mb.frustum(
                    cx,
                    cy,
                    0.0,
                    float(rng.uniform(0.8, 1.6)),
                    float(rng.uniform(0.8, 1.5)),
                    0.6,
                    FOLIAGE[rng.integers(len(FOLIAGE))],
                    T.VEGETATION,
                    sides=6,
                )
        self._lot_edge(mb, rng, side, xa, xb, front + 0.4)

    def _lot_edge(self, mb: MeshBuilder, rng: np.random.Generator, side: int, xa: float, xb: float, y: float) -> None:
        """Fence, wall or hedge along the front of a lot."""
        kind = rng.random()
        ya, yb = sorted((side * y, side * (y + 0.12)))
        if kind < 0.45:
            mb.box((xa, ya, 0.0), (xb, yb, float(rng.uniform(1.0, 1.8))), (90, 95, 90), T.FENCES)
        elif kind < 0.7:
            mb.box((xa, ya, 0.0), (xb, yb + side * 0.2, float(rng.uniform(0.8, 1.6))), (175, 170, 160), T.WALLS)
        else:
            ya, yb = sorted((side * y, side * (y + 0.9)))
            mb.box(
                (xa, ya, 0.0),
                (xb, yb, float(rng.uniform(0.8, 1.3))),
                FOLIAGE[rng.integers(len(FOLIAGE))],
                T.VEGETATION,
            )

    def _tree(self, mb: MeshBuilder, rng: np.random.Generator, cx: float, cy: float, scale: float = 1.0) -> None:
        trunk = 2.4 * scale
        mb.box((cx - 0.15, cy - 0.15, 0.0), (cx + 0.15, cy + 0.15, trunk + 0.3), (95, 70, 50), T.VEGETATION)
        r = float(rng.uniform(1.5, 2.4)) * scale
        mb.frustum(
            cx,
            cy,
            trunk,
            trunk + float(rng.uniform(3.0, 4.5)) * scale,
            r,
            r * 0.45,
            FOLIAGE[rng.integers(len(FOLIAGE))],
            T.VEGETATION,
        )

    def _street_furniture(
        self, mb: MeshBuilder, rng: np.random.Generator, side: int, start: float, end: float, block: int
    ) -> None:
        town, rh = self.town, self.half_width
        sw = town.sidewalk_width
        curb_y = side * (rh + 0.6)
        z0 = CURB if sw > 0 else 0.0
        if town.lamp_spacing > 0:
            for x in np.arange(start + 3.0, end - 1.0, town.lamp_spacing):
                self._lamp(mb, side, float(x), curb_y, z0)
        if town.tree_spacing > 0:
            tree_y = side * (rh + (sw * 0.5 if sw > 0 else float(rng.uniform(3.0, 8.0))))
            for x in np.arange(start + town.tree_spacing / 2, end - 2.0, town.tree_spacing):
                if rng.random() < 0.85:
                    self._tree(mb, rng, float(x) + float(rng.uniform(-1, 1)), tree_y, scale=1.0)
        for _ in range(int(rng.integers(1, 3))):  # traffic signs facing the traffic on this side
            x = float(rng.uniform(start + 2.0, max(start + 3.0, end - 2.0)))
            self._sign(mb, rng, side, x, side * (rh + 0.4), z0)
        if sw > 0:
            prop_y = side * (rh + sw - 0.6)
            for _ in range(int(rng.integers(1, 4))):
                x = float(rng.uniform(start + 1.0, max(start + 2.0, end - 1.0)))
                self._prop(mb, rng, side, x, prop_y, z0)

    def _lamp(self, mb: MeshBuilder, side: int, x: float, y: float, z0: float) -> None:
        grey = (110, 112, 115)
        mb.box((x - 0.1, y - 0.1, z0), (x + 0.1, y + 0.1, z0 + 7.5), grey, T.POLES)
        ya, yb = sorted((y, y - side * 1.8))
        mb.box((x - 0.06, ya, z0 + 7.3), (x + 0.06, yb, z0 + 7.42), grey, T.POLES)
        tip = y - side * 1.8
        mb.box((x - 0.35, tip - 0.2, z0 + 7.1), (x + 0.35, tip + 0.2, z0 + 7.35), (200, 200, 190), T.POLES)

    def _sign(self, mb: MeshBuilder, rng: np.random.Generator, side: int, x: float, y: float, z0: float) -> None:
        mb.box((x - 0.05, y - 0.05, z0), (x + 0.05, y + 0.05, z0 + 2.9), (150, 150, 150), T.POLES)
        size = float(rng.uniform(0.6, 0.9))
        plate = SIGN_PLATES[rng.integers(len(SIGN_PLATES))]
        face_x = x - side * 0.08  # the sign faces the vehicles approaching on this side
        xa, xb = sorted((face_x, x))
        mb.box(
            (xa, y - size / 2, z0 + 2.9 - size / 2),
            (xb, y + size / 2, z0 + 2.9 + size / 2),
            plate,
            T.TRAFFIC_SIGNS,
        )

    def _prop(self, mb: MeshBuilder, rng: np.random.Generator, side: int, x: float, y: float, z0: float) -> None:
        kind = rng.random()
        if kind < 0.35:  # bench
            mb.box((x - 0.9, y - 0.3, z0), (x + 0.9, y + 0.3, z0 + 0.5), (120, 85, 55), T.STATIC)
        elif kind < 0.55:  # hydrant
            mb.box((x - 0.15, y - 0.15, z0), (x + 0.15, y + 0.15, z0 + 0.7), (200, 40, 35), T.STATIC)
        elif kind < 0.8:  # trash bin (movable, hence Dynamic in CARLA)
            mb.box((x - 0.3, y - 0.3, z0), (x + 0.3, y + 0.3, z0 + 1.0), (45, 80, 60), T.DYNAMIC)
        else:  # bus shelter
            ya, yb = sorted((y - side * 1.4, y + side * 0.3))
            mb.box((x - 2.0, ya, z0 + 2.3), (x + 2.0, yb, z0 + 2.5), (90, 95, 105), T.STATIC)
            mb.box((x - 2.0, y, z0), (x + 2.0, y + 0.08, z0 + 2.3), (140, 160, 170), T.STATIC)

    def _traffic_light(self, mb: MeshBuilder, side: int, x0: float, cw: float) -> None:
        """A mast arm at the corner where traffic on this side enters the intersection."""
        rh = self.half_width
        x = x0 - 1.0 if side < 0 else x0 + cw + 1.0
        y = side * (rh + 0.5)
        z0 = CURB if self.town.sidewalk_width > 0 else 0.0
        dark = (60, 62, 60)
        mb.box((x - 0.14, y - 0.14, z0), (x + 0.14, y + 0.14, z0 + 6.2), dark, T.POLES)
        tip = side * rh * 0.3
        ya, yb = sorted((y, tip))
        mb.box((x - 0.08, ya, z0 + 5.9), (x + 0.08, yb, z0 + 6.05), dark, T.POLES)
        for hy in (tip, side * rh * 0.75):
            mb.box((x - 0.2, hy - 0.2, z0 + 4.8), (x + 0.2, hy + 0.2, z0 + 5.9), (35, 38, 35), T.TRAFFIC_LIGHT)
        # Small pedestrian-height signal on the pole itself.
        mb.box((x - 0.15, y - 0.15, z0 + 2.4), (x + 0.15, y + 0.15, z0 + 3.2), (35, 38, 35), T.TRAFFIC_LIGHT)
