from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SIMREAL_SHARED", REPO.parent / "shared"))


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two cores in CI: keep every test single-threaded in numpy/torch/zarr to avoid oversubscription.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # No internet here: code with a real download path (FID Inception weights) must never attempt it in tests.
    monkeypatch.setenv("SIMREAL_OFFLINE", "1")


@pytest.fixture(scope="session")
def _empty_torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("torch_home")


@pytest.fixture(autouse=True)
def _no_installed_fid_weights(monkeypatch: pytest.MonkeyPatch, _empty_torch_home: Path) -> None:
    # FID Inception weights installed on this machine (`simreal fid-weights`, pytorch-fid's download into the torch
    # hub cache, $SIMREAL_FID_WEIGHTS) must not change what tests see: each test that wants weights brings its own.
    monkeypatch.setenv("TORCH_HOME", str(_empty_torch_home))
    monkeypatch.delenv("SIMREAL_FID_WEIGHTS", raising=False)


def shared_path(*parts: str) -> Path:
    """A path under the shared reference folder, or skip the test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (shared reference data lives beside the checkout)")
    return path


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the whole test session (pipelines reuse a running Ray)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_env() -> Iterator[dict[str, str]]:
    """A moto S3 server on 127.0.0.1 with the bucket "simreal"; the environment that points s3fs at it (set in this
    process too, dummy credentials) plus what subprocesses need to import simreal and the test helpers."""
    pytest.importorskip("s3fs", reason="s3:// stores need s3fs (pip install -e '.[s3]')")
    pytest.importorskip("moto.server", reason="the S3 test server is moto[server] (a dev dependency)")
    import s3fs

    from scripts.local_cluster import s3_server

    with s3_server("simreal") as env:
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            yield {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "OMP_NUM_THREADS": "1"}
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            s3fs.S3FileSystem.clear_instance_cache()
