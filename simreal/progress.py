"""Progress display shared by every long stage: pipelines and training, on stderr.

On a terminal: rich bars. Anywhere else (CI, ``nohup``, a cluster job's log): one plain line per stage every
``SIMREAL_PROGRESS_INTERVAL_S`` seconds (default 30) and a last one when the stage ends, with the count, the rate and
the time left, never cut to a terminal width.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

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


class LineBar(Bar):
    """Progress as plain lines at a steady interval, for logs that are not a terminal."""

    def __init__(self, description: str, total: int, completed: int, unit: str, interval_s: float) -> None:
        super().__init__(None, None)
        self.description, self.total, self.unit = description, total, unit
        self.completed = self._start = completed
        self._began = time.monotonic()
        self._text = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._report_every, args=(interval_s,), daemon=True)

    def advance(self, n: int = 1) -> None:
        self.completed += n

    def info(self, text: str) -> None:
        self._text = text

    def line(self) -> str:
        elapsed = time.monotonic() - self._began
        done = self.completed - self._start
        rate = done / elapsed if elapsed > 0 and done else 0.0
        share = f" ({100 * self.completed / self.total:.0f}%)" if self.total else ""
        left = (self.total - self.completed) / rate if rate and self.total else None
        eta = f", ETA {timedelta(seconds=round(left))}" if left is not None else ""
        info = f"; {self._text}" if self._text else ""
        return (
            f"{self.description}: {self.completed}/{self.total} {self.unit}{share}, {rate:.2f} {self.unit}/s, "
            f"elapsed {timedelta(seconds=round(elapsed))}{eta}{info}"
        )

    def _report_every(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            _print_line(self.line())

    def __enter__(self) -> LineBar:
        _print_line(self.line())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        _print_line(self.line())


def _print_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)  # plain: no width, no markup, one line


def progress_interval_s() -> float:
    return float(os.environ.get("SIMREAL_PROGRESS_INTERVAL_S", "30"))


@contextmanager
def progress_bar(
    description: str, total: int, completed: int = 0, unit: str = "frames", enabled: bool = True
) -> Iterator[Bar]:
    if not enabled:  # e.g. non-main ranks of a distributed job, or progress=false
        yield Bar(None, None)
        return
    if not console.is_terminal:
        with LineBar(description, total, completed, unit, progress_interval_s()) as line_bar:
            yield line_bar
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
