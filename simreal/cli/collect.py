"""`simreal collect`: compose configs/collect.yaml with the flags and overrides, then run the pipeline."""

from __future__ import annotations

import typer
from rich.console import Console

from simreal.cli.errors import fail, user_errors
from simreal.collect.config import compose_collect_config

console = Console()


@user_errors
def collect(
    overrides: list[str] = typer.Argument(None, help="Hydra overrides of configs/collect.yaml, e.g. camera.fov=100."),
    town: list[str] = typer.Option(None, "--town", help="Town(s) to drive in (repeat the flag for several)."),
    frames: int = typer.Option(None, "--frames", help="Frames to keep in the store after filtering."),
    out: str = typer.Option(None, "--out", help="Frame store to create or continue (a folder or URL)."),
    backend: str = typer.Option(None, "--backend", help="auto (CARLA if a server answers), procedural or carla."),
    servers: str = typer.Option(None, "--servers", help="CARLA servers: host:port,host:port,..."),
    seed: int = typer.Option(None, "--seed", help="World / traffic seed."),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default local, or RAY_ADDRESS)."),
) -> None:
    """Drive through towns, keep frames with traffic, remap labels to the class set and write a frame store.

    Rerunning the same command on the same --out continues to the requested count.
    """
    from pipelines.collect import collect_job, run_collect

    flags = []
    if town:
        flags.append(f"towns=[{','.join(town)}]")
    if servers:
        flags.append(f"servers=[{servers}]")
    for key, value in (("frames", frames), ("out", out), ("backend", backend), ("seed", seed), ("address", address)):
        if value is not None:
            flags.append(f"{key}={value}")
    cfg = compose_collect_config([*(overrides or []), *flags])
    if cfg.frames <= 0:
        raise fail("--frames must be positive")
    result = run_collect(collect_job(cfg), address=cfg.address)
    for lost in result.lost:
        console.print(f"[yellow]warning:[/] {lost}; the other sources collected its share", soft_wrap=True)
    console.print(
        f"{result.out}: {result.frames} frames ({result.added} new, {result.captured} captured, "
        f"{result.seconds:.1f}s); filter report: {result.filter_report}"
    )
