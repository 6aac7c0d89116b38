"""Speed of the label-to-image synthesizers: inference ms/img at full size, tiny-preset training img/s.

    python scripts/bench_synthesis.py [--device cpu|cuda] [--height 256 --width 512] [--repeats 3] [--train-steps 6]

Inference uses randomly initialised full-size generators (speed does not depend on the weights) in eval mode
under ``no_grad`` (bf16 autocast on CUDA with ``--bf16``). The papers report 51.8 ms (DP-GAN), 60.5 ms (OASIS) and
70.8 ms (SPADE) per 256x512 image on a TITAN RTX.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from simreal.device import autocast
from simreal.models.spade_blocks import one_hot_labels
from simreal.training.registry import get_method

FULL_SIZE_SPECS = {  # the references' Cityscapes settings, for a class set of ``num_classes``
    "dpgan": lambda n: {"num_classes": n},
    "oasis": lambda n: {"num_classes": n},
    "spade": lambda n: {"num_classes": n, "num_upsampling": "more"},
}


@torch.no_grad()
def benchmark_inference(
    method: str,
    device: str | torch.device = "cpu",
    *,
    height: int = 256,
    width: int = 512,
    batch_size: int = 1,
    num_classes: int = 16,
    repeats: int = 3,
    bf16: bool = False,
    spec_changes: dict | None = None,
) -> float:
    """Best-of-``repeats`` milliseconds per image of the full-size ``method`` generator on ``device``
    (``spec_changes``, e.g. ``{"base_channels": 4}``, shrinks it for smoke runs)."""
    device = torch.device(device)
    spec = {**FULL_SIZE_SPECS[method](num_classes), **(spec_changes or {})}
    generator = get_method(method).cls.generator_from_spec(spec).to(device).eval()
    labels = torch.randint(0, num_classes, (batch_size, height, width), generator=torch.Generator().manual_seed(0))
    segmap = one_hot_labels(labels, num_classes).to(device)
    z = torch.randn(batch_size, generator.spec.z_dim).to(device) if method != "spade" else None
    times = []
    for _ in range(repeats + 1):  # the first pass warms up allocators / cudnn
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with autocast(device, bf16):
            generator(segmap, z)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times[1:]) * 1000 / batch_size


def benchmark_training(method: str, steps: int = 6) -> float:
    """Images per second of ``simreal train <method> preset=tiny`` on the CPU (steady state: first step skipped)."""
    from simreal.data.store import FrameStore
    from simreal.training.config import compose_training_config
    from simreal.training.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        store = FrameStore.create(Path(tmp) / "real", height=64, width=64)
        store.append(
            rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8),
            rng.integers(0, 16, (8, 64, 64)).astype(np.uint8),
            [{} for _ in range(8)],
        )
        out = Path(tmp) / "run"
        overrides = [f"real={Path(tmp) / 'real'}", "preset=tiny", f"steps={steps}", f"out={out}", "sample_every=0"]
        cfg = compose_training_config(method, [*overrides, "device=cpu", "checkpoint_every=1000"])
        train(cfg)
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return statistics.median(r["it_s"] for r in records[1:]) * int(cfg.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--train-steps", type=int, default=6, help="0 skips the training benchmark")
    parser.add_argument("--methods", nargs="+", default=list(FULL_SIZE_SPECS))
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, device: {args.device}")
    print(f"{'method':8} {'ms/img ' + str(args.height) + 'x' + str(args.width):>18} {'train img/s (tiny, CPU)':>24}")
    for method in args.methods:
        ms = benchmark_inference(
            method,
            args.device,
            height=args.height,
            width=args.width,
            batch_size=args.batch_size,
            repeats=args.repeats,
            bf16=args.bf16,
        )
        rate = f"{benchmark_training(method, args.train_steps):.1f}" if args.train_steps > 0 else "-"
        print(f"{method:8} {ms:18.1f} {rate:>24}")


if __name__ == "__main__":
    main()
