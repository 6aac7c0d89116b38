"""Two Ray nodes on this machine that do not share the data folder: the second runs in its own mount namespace with a
private tmpfs over that folder, as a second machine without a shared filesystem would be.

The local-path check must stop a job that would write there, naming the node; the same job on an s3:// store must
complete with shards written by both nodes. Needs root, ``unshare`` and the ``ray`` command; skips otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from layouts import write_cityscapes

from scripts.local_cluster import local_cluster, why_no_second_node
from simreal.data.store import FrameStore
from simreal.data.verify import verify_store

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@dataclass
class TwoNodes:
    address: str
    data: Path  # the folder the second node sees as its own empty tmpfs
    env: dict[str, str]


@pytest.fixture(scope="module")
def two_nodes(s3_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    reason = why_no_second_node()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("cluster")
    data = root / "data"
    data.mkdir()
    with local_cluster(2, data, s3_env, root / "logs") as address:
        yield TwoNodes(address, data, s3_env)


def _import(cluster: TwoNodes, root: Path, out: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "simreal.cli.main", "datasets", "import", "--format", "cityscapes",
               "--root", str(root), "--scheme", "cityscapes", "--split", "train", "--size", "64x32",
               "--shard-size", "2", "--out", out, "--address", cluster.address]  # fmt: skip
    env = {**cluster.env, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


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
