"""Procedural collection speed: the bare renderer, the in-process collector, and the Ray pipeline (1, 2 workers).

    python scripts/bench_collect.py [--frames 200] [--size 512x256]

All rows render at the store size, so the pipeline's overhead over the bare renderer is visible directly.
Filtering is off for the throughput rows (every frame kept), so frames/s counts rendered = written frames.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
from rich.console import Console
from rich.table import Table

from pipelines.collect import CollectJob, run_collect
from pipelines.ray_runtime import ray_session
from simreal.collect.collector import SourceSpec, StreamCollector
from simreal.collect.filters import FilterConfig
from simreal.data.convert import FrameSpec
from simreal.data.resize import parse_size
from simreal.sim import ProceduralSource


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--size", default="512x256")
    parser.add_argument("--look", default="flat")
    args = parser.parse_args()
    width, height = parse_size(args.size)
    params = dict(width=width, height=height, look=args.look, capture_every=2, seed=0)
    spec = FrameSpec(size=(width, height))
    no_filter = FilterConfig(enabled=())
    rows = []

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cv2.setNumThreads(1)
    with ProceduralSource(**params) as source:
        frames = source.frames()
        next(frames)  # world generation is not per-frame work
        start = time.perf_counter()
        for _ in range(args.frames):
            next(frames)
        bare = args.frames / (time.perf_counter() - start)
    rows.append(("bare renderer, 1 core", bare))

    collector = StreamCollector(SourceSpec("procedural", params), spec, no_filter)
    collector.start()
    collector.collect(1)
    start = time.perf_counter()
    collector.collect(args.frames)
    rows.append(("collector in-process (decode, remap, resize), 1 core", args.frames / (time.perf_counter() - start)))
    collector.close()

    tmp = Path(tempfile.mkdtemp(prefix="bench_collect_"))
    with ray_session(num_cpus=2):  # Ray start-up is paid once, outside the timed runs
        try:
            for workers in (1, 2):
                job = CollectJob(
                    out=tmp / f"w{workers}.zarr",
                    frames=args.frames,
                    sources=[SourceSpec("procedural", dict(params), stream=i) for i in range(workers)],
                    frame_spec=spec,
                    filter=no_filter,
                )
                result = run_collect(job)
                name = f"Ray pipeline, {workers} worker(s), incl. actor start + writing"
                rows.append((name, result.frames / result.seconds))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    table = Table(title=f"procedural collection at {width}x{height}, look={args.look}, {args.frames} frames")
    table.add_column("stage")
    table.add_column("frames/s", justify="right")
    table.add_column("vs bare renderer", justify="right")
    for name, fps in rows:
        table.add_row(name, f"{fps:.1f}", f"{fps / bare:.2f}x")
    Console().print(table)
    Console().print("Ray rows include actor creation and world generation, not Ray's own start-up.")


if __name__ == "__main__":
    main()
