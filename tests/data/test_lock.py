"""One writer per store: a second writer is refused naming the holder, a dead holder never keeps the lock, readers
never wait, and a lease taken from its holder stops the holder before its next commit. Local disk and S3 (moto)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import s3fs

from simreal.data import lock as lock_module
from simreal.data.location import store_location
from simreal.data.lock import Holder, lock_location, writer_lock
from simreal.data.store import FrameStore, StoreError
from simreal.data.verify import verify_store

REPO = Path(__file__).resolve().parents[2]

# A process that takes a store's writer lock, says so, and holds it until killed.
HOLD = textwrap.dedent(
    """
    import sys, time
    from simreal.data.lock import writer_lock
    with writer_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(600)
    """
)


def frames(k: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    rng = np.random.default_rng(k)
    return rng.integers(0, 256, (k, 8, 16, 3), dtype=np.uint8), np.zeros((k, 8, 16), np.uint8), [{}] * k


def start_holder(store: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = env or {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, store], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held", "the holder never took the lock"
    return proc


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def s3_url(name: str) -> str:
    return f"s3://simreal/lock-{uuid.uuid4().hex[:8]}/{name}"


@pytest.fixture(params=["local", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A store location (not yet created) and the environment for processes that use it."""
    if request.param == "local":
        return str(tmp_path / "s.zarr"), {**os.environ, "PYTHONPATH": str(REPO)}
    env = request.getfixturevalue("s3_env")
    return s3_url("s.zarr"), env


def test_a_second_writer_is_refused_naming_the_holder_and_changes_nothing(place: tuple[str, dict]) -> None:
    url, env = place
    store = FrameStore.create(url, height=8, width=16)
    store.append(*frames(3))
    holder = start_holder(url, env)
    try:
        with pytest.raises(StoreError) as refused, writer_lock(url):
            pytest.fail("the lock was granted while another process holds it")
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and "python" in message and "nothing was changed" in message
        assert "\n" not in message
        reader = FrameStore.open(url)  # readers never wait for the lock
        assert len(reader) == 3 and verify_store(url).ok
    finally:
        kill(holder)


def test_a_killed_holder_does_not_keep_the_store_locked(place: tuple[str, dict]) -> None:
    url, env = place
    holder = start_holder(url, env)
    kill(holder)  # kill -9: no release ran
    began = time.monotonic()
    with writer_lock(url):
        store = FrameStore.create(url, height=8, width=16)
        store.append(*frames(2))
    assert time.monotonic() - began < lock_module.LEASE_S / 2, "the dead holder's lease was waited out"
    assert len(FrameStore.open(url)) == 2


def test_the_lock_is_reentrant_in_a_process_and_gone_after_release(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    with writer_lock(path), writer_lock(str(path)):  # the demo and study run jobs that lock the same store
        assert json.loads(lock_location(path).read_text())["pid"] == os.getpid()
    assert not lock_location(path).exists()
    with writer_lock(path):  # and it can be taken again
        pass


def test_a_stale_lease_of_another_host_is_broken_and_a_fresh_one_is_not(s3_env: dict[str, str]) -> None:
    url = s3_url("s.zarr")
    fs = s3fs.S3FileSystem()
    lease = str(lock_location(store_location(url))).removeprefix("s3://")
    other = Holder("elsewhere", 4242, "simreal collect --out x", "2026-01-01T00:00:00+00:00", "t0", time.time())
    fs.pipe_file(lease, other.encode())
    with pytest.raises(StoreError, match="pid 4242 on elsewhere"), writer_lock(url):
        pass
    stale = Holder(**{**other.__dict__, "renewed": time.time() - 2 * lock_module.LEASE_S})
    fs.pipe_file(lease, stale.encode())
    with writer_lock(url):
        assert json.loads(fs.cat_file(lease))["pid"] == os.getpid()
    assert not fs.exists(lease)


BREAK = textwrap.dedent(
    """
    import sys, time
    from simreal.data.lock import writer_lock
    from simreal.errors import StoreError
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
    try:
        with writer_lock(sys.argv[1]):
            print("won", flush=True)
            time.sleep(3)
    except StoreError as err:
        print("refused", err, flush=True)
    """
)


def test_of_two_processes_breaking_a_stale_lease_at_once_one_wins(s3_env: dict[str, str]) -> None:
    url = s3_url("s.zarr")
    lease = str(lock_location(store_location(url))).removeprefix("s3://")
    stale = Holder("elsewhere", 4242, "simreal translate", "2026-01-01T00:00:00+00:00", "t0", time.time() - 1000)
    s3fs.S3FileSystem().pipe_file(lease, stale.encode())
    at = str(time.time() + 4)  # both start breaking it at the same moment, after their imports
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BREAK, url, at], cwd=REPO, env=s3_env, stdout=subprocess.PIPE, text=True
        )  # fmt: skip
        for _ in range(2)
    ]
    outcomes = sorted(proc.communicate(timeout=60)[0].split()[0] for proc in procs)
    assert outcomes == ["refused", "won"]


def test_a_holder_whose_lease_was_taken_stops_before_its_next_commit(
    s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lock_module, "LEASE_S", 0.4)  # renewals every 0.1 s
    url = s3_url("s.zarr")
    lease = str(lock_location(store_location(url))).removeprefix("s3://")
    with writer_lock(url):
        store = FrameStore.create(url, height=8, width=16)
        store.append(*frames(2))
        taker = Holder("elsewhere", 7, "simreal collect", "2026-01-01T00:00:00+00:00", "t1", time.time() + 60)
        s3fs.S3FileSystem().pipe_file(lease, taker.encode())
        time.sleep(0.5)
        with pytest.raises(StoreError, match="taken over by pid 7 on elsewhere"):
            store.append(*frames(2))
    assert len(FrameStore.open(url)) == 2, "the commit after the lease was lost went through"


# ------------------------------------------------------------------------------------------------ the commands
COLLECT = [
    *("--backend", "procedural", "workers=1", "camera.width=160", "camera.height=120", "store.size=[64,32]"),
    *("store.shard_size=4", "filter.min_blob_pixels=4", "camera.capture_every=2"),
]


def lock_holder_pid(url: str) -> int | None:
    location = lock_location(store_location(url))
    try:
        if isinstance(location, Path):
            return int(json.loads(location.read_text())["pid"])
        return int(json.loads(s3fs.S3FileSystem().cat_file(str(location).removeprefix("s3://")))["pid"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


@pytest.mark.slow
def test_two_collections_on_one_store_keep_the_first_ones_frames(place: tuple[str, dict]) -> None:
    url, env = place
    args = [sys.executable, "-m", "simreal.cli.main", "collect", "--frames", "60", "--out", url, *COLLECT]
    first = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while lock_holder_pid(url) != first.pid:
        assert time.time() < deadline and first.poll() is None, "the first collection never took the lock"
        time.sleep(0.05)
    second = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode != 0
    error = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(error) == 1 and f"pid {first.pid}" in error[0] and "collect" in error[0], second.stderr
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output[-2000:]
    report = verify_store(url)
    assert report.ok and report.frames == 60 and report.uncommitted == []
