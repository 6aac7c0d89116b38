"""`simreal collect`: compose configs/collect.yaml with the flags and overrides, then run the pipeline."""

from __future__ import annotations

import typer
from rich.console import Console

from simreal.cli.arguments import merge_overrides
from simreal.cli.errors import fail, user_errors
from simreal.collect.config import compose_collect_config

console = Console()


@user_errors
def collect(
    overrides: list[str] = typer.Argument(
        None, help="Settings of configs/collect.yaml as key=value or --key value, e.g. --frames 600 camera.fov=100."
    ),
    town: list[str] = typer.Option(None, "--town", help="A town to drive in (repeat for several): towns=[...]."),
    servers: str = typer.Option(None, "--servers", help="CARLA servers host:port,host:port,...: servers=[...]."),
) -> None:
    """Drive through towns, keep frames with traffic, remap labels to the class set and write a frame store.

    Rerunning the same command on the same --out continues to the requested count.
    """
    from pipelines.collect import collect_job, run_collect

    aliases = [f"towns=[{','.join(town)}]"] if town else []
    if servers:
        aliases.append(f"servers=[{servers}]")
    cfg = compose_collect_config(merge_overrides(overrides or [], aliases))
    if cfg.frames <= 0:
        raise fail("--frames must be positive")
    result = run_collect(collect_job(cfg), address=cfg.address)
    for lost in result.lost:
        console.print(f"[yellow]warning:[/] {lost}; the other sources collected its share", soft_wrap=True)
    console.print(
        f"{result.out}: {result.frames} frames ({result.added} new, {result.captured} captured, "
        f"{result.seconds:.1f}s); filter report: {result.filter_report}",
        soft_wrap=True,
    )
