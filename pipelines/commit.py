"""Publishing frames written out of order by parallel writers, in order."""

from __future__ import annotations

from collections import Counter

from simreal.data.store import FrameStore


class OrderedCommitter:
    """Advance a store's committed count as soon as every row before it has been written; count the rows each
    writer (a Ray node) wrote, for the store's ``written_by`` record."""

    def __init__(self, store: FrameStore) -> None:
        self.store = store
        self._written: dict[int, int] = {}
        self.rows_by_writer: Counter[str] = Counter()

    def written(self, start: int, stop: int, writer: str | None = None) -> int:
        """Record rows [start, stop) as written; commit what is contiguous; return the committed count."""
        self._written[start] = stop
        if writer is not None:
            self.rows_by_writer[writer] += stop - start
        count = len(self.store)
        advanced = count
        while advanced in self._written:
            advanced = self._written.pop(advanced)
        if advanced != count:
            self.store.commit(advanced)
        return advanced
