"""Exceptions raised by the training harness, each with a message that says what to do next."""

from __future__ import annotations

from pathlib import Path

from simreal.errors import TrainingError


class NonFiniteLossError(TrainingError):
    """A loss became NaN or Inf. The step is abandoned and nothing is saved over the last good checkpoint."""

    def __init__(self, loss_name: str, value: float, step: int | None = None, checkpoint: Path | None = None) -> None:
        self.loss_name = loss_name
        self.value = value
        self.step = step
        self.checkpoint = checkpoint
        super().__init__(self._message())

    def _message(self) -> str:
        where = f" at step {self.step}" if self.step is not None else ""
        kept = (
            f"the last good checkpoint {self.checkpoint} is kept; rerun on the same run directory to resume from it "
            "(consider a lower learning rate)"
            if self.checkpoint is not None
            else "no checkpoint had been written yet"
        )
        return f"loss {self.loss_name!r} is {self.value}{where}; training stopped, {kept}"

    def at(self, phase: str, step: int, checkpoint: Path | None) -> NonFiniteLossError:
        """The same error named ``<phase>/<loss>``, with the step and the kept checkpoint (known to the loop)."""
        name = self.loss_name if self.loss_name.startswith(f"{phase}/") else f"{phase}/{self.loss_name}"
        return NonFiniteLossError(name, self.value, step, checkpoint)


class RunDirectoryError(TrainingError):
    """The run directory does not fit the request (resume without checkpoint, fresh start over a checkpoint)."""


class DatasetTooSmallError(TrainingError):
    """A training role's dataset cannot fill a single batch."""


class InitWeightsError(TrainingError):
    """The run named by ``init=`` cannot give its weights to this one (another method or other shapes)."""
