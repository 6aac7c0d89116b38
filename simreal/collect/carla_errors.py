"""Errors of the CARLA frame source, each with a message that says what to do next."""

from __future__ import annotations

from simreal.errors import CollectionError, ConfigError


class CarlaSourceError(CollectionError):
    """Base class of every error the CARLA source raises on purpose."""


class CarlaClientMissingError(CarlaSourceError):
    """The `carla` client package is not installed in this environment."""


class CarlaSettingsError(ConfigError):
    """A CarlaSettings value that cannot work (checked before any connection is made)."""


class CarlaServerError(CarlaSourceError):
    """The server is down, stalled or broken: only a fresh worker process may go on (see CarlaConnectionLostError)."""


class CarlaUnreachableError(CarlaServerError):
    """No CARLA server answered at the configured address within the client timeout."""


class CarlaConnectionLostError(CarlaServerError):
    """The server stopped answering, crashed or stalled a tick mid-run.

    The source does not reconnect in its own process: the client keeps Traffic Managers in a process-wide map keyed by
    port, so after a crash even a new ``carla.Client`` gets the old TM back, bound to the dead connection. The
    collection pipeline restarts the worker in a fresh process instead.
    """


class CarlaSpawnError(CarlaSourceError):
    """An actor the collection cannot run without (ego vehicle, camera) could not be spawned."""


class CarlaSensorTimeoutError(CarlaServerError):
    """A camera stopped delivering images for the frames the world was ticked to."""


def unreachable_message(host: str, port: int, timeout_s: float, cause: BaseException) -> str:
    return (
        f"no CARLA server answered at {host}:{port} within {timeout_s:g}s ({cause}). Start one "
        f"(e.g. `./CarlaUE4.sh -RenderOffScreen -carla-rpc-port={port}`), check host/port, "
        "or collect without a server using `--backend procedural`."
    )


class CarlaNothingKeptError(CarlaSourceError):
    """Every (town, weather) was abandoned in turn without a single kept frame: the filters reject this world."""


class CollectionStoppedError(CarlaSourceError):
    """The source was asked to stop (the run is ending) while it was collecting."""
