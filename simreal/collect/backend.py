"""What ``backend: auto`` means on this machine: the CARLA servers that answer a quick probe, else the procedural world.

``procedural`` and ``carla`` stay explicit choices; only ``auto`` probes. The probe is one cheap RPC
(``get_server_version``) per server with a short client timeout, all servers at once, so a machine without CARLA
pays ``probe_timeout_s`` once, not a long connection timeout per server.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from simreal.errors import ConfigError

BACKENDS = ("auto", "procedural", "carla")
REQUIRE_CARLA = "use `--backend carla` to require a CARLA server"


@dataclass
class BackendChoice:
    backend: str  # "procedural" | "carla"
    servers: list[tuple[str, int]] = field(default_factory=list)  # the CARLA servers to drive
    notice: str = ""  # one line for the user when auto fell back or left servers out


def carla_server_answers(host: str, port: int, timeout_s: float) -> bool:
    """True when a CARLA server at ``host:port`` tells its version within ``timeout_s`` (needs the `carla` client)."""
    import carla

    try:
        client = carla.Client(host, port)
        client.set_timeout(timeout_s)
        client.get_server_version()
    except RuntimeError:  # the client's "time-out ... while waiting for the simulator"
        return False
    return True


def choose_backend(requested: str, servers: list[tuple[str, int]], probe_timeout_s: float) -> BackendChoice:
    """The backend and servers a collection uses; ``auto`` probes ``servers`` for at most ``probe_timeout_s``."""
    if requested not in BACKENDS:
        raise ConfigError(f"unknown backend {requested!r}; choose {', '.join(BACKENDS)}")
    if requested != "auto":
        return BackendChoice(requested, list(servers) if requested == "carla" else [])
    try:
        import carla  # noqa: F401 - only whether the client is installed matters here
    except ImportError:
        missing = "the `carla` client is not installed: collecting from the procedural world"
        return BackendChoice("procedural", [], f"{missing} ({REQUIRE_CARLA})")
    with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
        answers = list(pool.map(lambda server: carla_server_answers(*server, probe_timeout_s), servers))
    alive = [server for server, ok in zip(servers, answers, strict=True) if ok]
    silent = ", ".join(f"{host}:{port}" for (host, port), ok in zip(servers, answers, strict=True) if not ok)
    if not alive:
        return BackendChoice(
            "procedural",
            [],
            f"no CARLA server answered at {silent} within {probe_timeout_s:g}s: collecting from the procedural world "
            f"({REQUIRE_CARLA})",
        )
    left_out = f"CARLA server(s) {silent} did not answer within {probe_timeout_s:g}s; collecting without them"
    return BackendChoice("carla", alive, left_out if silent else "")
