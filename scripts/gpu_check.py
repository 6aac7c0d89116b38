"""One GPU check of everything that needs a GPU to be trusted; prints one table and writes it as JSON.

    scripts/gpu_run.sh                                # on a lent GPU machine (only python3 + torch there)
    python scripts/gpu_check.py                       # CUDA: full-size configs, within about 6 minutes on an H100
    python scripts/gpu_check.py --device cpu --quick  # the same code paths on tiny presets, on a CPU

Sections, in the order they run (each row runs on its own: a failing row is reported and the check goes on; a row
whose dependency is not importable is skipped, saying which; rows that would start after ``--budget-s`` are skipped):

- ``train``: every registered method (the segmenter as the outer and the held-out one) at its full-size config on
  synthetic batches, bf16 + channels_last: img/s, peak GPU memory, whether every loss stayed finite
  (``scripts/bench_train.py``).
- ``translate``: every registered translating method, one step trained, then its batched forward on in-memory
  frames at 512x256 (frames/s); with Ray also ``simreal translate``'s pipeline with one GPU model actor
  (``scripts/bench_translate.py``).
- ``synthesis``: generator inference ms/img at 256x512 beside the DP-GAN paper's Table 5 figures on a TITAN RTX
  (``scripts/bench_synthesis.py``).
- ``ray``: a Ray Train run with one GPU worker (DP-GAN), then the same run asked for twice the steps, which must
  resume from its checkpoint and continue the step count (needs Ray).
- ``compile``: the train rows again with torch.compile (last: the first rows the budget drops).

Nothing is downloaded: segmenter encoders and the outer segmenters are random, SPADE's VGG19 perceptual loss runs
on random weights (same cost as the ImageNet ones). Only torch is imported before a row needs more.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# this checkout's simreal and pipelines (also for Ray workers, which inherit PYTHONPATH), and the sibling scripts
sys.path[:0] = [str(REPO), str(REPO / "scripts")]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

# DP-GAN paper (Li et al.), supplementary Table 5: inference ms per image on one TITAN RTX; Cityscapes models
# (the parameter counts beside them are the 256x512 Cityscapes configs).
PAPER_MS_TITAN_RTX = {"dpgan": 51.8, "oasis": 60.5, "spade": 70.8}
SEGMENTER_PRESETS = ("outer", "heldout")  # the segmenter is trained as both: the loss's and the scorer's
TRAIN_NEEDS = ("numpy", "omegaconf", "hydra", "segmentation_models_pytorch", "zarr")
SECTIONS = ("train", "translate", "synthesis", "ray", "compile")


@dataclass
class Row:
    section: str
    case: str
    status: str = "ok"  # ok | skipped | failed
    result: str = ""
    figures: dict[str, float] = field(default_factory=dict)  # the row's numbers, for the JSON
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


class NotImportable(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def require(*modules: str) -> None:
    """Skip the row (NotImportable) unless every module can be imported here."""
    for name in modules:
        if importlib.util.find_spec(name) is None:
            raise NotImportable(name)


class Check:
    """Runs rows one by one, each guarded: an exception becomes a failed row, a module that cannot be imported a
    skipped one; past the deadline rows are skipped. The rows so far are written to ``json_path`` after each."""

    def __init__(self, deadline: float, json_path: Path | None = None) -> None:
        self.deadline = deadline
        self.json_path = json_path
        self.rows: list[Row] = []

    def run(self, section: str, case: str, body: Callable[[], Row], needs: Sequence[str] = ()) -> Row:
        began = time.monotonic()
        if began > self.deadline:
            row = Row(section, case, "skipped", note="time budget spent (--budget-s)")
        else:
            try:
                require(*needs)
                row = body()
                row.section, row.case = section, case
            except (NotImportable, ModuleNotFoundError) as err:
                row = Row(section, case, "skipped", note=f"{err.name} not importable")
            except Exception as err:  # one failing row must not hide the others
                frames = traceback.extract_tb(err.__traceback__)
                ours = [frame for frame in frames if Path(frame.filename).resolve().is_relative_to(REPO)]
                where = (ours or frames)[-1]  # the innermost line of this repository that was running
                row = Row(
                    section,
                    case,
                    "failed",
                    note=f"{type(err).__name__}: {str(err)[:300]} ({Path(where.filename).name}:{where.lineno})",
                )
            finally:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            row.seconds = time.monotonic() - began
        self.rows.append(row)
        self.save()
        return row

    def save(self) -> None:
        if self.json_path is not None:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.json_path.write_text(json.dumps([row_record(row) for row in self.rows], indent=1), encoding="utf-8")


def row_record(row: Row) -> dict:
    """A row as JSON: NaN becomes null."""
    record = asdict(row)
    record["seconds"] = None if math.isnan(row.seconds) else round(row.seconds, 2)
    record["figures"] = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.figures.items()}
    return record


def format_table(rows: Sequence[Row], title: str) -> str:
    """The rows as a plain-text table (no terminal needed, nothing cut)."""
    header = ("section", "case", "status", "result", "peak GiB", "s", "note")
    lines = [
        (
            row.section,
            row.case,
            row.status,
            row.result,
            "-" if math.isnan(row.figures.get("peak_gib", math.nan)) else f"{row.figures['peak_gib']:.1f}",
            "-" if math.isnan(row.seconds) else f"{row.seconds:.0f}",
            row.note,
        )
        for row in rows
    ]
    widths = [max(len(str(cells[i])) for cells in [header, *lines]) for i in range(len(header) - 1)]
    out = [title]
    for cells in [header, *lines]:
        out.append(
            "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=False)) + f"  {cells[-1]}"
        )
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ sections
def registered_methods() -> dict:
    """Every registered method that ships its config (``configs/train/<name>.yaml``): a method is a module, a config
    and a registry entry, so one added later is checked without editing this script (methods a test registers for
    itself, with no config, are not)."""
    from simreal.config import config_dir
    from simreal.training.registry import load_builtin_methods

    train = config_dir() / "train"
    return {name: spec for name, spec in load_builtin_methods().items() if (train / f"{name}.yaml").is_file()}


def train_cases() -> list[tuple[str, str, str | None]]:
    """(row name, method, preset; None = the method's default full-size preset) for every registered method."""
    cases: list[tuple[str, str, str | None]] = []
    for name in sorted(registered_methods()):
        if name == "segmenter":
            cases += [(f"segmenter {preset}", name, preset) for preset in SEGMENTER_PRESETS]
        else:
            cases.append((name, name, None))
    return cases


def translating_methods() -> list[str]:
    from simreal.inference import IMAGE_TO_IMAGE, LABEL_TO_IMAGE, STRUCTURE_TEXTURE

    kinds = (STRUCTURE_TEXTURE, IMAGE_TO_IMAGE, LABEL_TO_IMAGE)
    return [name for name, spec in sorted(registered_methods().items()) if spec.cls.inference_kind in kinds]


def train_row(method: str, preset: str | None, compiled: bool, settings: Settings, scratch: Path) -> Row:
    from bench_train import Variant, bench_config, measure, random_vgg19
    from omegaconf import OmegaConf

    from simreal.training.config import compose_training_config

    name = "bf16+channels_last+compile" if compiled else "bf16+channels_last"
    variant = Variant(name, bf16=True, channels_last=True, compile=compiled)
    spec = registered_methods()[method]
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
        figures={"img_s": result["img_s"], "it_s": result["it_s"], "peak_gib": result["peak_gib"]},
        note=note,
    )


def translate_row(method: str, settings: Settings, scratch: Path) -> Row:
    from bench_translate import bare_rate, pipeline_rates, prepare_translation

    height, width = settings.size
    preset = "tiny" if settings.quick else ("cityscapes" if method in ("dpgan", "oasis", "spade") else None)
    root = scratch / f"translate-{method}"
    root.mkdir()
    prepared = prepare_translation(
        method, preset or "full", root, frames=settings.frames, width=width, height=height, device=settings.device
    )
    bare = bare_rate(prepared, settings.device)
    figures = {"bare_frames_s": bare}
    result = f"{bare:.1f} frames/s bare"
    note = f"{preset or 'default'} preset, {prepared.frames} frames {width}x{height}, batch 8"
    if importlib.util.find_spec("ray") is None:
        note += "; pipeline not measured: ray not importable"
    else:
        rates = pipeline_rates(prepared, root / "out.zarr")
        figures.update({"pipeline_frames_s": rates["steady"], "pipeline_with_start_frames_s": rates["piped"]})
        result += f"; pipeline {rates['steady']:.1f} = {100 * rates['steady'] / bare:.0f}% of bare"
        note += f", 1 actor; incl. start-up {rates['piped']:.1f} frames/s (target >= 85% of bare)"
    return Row("", "", result=result, figures=figures, note=note)


def synthesis_row(method: str, bf16: bool, settings: Settings) -> Row:
    from bench_synthesis import benchmark_inference

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
        figures={"ms_per_img": ms, "paper_ms_titan_rtx": PAPER_MS_TITAN_RTX[method]},
        note=f"{size}, {height}x{width}, batch 1, {precision}; paper {PAPER_MS_TITAN_RTX[method]} ms (TITAN RTX, fp32)",
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
    from bench_translate import make_store

    from pipelines.train import run_training
    from simreal.training.config import compose_training_config

    height, width = (256, 512) if settings.cuda else (64, 64)
    store = make_store(scratch / "ray-real.zarr", 16, width, height)
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
        figures={"seconds": seconds},
        note=f"dpgan {config}, {worker}; {seconds:.0f} s incl. starting 2 Ray Train jobs",
    )


def environment_row(settings: Settings) -> Row:
    """What this machine offers the check: Python, torch, the device, and which optional modules import."""
    probed = ("numpy", "zarr", "hydra", "omegaconf", "segmentation_models_pytorch", "torchvision", "ray", "cv2")
    missing = [name for name in probed if importlib.util.find_spec(name) is None]
    where = torch.cuda.get_device_name(settings.device) if settings.cuda else "CPU"
    return Row(
        "",
        "",
        result=f"Python {platform.python_version()}, torch {torch.__version__}, {where}",
        note=f"not importable: {', '.join(missing)}" if missing else "every optional module importable",
    )


def run_check(settings: Settings, sections: Sequence[str], budget_s: float, json_path: Path | None = None) -> list[Row]:
    check = Check(time.monotonic() + budget_s, json_path)
    check.run("environment", "machine", lambda: environment_row(settings))
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        scratch = Path(tmp)
        cases = _listed(check, "train", train_cases) if {"train", "compile"} & set(sections) else []
        if "train" in sections:
            for case, method, preset in cases:
                check.run("train", case, lambda m=method, p=preset: train_row(m, p, False, settings, scratch))
        if "translate" in sections:
            for method in _listed(check, "translate", translating_methods):
                check.run("translate", method, lambda m=method: translate_row(m, settings, scratch), TRAIN_NEEDS)
        if "synthesis" in sections:
            for method in PAPER_MS_TITAN_RTX:
                for bf16 in (False, True) if settings.cuda else (False,):
                    name = f"{method} {'bf16' if bf16 else 'fp32'}"
                    check.run("synthesis", name, lambda m=method, b=bf16: synthesis_row(m, b, settings), TRAIN_NEEDS)
        if "ray" in sections:
            with contextlib.ExitStack() as ray_running:
                started = check.run("ray", "start", lambda: start_ray(ray_running), ("ray",))
                if started.status == "ok":
                    check.run("ray train", "dpgan resume", lambda: ray_resume_row(settings, scratch))
                else:
                    check.run("ray train", "dpgan resume", lambda: Row("", "", "skipped", note=started.note))
        if "compile" in sections:
            for case, method, preset in cases:
                check.run(
                    "train", f"{case} compiled", lambda m=method, p=preset: train_row(m, p, True, settings, scratch)
                )
    return check.rows


def _listed(check: Check, section: str, listing: Callable[[], list]) -> list:
    """The registry's list for a section, or one skipped row saying why it cannot be read here."""
    try:
        require(*TRAIN_NEEDS)
        return listing()
    except (NotImportable, ModuleNotFoundError) as err:
        missing = NotImportable(err.name or "a module")

        def unlisted() -> Row:
            raise missing

        check.run(section, "every registered method", unlisted)
        return []


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    parser.add_argument("--quick", action="store_true", help="tiny presets and a few steps (for CPUs and tests)")
    parser.add_argument("--sections", default=None, help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps (default 20; 2 with --quick)")
    parser.add_argument("--budget-s", type=float, default=360.0, help="no row starts after this many seconds")
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
        train_steps=args.steps or (2 if args.quick else 20),
        warmup=1 if args.quick else 5,
        frames=32 if args.quick else 256,
        size=(64, 128) if args.quick else (256, 512),
    )
    began = time.perf_counter()
    rows = run_check(settings, args.sections, args.budget_s, args.json)
    where = torch.cuda.get_device_name(device) if settings.cuda else f"CPU ({torch.get_num_threads()} torch threads)"
    configs = "tiny presets (--quick)" if args.quick else "full-size configs"
    title = f"GPU check on {where}, torch {torch.__version__}, {configs}, {time.perf_counter() - began:.0f} s"
    print(format_table(rows, title))
    failed = sum(row.status == "failed" for row in rows)
    print(f"{len(rows)} rows: {failed} failed, {sum(row.status == 'skipped' for row in rows)} skipped")
    return rows


if __name__ == "__main__":
    sys.exit(1 if any(row.status == "failed" for row in main()) else 0)
