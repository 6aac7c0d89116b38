"""`simreal demo`: the whole chain at small scale on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from simreal.cli.errors import user_errors
from simreal.demo import compose_demo_config

console = Console()


@user_errors
def demo(
    overrides: list[str] = typer.Argument(None, help="Overrides of configs/demo.yaml, e.g. preset=tiny real=camvid."),
    out: Path = typer.Option(None, "--out", help="Folder for every store, run and the report (default runs/demo)."),
) -> None:
    """Collect, train segmenters and a translator (LC-CUT; translator=lcsae), translate, score, report: small scale.

    No CARLA server, GPU or download is needed: the procedural world's two looks stand in for sim and real unless
    `real=DATASET` names a registered real dataset (e.g. real=camvid).
    """
    from pipelines.demo import FID_WEIGHTS_HINT, run_demo

    flags = [f"out={out}"] if out is not None else []
    result = run_demo(compose_demo_config([*(overrides or []), *flags]))
    if result.scores["fid_skipped"]:
        console.print(f"\nFID/KID not computed: {FID_WEIGHTS_HINT}", highlight=False)
    readme = result.out / "README.md"
    console.print(f"\n[bold green]done[/]: report at {result.report} (small-scale numbers: see {readme})")
