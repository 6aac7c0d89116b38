"""Atomic checkpoint files and the RNG snapshots that make resumed runs repeat uninterrupted ones."""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simreal.errors import CheckpointError
from simreal.training.errors import RunDirectoryError

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


def checkpoint_file(path: str | Path, what: str = "") -> Path:
    """The checkpoint of a training run directory, or ``path`` itself when it names the file.

    ``what`` names the kind of run expected in the error (``"segmenter"``: "no segmenter checkpoint at ...").
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        kind = f"{what} " if what else ""
        raise RunDirectoryError(
            f"no {kind}checkpoint at {path}; pass a training run directory or its {CHECKPOINT_NAME}"
        )
    return path


def save_atomic(payload: Any, path: Path) -> None:
    """Write with ``torch.save`` to a temp file in the same directory, fsync, then ``os.replace``.

    A crash at any point leaves either the old file or the new one, never a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (POSIX); not possible on some platforms, where it is skipped."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_torch_file(path: str | Path, what: str, map_location: str | torch.device = "cpu", mmap: bool = False) -> Any:
    """``torch.load`` of tensors and plain containers only (``weights_only``: a file never runs code); a file that
    cannot be read so is one CheckpointError line saying why. ``what`` names the file in it ("checkpoint")."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols: the error below says what matters
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a {what}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        raise CheckpointError(f"{path} cannot be read as a {what}: {_why_unreadable(path, err)}") from None


def _why_unreadable(path: Path, err: Exception) -> str:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        head = b""
    if isinstance(err, pickle.UnpicklingError):  # weights_only refused the content
        if head.startswith(b"PK"):
            return "it holds pickled Python objects, not only tensors (simreal never loads code from a file)"
        if head[:1] == b"\x80":
            return "it is a plain Python pickle (another program's file?), not a PyTorch file"
        return "it is not a PyTorch file"
    if head.startswith(b"PK") or isinstance(err, EOFError):
        return "it is truncated or damaged (an incomplete copy?)"
    return f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:120]}"


def load(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict:
    """A simreal checkpoint (what ``save_atomic`` writes for a training run: format, method name, states);
    anything else is one CheckpointError line."""
    saved = read_torch_file(path, "simreal checkpoint", map_location, mmap)
    if not isinstance(saved, dict) or "method_name" not in saved:
        held = f"a dict of {', '.join(map(str, list(saved)[:4]))}" if isinstance(saved, dict) else type(saved).__name__
        raise CheckpointError(
            f"{path} is not a simreal checkpoint (the checkpoint.pt of a training run): it holds {held}"
        )
    if saved.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {saved.get('format')}; this simreal reads format {CHECKPOINT_FORMAT}"
        )
    return saved


def capture_rng_state() -> dict:
    """torch (CPU and CUDA), numpy and python RNG states as tensors and plain values."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_plain(state: tuple) -> list:
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]
