"""`simreal demo`: the whole chain at small scale on a CPU."""

from __future__ import annotations

import typer
from rich.console import Console

from simreal.cli.errors import user_errors
from simreal.demo import compose_demo_config

console = Console()


@user_errors
def demo(
    overrides: list[str] = typer.Argument(
        None, help="Settings of configs/demo.yaml as key=value or --key value, e.g. preset=tiny --out runs/x."
    ),
) -> None:
    """Collect, train segmenters and a translator (LC-CUT; translator=lcsae), translate, score, report: small scale.

    No CARLA server, GPU or download is needed: the procedural world's two looks stand in for sim and real unless
    `real=DATASET` names a registered real dataset (e.g. real=camvid).
    """
    from pipelines.demo import FID_WEIGHTS_HINT, run_demo

    result = run_demo(compose_demo_config(overrides or []))
    if result.scores["fid_skipped"]:
        console.print(f"\nFID/KID not computed: {FID_WEIGHTS_HINT}", highlight=False)
    readme = result.out / "README.md"
    console.print(f"\n[bold green]done[/]: report at {result.report} (small-scale numbers: see {readme})")
