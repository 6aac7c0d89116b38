"""One camera stream turned into store-ready frames: capture -> decode -> filter -> remap -> resize.

Both backends run through this same code; the collection pipeline wraps one `StreamCollector` per Ray actor.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simreal.collect.decode import decode_sensor_frame
from simreal.collect.filters import KEPT, SOURCE_EVENTS, FilterConfig, FrameFilter, check_filter_fits, traffic_ids
from simreal.collect.frame import FrameSource
from simreal.data.convert import FrameSpec, prepare_frame
from simreal.errors import CollectionError, ConfigError
from simreal.labels import LabelMapping, get_class_set, get_mapping

log = logging.getLogger(__name__)


@dataclass
class SourceSpec:
    """Everything needed to open a source inside a worker process (plain values, so it pickles)."""

    backend: str  # "procedural" | "carla"
    params: dict[str, Any] = field(default_factory=dict)
    stream: int = 0


def open_source(spec: SourceSpec) -> FrameSource:
    if spec.backend == "procedural":
        from simreal.sim import ProceduralSource

        return ProceduralSource(stream=spec.stream, **spec.params)
    if spec.backend == "carla":
        from simreal.collect.carla_source import CarlaSettings, CarlaSource

        return CarlaSource(CarlaSettings(**spec.params), stream=spec.stream)
    raise ConfigError(f"unknown backend {spec.backend!r}; choose 'procedural' or 'carla'")


@dataclass
class Batch:
    rgb: np.ndarray
    label: np.ndarray
    source_label: np.ndarray | None
    provenance: list[dict[str, Any]]


class StreamCollector:
    """Pulls frames from one source until it has as many kept frames as asked for.

    ``close()`` may be called from another thread while ``collect()`` runs (a threaded Ray actor): it asks the
    source to stop at its next tick, waits for ``collect()`` to return, then releases the source. When the source
    fails, ``collect()`` releases it at once, before the error reaches the caller.
    """

    def __init__(
        self,
        source: SourceSpec,
        frame_spec: FrameSpec,
        filter_config: FilterConfig,
        class_set: str = "shared16",
        expected_hw: tuple[int, int] | None = None,
    ) -> None:
        self.source_spec = source
        self.frame_spec = frame_spec
        self.class_set = class_set
        self.expected_hw = expected_hw
        target = get_class_set(class_set)
        check_filter_fits(filter_config, target)
        self.filter = FrameFilter(filter_config, traffic_ids(target), target.ignore_index)
        self.captured = 0
        self._mappings: dict[str, LabelMapping] = {}
        self._source: FrameSource | None = None
        self._frames = None
        self._source_stats: dict[str, int] = {}
        self._busy = threading.Lock()  # held by collect() and by the release of the source
        self._stopping = threading.Event()

    def start(self, last_kept_rgb: np.ndarray | None = None) -> None:
        """Open the source (connects to CARLA, builds the procedural world); errors surface here."""
        with self._busy:
            if self._stopping.is_set():  # closed before it started: open nothing
                return
            source = open_source(self.source_spec)
            self._source_stats = getattr(source, "stats", {})  # only the CARLA source keeps stats
            source.__enter__()
            self._source, self._frames = source, source.frames()
        if last_kept_rgb is not None:
            self.filter.remember(last_kept_rgb)

    def close(self, wait_s: float = 60.0) -> None:
        """Release the source (CARLA actors destroyed, server settings restored), stopping a collect() in flight."""
        self._stopping.set()
        request_stop = getattr(self._source, "request_stop", None)
        if request_stop is not None:
            request_stop()
        if not self._busy.acquire(timeout=wait_s):
            log.warning("collect() did not stop within %gs; the source is left to the process's end", wait_s)
            return
        try:
            self._release()
        finally:
            self._busy.release()

    def _release(self) -> None:
        if self._source is not None:
            source, self._source, self._frames = self._source, None, None
            source.__exit__(None, None, None)

    def collect(self, count: int) -> Batch:
        with self._busy:
            if self._frames is None:
                raise RuntimeError("StreamCollector.start() must be called before collect() (and not after close())")
            try:
                return self._collect(count)
            except BaseException:
                self._release()  # a failed source is released now, not when the caller gets round to close()
                raise

    def collect_counted(self, count: int) -> tuple[Batch, Counter]:
        """``collect(count)`` and the counts right after it (one call: no other call can run in between)."""
        return self.collect(count), self.counts()

    def _collect(self, count: int) -> Batch:
        rgbs, labels, sources, provenance = [], [], [], []
        while len(rgbs) < count:
            if self._stopping.is_set():
                raise CollectionError(f"{self.source_spec.backend} stream {self.source_spec.stream} stopped on request")
            frame = next(self._frames)
            self.captured += 1
            rgb, tags = decode_sensor_frame(frame)
            expected = self.expected_hw or (
                int(frame.meta.get("height", rgb.shape[0])),
                int(frame.meta.get("width", rgb.shape[1])),
            )
            if self.filter.check_sizes(rgb.shape[:2], tags.shape[:2], expected) != KEPT:
                self._source.reject()
                continue
            mapping = self._mapping(str(frame.meta["tag_scheme"]))
            where = f"{self.source_spec.backend} stream {self.source_spec.stream} frame {frame.meta.get('frame')}"
            out_rgb, label, source, _ = prepare_frame(rgb, tags, mapping, self.frame_spec, where=where)
            if self.filter.check(out_rgb, label) != KEPT:
                self._source.reject()
                continue
            rgbs.append(out_rgb)
            labels.append(label)
            sources.append(source)
            provenance.append({**frame.meta, "split": "train"})
        return Batch(
            np.stack(rgbs),
            np.stack(labels),
            np.stack(sources) if self.frame_spec.keep_source_label else None,
            provenance,
        )

    def _mapping(self, scheme: str) -> LabelMapping:
        # CARLA reports its scheme per frame (it follows the server version), so map lazily per scheme.
        if scheme not in self._mappings:
            self._mappings[scheme] = get_mapping(scheme, self.class_set)
        return self._mappings[scheme]

    def counts(self) -> Counter:
        """Filter verdicts by reason, plus what a CARLA source did about runs of dropped frames."""
        counts = Counter(self.filter.counts)
        stats = self._source_stats
        counts.update({event: stats[event] for event in SOURCE_EVENTS if stats.get(event)})
        return counts
