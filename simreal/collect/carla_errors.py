"""Errors of the CARLA frame source, each with a message that says what to do next."""

from __future__ import annotations

from simreal.errors import CollectionError, ConfigError


class CarlaSourceError(CollectionError):
    """Base class of every error the CARLA source raises on purpose."""


class CarlaClientMissingError(CarlaSourceError):
    """The `carla` client package is not installed in this environment."""


class CarlaSettingsError(ConfigError):
    """A CarlaSettings value that cannot work (checked before any connection is made)."""


class CarlaUnreachableError(CarlaSourceError):
    """No CARLA server answered at the configured address within the client timeout."""


class CarlaConnectionLostError(CarlaSourceError):
    """The server stopped answering mid-run and every reconnect attempt failed."""


class CarlaSpawnError(CarlaSourceError):
    """An actor the collection cannot run without (ego vehicle, camera) could not be spawned."""


class CarlaSensorTimeoutError(CarlaSourceError):
    """A camera stopped delivering images for the frames the world was ticked to."""


def unreachable_message(host: str, port: int, timeout_s: float, cause: BaseException) -> str:
    return (
        f"no CARLA server answered at {host}:{port} within {timeout_s:g}s ({cause}). Start one "
        f"(e.g. `./CarlaUE4.sh -RenderOffScreen -carla-rpc-port={port}`), check host/port, "
        "or collect without a server using `--backend procedural`."
    )
