"""Stateless, vectorised random numbers keyed by integers, so any frame can be built without replaying others."""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-spread 64-bit hash of a 64-bit key."""
    h = (h + _GOLDEN) & np.uint64(0xFFFFFFFFFFFFFFFF)
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


def hash_uniform(*keys: int | np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) determined by the integer keys (broadcast together)."""
    arrays = np.broadcast_arrays(*[np.atleast_1d(np.asarray(k, dtype=np.int64)) for k in keys])
    with np.errstate(over="ignore"):
        h = np.zeros(arrays[0].shape, np.uint64)
        for a in arrays:
            h = _mix(h ^ a.view(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def key_rng(*keys: int) -> np.random.Generator:
    """A numpy Generator seeded by integer keys (negative keys allowed)."""
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])
