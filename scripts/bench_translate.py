"""Bulk translation: the Ray pipeline's frames/s against the bare batched forward pass of the same translator.

    python scripts/bench_translate.py [--method sae|lcsae|dpgan|oasis|spade] [--preset tiny|full] [--frames 256]

Target: the pipeline keeps >= 85% of the bare throughput (reading, decoding, Ray and writing cost <= 15%).
The checkpoint is an untrained one (one training step): speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from simreal.data.store import FrameStore
from simreal.inference import STRUCTURE_TEXTURE
from simreal.training.loop import train
from simreal.training.registry import get_method
from simreal.translate import StyleOptions, Translator, load_translator


def make_store(path: Path, frames: int, width: int, height: int, seed: int = 0) -> Path:
    """A store of blocky synthetic frames (random class blocks, a colour per class plus noise): speed does not depend
    on the content, and no renderer (OpenCV) is needed where the GPU check runs."""
    rng = np.random.default_rng(seed)
    distinct = min(frames, 8)
    blocks = rng.integers(0, 16, (distinct, max(1, height // 16), max(1, width // 16)), dtype=np.uint8)
    label = np.repeat(np.repeat(blocks, 16, axis=1), 16, axis=2)[:, :height, :width]
    label = np.pad(label, ((0, 0), (0, height - label.shape[1]), (0, width - label.shape[2])), mode="edge")
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    noise = rng.integers(-20, 21, (distinct, height, width, 3))
    rgb = np.clip(palette[label].astype(int) + noise, 0, 255).astype(np.uint8)
    store = FrameStore.create(path, height=height, width=width, shard_size=32)
    for start in range(0, frames, distinct):
        k = min(distinct, frames - start)
        store.append(rgb[:k], label[:k], [{"i": start + i} for i in range(k)])
    return path


@dataclass
class TranslationRun:
    """An untrained (one step) run of ``method`` and the stores it translates: speed does not depend on weights."""

    method: str
    run: Path
    sim: Path
    style: StyleOptions
    frames: int


def prepare_translation(
    method: str, preset: str, root: Path, *, frames: int, width: int, height: int, device: torch.device
) -> TranslationRun:
    """A one-step run of ``method`` at ``preset`` ("tiny" or a full-size one) on synthetic stores of the frame size,
    offline (random segmenters, VGG and encoders, as ``bench_train`` builds them)."""
    from bench_train import bench_config

    spec = get_method(method)
    sim = make_store(root / "sim.zarr", frames, width, height, seed=1)
    real = make_store(root / "real.zarr", 32, width, height, seed=2)
    stores = {"sim": str(sim), "real": str(real), "data": str(real)}
    cfg = bench_config(spec, preset == "tiny", root, None if preset == "tiny" else preset, stores)
    cfg.merge_with(OmegaConf.create({
        "steps": 1, "progress": False, "num_workers": 0, "batch_size": 2, "out": str(root / "run"),
        "launcher": "local", "device": str(device), "tensorboard": False, "sample_every": 0,
    }))  # fmt: skip
    if "crop" in cfg and cfg.crop is not None and (cfg.crop[0] > width or cfg.crop[1] > height):
        cfg.crop = [width, height]
    run = train(cfg).run_dir
    texture = spec.cls.inference_kind == STRUCTURE_TEXTURE
    style = StyleOptions(real, "random") if texture else StyleOptions()
    return TranslationRun(method, run, sim, style, frames)


def bare_rate(prepared: TranslationRun, device: torch.device, batch_size: int = 8) -> float:
    """Frames/s of the translator's batched forward on in-memory frames (no reading, writing or Ray)."""
    cuda = device.type == "cuda"
    translator: Translator = load_translator(prepared.run, device, prepared.style, bf16=cuda)
    rgb, label = FrameStore.open(prepared.sim).read_range(0, min(prepared.frames, 64))
    jobs = [(i, 0) for i in range(len(rgb))]
    translator.translate(rgb[:batch_size], label[:batch_size], jobs[:batch_size], 0)  # warm-up
    if cuda:
        torch.cuda.synchronize()
    began, done = time.perf_counter(), 0
    while done < prepared.frames:
        b = done % len(rgb)
        part = slice(b, min(b + batch_size, len(rgb)))
        translator.translate(rgb[part], label[part], jobs[part], 0)
        done += part.stop - part.start
    if cuda:
        torch.cuda.synchronize()
    return done / (time.perf_counter() - began)


def pipeline_rates(prepared: TranslationRun, out: Path, batch_size: int = 8) -> dict[str, float]:
    """``simreal translate``'s Ray pipeline with one model actor: steady and start-up-included frames/s. A Ray
    session already running in this process is reused."""
    from pipelines.ray_runtime import ray_session
    from pipelines.translate import TranslateJob, run_translate

    with ray_session():
        job = TranslateJob(prepared.run, prepared.sim, out, prepared.style, batch_size=batch_size, actors=1)
        result = run_translate(job)
    if result.frames != prepared.frames:
        raise RuntimeError(f"the pipeline wrote {result.frames} frames, expected {prepared.frames}")
    piped = result.frames / result.seconds
    return {"steady": result.steady_rate or piped, "piped": piped, "frames": result.frames}


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
    """Frames/s of the bare batched forward on ``device`` and of ``simreal translate``'s Ray pipeline (1 actor)."""
    prepared = prepare_translation(method, preset, root, frames=frames, width=width, height=height, device=device)
    bare = bare_rate(prepared, device, batch_size)
    return {"bare": bare, **pipeline_rates(prepared, root / "out.zarr", batch_size)}


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

    from rich.console import Console
    from rich.table import Table

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
