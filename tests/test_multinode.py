"""Two Ray nodes on this machine that do not share the data folder: the second runs in its own mount namespace with a
private tmpfs over that folder, as a second machine without a shared filesystem would be.

The local-path check must stop a job that would write there, naming the node; the same job on an s3:// store must
complete with shards written by both nodes. Needs root, ``unshare`` and the ``ray`` command; skips otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import free_port
from layouts import write_cityscapes

from simreal.data.store import FrameStore
from simreal.data.verify import verify_store

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@dataclass
class TwoNodes:
    address: str
    data: Path  # the folder the second node sees as its own empty tmpfs
    env: dict[str, str]


def _namespaces_work() -> str | None:
    """Why a node cannot get a private mount namespace here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to mount a private tmpfs in a new mount namespace"
    for tool in ("unshare", "ray"):
        if shutil.which(tool) is None:
            return f"needs the {tool!r} command"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -m is not permitted here: {probe.stderr.strip()}"
    return None


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # Its own session, so that killing the group takes every Ray process the node started.
    with log.open("w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    script = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else 0


@pytest.fixture(scope="module")
def two_nodes(s3_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    reason = _namespaces_work()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("cluster")
    data = root / "data"
    data.mkdir()
    # A short private temp dir: Ray's socket paths must fit 107 bytes, and other Ray users on this machine must not
    # find this cluster through /tmp/ray/ray_current_cluster.
    temp_dir = Path(f"/tmp/sr-{uuid.uuid4().hex[:6]}")
    port = free_port()
    env = {**s3_env, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=1", "--num-gpus=0", "--node-ip-address=127.0.0.1", "--block"]
    head = _start(
        ["ray", "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}", "--include-dashboard=false",
         f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}", *common],
        env, root / "head.log",
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    node = " ".join(["ray", "start", f"--address={address}", f"--dashboard-agent-listen-port={free_port()}", *common])
    second = _start(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", f"mount -t tmpfs tmpfs {data} && exec {node}"],
        env, root / "second.log",
    )  # fmt: skip
    try:
        deadline = time.time() + 240
        while _alive_nodes(address, env) < 2:
            if time.time() > deadline or head.poll() is not None or second.poll() is not None:
                logs = (root / "head.log").read_text()[-1500:] + (root / "second.log").read_text()[-1500:]
                pytest.fail(f"the two-node Ray cluster did not come up:\n{logs}")
            time.sleep(2)
        yield TwoNodes(address, data, env)
    finally:
        for process in (second, head):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _import(cluster: TwoNodes, root: Path, out: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "simreal.cli.main", "datasets", "import", "--format", "cityscapes",
               "--root", str(root), "--scheme", "cityscapes", "--split", "train", "--size", "64x32",
               "--shard-size", "2", "--out", out, "--address", cluster.address]  # fmt: skip
    return subprocess.run(command, cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=300)


def test_a_local_path_the_second_node_does_not_see_is_refused(two_nodes: TwoNodes, tmp_path: Path) -> None:
    write_cityscapes(tmp_path / "cs", split="train", n=8, size=(64, 32))
    done = _import(two_nodes, tmp_path / "cs", str(two_nodes.data / "real.zarr"))
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert "does not share with this driver (of 2 nodes, 1 see it)" in errors[0] and "s3://" in errors[0]
    assert not any(two_nodes.data.iterdir()), "the refused job left files behind"


def test_an_s3_store_is_written_by_both_nodes(two_nodes: TwoNodes, tmp_path: Path) -> None:
    write_cityscapes(tmp_path / "cs", split="train", n=24, size=(64, 32))
    url = f"s3://simreal/{uuid.uuid4().hex[:8]}/real.zarr"
    done = _import(two_nodes, tmp_path / "cs", url)
    assert done.returncode == 0, done.stderr[-3000:]
    store = FrameStore.open(url)
    assert len(store) == 24 and verify_store(url).ok
    written_by = store.attrs["written_by"]
    assert len(written_by) == 2 and sum(written_by.values()) == 24, json.dumps(written_by)
