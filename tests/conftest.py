from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SIMREAL_SHARED", REPO.parent / "shared"))


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two cores in CI: keep every test single-threaded in numpy/torch/zarr to avoid oversubscription.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def shared_path(*parts: str) -> Path:
    """A path under the shared reference folder, or skip the test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (shared reference data lives beside the checkout)")
    return path
