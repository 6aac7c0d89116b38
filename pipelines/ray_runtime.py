"""Starting Ray: a local instance by default, a cluster when an address (or RAY_ADDRESS) is given; checking that
the cluster can hold what a job asks for before the job starts."""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ray

from simreal.data.location import StoreLocation
from simreal.errors import ClusterError, SimrealError, WorkerLostError
from simreal.progress import console

NODE_CHECK_TIMEOUT_S = 120.0
VERBOSE_ENV = "SIMREAL_VERBOSE"
AUTH_MODE_ENV = "RAY_AUTH_MODE"


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Use a running Ray if this process already joined one; otherwise start or join one for the block."""
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    _settle_auth_mode(joining=bool(address))
    # Ray's own warnings and info lines only with `simreal --verbose`; simreal's errors reach the user as errors.
    level = "INFO" if verbose() else "ERROR"
    if address:
        ray.init(address=address, log_to_driver=True, logging_level=level)
    else:
        # A private local instance, quiet, sized to the machine unless told otherwise.
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=True,
            configure_logging=True,
            logging_level=level,
        )
    try:
        yield
    finally:
        ray.shutdown()


def verbose() -> bool:
    """Whether the user asked for Ray's own log lines (`simreal --verbose`, or SIMREAL_VERBOSE=1)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def _settle_auth_mode(joining: bool) -> None:
    """Decide Ray's token authentication instead of leaving it to Ray, which warns on every start while
    RAY_AUTH_MODE is unset. A local instance started here keeps token authentication (Ray's default, and the safe
    one: Ray generates the token); joining a cluster uses a token when this machine has one, else none. A mode the
    user set is kept."""
    if os.environ.get(AUTH_MODE_ENV):
        return
    token_here = (
        any(os.environ.get(name) for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"))
        or (Path.home() / ".ray" / "auth_token").is_file()
    )
    os.environ[AUTH_MODE_ENV] = "token" if not joining or token_here else "disabled"
    from ray._raylet import Config  # Ray read its settings at import: let this process see the mode too, as Ray

    Config.initialize("")  # itself does when it enables token authentication


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


@dataclass(frozen=True)
class Demand:
    """What one part of a job asks Ray for: ``count`` units of ``cpus`` CPUs and ``gpus`` GPUs, each on one node.

    ``together``: every unit must be placed at once (Ray Train's workers, actors the job waits for all of); else
    one unit at a time makes progress (queued tasks). The ``*_key`` fields name the settings that change each number;
    ``gpus_off`` is the setting that stops asking for GPUs (``ray.use_gpu=false``).
    """

    what: str
    count: int
    cpus: float
    gpus: float = 0.0
    together: bool = True
    count_key: str | None = None
    cpus_key: str | None = None
    gpus_key: str | None = None
    gpus_off: str | None = None


def alive_nodes() -> list[dict[str, float]]:
    """The resources of every live node of the cluster this process joined."""
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def units_that_fit(demand: Demand, nodes: list[dict[str, float]]) -> int:
    """How many units of ``demand`` the nodes hold at once when each unit must sit on one node."""
    asked = {"CPU": demand.cpus, "GPU": demand.gpus}
    fit = 0
    for node in nodes:
        per_resource = [math.floor(node.get(name, 0.0) / need + 1e-9) for name, need in asked.items() if need > 0]
        fit += min(per_resource) if per_resource else demand.count
    return fit


def shortfall(demand: Demand, nodes: list[dict[str, float]]) -> str | None:
    """What keeps ``demand`` from ever being placed on ``nodes`` and the settings that fix it; None when it fits."""
    fit = units_that_fit(demand, nodes)
    if fit >= (demand.count if demand.together else 1):
        return None
    most_cpus = max((node.get("CPU", 0.0) for node in nodes), default=0.0)
    most_gpus = max((node.get("GPU", 0.0) for node in nodes), default=0.0)
    unit = f"{_number(demand.cpus)} CPU" + (f" + {_number(demand.gpus)} GPU" if demand.gpus else "")
    has = (
        f"the cluster has {len(nodes)} node{'s' * (len(nodes) != 1)} with "
        f"{_number(sum(n.get('CPU', 0.0) for n in nodes))} CPU and {_number(sum(n.get('GPU', 0.0) for n in nodes))} "
        f"GPU in all, at most {_number(most_cpus)} CPU and {_number(most_gpus)} GPU on one node"
    )
    fixes = []
    if demand.gpus > most_gpus:
        if demand.gpus_off:
            fixes.append(demand.gpus_off)
        if demand.gpus_key and most_gpus > 0:
            fixes.append(f"{demand.gpus_key}<={_number(most_gpus)}")
    if demand.cpus > most_cpus and demand.cpus_key:
        fixes.append(f"{demand.cpus_key}<={_number(most_cpus)}")
    if fit >= 1 and demand.count_key:
        fixes.append(f"{demand.count_key}<={fit}")
    advice = f"; set {' or '.join(fixes)}" if fixes else "; add nodes to the cluster"
    return f"{demand.count} {demand.what} x ({unit}) cannot all be placed: {has}{advice}"


def require_resources(*demands: Demand) -> None:
    """Stop with one line when the joined cluster can never hold ``demands`` (Ray would wait for it forever).

    A cluster whose autoscaler can launch nodes of its own may grow into the request: then only warn.
    """
    nodes = alive_nodes()
    problems = [problem for demand in demands if (problem := shortfall(demand, nodes)) is not None]
    if not problems:
        return
    if autoscaler_can_add_nodes():
        console.print(f"[yellow]ray:[/] {'; '.join(problems)}; waiting for the autoscaler to add nodes", soft_wrap=True)
        return
    raise ClusterError("; ".join(problems))


def autoscaler_can_add_nodes() -> bool:
    """Whether the cluster runs an autoscaler with node types to launch (``ray up``, KubeRay), as opposed to the
    read-only monitor of a ``ray start`` cluster, which reports each running node as its own type ``node_<id>``."""
    from ray.experimental import internal_kv

    if internal_kv._internal_kv_get(b"__autoscaler_v2_enabled", namespace=None) == b"1":
        return True
    status = internal_kv._internal_kv_get(b"__autoscaling_status", namespace=None)
    if not status:
        return False
    report = json.loads(status).get("autoscaler_report") or {}
    node_types = (report.get("node_type_mapping") or {}).values()
    return any(not str(name).startswith("node_") for name in node_types) or bool(report.get("pending_launches"))


def _number(value: float) -> str:
    return f"{value:g}"


def require_shared_folder(location: StoreLocation, what: str) -> None:
    """Stop with one line when a local folder that Ray tasks will write is not the same folder on every node.

    The driver writes a token file into ``location`` and a task pinned to each live node reads it back: a node
    that does not find it has its own disk at that path, and what its tasks write would be lost to the others.
    URLs (object stores) and single-node clusters need no check.
    """
    if not isinstance(location, Path):
        return
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if len(nodes) <= 1:
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    folder = location.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    token_file = folder / f".simreal-node-check-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    token_file.write_text(token, encoding="utf-8")
    try:
        read = ray.remote(num_cpus=0, max_retries=0)(_reads_token)
        answers = {
            _node_name(node): read.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote(str(token_file), token)
            for node in nodes
        }
        seen = dict(zip(answers, ray.get(list(answers.values()), timeout=NODE_CHECK_TIMEOUT_S), strict=True))
    finally:
        token_file.unlink(missing_ok=True)
    blind = [name for name, sees in seen.items() if not sees]
    if blind:
        raise ClusterError(
            f"{what} {folder} is a local path that Ray node{'s' * (len(blind) != 1)} {', '.join(blind)} "
            f"do{'es' * (len(blind) == 1)} not share with this driver (of {len(nodes)} nodes, "
            f"{len(nodes) - len(blind)} see it): put it on a shared filesystem mounted at the same path on every node, "
            "or use an object-store URL such as s3://bucket/path"
        )


def current_node() -> str:
    """The id of the Ray node this task or actor runs on (what a store's ``written_by`` record names)."""
    return ray.get_runtime_context().get_node_id()


def merge_writers(store_attrs: dict, rows_by_writer: dict[str, int]) -> dict[str, int]:
    """A store's ``written_by`` record (Ray node id -> rows written) with this run's rows added."""
    merged = dict(store_attrs.get("written_by") or {})
    for node, rows in rows_by_writer.items():
        merged[node] = int(merged.get(node, 0)) + int(rows)
    return merged


def _reads_token(token_file: str, token: str) -> bool:
    try:
        return Path(token_file).read_text(encoding="utf-8") == token
    except OSError:
        return False


def _node_name(node: dict) -> str:
    return f"{node.get('NodeManagerAddress', '?')} ({str(node['NodeID'])[:8]})"
