"""Steps that the multi-stage jobs (``simreal demo``, ``simreal study``) chain: each is the pipeline a command runs,
and each skips or continues work already on disk, so an interrupted job picks up where it stopped."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pipelines.collect import collect_job, run_collect
from pipelines.import_dataset import ImportJob, run_import
from pipelines.train import run_training
from simreal.collect.config import compose_collect_config
from simreal.data.convert import FrameSpec
from simreal.data.registry import get_dataset
from simreal.progress import console
from simreal.training.config import compose_training_config


class StageClock:
    """Wall seconds per stage of a resumable job, summed over every invocation on the same output folder.

    A rerun that finishes an interrupted job reports what the whole job cost, not only its own share; the sums live
    in ``<out>/stage_seconds.json``, rewritten after each stage.
    """

    FILE_NAME = "stage_seconds.json"

    def __init__(self, out: Path) -> None:
        self.path = out / self.FILE_NAME
        self.seconds: dict[str, float] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    @contextmanager
    def stage(self, title: str, key: str | None = None) -> Iterator[None]:
        """Announce a stage and add its wall time under ``key`` (default: the title)."""
        console.rule(f"[bold]{title}")
        began = time.perf_counter()
        try:
            yield
        finally:
            key = key or title
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - began
            partial = self.path.with_suffix(".json.partial")
            partial.write_text(json.dumps(self.seconds, indent=2))
            partial.replace(self.path)

    @property
    def total_minutes(self) -> float:
        return sum(self.seconds.values()) / 60


def collect_procedural(
    out: Path, size: Sequence[int], look: str, frames: int, seed: int, towns: Sequence[str] = ()
) -> None:
    """Procedural frames at ``size`` (width, height), rendered at twice that and downscaled; continues to ``frames``."""
    width, height = (int(v) for v in size)
    overrides = [
        "backend=procedural", f"out={out}", f"frames={frames}", f"seed={seed}", f"procedural.look={look}",
        f"store.size=[{width},{height}]",
        f"camera.width={2 * width}", f"camera.height={2 * height}", "camera.capture_every=4",
        *([f"towns=[{','.join(towns)}]"] if towns else []),
    ]  # fmt: skip
    run_collect(collect_job(compose_collect_config(overrides)))


def import_registered(name: str, split: str, out: Path, size: Sequence[int]) -> None:
    """A split of a dataset of datasets.yaml at ``size``, unless ``out`` already holds it."""
    if (out / "zarr.json").is_file():
        return
    entry = get_dataset(name)
    job = ImportJob(
        format=entry.format, root=entry.root, split=split, scheme=entry.scheme, out=out,
        spec=FrameSpec((int(size[0]), int(size[1]))), options=tuple(sorted(entry.options.items())),
        dataset_name=name,
    )  # fmt: skip
    run_import(job)


def train_run(method: str, overrides: Sequence[str]) -> Path:
    """Train (or finish training) a run; returns its run directory."""
    return run_training(compose_training_config(method, ["progress=true", *overrides])).run_dir
