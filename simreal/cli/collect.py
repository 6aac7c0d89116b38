"""`simreal collect`: compose configs/collect.yaml with the flags and overrides, then run the pipeline."""

from __future__ import annotations

from pathlib import Path

import typer
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from simreal.cli.errors import fail, user_errors
from simreal.collect.collector import SourceSpec
from simreal.collect.filters import FilterConfig
from simreal.config import compose_config
from simreal.data.convert import FrameSpec

console = Console()


def _parse_server(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"server must look like host:port, got {text!r}")
    return host, int(port)


def source_specs(cfg: DictConfig) -> list[SourceSpec]:
    """One source per procedural worker or per CARLA server, towns and weathers spread over them."""
    towns, weathers = list(cfg.towns), list(cfg.weathers)
    if cfg.backend == "procedural":
        return [
            SourceSpec(
                "procedural",
                {
                    "town": towns[i % len(towns)],
                    "weather": weathers[i % len(weathers)],
                    "seed": int(cfg.seed),
                    "width": int(cfg.camera.width),
                    "height": int(cfg.camera.height),
                    "fov": float(cfg.camera.fov),
                    "look": str(cfg.procedural.look),
                    "capture_every": int(cfg.camera.capture_every),
                },
                stream=i,
            )
            for i in range(int(cfg.workers))
        ]
    if cfg.backend == "carla":
        specs = []
        for i, server in enumerate(cfg.servers):
            host, port = _parse_server(str(server))
            params = {
                "host": host,
                "port": port,
                "tm_port": int(cfg.tm_port_base) + 10 * i,
                "towns": towns,
                "frames_per_town": int(cfg.frames_per_town),
                "weathers": weathers,
                "frames_per_weather": int(cfg.frames_per_weather),
                "width": int(cfg.camera.width),
                "height": int(cfg.camera.height),
                "fov": float(cfg.camera.fov),
                "capture_every": int(cfg.camera.capture_every),
                "camera_x": float(cfg.camera.x),
                "camera_z": float(cfg.camera.z),
                "camera_pitch": float(cfg.camera.pitch),
                "n_vehicles": int(cfg.traffic.vehicles),
                "n_walkers": int(cfg.traffic.walkers),
                "seed": int(cfg.seed),
                **OmegaConf.to_container(cfg.carla),  # type: ignore[arg-type]
            }
            specs.append(SourceSpec("carla", params, stream=i))
        return specs
    raise ValueError(f"unknown backend {cfg.backend!r}; choose procedural or carla")


def collect(
    overrides: list[str] = typer.Argument(None, help="Hydra overrides of configs/collect.yaml, e.g. camera.fov=100."),
    town: list[str] = typer.Option(None, "--town", help="Town(s) to drive in (repeat the flag for several)."),
    frames: int = typer.Option(None, "--frames", help="Frames to keep in the store after filtering."),
    out: Path = typer.Option(None, "--out", help="Frame store to create or continue."),
    backend: str = typer.Option(None, "--backend", help="'procedural' (no server needed) or 'carla'."),
    servers: str = typer.Option(None, "--servers", help="CARLA servers: host:port,host:port,..."),
    seed: int = typer.Option(None, "--seed", help="World / traffic seed."),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default local, or RAY_ADDRESS)."),
) -> None:
    """Drive through towns, keep frames with traffic, remap labels to the class set and write a frame store.

    Rerunning the same command on the same --out continues to the requested count.
    """
    run_collect_command(overrides or [], town, frames, out, backend, servers, seed, address)


@user_errors
def run_collect_command(
    overrides: list[str],
    town: list[str] | None,
    frames: int | None,
    out: Path | None,
    backend: str | None,
    servers: str | None,
    seed: int | None,
    address: str | None,
) -> None:
    from pipelines.collect import CollectJob, run_collect

    flags = []
    if town:
        flags.append(f"towns=[{','.join(town)}]")
    if servers:
        flags.append(f"servers=[{servers}]")
    for key, value in (("frames", frames), ("out", out), ("backend", backend), ("seed", seed), ("address", address)):
        if value is not None:
            flags.append(f"{key}={value}")
    cfg = compose_config("collect", [*overrides, *flags])
    if int(cfg.frames) <= 0:
        raise fail("--frames must be positive")
    store = cfg.store
    job = CollectJob(
        out=Path(cfg.out),
        frames=int(cfg.frames),
        sources=source_specs(cfg),
        frame_spec=FrameSpec(
            (int(store.size[0]), int(store.size[1])),
            str(store.policy),
            str(store.interpolation),
            str(store.unknown),
            bool(store.keep_source_label),
        ),
        filter=FilterConfig(
            min_traffic_share=float(cfg.filter.min_traffic_share),
            min_traffic_blobs=int(cfg.filter.min_traffic_blobs),
            min_blob_pixels=int(cfg.filter.min_blob_pixels),
            duplicate_threshold=float(cfg.filter.duplicate_threshold),
            uniform_std=float(cfg.filter.uniform_std),
            enabled=tuple(cfg.filter.rules),
        ),
        class_set=str(store.class_set),
        shard_size=int(store.shard_size),
        cpus_per_source=float(cfg.cpus_per_source),
        config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
    )
    result = run_collect(job, address=cfg.address)
    console.print(
        f"{result.out}: {result.frames} frames ({result.added} new, {result.captured} captured, "
        f"{result.seconds:.1f}s); filter report: {result.filter_report}"
    )
