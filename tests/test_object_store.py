"""Frame stores under fsspec URLs: the same guarantees as on a local disk, on an S3 server and in memory.

The S3 tests run a real S3-compatible server (moto's standalone server) on 127.0.0.1 and the real commands against
it in subprocesses, which read the endpoint and credentials from the environment as s3fs does for any user.
"""

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

from simreal.data.location import StoreURL, absolute_location, store_location
from simreal.data.store import ABSENT, FOREIGN, LEFTOVER, STORE, FrameStore, StoreError, store_state
from simreal.data.verify import verify_store

REPO = Path(__file__).resolve().parents[1]  # the S3 server fixture (s3_env) lives in conftest.py


def frames(k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (k, 8, 16, 3), dtype=np.uint8)
    return rgb, rng.integers(0, 16, (k, 8, 16), dtype=np.uint8), [{"i": i} for i in range(k)]


def memory_url(name: str) -> str:
    return f"memory://simreal-tests-{uuid.uuid4().hex[:8]}/{name}"


# ------------------------------------------------------------------------------------------------ locations
def test_urls_stay_urls_and_plain_paths_stay_local(tmp_path: Path) -> None:
    assert store_location("s3://bucket/data/carla.zarr/") == "s3://bucket/data/carla.zarr"
    assert isinstance(store_location("gs://bucket/x.zarr"), StoreURL)
    assert store_location(Path("s3://bucket/x.zarr")) == "s3://bucket/x.zarr"  # pathlib merged the '//'
    assert store_location(f"file://{tmp_path}/x.zarr") == tmp_path / "x.zarr"
    assert store_location("data/x.zarr") == Path("data/x.zarr")
    assert absolute_location("s3://bucket/x.zarr") == "s3://bucket/x.zarr"
    url = store_location("s3://bucket/data/carla.zarr")
    assert (url.name, url.parent, url.with_name("c.zarr")) == (
        "carla.zarr",
        "s3://bucket/data",
        "s3://bucket/data/c.zarr",
    )
    with pytest.raises(StoreError, match="unknown storage protocol"):
        store_location("nosuchfs://bucket/x.zarr")


def test_file_urls_are_local_stores(tmp_path: Path) -> None:
    store = FrameStore.create(f"file://{tmp_path}/a.zarr", height=8, width=16)
    store.append(*frames(2))
    assert (tmp_path / "a.zarr" / "zarr.json").is_file() and len(FrameStore.open(tmp_path / "a.zarr")) == 2


def test_mix_files_keep_urls_and_read_relative_paths_from_their_folder(tmp_path: Path) -> None:
    from simreal.data.mix import MixPart, read_mix_file, write_mix_file

    mix = write_mix_file(tmp_path / "mix.yaml", [MixPart("s3://bucket/a.zarr", 1.0), MixPart("b.zarr", 3.0)])
    assert [(part.store, part.weight) for part in read_mix_file(mix)] == [
        ("s3://bucket/a.zarr", 0.25),
        (str(tmp_path / "b.zarr"), 0.75),
    ]


# ------------------------------------------------------------------------------------------------ in memory
def test_a_store_under_a_url_is_written_read_and_verified() -> None:
    url = memory_url("a.zarr")
    assert store_state(url) == ABSENT
    store = FrameStore.create(url, height=8, width=16, shard_size=2)
    rgb, label, provenance = frames(5)
    store.append(rgb, label, provenance)
    again = FrameStore.open(url)
    assert isinstance(again.path, StoreURL) and len(again) == 5 and store_state(url) == STORE
    np.testing.assert_array_equal(again.array("rgb")[:5], rgb)
    assert again.provenance_table() == provenance
    assert verify_store(url).ok
    with pytest.raises(StoreError, match="already exists"):
        FrameStore.create(url, height=8, width=16)


def test_rows_written_but_not_committed_stay_invisible_under_a_url() -> None:
    url = memory_url("b.zarr")
    store = FrameStore.create(url, height=8, width=16, shard_size=2)
    store.append(*frames(2))
    store.reserve(6)
    store.write_frames(2, *frames(2, seed=1))  # a writer that died before the driver committed
    reopened = FrameStore.open(url)
    assert len(reopened) == 2 and verify_store(url).ok


def test_a_creation_stopped_half_way_is_refused_by_readers_and_replaced_by_the_next_create() -> None:
    import zarr

    url = memory_url("c.zarr")
    # What a writer killed between the first and the last PUT of a creation leaves.
    group = zarr.open_group(url, mode="w", zarr_format=3, attributes={"simreal": {"unfinished": "creation"}})
    group.create_array("rgb", shape=(0, 8, 16, 3), dtype="uint8")
    assert store_state(url) == LEFTOVER
    with pytest.raises(StoreError, match="creation of this store stopped half-way"):
        FrameStore.open(url)
    FrameStore.create(url, height=8, width=16).append(*frames(1))
    assert len(FrameStore.open(url)) == 1


def test_an_unfinished_store_is_refused_until_its_job_finishes_it() -> None:
    url = memory_url("d.zarr")
    store = FrameStore.create(url, height=8, width=16, unfinished="import")
    store.append(*frames(3))
    with pytest.raises(StoreError, match="the import writing this store did not finish"):
        FrameStore.open(url)
    assert store_state(url) == LEFTOVER and not verify_store(url).ok
    store.finish()
    assert len(FrameStore.open(url)) == 3 and store_state(url) == STORE


def test_something_else_at_the_url_is_never_replaced_without_overwrite() -> None:
    import fsspec

    url = memory_url("e.zarr")
    with fsspec.open(f"{url}/notes.txt", "w") as f:
        f.write("not a store")
    assert store_state(url) == FOREIGN
    with pytest.raises(StoreError, match="already exists"):
        FrameStore.create(url, height=8, width=16)
    FrameStore.create(url, height=8, width=16, overwrite=True)
    assert store_state(url) == STORE


# ------------------------------------------------------------------------------------------------ on S3
def bucket_url(name: str) -> str:
    return f"s3://simreal/{uuid.uuid4().hex[:8]}/{name}"


CHAIN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import ray
    from layouts import write_cityscapes
    from pipelines.collect import CollectJob, run_collect
    from pipelines.import_dataset import ImportJob, run_import
    from simreal.scoring import ScoreJob, run_score
    from pipelines.translate import TranslateJob, run_translate
    from simreal.collect.collector import SourceSpec
    from simreal.data.convert import FrameSpec
    from simreal.data.verify import verify_store
    from simreal.training.config import compose_training_config
    from simreal.training.loop import train

    root, bucket = Path(sys.argv[1]), sys.argv[2]
    sim, real, translated = f"{bucket}/sim.zarr", f"{bucket}/real.zarr", f"{bucket}/sim-dpgan.zarr"
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    params = dict(town="Town10HD", weather="ClearNoon", seed=3, width=160, height=120, capture_every=2)
    sources = [SourceSpec("procedural", dict(params), stream=i) for i in range(2)]
    run_collect(CollectJob(out=sim, frames=8, sources=sources, frame_spec=FrameSpec(size=(128, 64)), shard_size=4))
    write_cityscapes(root / "cs", split="train", n=4, size=(128, 64))
    run_import(ImportJob(format="cityscapes", root=root / "cs", split="train", scheme="cityscapes", out=real,
                         spec=FrameSpec(size=(128, 64)), shard_size=2))
    tiny = ["preset=tiny", "steps=2", "progress=false", "num_workers=0"]
    segmenter = train(compose_training_config("segmenter", [*tiny, f"data={real}", f"out={root / 'seg'}"]))
    dpgan = train(compose_training_config("dpgan", [*tiny, f"real={real}", f"out={root / 'dpgan'}"]))
    run_translate(TranslateJob(checkpoint=dpgan.run_dir, input=sim, out=translated, shard_size=4))
    scores = run_score(ScoreJob(stores=[translated], reference=real, segmenter=segmenter.run_dir, fid="off",
                                out=root / "scores"))
    print("RESULT " + json.dumps({
        "verified": {name: verify_store(url).frames for name, url in (("sim", sim), ("real", real),
                     ("translated", translated)) if verify_store(url).ok},
        "scored": [store["path"] for store in scores["stores"]],
    }))
    """
)


@pytest.mark.slow
def test_collect_import_train_translate_score_on_s3(s3_env: dict[str, str], tmp_path: Path) -> None:
    bucket = bucket_url("chain")
    done = subprocess.run(
        [sys.executable, "-c", CHAIN, str(tmp_path), bucket], cwd=REPO, env=s3_env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["verified"] == {"sim": 8, "real": 4, "translated": 8}
    assert result["scored"] == [f"{bucket}/sim-dpgan.zarr"]
    translated = FrameStore.open(f"{bucket}/sim-dpgan.zarr")
    assert {p["source_store"] for p in translated.provenance_table()} == {f"{bucket}/sim.zarr"}
    assert not any(tmp_path.glob("s3*")), "a URL was used as a local path"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "simreal.cli.main", *args]


SMALL_COLLECT = [
    *("--backend", "procedural", "workers=1", "camera.width=160", "camera.height=120", "store.size=[64,32]"),
    *("store.shard_size=4", "filter.min_blob_pixels=4", "camera.capture_every=2"),
]


@pytest.mark.slow
def test_a_collection_killed_while_writing_to_s3_resumes_and_verifies(s3_env: dict[str, str]) -> None:
    url, target = bucket_url("killed.zarr"), 64
    args = cli("collect", "--frames", str(target), "--out", url, *SMALL_COLLECT)
    proc = subprocess.Popen(args, cwd=REPO, env=s3_env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if store_state(url) == STORE and len(FrameStore.open(url)) >= 4:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the collection never committed a shard to the bucket")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and every Ray process it started, mid-write
        proc.wait()
    killed_at = len(FrameStore.open(url))
    assert killed_at < target, "the run finished before it was killed"
    assert verify_store(url).ok
    done = subprocess.run(args, cwd=REPO, env=s3_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    store = FrameStore.open(url)
    assert len(store) == target and verify_store(url).ok
    frame_ids = [p["frame"] for p in store.provenance_table()]
    assert len(set(frame_ids)) == target, "frames were duplicated across the kill"


def committed_while_writing(url: str) -> int:
    """Frames a job has committed to a store it is still writing (-1 before the store exists)."""
    try:
        return len(FrameStore.open(url, mode="a"))
    except StoreError:  # not created yet, or its creation is still going on
        return -1


@pytest.mark.slow
def test_an_import_killed_while_writing_to_s3_is_refused_then_redone(s3_env: dict[str, str], tmp_path: Path) -> None:
    from layouts import write_cityscapes

    write_cityscapes(tmp_path / "cs", split="train", n=40, size=(64, 32))
    url = bucket_url("real.zarr")
    args = cli("datasets", "import", "--format", "cityscapes", "--root", str(tmp_path / "cs"), "--scheme",
               "cityscapes", "--split", "train", "--size", "64x32", "--shard-size", "2", "--out", url)  # fmt: skip
    proc = subprocess.Popen(args, cwd=REPO, env=s3_env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if committed_while_writing(url) >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the import never committed a shard to the bucket")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if store_state(url) == LEFTOVER:  # killed before its last write: readers refuse it
        with pytest.raises(StoreError, match="did not finish"):
            FrameStore.open(url)
    done = subprocess.run(args, cwd=REPO, env=s3_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert store_state(url) == STORE and len(FrameStore.open(url)) == 40 and verify_store(url).ok
