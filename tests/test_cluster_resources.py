"""Jobs that ask Ray for more than the cluster has stop at once with the settings to change, instead of waiting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.collect import CollectJob, run_collect
from pipelines.ray_runtime import (
    Demand,
    autoscaler_can_add_nodes,
    require_shared_folder,
    shortfall,
    units_that_fit,
)
from pipelines.train import run_training
from simreal.collect.collector import SourceSpec
from simreal.data.convert import FrameSpec
from simreal.data.location import store_location
from simreal.data.store import FrameStore
from simreal.errors import ClusterError
from simreal.training.config import compose_training_config

REPO = Path(__file__).resolve().parents[1]
TWO_CPUS = [{"CPU": 2.0, "memory": 1e9}]
TWO_NODES = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}]


def test_units_fit_node_by_node() -> None:
    assert units_that_fit(Demand("w", 3, 2.0, 1.0), TWO_NODES) == 2  # one GPU per node
    assert units_that_fit(Demand("w", 3, 3.0), TWO_NODES) == 2  # 3 CPUs do not fit twice on a 4-CPU node
    assert units_that_fit(Demand("w", 3, 0.5), TWO_CPUS) == 4
    assert units_that_fit(Demand("w", 1, 0.0), TWO_CPUS) == 1


def test_shortfall_names_what_is_missing_and_the_keys_to_change() -> None:
    train = Demand("Ray Train workers", 1, 4.0, 1.0, count_key="ray.num_workers", cpus_key="ray.cpus_per_worker",
                   gpus_off="ray.use_gpu=false")  # fmt: skip
    message = shortfall(train, TWO_CPUS)
    assert message is not None
    assert "1 Ray Train workers x (4 CPU + 1 GPU)" in message and "at most 2 CPU and 0 GPU on one node" in message
    assert "ray.use_gpu=false" in message and "ray.cpus_per_worker<=2" in message
    assert shortfall(Demand("w", 2, 4.0, 1.0), TWO_NODES) is None
    spread = shortfall(Demand("w", 3, 4.0, count_key="ray.num_workers"), TWO_NODES)
    assert spread is not None and "ray.num_workers<=2" in spread
    # tasks that queue need room for one at a time only
    assert shortfall(Demand("runs", 5, 2.0, together=False), TWO_CPUS) is None
    bench = shortfall(Demand("runs", 5, 2.0, 2.0, together=False, gpus_key="ray.gpus_per_run"), TWO_NODES)
    assert bench is not None and "ray.gpus_per_run<=1" in bench


@pytest.mark.usefixtures("ray_local")
def test_a_local_ray_cluster_has_no_autoscaler_to_wait_for() -> None:
    assert autoscaler_can_add_nodes() is False


@pytest.mark.usefixtures("ray_local")
def test_one_node_and_object_stores_need_no_shared_folder_check(tmp_path: Path) -> None:
    require_shared_folder(tmp_path / "out", "the store")  # one node: nothing to compare, nothing written
    assert not (tmp_path / "out").exists()
    require_shared_folder(store_location("s3://bucket/x.zarr"), "the store")  # never touches the bucket


@pytest.mark.usefixtures("ray_local")
def test_ray_train_job_larger_than_the_cluster_fails_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray.train.torch import TorchTrainer

    def fit(self):  # reaching Ray Train would wait forever for the workers
        raise AssertionError("the infeasible job was handed to Ray Train")

    monkeypatch.setattr(TorchTrainer, "fit", fit)
    store = FrameStore.create(tmp_path / "store", height=32, width=32)
    rng = np.random.default_rng(0)
    store.append(rng.integers(0, 256, (2, 32, 32, 3), np.uint8), np.zeros((2, 32, 32), np.uint8), [{}] * 2)
    base = ["preset=tiny", "steps=1", f"data={tmp_path / 'store'}", f"out={tmp_path}/run", "launcher=ray"]
    # The defaults: 1 worker x (4 CPU + 1 GPU) against the fixture's 2-CPU local Ray.
    with pytest.raises(ClusterError, match=r"ray\.cpus_per_worker<=2"):
        run_training(compose_training_config("segmenter", base))
    with pytest.raises(ClusterError, match=r"3 Ray Train workers x \(1 CPU\).*ray\.num_workers<=2"):
        run_training(compose_training_config("segmenter", [*base, "ray.use_gpu=false", "ray.cpus_per_worker=1",
                                                           "ray.num_workers=3"]))  # fmt: skip


@pytest.mark.usefixtures("ray_local")
def test_collection_with_more_source_actors_than_cpus_fails_before_starting(tmp_path: Path) -> None:
    params = dict(town="Town10HD", weather="ClearNoon", seed=3, width=160, height=120, capture_every=2)
    job = CollectJob(
        out=tmp_path / "c.zarr",
        frames=8,
        sources=[SourceSpec("procedural", dict(params), stream=i) for i in range(3)],
        frame_spec=FrameSpec(size=(64, 32)),
        shard_size=4,
    )
    with pytest.raises(ClusterError, match=r"3 source actors x \(1 CPU\).*workers<=2"):
        run_collect(job)
    assert len(FrameStore.open(tmp_path / "c.zarr")) == 0  # the store it created is intact and empty


@pytest.mark.slow
def test_the_cli_prints_one_error_line_for_an_infeasible_collection(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-m", "simreal.cli.main", "collect", "--frames", "4", "--out", str(tmp_path / "c.zarr"),
               "--backend", "procedural", "workers=512"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "512 source actors" in errors[0] and "workers<=" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def _autoscaler_status(monkeypatch: pytest.MonkeyPatch, node_types: dict[str, str]) -> None:
    from ray.experimental import internal_kv

    status = json.dumps({"autoscaler_report": {"node_type_mapping": node_types, "pending_launches": {}}}).encode()
    monkeypatch.setattr(
        internal_kv, "_internal_kv_get", lambda key, namespace=None: status if key == b"__autoscaling_status" else None
    )


def test_an_autoscaler_with_node_types_of_its_own_turns_the_error_into_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pipelines.ray_runtime as runtime

    monkeypatch.setattr(runtime, "alive_nodes", lambda: TWO_CPUS)
    too_big = Demand("Ray Train workers", 1, 4.0, 1.0, gpus_off="ray.use_gpu=false")
    _autoscaler_status(monkeypatch, {"a1b2": "node_a1b2"})  # what every `ray start` cluster reports: no autoscaling
    assert autoscaler_can_add_nodes() is False
    with pytest.raises(ClusterError):
        runtime.require_resources(too_big)
    _autoscaler_status(monkeypatch, {"a1b2": "ray.head.default"})  # `ray up` / KubeRay node types
    assert autoscaler_can_add_nodes() is True
    runtime.require_resources(too_big)
    assert "waiting for the autoscaler" in capsys.readouterr().err  # the console writes to stderr
