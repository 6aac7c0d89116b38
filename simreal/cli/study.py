"""`simreal study`: the LC-SAE report's protocol at small scale, from nothing to a results page."""

from __future__ import annotations

import shlex
import sys

import typer
from rich.console import Console

from simreal.cli.errors import user_errors
from simreal.study import compose_study_config

console = Console()


@user_errors
def study(
    overrides: list[str] = typer.Argument(
        None, help="Overrides of configs/study/default.yaml, e.g. preset=tiny real.dataset=null eval=STORE."
    ),
) -> None:
    """Reproduce the LC-SAE report's findings at small scale: segmenters, SAE and LC-SAE variants on one budget,
    400 translated test images scored for label consistency and FID, and the downstream benchmark. Resumable.
    """
    from pipelines.study import run_study

    cfg = compose_study_config(overrides or [])
    result = run_study(cfg, command=shlex.join(["simreal", *sys.argv[1:]]))
    console.print(f"\n[bold green]done[/]: {result.markdown}")
