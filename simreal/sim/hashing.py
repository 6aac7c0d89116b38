"""Stateless, vectorised random numbers keyed by integers: any frame is built without replaying others."""

from __future__ import annotations

import numpy as np

_MASK = 0xFFFFFFFFFFFFFFFF
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-spread 64-bit hash of a 64-bit key."""
    h = h + _GOLDEN
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


def _mix_int(h: int) -> int:
    """The same finaliser on a Python int (cheap for scalar keys)."""
    h = (h + 0x9E3779B97F4A7C15) & _MASK
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK
    return h ^ (h >> 31)


def hash_uniform(*keys: int | np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) determined by the integer keys (array keys broadcast together).

    Leading scalar keys are folded in Python; the rest with numpy.
    """
    h_int = 0
    rest = list(keys)
    while rest and np.ndim(rest[0]) == 0:
        h_int = _mix_int(h_int ^ (int(rest.pop(0)) & _MASK))
    h = np.full((1,), h_int, np.uint64)
    with np.errstate(over="ignore"):
        for key in rest:
            h = _mix(h ^ np.asarray(key, dtype=np.int64).view(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def key_rng(*keys: int) -> np.random.Generator:
    """A numpy Generator seeded by integer keys (negative keys allowed)."""
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])
