"""Starting Ray: a local instance by default, a cluster when an address (or RAY_ADDRESS) is given."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from simreal.errors import SimrealError, WorkerLostError


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Use a running Ray if this process already joined one; otherwise start or join one for the block."""
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # A private local instance, quiet, sized to the machine unless told otherwise.
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=True,
            configure_logging=True,
            logging_level="WARNING",
        )
    try:
        yield
    finally:
        ray.shutdown()


# Ray's failures of the machinery rather than of our code: a worker process, actor or node that died, or memory,
# disk and object-store exhaustion. Each becomes a one-line WorkerLostError.
_WORKER_LOSSES = (
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.RayActorError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.LocalRayletDiedError,
    ray.exceptions.OwnerDiedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OutOfMemoryError,
    ray.exceptions.OutOfDiskError,
    ray.exceptions.ObjectStoreFullError,
)


def task_error_cause(err: BaseException, doing: str = "working") -> BaseException:
    """What to raise for an error that came out of a Ray task or actor.

    A simreal error comes back as itself (Ray wraps it with a remote traceback); a dead worker, actor or node becomes
    a :class:`WorkerLostError` naming what was being done; anything else is a bug and keeps Ray's error, whose text
    holds the remote traceback.
    """
    cause = getattr(err, "cause", None)
    if isinstance(cause, SimrealError):
        return cause
    if isinstance(err, _WORKER_LOSSES) and not isinstance(err, ray.exceptions.RayTaskError):
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return WorkerLostError(
            f"a Ray worker died while {doing} ({type(err).__name__}: {reason}); frames committed before it are "
            "kept: rerun the same command to continue"
        )
    return err
