"""One GPU check of everything that needs a GPU to be trusted; prints one table.

    python scripts/gpu_check.py                       # CUDA: full-size configs, about 8 minutes on one H100/H200
    python scripts/gpu_check.py --device cpu --quick  # the same code paths on tiny presets, about a minute on a CPU

Sections (each row runs on its own: a failing row prints its error in the table and the check goes on):

- ``train``: every method (segmenter outer and heldout, sae, lcsae, dpgan, oasis, spade) at its full-size config
  on synthetic batches for a few dozen steps with bf16 + channels_last, then again with torch.compile: img/s,
  peak GPU memory, whether every loss stayed finite (``scripts/bench_train.py``).
- ``ray``: a Ray Train run with one GPU worker (DP-GAN), then the same run asked for twice the steps, which must
  resume from its checkpoint and continue the step count.
- ``translate``: ``simreal translate`` of 256 frames at 512x256 with one GPU model actor against the bare batched
  forward of the same network (``scripts/bench_translate.py``).
- ``synthesis``: generator inference ms/img at 256x512 beside the DP-GAN paper's Table 5 figures on a TITAN RTX
  (``scripts/bench_synthesis.py``).

Nothing is downloaded: segmenter encoders and LC-SAE's outer segmenter are random, SPADE's VGG19 perceptual loss
runs on random weights (same cost as the ImageNet ones). ``--budget-s`` bounds the whole run: rows that would
start after it are listed as skipped; torch.compile rows run last, so they are the first to go.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
# this checkout's simreal and pipelines (also for Ray workers, which inherit PYTHONPATH), and the sibling scripts
sys.path[:0] = [str(REPO), str(REPO / "scripts")]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

from bench_synthesis import benchmark_inference  # noqa: E402
from bench_train import Variant, bench_config, measure, random_vgg19  # noqa: E402
from bench_translate import make_store, measure_translation  # noqa: E402

from simreal.training.config import compose_training_config  # noqa: E402
from simreal.training.registry import load_builtin_methods  # noqa: E402

# DP-GAN paper (Li et al.), supplementary Table 5: inference ms per image on one TITAN RTX; Cityscapes models
# (the parameter counts beside them are the 256x512 Cityscapes configs).
PAPER_MS_TITAN_RTX = {"dpgan": 51.8, "oasis": 60.5, "spade": 70.8}
TRAIN_CASES = (  # (row name, method, preset; None = the method's default full-size preset)
    ("segmenter outer", "segmenter", "outer"),
    ("segmenter heldout", "segmenter", "heldout"),
    ("sae", "sae", None),
    ("lcsae", "lcsae", None),
    ("dpgan", "dpgan", None),
    ("oasis", "oasis", None),
    ("spade", "spade", None),
)
EAGER = Variant("bf16+channels_last", bf16=True, channels_last=True)
COMPILED = Variant("bf16+channels_last+compile", bf16=True, channels_last=True, compile=True)
SECTIONS = ("train", "ray", "translate", "synthesis", "compile")


@dataclass
class Row:
    section: str
    case: str
    status: str = "ok"  # ok | FAILED | skipped
    result: str = ""
    peak_gib: float = math.nan
    note: str = ""
    seconds: float = math.nan  # wall time of the row, set-up included


@dataclass(frozen=True)
class Settings:
    device: torch.device
    quick: bool
    train_steps: int
    warmup: int
    frames: int
    size: tuple[int, int]  # (height, width) of the frames translated and synthesized

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


class Check:
    """Runs rows one by one, each guarded: an exception becomes a FAILED row; past the deadline rows are skipped."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.rows: list[Row] = []

    def run(self, section: str, case: str, body: Callable[[], Row]) -> Row:
        began = time.monotonic()
        if began > self.deadline:
            row = Row(section, case, "skipped", note="time budget spent (--budget-s)")
        else:
            try:
                row = body()
                row.section, row.case = section, case
            except Exception as err:  # one failing row must not hide the others
                frames = traceback.extract_tb(err.__traceback__)
                ours = [frame for frame in frames if Path(frame.filename).resolve().is_relative_to(REPO)]
                where = (ours or frames)[-1]  # the innermost line of this repository that was running
                row = Row(
                    section,
                    case,
                    "FAILED",
                    note=f"{type(err).__name__}: {str(err)[:300]} ({Path(where.filename).name}:{where.lineno})",
                )
            finally:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            row.seconds = time.monotonic() - began
        self.rows.append(row)
        return row


def build_table(rows: Sequence[Row], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for column in ("section", "case", "status", "result", "peak GiB", "s", "note"):
        table.add_column(column, justify="right" if column in ("peak GiB", "s") else "left", overflow="fold")
    for row in rows:
        status = {"ok": "ok", "FAILED": "[bold red]FAILED[/]", "skipped": "[yellow]skipped[/]"}[row.status]
        peak = "-" if math.isnan(row.peak_gib) else f"{row.peak_gib:.1f}"
        seconds = "-" if math.isnan(row.seconds) else f"{row.seconds:.0f}"
        table.add_row(row.section, row.case, status, row.result, peak, seconds, row.note)
    return table


# ------------------------------------------------------------------------------------------ sections
def train_row(method: str, preset: str | None, variant: Variant, settings: Settings, scratch: Path) -> Row:
    spec = load_builtin_methods()[method]
    cfg = bench_config(spec, tiny=settings.quick, scratch=scratch, preset=None if settings.quick else preset)
    full_vgg = OmegaConf.select(compose_training_config(method, []), "loss.vgg", default=None)
    if settings.quick and full_vgg:  # the tiny presets leave the perceptual loss out; its code path is checked too
        cfg.loss.vgg, cfg.loss.vgg_weights = float(full_vgg), random_vgg19(scratch)
    result = measure(spec, cfg, variant, settings.device, settings.train_steps, settings.warmup)
    bad = {name: value for name, value in result["losses"].items() if not math.isfinite(value)}
    if bad:
        raise FloatingPointError(f"non-finite losses {bad}")
    crop = "x".join(str(side) for side in cfg.crop)
    note = f"{variant.name}; batch {result['images']} of {crop}; {len(result['losses'])} losses finite"
    if float(OmegaConf.select(cfg, "loss.vgg", default=0.0) or 0.0) > 0:
        note += "; VGG19 on random weights"
    return Row(
        "",
        "",
        result=f"{result['img_s']:.1f} img/s ({result['it_s']:.2f} it/s)",
        peak_gib=result["peak_gib"],
        note=note,
    )


def start_ray(stack: contextlib.ExitStack) -> Row:
    """A local Ray for the rows that need one, open until ``stack`` closes (the rows reuse a running Ray)."""
    import ray

    from pipelines.ray_runtime import ray_session

    stack.enter_context(ray_session())
    resources = ray.cluster_resources()
    return Row("", "", result=f"{resources.get('GPU', 0):.0f} GPU, {resources.get('CPU', 0):.0f} CPU")


def ray_resume_row(settings: Settings, scratch: Path) -> Row:
    """DP-GAN through Ray Train on one worker (a GPU one on CUDA), then asked for twice the steps: it resumes."""
    from pipelines.train import run_training

    height, width = (256, 512) if settings.cuda else (64, 64)
    store = make_store(scratch / "ray-real.zarr", 16, width, height, "textured")
    out = scratch / "ray-run"
    steps = 2 if settings.quick else 4
    overrides = [
        f"real={store}",
        f"out={out}",
        "launcher=ray",
        "ray.num_workers=1",
        f"ray.use_gpu={str(settings.cuda).lower()}",
        "ray.cpus_per_worker=1",
        "progress=false",
        "tensorboard=false",
        "num_workers=0",
        "log_every=1",
        "sample_every=0",
        f"checkpoint_every={steps}",
    ]
    overrides += ["preset=tiny"] if settings.quick else ["batch_size=4", "ema.bn_batches=2"]
    began = time.perf_counter()
    first = run_training(compose_training_config("dpgan", [*overrides, f"steps={steps}"]))
    second = run_training(compose_training_config("dpgan", [*overrides, f"steps={2 * steps}"]))
    seconds = time.perf_counter() - began
    logged = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    if (first.step, second.step) != (steps, 2 * steps) or logged != list(range(1, 2 * steps + 1)):
        raise RuntimeError(f"steps {first.step} then {second.step}, logged {logged}: the second run did not resume")
    bad = {k: v for k, v in second.losses.items() if not math.isfinite(v)}
    if bad:
        raise FloatingPointError(f"non-finite losses {bad}")
    worker = "1 GPU worker" if settings.cuda else "1 CPU worker"
    config = "tiny" if settings.quick else f"{height}x{width} batch 4"
    return Row(
        "",
        "",
        result=f"{steps} + {steps} steps resumed",
        note=f"dpgan {config}, {worker}; {seconds:.0f} s incl. starting 2 Ray Train jobs",
    )


def translate_row(method: str, settings: Settings, scratch: Path) -> Row:
    height, width = settings.size
    preset = "tiny" if settings.quick else ("cityscapes" if method in ("dpgan", "oasis", "spade") else "full")
    root = scratch / f"translate-{method}"
    root.mkdir()
    rates = measure_translation(
        method, preset, root, frames=settings.frames, batch_size=8, width=width, height=height, device=settings.device
    )
    share = 100 * rates["steady"] / rates["bare"]
    return Row(
        "",
        "",
        result=f"{rates['steady']:.1f} frames/s = {share:.0f}% of bare {rates['bare']:.1f}",
        note=f"{preset}, {rates['frames']:.0f} frames {width}x{height}, 1 actor; incl. start-up "
        f"{rates['piped']:.1f} frames/s (target >= 85% of bare)",
    )


def synthesis_row(method: str, bf16: bool, settings: Settings) -> Row:
    height, width = settings.size
    changes = {"base_channels": 4} if settings.quick else None
    ms = benchmark_inference(
        method,
        settings.device,
        height=height,
        width=width,
        repeats=2 if settings.quick else 10,
        bf16=bf16,
        spec_changes=changes,
    )
    precision = "bf16" if bf16 else "fp32"
    size = "tiny widths" if settings.quick else "full size"
    return Row(
        "",
        "",
        result=f"{ms:.1f} ms/img",
        note=f"{size}, {height}x{width}, batch 1, {precision}; paper {PAPER_MS_TITAN_RTX[method]} ms (TITAN RTX, fp32)",
    )


def run_check(settings: Settings, sections: Sequence[str], budget_s: float) -> list[Row]:
    check = Check(time.monotonic() + budget_s)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        scratch = Path(tmp)
        if "train" in sections:
            for case, method, preset in TRAIN_CASES:
                check.run("train", case, lambda m=method, p=preset: train_row(m, p, EAGER, settings, scratch))
        if "ray" in sections or "translate" in sections:
            with contextlib.ExitStack() as ray_running:  # one Ray instance for both sections
                check.run("ray", "start", lambda: start_ray(ray_running))
                if "ray" in sections:
                    check.run("ray train", "dpgan resume", lambda: ray_resume_row(settings, scratch))
                if "translate" in sections:
                    for method in ("lcsae", "dpgan"):
                        check.run("translate", method, lambda m=method: translate_row(m, settings, scratch))
        if "synthesis" in sections:
            for method in PAPER_MS_TITAN_RTX:
                for bf16 in (False, True) if settings.cuda else (False,):
                    name = f"{method} {'bf16' if bf16 else 'fp32'}"
                    check.run("synthesis", name, lambda m=method, b=bf16: synthesis_row(m, b, settings))
        if "compile" in sections:
            for case, method, preset in TRAIN_CASES:
                check.run(
                    "train", f"{case} compiled", lambda m=method, p=preset: train_row(m, p, COMPILED, settings, scratch)
                )
    return check.rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    parser.add_argument("--quick", action="store_true", help="tiny presets and a few steps (for CPUs and tests)")
    parser.add_argument("--sections", default=None, help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps (default 30; 2 with --quick)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="no row starts after this many seconds")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.sections is None:  # CPU compiles take minutes per network: --quick leaves them out unless asked
        sections = tuple(s for s in SECTIONS if not (args.quick and s == "compile"))
    else:
        sections = tuple(s for s in args.sections.split(",") if s)
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    args.sections = sections
    return args


def main(argv: Sequence[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --device cpu --quick for the CPU smoke version")
    settings = Settings(
        device=device,
        quick=args.quick,
        train_steps=args.steps or (2 if args.quick else 30),
        warmup=1 if args.quick else 5,
        frames=32 if args.quick else 256,
        size=(64, 128) if args.quick else (256, 512),
    )
    sections = args.sections
    began = time.perf_counter()
    rows = run_check(settings, sections, args.budget_s)
    where = torch.cuda.get_device_name(device) if settings.cuda else f"CPU ({torch.get_num_threads()} torch threads)"
    configs = "tiny presets (--quick)" if args.quick else "full-size configs"
    title = f"GPU check on {where}, torch {torch.__version__}, {configs}, {time.perf_counter() - began:.0f} s"
    Console(width=200).print(build_table(rows, title))
    failed = sum(row.status == "FAILED" for row in rows)
    print(f"{len(rows)} rows: {failed} failed, {sum(row.status == 'skipped' for row in rows)} skipped")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=1), encoding="utf-8")
    return rows


if __name__ == "__main__":
    sys.exit(1 if any(row.status == "FAILED" for row in main()) else 0)
