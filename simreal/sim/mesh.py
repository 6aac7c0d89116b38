"""Scene geometry as flat arrays of convex faces, the only thing the rasteriser understands.

Every face is a planar convex polygon of up to ``MAX_VERTS`` vertices (shorter ones repeat their last vertex),
with an outward normal, an RGB base colour, a CARLA 0.9.14 tag and a draw layer. Faces of one convex part
share a group id and the part's bounding box, which orders the parts back to front.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_VERTS = 8
# Draw layers: flat ground pieces are painted in this fixed order before any object; objects come last.
LAYER_GROUND, LAYER_ROAD, LAYER_MARKING, LAYER_SIDEWALK, LAYER_OBJECT = 0, 1, 2, 3, 10


@dataclass
class FaceSet:
    """Arrays of faces; see the module docstring. ``sub`` orders decals (windows) after their parent face."""

    verts: np.ndarray  # (F, MAX_VERTS, 3) float32, world metres (x forward along the road, y left, z up)
    normals: np.ndarray  # (F, 3) float32
    colours: np.ndarray  # (F, 3) float32 RGB
    tags: np.ndarray  # (F,) uint8
    layers: np.ndarray  # (F,) int16
    groups: np.ndarray  # (F,) int32
    sub: np.ndarray  # (F,) int8
    box_min: np.ndarray  # (F, 3) float32, bounding box of the face's part
    box_max: np.ndarray  # (F, 3) float32

    def __len__(self) -> int:
        return len(self.tags)

    def translated_each(self, offsets: np.ndarray, counts: np.ndarray) -> FaceSet:
        """Moves consecutive runs of ``counts`` faces by one offset each (placing many agents at once)."""
        if len(self) == 0:
            return self
        per_face = np.repeat(offsets, counts, axis=0)
        return FaceSet(
            self.verts + per_face[:, None, :],
            self.normals,
            self.colours,
            self.tags,
            self.layers,
            self.groups,
            self.sub,
            self.box_min + per_face,
            self.box_max + per_face,
        )

    def flipped(self) -> FaceSet:
        """Rotated by 180 degrees about the vertical axis (a vehicle driving the other way)."""
        flip = np.array([-1.0, -1.0, 1.0], np.float32)
        lo, hi = self.box_min * flip, self.box_max * flip
        return FaceSet(
            self.verts * flip,
            self.normals * flip,
            self.colours,
            self.tags,
            self.layers,
            self.groups,
            self.sub,
            np.minimum(lo, hi),
            np.maximum(lo, hi),
        )

    @staticmethod
    def concat(sets: list[FaceSet]) -> FaceSet:
        sets = [s for s in sets if len(s)]
        if not sets:
            return empty_faces()
        offsets = np.cumsum([0] + [int(s.groups.max()) + 1 for s in sets[:-1]])
        return FaceSet(
            np.concatenate([s.verts for s in sets]),
            np.concatenate([s.normals for s in sets]),
            np.concatenate([s.colours for s in sets]),
            np.concatenate([s.tags for s in sets]),
            np.concatenate([s.layers for s in sets]),
            np.concatenate([s.groups + o for s, o in zip(sets, offsets, strict=True)]).astype(np.int32),
            np.concatenate([s.sub for s in sets]),
            np.concatenate([s.box_min for s in sets]),
            np.concatenate([s.box_max for s in sets]),
        )


def empty_faces() -> FaceSet:
    z3 = np.zeros((0, 3), np.float32)
    return FaceSet(
        np.zeros((0, MAX_VERTS, 3), np.float32),
        z3,
        z3,
        np.zeros(0, np.uint8),
        np.zeros(0, np.int16),
        np.zeros(0, np.int32),
        np.zeros(0, np.int8),
        z3,
        z3,
    )


def _pad(poly: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    if len(poly) > MAX_VERTS:
        raise ValueError(f"a face has at most {MAX_VERTS} vertices, got {len(poly)}")
    return list(poly) + [poly[-1]] * (MAX_VERTS - len(poly))


class MeshBuilder:
    """Collects faces part by part, then packs them into a FaceSet."""

    def __init__(self) -> None:
        self._verts: list[list[tuple[float, float, float]]] = []
        self._normals: list[tuple[float, float, float]] = []
        self._colours: list[tuple[float, float, float]] = []
        self._tags: list[int] = []
        self._layers: list[int] = []
        self._groups: list[int] = []
        self._sub: list[int] = []
        self._bmin: list[tuple[float, float, float]] = []
        self._bmax: list[tuple[float, float, float]] = []
        self._next_group = 0

    def _face(self, poly, normal, colour, tag, layer, group, sub, bmin, bmax) -> None:
        self._verts.append(_pad(poly))
        self._normals.append(normal)
        self._colours.append(colour)
        self._tags.append(tag)
        self._layers.append(layer)
        self._groups.append(group)
        self._sub.append(sub)
        self._bmin.append(bmin)
        self._bmax.append(bmax)

    def box(
        self,
        lo: tuple[float, float, float],
        hi: tuple[float, float, float],
        colour: tuple,
        tag: int,
        layer: int = LAYER_OBJECT,
        skip_bottom: bool = True,
    ) -> int:
        """Axis-aligned box from corner ``lo`` to corner ``hi``; returns its group id (for decals)."""
        (x0, y0, z0), (x1, y1, z1) = lo, hi
        g = self._next_group
        self._next_group += 1
        faces = [
            ([(x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)], (0.0, 0.0, 1.0)),
            ([(x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1)], (0.0, -1.0, 0.0)),
            ([(x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)], (0.0, 1.0, 0.0)),
            ([(x0, y0, z0), (x0, y1, z0), (x0, y1, z1), (x0, y0, z1)], (-1.0, 0.0, 0.0)),
            ([(x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1)], (1.0, 0.0, 0.0)),
        ]
        if not skip_bottom:
            faces.append(([(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0)], (0.0, 0.0, -1.0)))
        for poly, n in faces:
            self._face(poly, n, colour, tag, layer, g, 0, lo, hi)
        return g

    def flat(self, x0: float, x1: float, y0: float, y1: float, z: float, colour: tuple, tag: int, layer: int) -> None:
        """Horizontal rectangle facing up (road, markings, lawn)."""
        g = self._next_group
        self._next_group += 1
        self._face(
            [(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)],
            (0.0, 0.0, 1.0),
            colour,
            tag,
            layer,
            g,
            0,
            (x0, y0, z),
            (x1, y1, z),
        )

    def decal(
        self,
        group: int,
        poly: list[tuple[float, float, float]],
        normal: tuple[float, float, float],
        colour: tuple,
        tag: int,
        lo: tuple,
        hi: tuple,
    ) -> None:
        """A polygon painted on a face of part ``group`` (a window), drawn right after that part."""
        self._face(poly, normal, colour, tag, LAYER_OBJECT, group, 1, lo, hi)

    def frustum(
        self,
        cx: float,
        cy: float,
        z0: float,
        z1: float,
        r0: float,
        r1: float,
        colour: tuple,
        tag: int,
        sides: int = 8,
    ) -> None:
        """Vertical n-sided prism tapering from radius r0 at z0 to r1 at z1 (tree crowns, bushes)."""
        g = self._next_group
        self._next_group += 1
        ang = np.arange(sides) * (2 * np.pi / sides) + np.pi / sides
        ca, sa = np.cos(ang), np.sin(ang)
        bot = [(cx + r0 * c, cy + r0 * s, z0) for c, s in zip(ca, sa, strict=True)]
        top = [(cx + r1 * c, cy + r1 * s, z1) for c, s in zip(ca, sa, strict=True)]
        r = max(r0, r1)
        lo, hi = (cx - r, cy - r, z0), (cx + r, cy + r, z1)
        slope = (r0 - r1) / max(z1 - z0, 1e-6)
        for i in range(sides):
            j = (i + 1) % sides
            mid = ang[i] + np.pi / sides
            n = np.array([np.cos(mid), np.sin(mid), slope])
            n /= np.linalg.norm(n)
            self._face([bot[i], bot[j], top[j], top[i]], tuple(n), colour, tag, LAYER_OBJECT, g, 0, lo, hi)
        self._face(top, (0.0, 0.0, 1.0), colour, tag, LAYER_OBJECT, g, 0, lo, hi)

    def gable_roof(
        self, x0: float, x1: float, y0: float, y1: float, z0: float, height: float, colour: tuple, tag: int
    ) -> None:
        """Pitched roof with its ridge along x, sitting on the rectangle [x0,x1]x[y0,y1] at height z0."""
        g = self._next_group
        self._next_group += 1
        ym, z1 = (y0 + y1) / 2, z0 + height
        lo, hi = (x0, y0, z0), (x1, y1, z1)
        half = (y1 - y0) / 2
        nl = np.array([0.0, -height, half])
        nl /= np.linalg.norm(nl)
        self._face(
            [(x0, y0, z0), (x1, y0, z0), (x1, ym, z1), (x0, ym, z1)],
            tuple(nl),
            colour,
            tag,
            LAYER_OBJECT,
            g,
            0,
            lo,
            hi,
        )
        self._face(
            [(x0, y1, z0), (x1, y1, z0), (x1, ym, z1), (x0, ym, z1)],
            (0.0, -nl[1], nl[2]),
            colour,
            tag,
            LAYER_OBJECT,
            g,
            0,
            lo,
            hi,
        )
        self._face(
            [(x0, y0, z0), (x0, y1, z0), (x0, ym, z1)],
            (-1.0, 0.0, 0.0),
            colour,
            tag,
            LAYER_OBJECT,
            g,
            0,
            lo,
            hi,
        )
        self._face(
            [(x1, y0, z0), (x1, y1, z0), (x1, ym, z1)],
            (1.0, 0.0, 0.0),
            colour,
            tag,
            LAYER_OBJECT,
            g,
            0,
            lo,
            hi,
        )

    def build(self) -> FaceSet:
        if not self._tags:
            return empty_faces()
        f32 = np.float32
        return FaceSet(
            np.asarray(self._verts, f32),
            np.asarray(self._normals, f32),
            np.asarray(self._colours, f32),
            np.asarray(self._tags, np.uint8),
            np.asarray(self._layers, np.int16),
            np.asarray(self._groups, np.int32),
            np.asarray(self._sub, np.int8),
            np.asarray(self._bmin, f32),
            np.asarray(self._bmax, f32),
        )
