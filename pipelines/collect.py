"""`simreal collect`: Ray actors capture and filter frames, Ray tasks write whole shards, the driver commits.

    source actor (one per CARLA server or procedural stream)      writer task (one per shard)
      capture -> decode -> filter -> remap -> resize  ──batch──▶   FrameStore.write_frames  ──▶  ordered commit

The store is created on the first run and continued on later ones: rerunning the same command collects only the
frames still missing, procedural streams resume exactly where their last committed frame left off, and a run
killed at any moment leaves a store that verifies.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ray
from omegaconf import DictConfig, OmegaConf

from pipelines.commit import OrderedCommitter
from pipelines.ray_runtime import ray_session, task_error_cause
from simreal.collect.backend import choose_backend
from simreal.collect.collector import Batch, SourceSpec, StreamCollector
from simreal.collect.filters import REASONS, SOURCE_EVENTS, FilterConfig, captured_count, merge_counts
from simreal.collect.schedule import plan_schedules
from simreal.data.convert import FrameSpec
from simreal.data.store import FrameStore, StoreError, shard_ranges
from simreal.errors import ConfigError
from simreal.progress import console, progress_bar


@dataclass
class CollectJob:
    out: Path
    frames: int
    sources: list[SourceSpec]
    frame_spec: FrameSpec = FrameSpec()
    filter: FilterConfig = field(default_factory=FilterConfig)
    class_set: str = "shared16"
    shard_size: int = 32
    cpus_per_source: float = 1.0
    config: dict[str, Any] = field(default_factory=dict)  # the resolved user config, stored for provenance


@dataclass
class CollectResult:
    out: Path
    frames: int
    added: int
    captured: int
    filter_report: dict[str, int]
    seconds: float


def _parse_server(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"server must look like host:port, got {text!r}")
    return host, int(port)


def source_specs(cfg: DictConfig) -> list[SourceSpec]:
    """One source per procedural worker or per CARLA server, towns and weathers spread over them.

    Each CARLA server cycles through every (town, weather), the frame budget split evenly over them
    (simreal.collect.schedule); procedural worker i drives towns[i % len(towns)] in weathers[i % len(weathers)].

    ``backend: auto`` probes the configured servers and falls back to the procedural world (saying so) when none
    answers.
    """
    servers = [_parse_server(str(server)) for server in cfg.servers]
    choice = choose_backend(str(cfg.backend), servers, float(cfg.auto_probe_s))
    if choice.notice:
        console.print(f"[yellow]collect:[/] {choice.notice}", soft_wrap=True)
    if choice.backend == "procedural":
        return _procedural_specs(cfg)
    return _carla_specs(cfg, choice.servers)


def _procedural_specs(cfg: DictConfig) -> list[SourceSpec]:
    towns, weathers = list(cfg.towns), list(cfg.weathers)
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


def _carla_specs(cfg: DictConfig, servers: list[tuple[str, int]]) -> list[SourceSpec]:
    schedules = plan_schedules(
        list(cfg.towns), list(cfg.weathers), int(cfg.frames), len(servers), int(cfg.frames_per_condition)
    )
    specs = []
    for i, ((host, port), schedule) in enumerate(zip(servers, schedules, strict=True)):
        params = {
            "host": host,
            "port": port,
            "tm_port": int(cfg.tm_port_base) + 10 * i,
            "schedule": schedule,
            "width": int(cfg.camera.width),
            "height": int(cfg.camera.height),
            "fov": float(cfg.camera.fov),
            "capture_every": int(cfg.camera.capture_every),
            "camera_x": float(cfg.camera.x),
            "camera_z": float(cfg.camera.z),
            "camera_pitch": float(cfg.camera.pitch),
            "postprocess_effects": bool(cfg.camera.postprocess_effects),
            "n_vehicles": int(cfg.traffic.vehicles),
            "n_walkers": int(cfg.traffic.walkers),
            "seed": int(cfg.seed),
            **OmegaConf.to_container(cfg.carla),  # type: ignore[arg-type]
        }
        specs.append(SourceSpec("carla", params, stream=i))
    return specs


def collect_job(cfg: DictConfig) -> CollectJob:
    """The job a composed ``configs/collect.yaml`` describes."""
    store = cfg.store
    return CollectJob(
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


def _write_batch(path: str, start: int, batch: Batch) -> tuple[int, int]:
    store = FrameStore.open(path, mode="a")
    store.write_frames(start, batch.rgb, batch.label, batch.provenance, batch.source_label)
    return start, start + len(batch.rgb)


def _open_store(job: CollectJob) -> FrameStore:
    if (Path(job.out) / "zarr.json").is_file():
        store = FrameStore.open(job.out, mode="a")
        width, height = job.frame_spec.size
        if (store.width, store.height) != (width, height) or store.class_set.name != job.class_set:
            raise StoreError(
                f"{job.out} holds {store.width}x{store.height} {store.class_set.name} frames; this collection "
                f"makes {width}x{height} {job.class_set}: use another --out"
            )
        return store
    width, height = job.frame_spec.size
    return FrameStore.create(
        job.out,
        height=height,
        width=width,
        class_set=job.class_set,
        shard_size=job.shard_size,
        with_source_label=job.frame_spec.keep_source_label,
        source=f"simreal collect ({job.sources[0].backend})",
    )


def _resume_points(store: FrameStore, job: CollectJob) -> dict[int, tuple[int, int]]:
    """stream -> (index of its last committed frame, its sim frame id), for streams of the same backend."""
    last: dict[int, tuple[int, int]] = {}
    backend = job.sources[0].backend
    for index, prov in enumerate(store.provenance_table()):
        if prov.get("backend") == backend and "stream" in prov and "frame" in prov:
            last[int(prov["stream"])] = (index, int(prov["frame"]))
    return last


def run_collect(job: CollectJob, address: str | None = None, num_cpus: int | None = None) -> CollectResult:
    began = time.perf_counter()
    store = _open_store(job)
    committed_before = len(store)
    previous = Counter(store.attrs.get("filter_report", {}))
    if committed_before >= job.frames:
        return CollectResult(Path(job.out), committed_before, 0, 0, dict(previous), 0.0)
    resume = _resume_points(store, job)
    store.reserve(job.frames)
    committer = OrderedCommitter(store)
    pending_ranges = shard_ranges(committed_before, job.frames, store.shard_size)
    counts: dict[int, Counter] = {}
    captured: dict[int, int] = {}

    with ray_session(address, num_cpus):
        actor_cls = ray.remote(num_cpus=job.cpus_per_source)(StreamCollector)
        writer = ray.remote(num_cpus=0)(_write_batch)
        actors = []
        try:
            for spec in job.sources:
                params = dict(spec.params)
                last_rgb = None
                if spec.stream in resume and spec.backend == "procedural":
                    index, frame_id = resume[spec.stream]
                    params["frame_offset"] = frame_id + int(params.get("capture_every", 1))
                    last_rgb = store.rgb(index)
                actor = actor_cls.remote(
                    SourceSpec(spec.backend, params, spec.stream), job.frame_spec, job.filter, job.class_set
                )
                actors.append((actor, actor.start.remote(last_rgb)))
            for _, started in actors:
                _get(started)
            with progress_bar("collect", total=job.frames, completed=committed_before) as bar:
                gathering: dict[ray.ObjectRef, tuple[int, Any, int, int, ray.ObjectRef]] = {}
                writing: dict[ray.ObjectRef, tuple[int, int]] = {}

                def dispatch(slot: int) -> None:
                    if pending_ranges:
                        start, stop = pending_ranges.pop(0)
                        actor = actors[slot][0]
                        batch_ref = actor.collect.remote(stop - start)
                        gathering[actor.counts.remote()] = (slot, actor, start, stop, batch_ref)

                for slot in range(len(actors)):
                    dispatch(slot)
                while gathering or writing:
                    ready, _ = ray.wait([*gathering, *writing], num_returns=1)
                    ref = ready[0]
                    if ref in writing:
                        start, stop = _get(ref)
                        writing.pop(ref)
                        committer.written(start, stop)
                        bar.advance(stop - start)
                        continue
                    slot, actor, start, stop, batch_ref = gathering.pop(ref)
                    # counts() runs after collect() on the same actor, so it reflects this batch
                    counts[slot] = _get(ref)
                    captured[slot] = captured_count(counts[slot])
                    writing[writer.remote(str(store.path), start, batch_ref)] = (start, stop)
                    dispatch(slot)
                    report = merge_counts(previous, *counts.values())
                    dropped = ", ".join(f"{k} {report[k]}" for k in REASONS if report.get(k))
                    events = ", ".join(f"{k} {report[k]}" for k in SOURCE_EVENTS if report.get(k))
                    bar.info(
                        f"captured {sum(captured.values())}"
                        + (f" · dropped: {dropped}" if dropped else "")
                        + (f" · {events}" if events else "")
                    )
        finally:
            closing = [actor.close.remote() for actor, _ in actors]
            try:
                ray.get(closing, timeout=60)
            except Exception:  # noqa: BLE001 - cleanup must not hide the original error
                pass
            store.update_attrs(
                filter_report=merge_counts(previous, *counts.values()),
                collect={"config": job.config, "frame_spec": asdict(job.frame_spec), "filter": asdict(job.filter)},
            )
    return CollectResult(
        Path(job.out),
        len(store),
        len(store) - committed_before,
        sum(captured.values()),
        merge_counts(previous, *counts.values()),
        time.perf_counter() - began,
    )


def _get(ref: ray.ObjectRef) -> Any:
    try:
        return ray.get(ref)
    except Exception as err:
        raise task_error_cause(err, "collecting") from None
