"""Training throughput of every registered method: it/s and img/s on synthetic batches.

    python scripts/bench_train.py [--device auto|cpu|cuda] [--steps 20] [--methods segmenter,sae,lcsae] [--threads 1]

On CUDA each method runs its default (full) preset in four variants: fp32, bf16, bf16 + channels_last and
bf16 + channels_last + torch.compile. On a CPU it runs the ``tiny`` preset in fp32 only (bf16 autocast, channels_last
and compile are CUDA-only in the harness). Batches are random tensors of the configured crop size, so data loading
is not measured; images per step count every role (LC-SAE: sim + real crops; its steps alternate D and G, and the
reference SAE counts the images of each). Lazy phases run at their interval, as in training. Path settings a method
needs (e.g. LC-SAE's ``outer_segmenter``) get a randomly initialised network, and so does a VGG19 perceptual loss
(SPADE's); synthesizers whose full preset trains on whole frames get 256x512.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from simreal.labels import get_class_set
from simreal.models.segmenter import build_segmenter, save_segmenter
from simreal.training.config import compose_training_config
from simreal.training.loop import run_phase, seed_everything
from simreal.training.method import TrainContext, iterate_phases
from simreal.training.registry import MethodSpec, load_builtin_methods

CLASS_SET = "shared16"
# Reference SAE speed (specs/reference/models.md §1.1): 25M images in 14 days on 4 V100 GPUs.
REFERENCE_SAE_IMG_S = 25e6 / (14 * 24 * 3600)


@dataclass(frozen=True)
class Variant:
    name: str
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False


CUDA_VARIANTS = (
    Variant("fp32"),
    Variant("bf16", bf16=True),
    Variant("bf16+channels_last", bf16=True, channels_last=True),
    Variant("bf16+channels_last+compile", bf16=True, channels_last=True, compile=True),
)
CPU_VARIANTS = (Variant("fp32"),)


class SyntheticRole:
    """Stands in for a ``FrameDataset``: what methods read from their datasets at construction."""

    def __init__(self, height: int, width: int) -> None:
        self.class_set = get_class_set(CLASS_SET)
        self.evaluable_classes = list(self.class_set.ids)
        self.height, self.width = height, width

    def __len__(self) -> int:
        return 1


def random_segmenter(directory: Path, architecture: str) -> str:
    """A randomly initialised segmenter checkpoint in the layout ``load_segmenter`` reads."""
    net = build_segmenter(architecture, max(get_class_set(CLASS_SET).ids) + 1)
    return str(save_segmenter(net, directory / f"segmenter-{architecture}.pt"))


def random_vgg19(directory: Path) -> str:
    """Randomly initialised VGG19 weights in torchvision's layout: the perceptual loss costs the same as with
    the ImageNet ones, and nothing is downloaded."""
    from torchvision.models.vgg import cfgs, make_layers

    path = directory / "vgg19-random.pth"
    if not path.exists():
        features = make_layers(cfgs["E"])
        torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return str(path)


# Path config keys -> how to provide them: (scratch directory, tiny?) -> value.
PATH_PROVIDERS: dict[str, Callable[[Path, bool], str]] = {
    "outer_segmenter": lambda directory, tiny: random_segmenter(directory, "tiny" if tiny else "outer"),
}
FULL_FRAME = [512, 256]  # the synthesizers' full presets train on whole Cityscapes-size frames (crop null), WxH


def bench_config(
    spec: MethodSpec, tiny: bool, scratch: Path, preset: str | None = None, stores: dict[str, str] | None = None
) -> DictConfig:
    """The method's ``tiny`` (or ``preset``, else default) config, offline: random pretrained parts; its data roles
    read ``stores`` (role -> store path), else nothing (synthetic batches)."""
    overrides = ["preset=tiny"] if tiny else [f"preset={preset}"] if preset else []
    overrides += [f"{role}={(stores or {}).get(role, 'synthetic')}" for role in spec.cls.data_roles]
    overrides += [f"{key}={PATH_PROVIDERS[key](scratch, tiny)}" for key in spec.cls.path_keys if key in PATH_PROVIDERS]
    cfg = compose_training_config(spec.name, overrides)
    if OmegaConf.select(cfg, "model.encoder_weights") is not None:
        cfg.model.encoder_weights = None  # offline: random encoders run at the same speed
    if float(OmegaConf.select(cfg, "loss.vgg", default=0.0) or 0.0) > 0:
        cfg.loss.vgg_weights = random_vgg19(scratch)
    if "crop" in cfg and cfg.crop is None:
        cfg.crop = FULL_FRAME
    return cfg


def synthetic_batch(cfg: DictConfig, roles: tuple[str, ...], device: torch.device) -> dict:
    width, height = (int(side) for side in cfg.crop)  # typed WxH, like store sizes
    batch_size = int(cfg.batch_size)
    n_classes = max(get_class_set(CLASS_SET).ids) + 1
    return {
        role: {
            "image": (torch.rand(batch_size, 3, height, width, device=device) * 2 - 1),
            "label": torch.randint(0, n_classes, (batch_size, height, width), device=device),
            "index": torch.arange(batch_size),
        }
        for role in roles
    }


def measure(spec: MethodSpec, cfg: DictConfig, variant: Variant, device: torch.device, steps: int, warmup: int) -> dict:
    seed_everything(0)
    ctx = TrainContext(device=device, bf16=variant.bf16, channels_last=variant.channels_last, compile=variant.compile)
    height, width = (int(side) for side in cfg.crop)
    datasets = {role: SyntheticRole(height, width) for role in spec.cls.data_roles}
    method = spec.cls(cfg, ctx, datasets)  # type: ignore[arg-type]
    batch = synthetic_batch(cfg, spec.cls.data_roles, device)
    phases = list(method.phases())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    losses: dict[str, float] = {}

    def run(step: int) -> None:
        for phase in iterate_phases(phases, step):
            for name, value in run_phase(method, phase, batch, step, phases).items():
                losses[f"{phase.name}/{name}"] = value

    for step in range(warmup):
        run(step)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for step in range(warmup, warmup + steps):
        run(step)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    images = int(cfg.batch_size) * len(spec.cls.data_roles)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {
        "it_s": steps / elapsed,
        "img_s": steps * images / elapsed,
        "images": images,
        "peak_gib": peak,
        "losses": losses,  # the last value of every phase's losses
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 50 on CUDA, 10 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 10 CUDA, 2 CPU)")
    parser.add_argument("--methods", default=None, help="comma-separated method names (default: all registered)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (busy machines: 1 avoids spinning)")
    parser.add_argument("--preset", default=None, help="a preset every method has (e.g. small)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else args.device)
    if args.device == "auto" and not torch.cuda.is_available():
        device = torch.device("cpu")
    cuda = device.type == "cuda"
    steps = args.steps or (50 if cuda else 10)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 2)
    registered = load_builtin_methods()
    names = args.methods.split(",") if args.methods else sorted(registered)
    unknown = [name for name in names if name not in registered]
    if unknown:
        parser.error(f"unknown methods {unknown}; registered: {', '.join(sorted(registered))}")
    variants = CUDA_VARIANTS if cuda else CPU_VARIANTS
    console = Console()
    where = torch.cuda.get_device_name(device) if cuda else f"CPU ({torch.get_num_threads()} threads)"
    preset = args.preset or ("default (full)" if cuda else "tiny")
    table = Table(title=f"Training throughput on {where}: {preset} presets")
    for column in ("method", "variant", "crop", "img/step", "it/s", "img/s", "ms/step", "peak GiB"):
        table.add_column(column, justify="left" if column in ("method", "variant") else "right")

    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            spec = registered[name]
            cfg = bench_config(spec, tiny=not cuda and not args.preset, scratch=Path(scratch), preset=args.preset)
            for variant in variants:
                try:
                    result = measure(spec, cfg, variant, device, steps, warmup)
                except Exception as err:  # one failing variant (e.g. out of memory) should not hide the rest
                    table.add_row(name, variant.name, "", "", "failed", f"{type(err).__name__}: {str(err)[:60]}")
                    continue
                crop = "x".join(str(side) for side in cfg.crop)
                table.add_row(
                    name,
                    variant.name,
                    crop,
                    str(result["images"]),
                    f"{result['it_s']:.2f}",
                    f"{result['img_s']:.1f}",
                    f"{1000 / result['it_s']:.0f}",
                    f"{result['peak_gib']:.1f}" if cuda else "-",
                )
                if cuda:
                    torch.cuda.empty_cache()
    console.print(table)
    if not cuda:
        console.print(
            "CPU: bf16, channels_last and torch.compile are CUDA-only in the harness; those variants skipped."
        )
    console.print(
        f"Reference SAE: about {REFERENCE_SAE_IMG_S:.0f} img/s on 4 V100 (25M images in 14 days); compare sae/lcsae "
        "img/s at the full preset on one GPU (the goal is at least twice the reference)."
    )


if __name__ == "__main__":
    main()
