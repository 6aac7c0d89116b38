"""Label schemes (what ids a source writes), class sets (what we train on) and the mappings between them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simreal.errors import LabelError

IGNORE = 255


@dataclass(frozen=True)
class LabelClass:
    id: int
    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True)
class LabelTable:
    """Ids, names and colours of a source scheme (e.g. ``carla-0.9.14``) or a target class set (e.g. ``shared16``)."""

    name: str
    description: str
    classes: tuple[LabelClass, ...]
    aliases: tuple[str, ...] = ()
    ignore_index: int = IGNORE

    def __post_init__(self) -> None:
        ids = [c.id for c in self.classes]
        if len(set(ids)) != len(ids):
            raise LabelError(f"label table {self.name!r} defines an id twice")
        if any(not 0 <= i <= 255 for i in ids):
            raise LabelError(f"label table {self.name!r} has ids outside 0..255")

    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def id_of(self, name: str) -> int:
        for c in self.classes:
            if c.name == name:
                return c.id
        raise LabelError(f"{self.name!r} has no class named {name!r}; classes: {', '.join(self.names)}")

    def name_of(self, class_id: int) -> str:
        for c in self.classes:
            if c.id == class_id:
                return c.name
        return "ignore" if class_id == self.ignore_index else f"<undefined {class_id}>"

    def palette(self) -> np.ndarray:
        """(256, 3) uint8 colour per id; undefined ids and ignore are black."""
        table = np.zeros((256, 3), np.uint8)
        for c in self.classes:
            table[c.id] = c.color
        return table

    def colorize(self, ids: np.ndarray) -> np.ndarray:
        """(..., H, W) ids -> (..., H, W, 3) RGB."""
        return self.palette()[ids]

    def to_attrs(self) -> dict:
        """JSON-able description stored with every frame store."""
        return {
            "name": self.name,
            "ignore_index": self.ignore_index,
            "classes": [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self.classes],
        }

    @classmethod
    def from_dict(cls, data: dict) -> LabelTable:
        classes = tuple(
            LabelClass(int(c["id"]), str(c["name"]), tuple(int(v) for v in c["color"]))  # type: ignore[arg-type]
            for c in data["classes"]
        )
        return cls(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            classes=classes,
            aliases=tuple(data.get("aliases", ()) or ()),
            ignore_index=int(data.get("ignore_index", IGNORE)),
        )


class UnknownLabelIdError(LabelError):
    """A label image holds ids its scheme does not define."""


@dataclass
class RemapReport:
    """Pixels seen per unknown source id (only filled when unknown ids are mapped to ignore)."""

    unknown_pixels: dict[int, int] = field(default_factory=dict)

    def add(self, other: RemapReport) -> None:
        for k, v in other.unknown_pixels.items():
            self.unknown_pixels[k] = self.unknown_pixels.get(k, 0) + v

    @property
    def total_unknown(self) -> int:
        return sum(self.unknown_pixels.values())


@dataclass(frozen=True)
class LabelMapping:
    """Source scheme -> target class set, as a 256-entry lookup table."""

    source: LabelTable
    target: LabelTable
    lut: np.ndarray  # (256,) uint8: target id, or ignore
    defined: np.ndarray  # (256,) bool: id belongs to the source scheme
    eval_merge: dict[int, int] = field(default_factory=dict)  # target id -> target id it is scored as

    @property
    def evaluable_classes(self) -> list[int]:
        """Target classes this source can be scored on: those that receive at least one source id."""
        mapped = set(int(v) for v in self.lut[self.defined]) - {self.target.ignore_index}
        return sorted(mapped)

    def remap(self, ids: np.ndarray, unknown: str = "error", where: str = "") -> tuple[np.ndarray, RemapReport]:
        """Map an array of source ids to target ids without a Python loop over pixels.

        ``unknown="error"`` raises on ids the scheme does not define; ``"ignore"`` maps them to ignore and counts them.
        """
        if ids.dtype != np.uint8:
            if ids.size and (ids.min() < 0 or ids.max() > 255):
                raise UnknownLabelIdError(f"label ids outside 0..255 {where}".strip())
            ids = ids.astype(np.uint8)
        report = RemapReport()
        counts = np.bincount(ids.ravel(), minlength=256)
        bad = np.flatnonzero((counts > 0) & ~self.defined)
        if bad.size:
            found = {int(i): int(counts[i]) for i in bad}
            if unknown != "ignore":
                listing = ", ".join(f"{i} ({n} px)" for i, n in found.items())
                raise UnknownLabelIdError(
                    f"{len(found)} label id(s) not defined in scheme {self.source.name!r}: {listing}"
                    f"{' in ' + where if where else ''}. Use --unknown ignore to map them to ignore (255)."
                )
            report.unknown_pixels = found
        return self.lut[ids], report

    def describe(self) -> list[tuple[int, str, int, str]]:
        """(source id, source name, target id, target name) for every id of the source scheme."""
        return [
            (c.id, c.name, int(self.lut[c.id]), self.target.name_of(int(self.lut[c.id]))) for c in self.source.classes
        ]


def build_mapping(source: LabelTable, target: LabelTable, spec: dict) -> LabelMapping:
    """Build the lookup table from a mapping file's ``map`` (target name -> source ids) and ``ignore`` lists."""
    lut = np.full(256, target.ignore_index, np.uint8)
    defined = np.zeros(256, bool)
    defined[source.ids] = True
    assigned: dict[int, str] = {}
    for target_name, source_ids in (spec.get("map") or {}).items():
        target_id = target.id_of(str(target_name))
        for sid in source_ids:
            sid = int(sid)
            if not defined[sid]:
                raise LabelError(f"mapping {source.name}->{target.name}: id {sid} is not in {source.name!r}")
            if sid in assigned:
                raise LabelError(
                    f"mapping {source.name}->{target.name}: id {sid} mapped to {assigned[sid]!r} and {target_name!r}"
                )
            assigned[sid] = str(target_name)
            lut[sid] = target_id
    ignored = {int(i) for i in spec.get("ignore") or []}
    missing = sorted(set(source.ids) - set(assigned) - ignored)
    if missing:
        raise LabelError(f"mapping {source.name}->{target.name} leaves source ids {missing} neither mapped nor ignored")
    merge = {target.id_of(k): target.id_of(v) for k, v in (spec.get("eval_merge") or {}).items()}
    return LabelMapping(source, target, lut, defined, merge)
