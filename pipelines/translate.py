"""`simreal translate`: a Ray Data pipeline turning a whole store into a translated store, labels carried through.

    shard list ─▶ read (tasks) ─▶ translate (actor pool: one per GPU, or CPU actors) ─▶ write (tasks) ─▶ commit
                  input frames      model held in bf16/channels_last, sub-batches         one writer per shard

Every row of the dataset is one output shard, so a shard is read, translated and written by exactly one task or
actor each and the stages overlap. The driver commits shards in order; rerunning the same command skips what was
committed, and a run killed at any moment leaves a store that verifies.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

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
from simreal.data.location import StoreLocation, absolute_location, store_location
from simreal.data.lock import writer_lock
from simreal.data.store import TRUST_FIELDS, FrameStore, StoreError, open_derived, shard_ranges
from simreal.inference import file_digest, load_segmenter
from simreal.metrics.consistency import frame_consistency, segment_images
from simreal.progress import progress_bar
from simreal.translate import (
    StyleOptions,
    TranslationError,
    check_request,
    check_scorer,
    checkpoint_method,
    load_translator,
)


@dataclass
class TranslateJob:
    checkpoint: Path
    input: str | Path
    out: str | Path
    style: StyleOptions = StyleOptions()
    variants: int = 1
    seed: int = 0
    batch_size: int = 8
    actors: int = 0  # 0: one per GPU, else 2 CPU actors
    bf16: bool = True
    shard_size: int = 32
    scorer: Path | None = None  # a held-out segmenter: per-frame trust scores into the store's trust array


@dataclass
class TranslateResult:
    out: StoreLocation
    frames: int
    added: int
    seconds: float
    first_commit: tuple[int, float] | None = None  # (frames, seconds) when the first shard landed: start-up cost

    @property
    def steady_rate(self) -> float | None:
        """Frames per second after the first shard, i.e. without actor start-up and model loading."""
        if self.first_commit is None or self.first_commit[0] >= self.frames:
            return None
        return (self.frames - self.first_commit[0]) / max(self.seconds - self.first_commit[1], 1e-9)


def _jobs(start: int, stop: int, variants: int) -> list[tuple[int, int]]:
    return [divmod(j, variants) for j in range(start, stop)]


def _read_shard(row: dict[str, np.ndarray], input_path: str, variants: int) -> dict[str, Any]:
    start, stop = int(row["start"][0]), int(row["stop"][0])
    store = FrameStore.open(input_path)
    indices = [index for index, _ in _jobs(start, stop, variants)]
    first, last = indices[0], indices[-1] + 1
    rgb, label = store.read_range(first, last)
    picks = np.asarray(indices) - first
    return {"start": [start], "stop": [stop], "rgb": [rgb[picks]], "label": [label[picks]]}


class _ShardTranslator:
    """A Ray actor holding one translator; each call translates one shard in sub-batches."""

    def __init__(self, job: TranslateJob) -> None:
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.translator = load_translator(job.checkpoint, self.device, job.style, bf16=job.bf16)
        self.job = job
        self.scorer = load_segmenter(job.scorer, self.device) if job.scorer is not None else None
        source = FrameStore.open(job.input)
        self.classes, self.num_classes = source.evaluable_classes, max(source.class_set.ids) + 1
        if self.device.type == "cuda":
            for module in vars(self.translator).values():
                if isinstance(module, torch.nn.Module):
                    module.to(memory_format=torch.channels_last)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        start, stop = int(row["start"][0]), int(row["stop"][0])
        rgb, label = row["rgb"][0], row["label"][0]
        jobs = _jobs(start, stop, self.job.variants)
        images, extras, trust = [], [], []
        for b in range(0, len(jobs), self.job.batch_size):
            part = slice(b, b + self.job.batch_size)
            out, extra = self.translator.translate(rgb[part], label[part], jobs[part], self.job.seed)
            images.append(out)
            extras += extra
            if self.scorer is not None:
                trust.append(self._trust(out, rgb[part], label[part]))
        scores = np.concatenate(trust) if trust else None
        if scores is not None:
            extras = [{**extra, "trust": dict(zip(TRUST_FIELDS, map(float, row), strict=True))}
                      for extra, row in zip(extras, scores, strict=True)]  # fmt: skip
        provenance = [
            json.dumps(
                {
                    "source_store": str(self.job.input),
                    "source_index": index,
                    "variant": variant,
                    "seed": self.job.seed,
                    "method": self.translator.method,
                    "checkpoint": self.translator.checkpoint_hash,
                    **extra,
                }
            )
            for (index, variant), extra in zip(jobs, extras, strict=True)
        ]
        row = {"start": [start], "stop": [stop], "rgb": [np.concatenate(images)], "label": [label],
               "provenance": [provenance]}  # fmt: skip
        if scores is not None:
            row["trust"] = [scores]
        return row

    def _trust(self, translated: np.ndarray, source: np.ndarray, label: np.ndarray) -> np.ndarray:
        """(k, 4): the scorer's pixel accuracy and mIoU on the translated frames, then on their sources."""
        scored = [
            frame_consistency(segment_images(self.scorer, images, self.device), label, self.classes, self.num_classes)
            for images in (translated, source)
        ]
        return np.concatenate(scored, axis=1)


def _write_shard(row: dict[str, Any], out_path: str) -> dict[str, Any]:
    start, stop = int(row["start"][0]), int(row["stop"][0])
    store = FrameStore.open(out_path, mode="a")
    input_provenance = [json.loads(p) for p in row["provenance"][0]]
    trust = np.asarray(row["trust"][0]) if "trust" in row else None
    store.write_frames(start, np.asarray(row["rgb"][0]), np.asarray(row["label"][0]), input_provenance, trust=trust)
    return {"start": [start], "stop": [stop], "node": [current_node()]}


def _settings(job: TranslateJob, method: str, source: FrameStore) -> dict[str, Any]:
    """What decides a translated store's pixels: a rerun must match it to continue the store."""
    return {
        "checkpoint": str(job.checkpoint),
        "checkpoint_hash": file_digest(Path(job.checkpoint)),
        "method": method,
        "input": str(job.input),
        "variants": job.variants,
        "seed": job.seed,
        "style": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(job.style).items()},
        "scorer": check_scorer(Path(job.checkpoint), job.scorer, source) if job.scorer else None,
    }


def run_translate(job: TranslateJob, address: str | None = None, num_cpus: int | None = None) -> TranslateResult:
    with writer_lock(job.out):
        began = time.perf_counter()
        source = FrameStore.open(job.input)
        if len(source) == 0:
            raise StoreError(f"{job.input} holds no committed frames: there is nothing to translate")
        if job.variants < 1:
            raise TranslationError(f"--variants must be >= 1, got {job.variants}")
        checkpoint, method, state = checkpoint_method(job.checkpoint)
        check_request(method, job.style)  # fail here, not inside a model actor
        style_store = absolute_location(job.style.store) if job.style.store is not None else None
        job = replace(
            job,
            checkpoint=checkpoint.resolve(),
            input=absolute_location(job.input),
            style=replace(job.style, store=style_store),
        )
        class_set = state.get("class_set", {}).get("name")
        if class_set and class_set != source.class_set.name:
            raise TranslationError(
                f"{job.checkpoint} was trained on {class_set} labels but {job.input} holds {source.class_set.name}"
            )
        out = open_derived(
            job.out, source, role="translate", settings=_settings(job, method, source), shard_size=job.shard_size,
            description=f"{source.path} translated by {job.checkpoint}", with_trust=job.scorer is not None,
        )  # fmt: skip
        total = len(source) * job.variants
        committed_before = len(out)
        ranges = shard_ranges(committed_before, total, out.shard_size)
        if not ranges:
            return TranslateResult(store_location(job.out), committed_before, 0, 0.0)
        out.reserve(total)
        committer = OrderedCommitter(out)
        with ray_session(address, num_cpus):
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False  # our own bar counts committed frames
            logging.getLogger("ray.data").setLevel(logging.WARNING)
            gpus = int(ray.cluster_resources().get("GPU", 0))
            cpus = float(ray.cluster_resources().get("CPU", 1))
            # One actor per GPU; without GPUs, CPU actors leave a core to reading and writing when one is spare.
            actors = job.actors or gpus or max(1, int(cpus) - 1)
            require_resources(Demand("model actors", actors, 1.0, 1.0 if gpus else 0.0, count_key="--actors"))
            require_shared_folder(out.path, "the output store")
            shards = ray.data.from_items([{"start": a, "stop": b} for a, b in ranges], override_num_blocks=len(ranges))
            translated = (
                shards.map_batches(
                    _read_shard,
                    batch_size=1,
                    num_cpus=0.25,
                    fn_kwargs={"input_path": str(job.input), "variants": job.variants},
                )  # fmt: skip
                .map_batches(
                    _ShardTranslator,
                    batch_size=1,
                    fn_constructor_kwargs={"job": job},
                    compute=ray.data.ActorPoolStrategy(size=actors),
                    num_gpus=1 if gpus else 0,
                    num_cpus=1,
                )
                .map_batches(_write_shard, batch_size=1, fn_kwargs={"out_path": str(job.out)}, num_cpus=0.25)
            )
            first_commit = None
            with progress_bar(f"translate ({method})", total=total, completed=committed_before) as bar:
                try:
                    for row in translated.iter_rows():
                        start, stop = int(row["start"]), int(row["stop"])
                        committed = committer.written(start, stop, str(row["node"]))
                        if first_commit is None:
                            first_commit = (committed, time.perf_counter() - began)
                        bar.advance(stop - start)
                except Exception as err:
                    raise task_error_cause(err, "translating") from None
            out.update_attrs(written_by=merge_writers(out.attrs, committer.rows_by_writer))
        seconds = time.perf_counter() - began
        return TranslateResult(store_location(job.out), len(out), len(out) - committed_before, seconds, first_commit)
