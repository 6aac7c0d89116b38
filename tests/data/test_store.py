from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from simreal.data.dataset import FrameDataset
from simreal.data.store import FrameStore, StoreError, shard_ranges
from simreal.data.verify import verify_store
from simreal.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def frames(start: int, count: int, h: int = 16, w: int = 24) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Frames whose content encodes their index, so any mix-up or loss is visible."""
    idx = np.arange(start, start + count)
    rgb = np.broadcast_to((idx % 251).astype(np.uint8)[:, None, None, None], (count, h, w, 3)).copy()
    rgb[:, 0, 0, 0] = idx // 251
    label = np.broadcast_to((idx % 16).astype(np.uint8)[:, None, None], (count, h, w)).copy()
    label[:, -1, -1] = 255
    return rgb, label, [{"i": int(i), "split": "train"} for i in idx]


def test_round_trip_and_layout(tmp_path: Path) -> None:
    store = FrameStore.create(tmp_path / "s.zarr", height=16, width=24, shard_size=4, source="unit test")
    rgb, label, prov = frames(0, 10)
    store.append(rgb[:3], label[:3], prov[:3])
    store.append(rgb[3:], label[3:], prov[3:])
    again = FrameStore.open(tmp_path / "s.zarr")
    assert len(again) == 10
    np.testing.assert_array_equal(again.array("rgb")[:10], rgb)
    np.testing.assert_array_equal(again.label(9), label[9])
    assert again.provenance(7) == {"i": 7, "split": "train"}
    assert again.select(i=4) == [4]
    assert again.class_set.name == "shared16"
    # users read it with plain zarr: one frame per chunk, shard_size frames per shard
    meta = json.loads((tmp_path / "s.zarr" / "rgb" / "zarr.json").read_text())
    sharding = meta["codecs"][0]
    assert sharding["name"] == "sharding_indexed"
    assert sharding["configuration"]["chunk_shape"] == [1, 16, 24, 3]
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [4, 16, 24, 3]
    assert any(c["name"] == "zstd" for c in sharding["configuration"]["codecs"])
    group_meta = json.loads((tmp_path / "s.zarr" / "zarr.json").read_text())
    assert group_meta["attributes"]["simreal"]["committed_frames"] == 10


def test_readers_only_see_committed_frames(tmp_path: Path) -> None:
    store = FrameStore.create(tmp_path / "s.zarr", height=16, width=24, shard_size=4)
    rgb, label, prov = frames(0, 6)
    store.reserve(6)
    store.write_frames(0, rgb, label, prov)
    assert len(FrameStore.open(tmp_path / "s.zarr")) == 0
    with pytest.raises(IndexError, match="0 committed"):
        FrameStore.open(tmp_path / "s.zarr").rgb(0)
    store.commit(6)
    assert len(FrameStore.open(tmp_path / "s.zarr")) == 6
    with pytest.raises(StoreError, match="overwrite committed"):
        store.write_frames(2, rgb[:1], label[:1], prov[:1])


def test_bad_writes_are_refused(tmp_path: Path) -> None:
    store = FrameStore.create(tmp_path / "s.zarr", height=16, width=24)
    rgb, label, prov = frames(0, 2)
    with pytest.raises(StoreError, match="uint8 \\(k, 16, 24, 3\\)"):
        store.append(rgb[:, :8], label, prov)
    bad_label = label.copy()
    bad_label[0, 0, 0] = 40
    with pytest.raises(StoreError, match="label ids \\[40\\]"):
        store.append(rgb, bad_label, prov)
    with pytest.raises(StoreError, match="already exists"):
        FrameStore.create(tmp_path / "s.zarr", height=16, width=24)
    with pytest.raises(StoreError, match="read-only"):
        FrameStore.open(tmp_path / "s.zarr").append(rgb, label, prov)
    with pytest.raises(StoreError, match="not a simreal frame store"):
        FrameStore.open(tmp_path / "missing.zarr")


def test_shard_ranges_split_at_shard_boundaries() -> None:
    assert shard_ranges(5, 17, 4) == [(5, 8), (8, 12), (12, 16), (16, 17)]
    assert shard_ranges(8, 8, 4) == []


def test_parallel_writers_own_whole_shards(tmp_path: Path) -> None:
    store = FrameStore.create(tmp_path / "s.zarr", height=16, width=24, shard_size=4)
    rgb, label, prov = frames(0, 12)
    store.reserve(12)
    for start, stop in reversed(shard_ranges(0, 12, 4)):  # any order
        FrameStore.open(tmp_path / "s.zarr", mode="a").write_frames(
            start, rgb[start:stop], label[start:stop], prov[start:stop]
        )
    store.commit(12)
    np.testing.assert_array_equal(FrameStore.open(tmp_path / "s.zarr").array("rgb")[:12], rgb)


def test_verify_passes_clean_and_catches_corruption(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    store = FrameStore.create(path, height=16, width=24, shard_size=4)
    store.append(*frames(0, 8))
    report = verify_store(path)
    assert report.ok, report.problems
    assert report.frames == 8
    # an id outside the class set, written behind the store's back
    store.array("label")[5, 0, 0] = 77
    report = verify_store(path)
    assert not report.ok
    assert any("77" in p and "frames 4..7" in p for p in report.problems)
    # a shard file overwritten with garbage
    store.array("label")[5, 0, 0] = 3
    shard = next(p for p in (path / "rgb" / "c").rglob("*") if p.is_file())
    shard.write_bytes(b"\x00garbage" * 10)
    assert any("unreadable" in p for p in verify_store(path).problems)
    # committed count beyond the data
    store.update_attrs(committed_frames=100)
    assert any("committed_frames is 100 but the arrays hold" in p for p in verify_store(path).problems)


def test_torch_dataset_crops_flips_and_normalises(tmp_path: Path) -> None:
    store = FrameStore.create(tmp_path / "s.zarr", height=16, width=24, shard_size=4)
    rgb, label, prov = frames(0, 5)
    rgb[:, :, :12] = 0
    rgb[:, :, 12:] = 255
    store.append(rgb, label, prov)
    torch.manual_seed(0)
    data = FrameDataset(tmp_path / "s.zarr", crop=(8, 8), hflip=False, normalize="tanh")
    item = data[3]
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.int64 and item["index"] == 3
    assert set(item["image"].unique().tolist()) <= {-1.0, 1.0}
    full = FrameDataset(tmp_path / "s.zarr", hflip=True, normalize="unit")
    lefts = {float(full[0]["image"][0, 0, 0]) for _ in range(30)}
    assert lefts == {0.0, 1.0}  # flipped about half the time
    loader = torch.utils.data.DataLoader(data, batch_size=2, num_workers=1)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 3, 8, 8)
    with pytest.raises(ConfigError, match="larger than"):
        FrameDataset(tmp_path / "s.zarr", crop=(32, 32))


WRITER = """
import sys
import numpy as np
from simreal.data.store import FrameStore
from tests.data.test_store import frames
store = FrameStore.open(sys.argv[1], mode="a")
k = 0
while True:
    start = len(store)
    store.append(*frames(start, 3 + k % 5, 64, 96))
    k += 1
    print(len(store), flush=True)
"""


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.4])
def test_killed_writer_leaves_committed_frames_intact(tmp_path: Path, delay: float) -> None:
    path = tmp_path / "s.zarr"
    store = FrameStore.create(path, height=64, width=96, shard_size=8)
    store.append(*frames(0, 5, 64, 96))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stdout.readline()  # the writer is up and has committed once
    time.sleep(delay)  # then kill it with appends in flight
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    report = verify_store(path)
    assert report.ok, report.problems
    reopened = FrameStore.open(path, mode="a")
    n = len(reopened)
    assert n > 5, "the writer was killed before it appended anything"
    rgb, label, prov = frames(0, n, 64, 96)
    np.testing.assert_array_equal(reopened.array("rgb")[:n], rgb)
    np.testing.assert_array_equal(reopened.array("label")[:n], label)
    assert [p["i"] for p in reopened.provenance_table()] == list(range(n))
    # and the store keeps growing after the crash
    reopened.append(*frames(n, 4, 64, 96))
    assert verify_store(path).ok and len(FrameStore.open(path)) == n + 4


def test_a_failed_create_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zarr

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(zarr.Group, "create_array", broken)
    with pytest.raises(StoreError, match="creating .* failed: disk full"):
        FrameStore.create(tmp_path / "s.zarr", height=16, width=24)
    assert list(tmp_path.iterdir()) == []


def test_verify_reports_uncommitted_rows_when_a_writer_died_growing_the_arrays(tmp_path: Path) -> None:
    from simreal.data.verify import verify_store

    store = FrameStore.create(tmp_path / "s.zarr", height=8, width=16, shard_size=4)
    rgb, label = np.zeros((2, 8, 16, 3), np.uint8), np.zeros((2, 8, 16), np.uint8)
    store.append(rgb, label, [{}, {}])
    store.reserve(8)
    store.write_frames(4, rgb, label, [{}, {}])
    store.array("label").resize((12, 8, 16))  # killed after growing one array, before the others
    report = verify_store(tmp_path / "s.zarr")
    assert report.ok and report.uncommitted == [(4, 6)]
