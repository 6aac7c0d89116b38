"""`simreal collect`: Ray actors capture and filter frames, Ray tasks write whole shards, the driver commits.

    source actor (one per CARLA server or procedural stream)      writer task (one per shard)
      capture -> decode -> filter -> remap -> resize  ──batch──▶   FrameStore.write_frames  ──▶  ordered commit

The store is created on the first run and continued on later ones: rerunning the same command collects only the
frames still missing, procedural streams resume exactly where their last committed frame left off, CARLA streams
where their schedule of towns and weathers left off, and a run killed at any moment leaves a store that verifies.
A CARLA worker whose server is lost is restarted in a fresh process (pipelines.collect_workers).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import ray
from omegaconf import OmegaConf

from pipelines.collect_workers import RestartPolicy, SourceWorker, placement_options
from pipelines.commit import OrderedCommitter
from pipelines.ray_runtime import (
    Demand,
    current_node,
    merge_writers,
    ray_session,
    require_resources,
    require_shared_folder,
    task_error_cause,
)
from simreal.collect.backend import choose_backend
from simreal.collect.carla_settings import check_run_ports
from simreal.collect.collector import Batch, SourceSpec
from simreal.collect.config import CollectConfig
from simreal.collect.filters import (
    REASONS,
    SOURCE_EVENTS,
    FilterConfig,
    captured_count,
    check_filter_fits,
    merge_counts,
)
from simreal.collect.schedule import conditions, plan_schedules
from simreal.data.convert import FrameSpec
from simreal.data.location import StoreLocation, store_location
from simreal.data.lock import writer_lock
from simreal.data.store import STORE, FrameStore, StoreError, shard_ranges, store_state
from simreal.errors import CollectionError, ConfigError
from simreal.labels import get_class_set
from simreal.progress import console, progress_bar

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 60.0
RESTART_KEYS = ("restart_budget_s", "restart_backoff_s")  # carla.* keys for the pipeline, not the source


@dataclass
class CollectJob:
    out: StoreLocation
    frames: int
    sources: list[SourceSpec]
    frame_spec: FrameSpec = FrameSpec()
    filter: FilterConfig = field(default_factory=FilterConfig)
    class_set: str = "shared16"
    shard_size: int = 32
    cpus_per_source: float = 1.0
    restart: RestartPolicy = field(default_factory=RestartPolicy)  # CARLA workers whose server was lost
    backend_auto: bool = False  # the backend was chosen by probing: it must match what the store holds
    config: dict[str, Any] = field(default_factory=dict)  # the resolved user config, stored for provenance


@dataclass
class CollectResult:
    out: StoreLocation
    frames: int
    added: int
    captured: int
    filter_report: dict[str, int]
    seconds: float
    lost: list[str] = field(default_factory=list)  # sources given up (their servers did not come back)


def _parse_server(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"server must look like host:port, got {text!r}")
    return host, int(port)


def source_specs(cfg: CollectConfig) -> list[SourceSpec]:
    """One source per procedural worker or per CARLA server, towns and weathers spread over them.

    Each CARLA server cycles through every (town, weather), the frame budget split evenly over them
    (simreal.collect.schedule); procedural worker i drives the i-th (town, weather) pair, cyclically.

    ``backend: auto`` probes the configured servers and falls back to the procedural world (saying so) when none
    answers.
    """
    servers = [_parse_server(server) for server in cfg.servers]
    choice = choose_backend(cfg.backend, servers, cfg.auto_probe_s)
    if choice.notice:
        console.print(f"[yellow]collect:[/] {choice.notice}", soft_wrap=True)
    if choice.backend == "procedural":
        return _procedural_specs(cfg)
    return _carla_specs(cfg, choice.servers)


def _procedural_specs(cfg: CollectConfig) -> list[SourceSpec]:
    pairs, workers = conditions(cfg.towns, cfg.weathers), cfg.workers
    if workers < len(pairs):
        console.print(
            f"[yellow]collect:[/] {len(pairs)} (town, weather) pairs but workers={workers}: a procedural worker "
            f"drives one pair, so only {workers} of them are collected (set workers={len(pairs)} for all)",
            soft_wrap=True,
        )
    return [
        SourceSpec(
            "procedural",
            {
                "town": pairs[i % len(pairs)][0],
                "weather": pairs[i % len(pairs)][1],
                "seed": cfg.seed,
                "width": cfg.camera.width,
                "height": cfg.camera.height,
                "fov": cfg.camera.fov,
                "look": cfg.procedural.look,
                "capture_every": cfg.camera.capture_every,
            },
            stream=i,
        )
        for i in range(workers)
    ]


def _carla_specs(cfg: CollectConfig, servers: list[tuple[str, int]]) -> list[SourceSpec]:
    schedules = plan_schedules(cfg.towns, cfg.weathers, cfg.frames, len(servers), cfg.frames_per_condition)
    tm_ports = [cfg.tm_port_base + 10 * i for i in range(len(servers))]
    check_run_ports(servers, tm_ports)
    carla = {k: v for k, v in OmegaConf.to_container(cfg.carla).items() if k not in RESTART_KEYS}  # type: ignore[union-attr]
    specs = []
    for i, ((host, port), schedule) in enumerate(zip(servers, schedules, strict=True)):
        params = {
            "host": host,
            "port": port,
            "tm_port": tm_ports[i],
            "schedule": schedule,
            "width": cfg.camera.width,
            "height": cfg.camera.height,
            "fov": cfg.camera.fov,
            "capture_every": cfg.camera.capture_every,
            "sensor_tick": cfg.camera.sensor_tick,
            "camera_x": cfg.camera.x,
            "camera_z": cfg.camera.z,
            "camera_pitch": cfg.camera.pitch,
            "postprocess_effects": cfg.camera.postprocess_effects,
            "n_vehicles": cfg.traffic.vehicles,
            "n_walkers": cfg.traffic.walkers,
            "seed": cfg.seed,
            **carla,
        }
        specs.append(SourceSpec("carla", params, stream=i))
    return specs


def collect_job(cfg: CollectConfig) -> CollectJob:
    """The job a composed ``configs/collect.yaml`` describes; a class set the filters cannot serve is refused here,
    before any source starts."""
    store = cfg.store
    filters = FilterConfig(
        min_traffic_share=cfg.filter.min_traffic_share,
        min_traffic_blobs=cfg.filter.min_traffic_blobs,
        min_blob_pixels=cfg.filter.min_blob_pixels,
        duplicate_threshold=cfg.filter.duplicate_threshold,
        uniform_std=cfg.filter.uniform_std,
        enabled=tuple(cfg.filter.rules),  # a plain value: pickled to the sources, stored in the store's attrs
    )
    check_filter_fits(filters, get_class_set(store.class_set))
    return CollectJob(
        out=store_location(cfg.out),
        frames=cfg.frames,
        sources=source_specs(cfg),
        frame_spec=FrameSpec(
            (store.size[0], store.size[1]), store.policy, store.interpolation, store.unknown, store.keep_source_label
        ),
        filter=filters,
        class_set=store.class_set,
        shard_size=store.shard_size,
        cpus_per_source=cfg.cpus_per_source,
        restart=RestartPolicy(cfg.carla.restart_budget_s, cfg.carla.restart_backoff_s),
        backend_auto=cfg.backend == "auto",
        config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
    )


def _write_batch(path: str, start: int, batch: Batch) -> tuple[int, int, str]:
    store = FrameStore.open(path, mode="a")
    store.write_frames(start, batch.rgb, batch.label, batch.provenance, batch.source_label)
    return start, start + len(batch.rgb), current_node()


def _open_store(job: CollectJob) -> FrameStore:
    if store_state(job.out) == STORE:
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


@dataclass
class StreamProgress:
    """What a stream left in the store: where a continuation (or a restarted worker) picks it up."""

    kept: int  # its frames in the store
    last_index: int  # store index of its last frame
    last_frame: int  # its sim frame id


def _stream_progress(store: FrameStore, job: CollectJob) -> dict[int, StreamProgress]:
    """stream -> its progress in the store, for the streams of this job's backend."""
    progress: dict[int, StreamProgress] = {}
    backend = job.sources[0].backend
    for index, prov in enumerate(store.provenance_table()):
        if prov.get("backend") == backend and "stream" in prov and "frame" in prov:
            stream = int(prov["stream"])
            kept = progress[stream].kept + 1 if stream in progress else 1
            progress[stream] = StreamProgress(kept, index, int(prov["frame"]))
    return progress


def _check_backend_continuity(store: FrameStore, job: CollectJob) -> None:
    """``backend: auto`` must not switch a store it continues to the other backend (a server came or went)."""
    if not job.backend_auto or len(store) == 0:
        return
    backends = {str(p.get("backend")) for p in store.provenance_table()}
    chosen = job.sources[0].backend
    if chosen not in backends:
        raise StoreError(
            f"{job.out} holds frames of backend {', '.join(sorted(backends))}, but `auto` chose {chosen} this time; "
            f"pass `--backend {sorted(backends)[0]}` to continue it as it was made, or use another --out"
        )


def _workers(job: CollectJob, store: FrameStore, progress: dict[int, StreamProgress]) -> list[SourceWorker]:
    workers = []
    for spec in job.sources:
        params = dict(spec.params)
        done = progress.get(spec.stream)
        last_rgb = store.rgb(done.last_index) if done else None  # seeds the near-duplicate rule
        if done and spec.backend == "procedural":
            params["frame_offset"] = done.last_frame + int(params.get("capture_every", 1))
        options: dict[str, Any] = {"num_cpus": job.cpus_per_source, "max_concurrency": 2}  # close() never queues
        if spec.backend == "carla":
            options.update(placement_options(str(params["host"])))
        workers.append(
            SourceWorker(
                SourceSpec(spec.backend, params, spec.stream),
                (job.frame_spec, job.filter, job.class_set),
                options,
                job.restart,
                kept=done.kept if done else 0,
                last_rgb=last_rgb,
            )
        )
    return workers


def run_collect(job: CollectJob, address: str | None = None, num_cpus: int | None = None) -> CollectResult:
    """Collect until the store holds ``job.frames`` frames; lost CARLA servers are restarted, then given up.

    Raises CollectionError when the store ends short because servers were lost for good (what was collected stays).
    """
    with writer_lock(job.out):
        began = time.perf_counter()
        store = _open_store(job)
        _check_backend_continuity(store, job)
        committed_before = len(store)
        previous = Counter(store.attrs.get("filter_report", {}))
        if committed_before >= job.frames:
            return CollectResult(job.out, committed_before, 0, 0, dict(previous), 0.0)
        progress = _stream_progress(store, job)
        store.reserve(job.frames)
        committer = OrderedCommitter(store)
        pending = shard_ranges(committed_before, job.frames, store.shard_size)
        workers: list[SourceWorker] = []

        def report() -> dict[str, int]:
            return merge_counts(previous, *(w.counts for w in workers))

        with ray_session(address, num_cpus):
            require_resources(_source_demand(job))
            require_shared_folder(store.path, "the store")
            writer = ray.remote(num_cpus=0)(_write_batch)
            try:
                workers = _workers(job, store, progress)
                for worker in workers:
                    worker.launch()
                for worker in workers:  # a source that cannot start at all is an error of the run, not a loss
                    _get(worker.start_ref)
                    worker.started()
                with progress_bar("collect", total=job.frames, completed=committed_before) as bar:
                    _drive(workers, pending, store, committer, writer, bar, report)
            finally:
                _close(workers)
                store.update_attrs(
                    written_by=merge_writers(store.attrs, committer.rows_by_writer),
                    filter_report=report(),
                    collect={
                        "config": job.config,
                        "frame_spec": asdict(job.frame_spec),
                        "filter": asdict(job.filter),
                        "lost_sources": [w.lost_reason for w in workers if w.lost_reason],
                        "restarts": {w.name: w.restarts for w in workers if w.restarts},
                    },
                )
        lost = [w.lost_reason for w in workers if w.lost_reason]
        if len(store) < job.frames:
            raise CollectionError(
                f"{job.out} holds {len(store)} of the {job.frames} frames asked for: every source was lost ("
                + "; ".join(lost)
                + "). The frames collected are kept: rerun the same command to continue once the servers are back."
            )
        return CollectResult(
            job.out,
            len(store),
            len(store) - committed_before,
            sum(captured_count(w.counts) for w in workers),
            report(),
            time.perf_counter() - began,
            lost,
        )


def _drive(
    workers: list[SourceWorker],
    pending: list[tuple[int, int]],
    store: FrameStore,
    committer: OrderedCommitter,
    writer: Any,
    bar: Any,
    report: Callable[[], dict[str, int]],
) -> None:
    """Hand out shard ranges to ready workers, write what comes back, restart lost CARLA workers, until done."""
    writing: dict[ray.ObjectRef, tuple[int, int]] = {}
    while True:
        now = time.monotonic()
        for worker in workers:
            if worker.state == "waiting" and now >= worker.retry_at:
                worker.launch()
            if worker.state == "ready" and pending:
                worker.dispatch(*pending.pop(0))
        busy = [w for w in workers if w.state == "busy"]
        if not busy and not writing and (not pending or all(w.state == "lost" for w in workers)):
            return
        watched = {w.counts_ref: w for w in busy} | {w.start_ref: w for w in workers if w.state == "starting"}
        waits = [w.retry_at - now for w in workers if w.state == "waiting"]
        timeout = max(0.0, min(waits)) if waits else None
        if not watched and not writing:
            time.sleep(timeout or 0.0)
            continue
        ready, _ = ray.wait([*watched, *writing], num_returns=1, timeout=timeout)
        if not ready:
            continue
        ref = ready[0]
        if ref in writing:
            writing.pop(ref)
            start, stop, node = _get(ref)
            committer.written(start, stop, node)
            bar.advance(stop - start)
            continue
        worker = watched[ref]
        try:
            outcome = ray.get(ref)
        except Exception as err:
            if worker.state == "busy":
                pending.insert(0, worker.range)  # another worker (or this one, restarted) collects it
            if not worker.restartable(err):
                raise task_error_cause(err, "collecting") from None
            console.print(f"[yellow]collect:[/] {worker.lose(err, time.monotonic())}", soft_wrap=True)
            continue
        if worker.state == "starting":
            worker.started()
            continue
        start, stop = worker.collected(outcome)
        writing[writer.remote(str(store.path), start, worker.batch_ref)] = (start, stop)
        _show_counts(bar, report())


def _show_counts(bar: Any, report: dict[str, int]) -> None:
    dropped = ", ".join(f"{k} {report[k]}" for k in REASONS if report.get(k))
    events = ", ".join(f"{k} {report[k]}" for k in SOURCE_EVENTS if report.get(k))
    bar.info(
        f"captured {captured_count(report)}"
        + (f" · dropped: {dropped}" if dropped else "")
        + (f" · {events}" if events else "")
    )


def _close(workers: list[SourceWorker]) -> None:
    """Every live source releases its server (stopping a collect() in flight); the stuck ones are killed."""
    closing = {ref: w for w in workers if (ref := w.close()) is not None}
    done, stuck = ray.wait(list(closing), num_returns=len(closing), timeout=CLOSE_TIMEOUT_S) if closing else ([], [])
    for ref in done:
        try:
            ray.get(ref)
        except Exception:  # noqa: BLE001 - cleanup must not hide the original error
            log.warning("%s: close() failed", closing[ref].name, exc_info=True)
    for ref in stuck:
        log.warning("%s: close() did not return within %ss; killing its worker", closing[ref].name, CLOSE_TIMEOUT_S)
        closing[ref].kill()


def _source_demand(job: CollectJob) -> Demand:
    """Every source actor must be up before frames flow."""
    count = "workers" if job.sources[0].backend == "procedural" else "servers"
    return Demand("source actors", len(job.sources), job.cpus_per_source, count_key=count, cpus_key="cpus_per_source")


def _get(ref: ray.ObjectRef) -> Any:
    try:
        return ray.get(ref)
    except Exception as err:
        raise task_error_cause(err, "collecting") from None
