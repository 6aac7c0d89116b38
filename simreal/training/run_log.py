"""Scalar logging of a run: one JSON object per line in ``metrics.jsonl`` plus TensorBoard event files."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np


class RunLog:
    """Appends ``{"step", "time", **scalars}`` records; a resumed run appends to the same files."""

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.metrics_path = Path(run_dir) / "metrics.jsonl"
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported here: it loads tensorboard (slow)

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        record = {"step": step, "time": time.time()}
        record.update({key: _json_number(value) for key, value in values.items()})
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(key, value, step)

    def image(self, tag: str, step: int, image: np.ndarray) -> None:
        if self._tb is not None:
            self._tb.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _json_number(value: float) -> float | None:
    """JSON has no NaN: undefined scores (e.g. a class never seen) are written as null."""
    value = float(value)
    return value if math.isfinite(value) else None
