"""A Ray cluster of one or two nodes on this machine, the second in its own mount namespace, and a local S3 server.

The second node mounts a private tmpfs over ``private_folder``, so it sees an empty folder where the head and the
driver see theirs, as a second machine without a shared filesystem would. ``s3_server`` runs moto's standalone S3
server on 127.0.0.1. Used by the tests (conftest.py, test_multinode.py) and scripts/bench_cluster.py; the second
node needs root and ``unshare``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def s3_server(bucket: str) -> Iterator[dict[str, str]]:
    """moto's S3 server on a free port with ``bucket`` created; yields the environment that points s3fs at it."""
    import s3fs

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.2)
        env = {
            "AWS_ACCESS_KEY_ID": "simreal-test",
            "AWS_SECRET_ACCESS_KEY": "simreal-test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }
        s3fs.S3FileSystem(
            key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"], endpoint_url=env["AWS_ENDPOINT_URL"]
        ).mkdir(bucket)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def why_no_second_node() -> str | None:
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


@contextmanager
def local_cluster(
    nodes: int, private_folder: Path, env: dict[str, str], logs: Path, cpus_per_node: int = 1
) -> Iterator[str]:
    """Start the nodes, wait until all are alive, yield the cluster address; kill every Ray process at the end."""
    # A private temp dir with a short name: Ray's socket paths must fit 107 bytes, and other Ray users on this
    # machine must not find this cluster through /tmp/ray/ray_current_cluster.
    temp_dir = Path(f"/tmp/sr-{uuid.uuid4().hex[:6]}")
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {**env, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    common = [f"--num-cpus={cpus_per_node}", "--num-gpus=0", "--node-ip-address=127.0.0.1", "--block"]
    logs.mkdir(parents=True, exist_ok=True)
    started = [
        _start(
            ["ray", "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}", "--include-dashboard=false",
             f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}", *common],
            env, logs / "head.log",
        )
    ]  # fmt: skip
    try:
        if nodes > 1:
            node = " ".join(["ray", "start", f"--address={address}", f"--dashboard-agent-listen-port={free_port()}",
                             *common])  # fmt: skip
            mount = f"mount -t tmpfs tmpfs {private_folder} && exec {node}"
            started.append(
                _start(["unshare", "-m", "--propagation", "private", "sh", "-c", mount], env, logs / "second.log")
            )
        deadline = time.time() + 240
        while _alive_nodes(address, env) < nodes:
            if time.time() > deadline or any(process.poll() is not None for process in started):
                tails = "".join(log.read_text()[-1500:] for log in sorted(logs.glob("*.log")))
                raise RuntimeError(f"the {nodes}-node Ray cluster did not come up:\n{tails}")
            time.sleep(2)
        yield address
    finally:
        for process in reversed(started):
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the node and every Ray process it started
            except ProcessLookupError:
                pass
            process.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:  # its own session, so that killing the group takes every process of the node
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    script = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    return int(lines[-1]) if done.returncode == 0 and lines else 0
