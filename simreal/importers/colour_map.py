"""Colour -> id maps for colour-coded label PNGs.

A map is a YAML file (or an equivalent mapping) whose keys are RGB colours and whose values are ids 0-255::

    "128,64,128": 0      # R,G,B
    "#f423e8": 1         # hex RRGGBB
    "0,0,0": 255

Several colours may share an id (merging classes); a colour may appear only once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from simreal.importers.errors import InvalidOption

Colour = tuple[int, int, int]
_HEX = re.compile(r"^#([0-9a-fA-F]{6})$")
_TRIPLE = re.compile(r"^\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*$")


def _parse_colour(key: object, origin: str) -> Colour:
    if isinstance(key, (tuple, list)) and len(key) == 3:
        colour = tuple(int(c) for c in key)
    elif isinstance(key, str) and (hex_match := _HEX.match(key)):
        value = int(hex_match.group(1), 16)
        colour = (value >> 16, (value >> 8) & 255, value & 255)
    elif isinstance(key, str) and (triple := _TRIPLE.match(key)):
        colour = tuple(int(c) for c in triple.groups())
    else:
        raise InvalidOption(f"colour map {origin}: {key!r} is not a colour ('R,G,B' or '#RRGGBB')")
    if not all(0 <= c <= 255 for c in colour):
        raise InvalidOption(f"colour map {origin}: colour {key!r} has a component outside 0-255")
    return colour  # type: ignore[return-value]


def parse_colour_map(source: str | Path | Mapping[object, object]) -> dict[Colour, int]:
    """Read a colour map from a YAML file path or a mapping; reject malformed colours and ids."""
    if isinstance(source, Mapping):
        origin, raw = "(inline)", source
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidOption(f"colour map file {path} does not exist")
        origin, raw = str(path), yaml.safe_load(path.read_text())
        if not isinstance(raw, Mapping):
            raise InvalidOption(f"colour map {path}: expected a mapping of colour -> id at the top level")
    colours: dict[Colour, int] = {}
    for key, value in raw.items():
        colour = _parse_colour(key, origin)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise InvalidOption(
                f"colour map {origin}: id for {key!r} must be an integer 0-255, got {value!r}"
            )
        if colour in colours:
            raise InvalidOption(f"colour map {origin}: colour {colour} is listed twice")
        colours[colour] = value
    if not colours:
        raise InvalidOption(f"colour map {origin} is empty")
    return colours
