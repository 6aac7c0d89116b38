"""The source actors of a collection: which node each runs on, and its restart when its CARLA server is lost.

A CARLA source never reconnects in its own process (the client keeps Traffic Managers in a process-wide map, so
after a server crash even a new client gets the dead TM back). When a collect() call fails because the server went
away, crashed or stalled, the actor is killed and a new one, a fresh process, is started on the same server after a
backoff, entering the schedule where the stream's kept frames left off. A server that does not come back within the
restart budget (long enough for a UE restart plus a map load) is given up: its stream ends, the others go on.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from pipelines.ray_runtime import task_error_cause
from simreal.collect.carla_errors import CarlaServerError
from simreal.collect.collector import SourceSpec, StreamCollector
from simreal.errors import WorkerLostError

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("localhost", "0.0.0.0", "::1")
DEATH_WAIT_S = 30.0  # how long a killed actor may take to exit before its successor binds the same TM port


@dataclass
class RestartPolicy:
    budget_s: float = 900.0  # from losing a server to its stream running again: a UE restart plus a map load
    backoff_s: float = 5.0  # first wait before a new worker; doubles per failed attempt
    max_backoff_s: float = 60.0


def is_local_host(host: str) -> bool:
    return host in LOCAL_HOSTS or host.startswith("127.")


def node_for_host(host: str, nodes: list[dict[str, Any]], driver_ip: str) -> str | None:
    """The id of the Ray node a source driving a server at ``host`` must run on, or None for any node.

    ``localhost`` is the driver's node; another host is the node with that IP (the server runs on a cluster node).
    A host that is no cluster node is reachable from any node, as far as Ray can tell.
    """
    if is_local_host(host):
        ip = driver_ip
    else:
        try:
            ip = socket.gethostbyname(host)
        except OSError:
            return None
    for node in nodes:
        if node.get("Alive") and node.get("NodeManagerAddress") == ip:
            return str(node["NodeID"])
    return None


def placement_options(host: str) -> dict[str, Any]:
    """Ray actor options pinning a source to the node that can reach ``host`` (none when any node can)."""
    node = node_for_host(host, ray.nodes(), ray.util.get_node_ip_address())
    return {} if node is None else {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}


class SourceWorker:
    """One stream's source actor across restarts.

    States: ``starting`` (start() in flight), ``ready`` (idle), ``busy`` (collect() in flight), ``waiting`` (backoff
    before the next start after a loss), ``lost`` (given up).
    """

    def __init__(
        self,
        spec: SourceSpec,
        build: tuple[Any, ...],
        actor_options: dict[str, Any],
        policy: RestartPolicy,
        kept: int = 0,
        last_rgb: np.ndarray | None = None,
    ) -> None:
        self.spec = spec
        self.kept = kept  # frames this stream kept so far (store and this run): a new worker continues from there
        self.counts: Counter = Counter()  # filter verdicts of this stream this run, over all its workers
        self.restarts = 0
        self.lost_reason = ""
        self.state = "new"
        self.range: tuple[int, int] | None = None
        self.start_ref: ray.ObjectRef | None = None
        self.counts_ref: ray.ObjectRef | None = None
        self.batch_ref: ray.ObjectRef | None = None
        self.retry_at = 0.0
        self._build = build  # StreamCollector arguments after the spec
        self._actor_options = actor_options
        self._policy = policy
        self._last_rgb = last_rgb
        self._actor: Any = None
        self._dead: Any = None  # the killed predecessor: must be gone before a successor starts
        self._worker_counts: Counter = Counter()  # counts of the current actor (they restart from 0 with it)
        self._lost_since: float | None = None
        self._attempts = 0

    @property
    def name(self) -> str:
        params = self.spec.params
        where = f"{params['host']}:{params['port']}" if self.spec.backend == "carla" else "procedural"
        return f"{where} (stream {self.spec.stream})"

    def launch(self) -> None:
        """Create the actor (a fresh process) and start its source."""
        self._await_death()
        params = dict(self.spec.params)
        if self.spec.backend == "carla":
            params["schedule_start"] = self.kept
        actor_cls = ray.remote(StreamCollector).options(**self._actor_options)
        self._actor = actor_cls.remote(replace(self.spec, params=params), *self._build)
        self.start_ref = self._actor.start.remote(self._last_rgb)
        self.state = "starting"

    def started(self) -> None:
        if self._lost_since is not None:  # the budget runs on until a batch comes back: a worker that starts and
            self.restarts += 1  # fails again (a server crashing at the same spot, cameras silent) is no recovery
            log.warning("%s started again after %d attempt(s)", self.name, self._attempts)
        self._worker_counts = Counter()
        self.state = "ready"

    def dispatch(self, start: int, stop: int) -> None:
        self.range = (start, stop)
        self.batch_ref, self.counts_ref = self._actor.collect_counted.options(num_returns=2).remote(stop - start)
        self.state = "busy"

    def collected(self, counts: Counter) -> tuple[int, int]:
        """A batch came back: its range, with the stream's counts brought up to date."""
        self.counts.update(counts - self._worker_counts)
        self._worker_counts = Counter(counts)
        start, stop = self.range
        self.kept += stop - start
        self.range, self.state = None, "ready"
        self._lost_since, self._attempts = None, 0
        return start, stop

    def restartable(self, error: BaseException) -> bool:
        """Whether ``error`` (from start() or collect()) is a lost server or worker that a fresh process may cure."""
        cause = task_error_cause(error, "collecting")
        return self.spec.backend == "carla" and isinstance(cause, CarlaServerError | WorkerLostError)

    def lose(self, error: BaseException, now: float) -> str:
        """The server or worker is lost: kill the actor, then wait to restart (or give up); a line for the user."""
        cause = task_error_cause(error, "collecting")
        self.kill()
        self.range = None
        self._lost_since = now if self._lost_since is None else self._lost_since
        self._attempts += 1
        waited = now - self._lost_since
        if waited >= self._policy.budget_s:
            self.state = "lost"
            self.lost_reason = (
                f"CARLA server {self.name} did not come back within carla.restart_budget_s="
                f"{self._policy.budget_s:g}s ({self._attempts} attempts); last error: {first_line(cause)}"
            )
            return self.lost_reason + "; its stream ends, the other sources go on"
        backoff = min(self._policy.max_backoff_s, self._policy.backoff_s * 2 ** (self._attempts - 1))
        self.retry_at = now + backoff
        self.state = "waiting"
        return (
            f"{self.name}: {first_line(cause)}; a new worker starts in {backoff:g}s "
            f"(attempt {self._attempts}, {self._policy.budget_s - waited:.0f}s of the restart budget left)"
        )

    def close(self) -> ray.ObjectRef | None:
        """Ask the actor to release its source (it stops a collect() in flight at its next tick)."""
        if self._actor is None or self.state in ("lost", "waiting"):
            return None
        return self._actor.close.remote()

    def kill(self) -> None:
        if self._actor is not None:
            ray.kill(self._actor, no_restart=True)
            self._dead, self._actor = self._actor, None

    def _await_death(self) -> None:
        """The predecessor's process must have exited: its Traffic Manager held the port the successor needs."""
        if self._dead is None:
            return
        deadline = time.monotonic() + DEATH_WAIT_S
        while time.monotonic() < deadline:
            try:
                ray.get(self._dead.__ray_ready__.remote(), timeout=max(0.1, deadline - time.monotonic()))
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                break
            time.sleep(0.1)
        self._dead = None


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0].rstrip(".") if text else type(error).__name__
