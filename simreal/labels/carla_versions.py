"""Which CARLA tag scheme a server version speaks (the scheme changed in 0.9.10 and again in 0.9.14)."""

from __future__ import annotations

import re

from simreal.errors import LabelError


def parse_version(version: str) -> tuple[int, int, int]:
    """'0.9.14', '0.9.13-1-g8854804f', '0.9.16-dirty' -> (0, 9, 14)."""
    match = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not match:
        raise LabelError(f"cannot read a CARLA version from {version!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def carla_scheme_for_version(version: str) -> str:
    """Name of the tag scheme a CARLA server of this version writes into its semantic camera."""
    parsed = parse_version(version)
    if parsed >= (0, 9, 14):
        return "carla-0.9.14"
    if parsed >= (0, 9, 10):
        return "carla-0.9.13"
    return "carla-0.9.9"
