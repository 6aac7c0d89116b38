"""Progress display shared by every long stage: pipelines and training (rich, on stderr)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Items per second, named by the bar's unit."""

    def render(self, task) -> Text:  # type: ignore[no-untyped-def]
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "it")
        return Text(f"{speed:6.1f} {unit}/s" if speed else f"   -   {unit}/s", style="cyan")


class Bar:
    """One progress bar; a disabled bar (no ``progress``) ignores every call."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def info(self, text: str) -> None:
        """Free text after the counters, e.g. drop counts or losses."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, info=text)


@contextmanager
def progress_bar(
    description: str, total: int, completed: int = 0, unit: str = "frames", enabled: bool = True
) -> Iterator[Bar]:
    if not enabled:  # e.g. non-main ranks of a distributed job, or progress=false
        yield Bar(None, None)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
    )
    with progress:
        task = progress.add_task(description, total=total, completed=completed, info="", unit=unit)
        yield Bar(progress, task)
