"""Frame store vs PNG files: write and read throughput at 512x256, and random-access reads for training.

    python scripts/bench_store.py [--frames 256] [--dir /tmp/bench_store]

Frames come from the procedural world (textured look), so compression sees street-like content.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from simreal.data.store import FrameStore
from simreal.sim.frames import render_labelled_frames


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench_store"))
    parser.add_argument("--random-reads", type=int, default=200)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    rgb, label = render_labelled_frames(args.frames, look="textured")
    n = len(rgb)
    raw_mb = (rgb.nbytes + label.nbytes) / 1e6
    prov = [{"i": i} for i in range(n)]
    rng = np.random.default_rng(0)
    order = rng.integers(0, n, args.random_reads)

    store_path = args.dir / "frames.zarr"

    def write_store() -> None:
        store = FrameStore.create(store_path, height=256, width=512, shard_size=32)
        for s in range(0, n, 32):
            store.append(rgb[s : s + 32], label[s : s + 32], prov[s : s + 32])

    png_dir = args.dir / "png"

    def write_png() -> None:
        png_dir.mkdir()
        for i in range(n):
            cv2.imwrite(str(png_dir / f"{i:06d}_rgb.png"), cv2.cvtColor(rgb[i], cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(png_dir / f"{i:06d}_label.png"), label[i])

    def read_store_seq() -> None:
        store = FrameStore.open(store_path)
        for s in range(0, n, 32):
            store.read_range(s, s + 32)

    def read_png(indices) -> None:  # type: ignore[no-untyped-def]
        for i in indices:
            cv2.cvtColor(cv2.imread(str(png_dir / f"{i:06d}_rgb.png")), cv2.COLOR_BGR2RGB)
            cv2.imread(str(png_dir / f"{i:06d}_label.png"), cv2.IMREAD_UNCHANGED)

    def read_store_random() -> None:
        store = FrameStore.open(store_path)
        for i in order:
            store.rgb(int(i))
            store.label(int(i))

    rows = []
    t = timed(write_store)
    rows.append(("write", "frame store (zarr, zstd)", n / t, raw_mb / t, dir_bytes(store_path) / 1e6))
    t = timed(write_png)
    rows.append(("write", "PNG files", n / t, raw_mb / t, dir_bytes(png_dir) / 1e6))
    t = timed(read_store_seq)
    rows.append(("read sequential", "frame store", n / t, raw_mb / t, None))
    t = timed(lambda: read_png(range(n)))
    rows.append(("read sequential", "PNG files", n / t, raw_mb / t, None))
    per_frame_mb = raw_mb / n
    t = timed(read_store_random)
    rows.append(("read random", "frame store", len(order) / t, len(order) * per_frame_mb / t, None))
    t = timed(lambda: read_png(order))
    rows.append(("read random", "PNG files", len(order) / t, len(order) * per_frame_mb / t, None))

    table = Table(title=f"{n} frames 512x256 (RGB + label), {raw_mb:.0f} MB raw")
    for col in ("operation", "format", "frames/s", "MB/s (raw)", "on disk MB"):
        table.add_column(col, justify="right" if col != "format" else "left")
    for op, fmt, fps, mbs, disk in rows:
        table.add_row(op, fmt, f"{fps:.0f}", f"{mbs:.0f}", f"{disk:.1f}" if disk is not None else "")
    Console().print(table)


if __name__ == "__main__":
    main()
