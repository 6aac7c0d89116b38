"""Painter's-algorithm rasteriser: cull and clip convex faces, sort them back to front, fill them with OpenCV.

Flat ground pieces are painted first in a fixed layer order (terrain, road, markings, sidewalks); then each
convex part, farthest first, ordered by the distance from the camera to its bounding box. Back faces are
culled, so the faces of one convex part never overlap and may be drawn in any order; decals follow their part.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from simreal.sim.camera import Intrinsics, Pose
from simreal.sim.mesh import LAYER_OBJECT, FaceSet

NEAR = 0.3
DECAL_DISTANCE = 70.0  # windows farther than this melt into their facade
MIN_EXTENT_PX = 0.8  # faces smaller than this in both directions would not cover a pixel centre anyway
SUBPIXEL_BITS = 4
_SCALE = float(1 << SUBPIXEL_BITS)


@dataclass
class DrawList:
    """Visible faces in paint order: their index into the FaceSet, pixel polygons and fog depth."""

    index: np.ndarray  # (n,) indices into the FaceSet
    polygons: list[np.ndarray]  # int32 (k, 2) fixed-point pixel polygons
    depth: np.ndarray  # (n,) float32 mean distance of the face, for fog
    is_object: np.ndarray  # (n,) bool: False for flat ground pieces (fogged per pixel instead)


def _clip_near(poly: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-space polygon against the plane z = NEAR."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        a_in, b_in = a[2] >= NEAR, b[2] >= NEAR
        if a_in:
            out.append(a)
        if a_in != b_in:
            s = (NEAR - a[2]) / (b[2] - a[2])
            out.append(a + s * (b - a))
    return np.asarray(out, np.float64)


def build_draw_list(faces: FaceSet, pose: Pose, intr: Intrinsics, view_distance: float) -> DrawList:
    cam = pose.position.astype(np.float32)
    # Back faces and far parts go first, before any per-vertex work.
    facing = np.einsum("ij,ij->i", cam - faces.verts[:, 0], faces.normals) > 1e-6
    nearest = np.maximum(np.maximum(faces.box_min - cam, cam - faces.box_max), 0.0)
    box_distance = np.sqrt((nearest**2).sum(axis=1))
    is_ground = faces.layers < LAYER_OBJECT
    near_enough = (box_distance < view_distance) & ((faces.sub == 0) | (box_distance < DECAL_DISTANCE))
    keep = np.flatnonzero(facing & (near_enough | is_ground))
    verts = (faces.verts[keep] - cam) @ pose.rotation.T.astype(np.float32)  # (n, 8, 3) camera space
    x, y, z = verts[..., 0], verts[..., 1], verts[..., 2]
    cx, cy = intr.centre
    f = intr.focal
    tan_x = (intr.width / 2 + 2) / f
    tan_y = (intr.height / 2 + 2) / f
    outside = (
        (z < NEAR).all(1)
        | (x > z * tan_x).all(1)
        | (-x > z * tan_x).all(1)
        | (y > z * tan_y).all(1)
        | (-y > z * tan_y).all(1)
    )
    inside = ~outside
    keep, verts = keep[inside], verts[inside]
    layers = faces.layers[keep].astype(np.int32)
    order = np.lexsort((faces.sub[keep], faces.groups[keep], -box_distance[keep], layers))
    keep, verts, layers = keep[order], verts[order], layers[order]
    depth = np.sqrt((verts**2).sum(axis=2)).mean(axis=1).astype(np.float32)

    needs_clip = (verts[..., 2] < NEAR).any(axis=1)
    safe_z = np.maximum(verts[..., 2:3], NEAR)
    pixels = verts[..., :2] / safe_z * f + np.array([cx, cy], np.float32)
    fixed = np.round(pixels * _SCALE).astype(np.int32)
    extent = pixels.max(axis=1) - pixels.min(axis=1)
    visible = needs_clip | (extent.max(axis=1) >= MIN_EXTENT_PX)
    keep, verts, layers, depth, fixed = (
        keep[visible],
        verts[visible],
        layers[visible],
        depth[visible],
        fixed[visible],
    )
    needs_clip = needs_clip[visible]
    polygons = list(fixed)
    for i in np.flatnonzero(needs_clip):
        clipped = _clip_near(verts[i].astype(np.float64))
        if len(clipped) < 3:
            polygons[i] = fixed[i][:0]
            continue
        px = clipped[:, :2] / clipped[:, 2:3] * f + np.array([cx, cy])
        polygons[i] = np.round(np.clip(px, -1e6, 1e6) * _SCALE).astype(np.int32)
    return DrawList(keep, polygons, depth, layers >= LAYER_OBJECT)


def rasterise(draw: DrawList, colours: np.ndarray, tags: np.ndarray, rgb: np.ndarray, semantic: np.ndarray) -> None:
    """Paint the draw list in order into ``rgb`` (H,W,3) and ``semantic`` (H,W) in place.

    ``colours`` and ``tags`` are per entry of the draw list (already gathered and shaded).
    """
    colour_list = colours.tolist()
    tag_list = tags.tolist()
    fill = cv2.fillConvexPoly
    for i, poly in enumerate(draw.polygons):
        if len(poly) < 3:
            continue
        fill(rgb, poly, colour_list[i], cv2.LINE_8, SUBPIXEL_BITS)
        fill(semantic, poly, tag_list[i], cv2.LINE_8, SUBPIXEL_BITS)
