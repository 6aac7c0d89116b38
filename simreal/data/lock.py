"""One writer per frame store: an exclusive lock taken before a job writes anything, released when it ends.

The lock lives beside the store, as ``<store>.lock`` (``data/carla.zarr.lock``, ``s3://bucket/carla.zarr.lock``),
so that it exists before the store does and survives the store's replacement. Readers never look at it.

- Local disks and shared file systems: an OS lock (``flock``) on the lock file. The kernel drops it when its
  holder dies, however it dies (``kill -9`` included), so a dead holder never leaves a store locked. The file
  names the holder for the refusal message and is removed on release.
- Object stores (s3://, gs://, ...): a lease object made with a conditional create (S3 ``If-None-Match: *``), which
  its holder renews every ``LEASE_S / 4`` seconds. A lease whose holder stopped renewing for ``LEASE_S`` seconds, or
  whose holder is a dead process of this host, is broken by overwriting it conditionally (S3 ``If-Match`` on the
  stale version: of two writers breaking it at once, one wins). A holder that finds its lease taken stops before
  its next commit (:func:`check_writer`).

Locks are per process and re-entrant: a job that runs other jobs on the same store (the demo, the study) holds it
once. The Ray tasks that write a job's shards do not take it: they work for the process that holds it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simreal.data.location import StoreLocation, StoreURL, absolute_location, filesystem
from simreal.errors import StoreError

LOCK_SUFFIX = ".lock"
LEASE_S = 60.0  # an object-store lease not renewed for this long is stale
_HOLDER_READ_TRIES = 20  # a lock just taken may not name its holder yet: wait up to 1 s for the name


@dataclass(frozen=True)
class Holder:
    """Who holds a store's lock: written into the lock file / lease object."""

    host: str
    pid: int
    command: str
    started: str
    token: str
    renewed: float = 0.0  # leases: the holder's clock at the last renewal (time.time())

    @classmethod
    def this_process(cls) -> Holder:
        command = " ".join(_command_line().split())  # one line, whatever the arguments hold
        return cls(
            host=socket.gethostname(),
            pid=os.getpid(),
            command=command if len(command) <= 200 else command[:197] + "...",
            started=datetime.now(UTC).isoformat(timespec="seconds"),
            token=uuid.uuid4().hex,
            renewed=time.time(),
        )

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} ({self.command}, since {self.started})"

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes) -> Holder | None:
        try:
            fields = json.loads(data)
            return cls(**fields) if isinstance(fields, dict) else None
        except (ValueError, TypeError):
            return None

    def is_dead_local_process(self) -> bool:
        """Whether this holder is a process of this host that no longer exists."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # exists, another user's
            return False
        return False


def _command_line() -> str:
    """This process's command as its user typed it: ``simreal collect ...``, ``python -m ...``."""
    if sys.argv and Path(sys.argv[0]).name == "simreal":  # the console script
        return shlex.join(["simreal", *sys.argv[1:]])
    return shlex.join([Path(sys.orig_argv[0]).name, *sys.orig_argv[1:]])


def lock_location(store: StoreLocation) -> StoreLocation:
    """Where the lock of ``store`` lives: beside it, ``<name>.lock``."""
    return store.with_name(store.name + LOCK_SUFFIX)


def busy_message(store: StoreLocation, holder: Holder | None) -> str:
    who = holder.describe() if holder else "another process (it has not named itself yet)"
    return (
        f"{store} is being written by {who}; nothing was changed. Wait for it to finish, or stop it and rerun "
        "this command to continue the store"
    )


class _FileLock:
    """flock on ``<store>.lock``; the file is removed on release while still locked, so a waiter that opened the
    old file sees it was unlinked and retries on the new one."""

    def __init__(self, store: Path, holder: Holder) -> None:
        self.store, self.path, self.holder = store, lock_location(store), holder
        self._fd: int | None = None

    def acquire(self) -> None:
        assert isinstance(self.path, Path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise StoreError(f"cannot lock {self.path}: {err.strerror or err}") from err
                raise StoreError(busy_message(self.store, self._read_holder())) from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:
                break
            os.close(fd)  # the file was released and removed between our open and our lock: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, self.holder.encode())
        os.fsync(fd)
        self._fd = fd

    def _read_holder(self) -> Holder | None:
        assert isinstance(self.path, Path)
        for _ in range(_HOLDER_READ_TRIES):
            try:
                holder = Holder.decode(self.path.read_bytes())
            except FileNotFoundError:
                holder = None
            if holder is not None:
                return holder
            time.sleep(0.05)
        return None

    def check(self) -> None:
        """A local lock cannot be taken from its holder."""

    def release(self) -> None:
        if self._fd is None:
            return
        assert isinstance(self.path, Path)
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class _Lease:
    """A lease object beside a store on an object store, renewed by a background thread."""

    def __init__(self, store: StoreURL, holder: Holder) -> None:
        self.store, self.url, self.holder, self.lease_s = store, lock_location(store), holder, LEASE_S
        self.fs, self.key = filesystem(self.url)  # type: ignore[arg-type]
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- object-store calls
    def _put(self, data: bytes, *, create: bool = False, replacing: str | None = None) -> None:
        """Write the lease: only if absent (``create``), only over version ``replacing``, or unconditionally.
        FileExistsError when the condition fails."""
        kwargs: dict[str, Any] = {}
        if replacing is not None and self.url.protocol in ("s3", "s3a"):
            kwargs["IfMatch"] = replacing
        try:
            self.fs.pipe_file(self.key, data, mode="create" if create else "overwrite", **kwargs)
        except FileExistsError:
            raise
        except OSError as err:
            if replacing is not None and err.errno == errno.EINVAL:  # s3fs: 412 PreconditionFailed (If-Match)
                raise FileExistsError(self.key) from err
            raise
        self.fs.invalidate_cache(self.key)

    def _current_version(self) -> str | None:
        try:
            info = self.fs.info(self.key)
        except FileNotFoundError:
            return None
        return _etag(info) or str(info.get("mtime") or info.get("LastModified") or "")

    def _read(self) -> tuple[Holder | None, str | None]:
        """The current lease's holder and version; (None, None) when there is none."""
        self.fs.invalidate_cache(self.key)
        version = self._current_version()
        if version is None:
            return None, None
        try:
            data = self.fs.cat_file(self.key)
        except FileNotFoundError:
            return None, None
        return Holder.decode(data), version

    # ----------------------------------------------------------------- lock protocol
    def acquire(self) -> None:
        data = self.holder.encode()
        for _ in range(3):
            try:
                self._put(data, create=True)
                break
            except FileExistsError:
                pass
            current, version = self._read()
            if version is None:
                continue  # released between our create and our read
            if current is not None and not self._stale(current):
                raise StoreError(busy_message(self.store, current))
            try:  # break the stale lease: exactly one of several contenders replaces this version
                if self.url.protocol not in ("s3", "s3a"):
                    self.fs.rm(self.key)
                    self._put(data, create=True)
                else:
                    self._put(data, replacing=version)
                break
            except (FileExistsError, FileNotFoundError):
                continue
        else:
            current, _ = self._read()
            raise StoreError(busy_message(self.store, current))
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease {self.url}", daemon=True)
        self._thread.start()

    def _stale(self, holder: Holder) -> bool:
        return time.time() - holder.renewed > self.lease_s or holder.is_dead_local_process()

    def _renew_loop(self) -> None:
        last_renewed = time.monotonic()
        while not self._stop.wait(self.lease_s / 4):
            try:
                current, version = self._read()
                if current is None or current.token != self.holder.token:
                    taker = current.describe() if current else "nobody (the lease object was deleted)"
                    self._lost = f"its writer lease was taken over by {taker}"
                    return
                renewed = Holder(**{**asdict(self.holder), "renewed": time.time()})
                self._put(renewed.encode(), replacing=version)
                last_renewed = time.monotonic()
            except FileExistsError:
                continue  # raced with a reader's view; the next round re-reads
            except OSError:
                if time.monotonic() - last_renewed > self.lease_s:
                    self._lost = f"its writer lease could not be renewed for {self.lease_s:.0f} s"
                    return

    def check(self) -> None:
        if self._lost:
            raise StoreError(
                f"{self.store}: {self._lost}; this job stopped before its next commit (the frames committed so far "
                "are kept). Make sure one job writes the store, then rerun to continue it"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.lease_s)
        current, _ = self._read()
        if current is not None and current.token == self.holder.token:
            try:
                self.fs.rm(self.key)
            except FileNotFoundError:
                pass


def _etag(meta: Any) -> str | None:
    if isinstance(meta, dict):
        for key in ("ETag", "etag"):
            if meta.get(key):
                return str(meta[key])
    return None


@dataclass
class _Held:
    lock: _FileLock | _Lease
    depth: int


_held: dict[str, _Held] = {}
_held_guard = threading.Lock()


@contextmanager
def writer_lock(store: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the one-writer lock of ``store`` (a folder or URL) for the block; StoreError naming the holder when
    another process has it. Re-entrant within a process."""
    location = absolute_location(store)
    key = str(location)
    with _held_guard:
        held = _held.get(key)
        if held is not None:
            held.depth += 1
        else:
            holder = Holder.this_process()
            lock = _Lease(location, holder) if isinstance(location, StoreURL) else _FileLock(location, holder)
            lock.acquire()
            held = _held[key] = _Held(lock, 1)
    try:
        yield
    finally:
        with _held_guard:
            held.depth -= 1
            if held.depth == 0:
                del _held[key]
                held.lock.release()


def check_writer(store: StoreLocation) -> None:
    """Raise StoreError when this process held the lock of ``store`` and lost it (a lease taken over)."""
    held = _held.get(str(absolute_location(store)))
    if held is not None:
        held.lock.check()
