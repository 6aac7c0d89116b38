"""Bulk translation: the Ray pipeline's frames/s against the bare batched forward pass of the same translator.

    python scripts/bench_translate.py [--method sae|lcsae|dpgan|oasis|spade] [--preset tiny|full] [--frames 256]

Target: the pipeline keeps >= 85% of the bare throughput (reading, decoding, Ray and writing cost <= 15%).
The checkpoint is an untrained one (one training step): speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from pipelines.ray_runtime import ray_session
from pipelines.translate import TranslateJob, run_translate
from simreal.data.store import FrameStore
from simreal.inference import STRUCTURE_TEXTURE
from simreal.sim.frames import render_labelled_frames
from simreal.training.config import compose_training_config
from simreal.training.loop import train
from simreal.training.registry import get_method
from simreal.translate import StyleOptions, load_translator


def make_store(path: Path, frames: int, width: int, height: int, look: str) -> Path:
    distinct = min(frames, 32)  # render a few, repeat them: rendering is not what is measured
    rgb, label = render_labelled_frames(distinct, width=width, height=height, look=look)
    store = FrameStore.create(path, height=height, width=width, shard_size=32)
    for start in range(0, frames, distinct):
        k = min(distinct, frames - start)
        store.append(rgb[:k], label[:k], [{"i": start + i} for i in range(k)])
    return path


def measure_translation(
    method: str,
    preset: str,
    root: Path,
    *,
    frames: int = 256,
    batch_size: int = 8,
    width: int = 512,
    height: int = 256,
    device: torch.device,
) -> dict[str, float]:
    """Frames/s of the bare batched forward on ``device`` and of ``simreal translate``'s Ray pipeline (1 actor).

    The checkpoint is trained for one step in ``root`` with ``preset`` (speed does not depend on the weights); a
    Ray session already running in this process is reused.
    """
    cuda = device.type == "cuda"
    texture = get_method(method).cls.inference_kind == STRUCTURE_TEXTURE
    sim = make_store(root / "sim.zarr", frames, width, height, "flat")
    real = make_store(root / "real.zarr", 32, width, height, "textured")
    roles = {"sim": sim, "real": real} if texture else {"real": real}
    overrides = [f"preset={preset}", "steps=1", "progress=false", "num_workers=0", "batch_size=2",
                 f"out={root / 'run'}", "launcher=local", f"device={device}", "tensorboard=false",
                 *(f"{k}={v}" for k, v in roles.items())]  # fmt: skip
    if method == "lcsae":
        overrides.append("loss.lambda_outer=0")
    if method in ("dpgan", "oasis", "spade"):
        overrides.append("loss.vgg=0")  # the perceptual loss only trains; translation speed does not depend on it
    run = train(compose_training_config(method, overrides)).run_dir
    style = StyleOptions(real, "random") if texture else StyleOptions()

    translator = load_translator(run, device, style, bf16=cuda)
    store = FrameStore.open(sim)
    rgb, label = store.read_range(0, min(frames, 64))
    jobs = [(i, 0) for i in range(len(rgb))]
    translator.translate(rgb[:batch_size], label[:batch_size], jobs[:batch_size], 0)  # warm-up
    if cuda:
        torch.cuda.synchronize()
    began, done = time.perf_counter(), 0
    while done < frames:
        b = done % len(rgb)
        part = slice(b, min(b + batch_size, len(rgb)))
        translator.translate(rgb[part], label[part], jobs[part], 0)
        done += part.stop - part.start
    if cuda:
        torch.cuda.synchronize()
    bare = done / (time.perf_counter() - began)

    with ray_session():
        job = TranslateJob(run, sim, root / "out.zarr", style, batch_size=batch_size, actors=1)
        result = run_translate(job)
    if result.frames != frames:
        raise RuntimeError(f"the pipeline wrote {result.frames} frames, expected {frames}")
    piped = result.frames / result.seconds
    return {"bare": bare, "steady": result.steady_rate or piped, "piped": piped, "frames": result.frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", default="sae")
    parser.add_argument("--preset", default=None, help="training preset (default: full on CUDA, tiny on CPU)")
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", default=None, help="WIDTHxHEIGHT of the frames (default 512x256, 256x128 on CPU)")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    preset = args.preset or ("full" if cuda else "tiny")
    if args.preset is None and args.method in ("dpgan", "oasis", "spade"):
        preset = "cityscapes" if cuda else "tiny"
    width, height = (int(v) for v in (args.size or ("512x256" if cuda else "256x128")).split("x"))
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda:
        torch.set_num_threads(1)  # a CPU model actor gets one core: compare like with like

    with tempfile.TemporaryDirectory(prefix="bench_translate_") as tmp:
        rates = measure_translation(
            args.method, preset, Path(tmp), frames=args.frames, batch_size=args.batch_size, width=width,
            height=height, device=device,
        )  # fmt: skip
    bare, steady, piped = rates["bare"], rates["steady"], rates["piped"]

    name = torch.cuda.get_device_name() if cuda else "CPU"
    table = Table(title=f"{args.method} ({preset}) at {width}x{height}, batch {args.batch_size}, {name}")
    for col in ("path", "frames/s", "share of bare"):
        table.add_column(col, justify="right" if col != "path" else "left")
    table.add_row("bare batched forward (in-memory frames, same device/threads)", f"{bare:.1f}", "100%")
    table.add_row("Ray pipeline, 1 actor, after the first shard", f"{steady:.1f}", f"{100 * steady / bare:.0f}%")
    table.add_row("Ray pipeline, 1 actor, incl. actor start-up", f"{piped:.1f}", f"{100 * piped / bare:.0f}%")
    Console().print(table)


if __name__ == "__main__":
    main()
