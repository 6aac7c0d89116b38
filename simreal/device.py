"""Choosing the torch device from a user's setting, and the one autocast rule of training and inference."""

from __future__ import annotations

import contextlib

import torch

from simreal.errors import ConfigError


class DeviceUnavailableError(ConfigError):
    """A CUDA device was asked for on a machine without one."""


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(f"device {name!r} asked for but CUDA is not available; use cpu or auto")
    return device


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``bf16``; a no-op elsewhere (CPU runs stay exact and deterministic)."""
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
