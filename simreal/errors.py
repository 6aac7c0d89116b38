"""The errors simreal raises on purpose: expected failures whose message tells the user what is wrong and what to do.

Every one derives from :class:`SimrealError`; the CLI prints those as one ``error: ...`` line with exit status 1.
Anything else that escapes a command is a bug in simreal and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[SimrealError], message: str, state: dict[str, Any]) -> SimrealError:
    err = Exception.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class SimrealError(Exception):
    """An expected failure with a message meant for the user (a file, key or value, and what to do)."""

    def __reduce__(self) -> tuple:
        # Subclasses take structured constructor arguments; rebuilding from message and attributes lets the error
        # cross process boundaries (Ray tasks and actors) with its class, text and fields intact.
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


class ConfigError(SimrealError):
    """A config or command-line value that cannot work: unknown name, bad override, wrong type or range."""


class StoreError(SimrealError):
    """A frame store that cannot be opened, read or written as asked."""


class LabelError(SimrealError):
    """An unknown label scheme, class set or mapping, or label ids a table does not define."""


class ImporterError(SimrealError):
    """A dataset on disk that cannot be read: layout, unreadable or mismatched files."""


class CollectionError(SimrealError):
    """Collecting frames failed: a simulator server, a source setting, a stream."""


class CheckpointError(SimrealError):
    """A checkpoint or weights file that cannot be read (garbage, truncated, another program's pickle) or that is
    not what the command takes."""


class TrainingError(SimrealError):
    """A training run that cannot start or go on: data, run directory, checkpoint, a non-finite loss."""


class ModelError(SimrealError):
    """A model specification or input a network cannot take, or weights that cannot be loaded."""


class TranslationError(SimrealError):
    """Translating or synthesizing a store cannot proceed as asked."""


class ScoringError(SimrealError):
    """Scoring cannot proceed: missing weights, mismatched class sets, empty stores."""


class BenchError(SimrealError):
    """A downstream benchmark that cannot run as configured."""


class ClusterError(SimrealError):
    """The Ray cluster cannot run a job as asked: too few CPUs or GPUs, nodes that do not share an output path."""


class WorkerLostError(SimrealError):
    """A worker process (a Ray task or actor) died before it finished its part of a job."""
