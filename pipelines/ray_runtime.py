"""Starting Ray: a local instance by default, a cluster when an address (or RAY_ADDRESS) is given."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray


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


def task_error_cause(err: BaseException) -> BaseException:
    """The user-facing exception inside a Ray task/actor error (Ray wraps it with a remote traceback)."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err
