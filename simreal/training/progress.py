"""Rich progress bar for training: step count, it/s, ETA and the latest losses."""

from __future__ import annotations

from collections.abc import Mapping

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class TrainingProgress:
    """A context manager; does nothing when disabled (non-main ranks, ``progress=false``)."""

    def __init__(self, total_steps: int, start_step: int, enabled: bool = True) -> None:
        self._progress = (
            Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[losses]}"),
            )
            if enabled
            else None
        )
        self._total = total_steps
        self._start = start_step
        self._task = None

    def __enter__(self) -> TrainingProgress:
        if self._progress is not None:
            self._progress.__enter__()
            self._task = self._progress.add_task("train", total=self._total, completed=self._start, rate="", losses="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def advance(self, step: int, losses: Mapping[str, float]) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.update(self._task, completed=step)
        speed = self._progress.tasks[0].speed
        shown = " ".join(f"{name}={value:.4g}" for name, value in losses.items())
        self._progress.update(self._task, rate=f"{speed:.2f} it/s" if speed else "", losses=shown)
