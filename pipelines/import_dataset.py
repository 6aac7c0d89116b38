"""`simreal datasets import`: read a dataset in parallel Ray tasks, one task and one writer per shard.

Frames go into ``<out>.partial`` first; the finished store is moved to ``<out>`` only when every frame made it, so
a failed import (bad file, unknown id, size mismatch) leaves nothing half-written behind. An object store has no
rename: there the store is written in place, marked unfinished (readers refuse it, a rerun replaces it) until its
last write.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray

from pipelines.commit import OrderedCommitter
from pipelines.ray_runtime import current_node, ray_session, require_shared_folder, task_error_cause
from simreal.data.convert import FrameSpec, prepare_frame
from simreal.data.location import StoreLocation, remove, store_location
from simreal.data.lock import writer_lock
from simreal.data.store import FOREIGN, STORE, FrameStore, StoreError, shard_ranges, store_state
from simreal.importers import SamplePair, get_format
from simreal.labels import RemapReport, get_mapping
from simreal.progress import progress_bar


@dataclass(frozen=True)
class ImportJob:
    format: str
    root: Path
    split: str
    scheme: str
    out: str | Path
    class_set: str = "shared16"
    spec: FrameSpec = FrameSpec()
    options: tuple[tuple[str, Any], ...] = ()
    shard_size: int = 32
    dataset_name: str = ""
    overwrite: bool = False


@dataclass
class ImportResult:
    out: StoreLocation
    frames: int
    unknown_pixels: dict[int, int]


def _import_shard(job: ImportJob, partial: str, start: int, pairs: list[SamplePair]) -> tuple[int, int, dict, str]:
    fmt = get_format(job.format, **dict(job.options))
    mapping = get_mapping(job.scheme, job.class_set)
    store = FrameStore.open(partial, mode="a")
    rgbs, labels, sources, provenance = [], [], [], []
    report = RemapReport()
    for pair in pairs:
        rgb, ids = fmt.load(pair)
        rgb, label, source, unknown = prepare_frame(rgb, ids, mapping, job.spec, where=str(pair.label))
        report.add(unknown)
        rgbs.append(rgb)
        labels.append(label)
        sources.append(source)
        provenance.append(
            {
                "dataset": job.dataset_name or job.format,
                "format": job.format,
                "split": pair.split,
                "key": pair.key,
                "image": str(pair.image),
                "label": str(pair.label),
                "scheme": mapping.source.name,
                **pair.meta,
            }
        )
    store.write_frames(
        start,
        np.stack(rgbs),
        np.stack(labels),
        provenance,
        np.stack(sources) if job.spec.keep_source_label else None,
    )
    return start, start + len(pairs), report.unknown_pixels, current_node()


def run_import(job: ImportJob, address: str | None = None, num_cpus: int | None = None) -> ImportResult:
    with writer_lock(job.out):
        out = store_location(job.out)
        if store_state(out) in (STORE, FOREIGN) and not job.overwrite:
            raise StoreError(f"{out} already exists; choose another --out or pass --overwrite")
        mapping = get_mapping(job.scheme, job.class_set)  # fail on a bad scheme/class set before any work
        pairs = get_format(job.format, **dict(job.options)).pairs(Path(job.root), job.split)
        in_place = not isinstance(out, Path)
        partial = out if in_place else out.with_name(out.name + ".partial")
        width, height = job.spec.size
        try:
            store = FrameStore.create(
                partial,
                overwrite=True,
                unfinished="import" if in_place else None,
                height=height,
                width=width,
                class_set=job.class_set,
                shard_size=job.shard_size,
                with_source_label=job.spec.keep_source_label,
                source=f"{job.dataset_name or job.format} {job.split} from {job.root} (scheme {mapping.source.name})",
                attrs={
                    "evaluable_classes": mapping.evaluable_classes,
                    "eval_merge": {str(k): v for k, v in mapping.eval_merge.items()},
                    "import": {"format": job.format, "split": job.split, "spec": asdict(job.spec)},
                },
            )
            store.reserve(len(pairs))
            committer = OrderedCommitter(store)
            unknown = RemapReport()
            with ray_session(address, num_cpus), progress_bar(f"import {job.split}", total=len(pairs)) as bar:
                require_shared_folder(partial, "the store")
                task = ray.remote(_import_shard)
                pending = [
                    task.remote(job, str(partial), start, pairs[start:stop])
                    for start, stop in shard_ranges(0, len(pairs), job.shard_size)
                ]
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1)
                    try:
                        start, stop, counts, node = ray.get(ready[0])
                    except Exception as err:
                        for ref in pending:
                            ray.cancel(ref, force=True)
                        if pending:  # let the cancelled writers stop before the half-written store is removed
                            ray.wait(pending, num_returns=len(pending), timeout=60)
                        raise task_error_cause(err, f"importing {job.split}") from None
                    unknown.add(RemapReport(dict(counts)))
                    committer.written(start, stop, node)
                    bar.advance(stop - start)
            store.update_attrs(
                unknown_ids_ignored={str(k): v for k, v in sorted(unknown.unknown_pixels.items())},
                written_by=dict(committer.rows_by_writer),
            )
        except BaseException:
            remove(partial)
            raise
        if in_place:
            store.finish()
        else:
            remove(out)
            partial.rename(out)
        return ImportResult(out, len(pairs), unknown.unknown_pixels)
