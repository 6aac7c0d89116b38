"""Where a frame store lives: a local folder, or any fsspec URL (``s3://``, ``gs://``, ``az://``, ``memory://``, ...).

Plain paths and ``file://`` URLs are local folders (:class:`pathlib.Path`): zarr's local store replaces each file
atomically and folders can be renamed. Every other URL becomes a :class:`StoreURL` and goes to zarr's fsspec store;
the object store's own library (``s3fs``, ``gcsfs``, ...) reads credentials and endpoints from its usual environment
variables and config files, never from simreal's.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import fsspec

from simreal.errors import StoreError

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://(.*)$")
# pathlib merges the '//' of a URL it is handed (Path("s3://b/x") is "s3:/b/x"); a store path that went through a
# Path on its way (a typer option, a dataset's attribute) is recognised by its protocol and put back together.
_MERGED_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/([^/].*)$")
_LOCAL_PROTOCOLS = {"file", "local"}


class StoreURL(str):
    """A store on an fsspec filesystem other than the local one, e.g. ``s3://bucket/carla.zarr`` (no trailing /)."""

    @property
    def protocol(self) -> str:
        return self.split("://", 1)[0]

    @property
    def name(self) -> str:
        return self.rsplit("/", 1)[-1]

    @property
    def parent(self) -> StoreURL:
        return StoreURL(self.rsplit("/", 1)[0])

    def with_name(self, name: str) -> StoreURL:
        return StoreURL(f"{self.parent}/{name}")

    def __truediv__(self, child: str) -> StoreURL:
        return StoreURL(f"{self}/{child}")


StoreLocation = Path | StoreURL


def store_location(value: str | os.PathLike[str]) -> StoreLocation:
    """The local folder or the URL ``value`` names (``~`` is expanded in local paths)."""
    if isinstance(value, StoreURL):
        return value
    text = os.fspath(value)
    match = _URL.match(text)
    if match is None:
        merged = _MERGED_URL.match(text)
        if merged and merged.group(1).lower() in _remote_protocols():
            match = merged
    if match is None:
        return Path(text).expanduser()
    protocol, rest = match.group(1).lower(), match.group(2)
    if protocol in _LOCAL_PROTOCOLS:
        return Path(unquote(rest)).expanduser()
    if protocol not in _remote_protocols():
        raise StoreError(f"{text}: unknown storage protocol {protocol!r} (fsspec knows {', '.join(_known())})")
    return StoreURL(f"{protocol}://{rest.rstrip('/')}")


def is_remote(location: str | os.PathLike[str]) -> bool:
    return isinstance(store_location(location), StoreURL)


def absolute_location(value: str | os.PathLike[str]) -> StoreLocation:
    """``value`` as other processes and nodes can use it: an absolute local path or the URL unchanged."""
    location = store_location(value)
    return location if isinstance(location, StoreURL) else location.resolve()


def filesystem(url: StoreURL) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``url`` and the path inside it; a missing library (s3fs, gcsfs) is a StoreError."""
    try:
        return fsspec.core.url_to_fs(str(url))
    except ImportError as err:
        extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}.get(url.protocol)
        hint = f'pip install "simreal[{extra}]"' if extra else "install the fsspec implementation for it"
        missing = f"{url.protocol}:// stores need a library that is not installed ({err})"
        raise StoreError(f"{url}: {missing}; {hint}") from err


def file_exists(location: StoreLocation, name: str) -> bool:
    """Whether the file ``name`` exists inside the store folder / prefix ``location``."""
    if isinstance(location, Path):
        return (location / name).is_file()
    fs, path = filesystem(location)
    fs.invalidate_cache(path)  # listings cached by an earlier call may predate other processes' writes
    return bool(fs.isfile(f"{path}/{name}"))


def read_file(location: StoreLocation, name: str) -> bytes:
    """The bytes of the file ``name`` inside ``location``; FileNotFoundError when it is not there."""
    if isinstance(location, Path):
        return (location / name).read_bytes()
    fs, path = filesystem(location)
    return fs.cat_file(f"{path}/{name}")


def holds_anything(location: StoreLocation) -> bool:
    """Whether anything at all exists at ``location`` (a folder, a file, objects under the prefix)."""
    if isinstance(location, Path):
        return location.exists()
    fs, path = filesystem(location)
    fs.invalidate_cache(path)
    return bool(fs.exists(path)) and (fs.isfile(path) or bool(fs.ls(path, detail=False)))


def remove(location: StoreLocation) -> None:
    """Delete the store folder / every object under the prefix; nothing there is fine."""
    if isinstance(location, Path):
        shutil.rmtree(location, ignore_errors=True)
        return
    fs, path = filesystem(location)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    fs.invalidate_cache(path)


def zarr_target(location: StoreLocation) -> Any:
    """What ``zarr.open_group`` takes for ``location``: a local path or the URL string."""
    return location if isinstance(location, Path) else str(location)


def _remote_protocols() -> set[str]:
    return set(_known()) - _LOCAL_PROTOCOLS


def _known() -> list[str]:
    return sorted(fsspec.available_protocols())
