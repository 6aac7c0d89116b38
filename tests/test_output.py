"""Output for machines as well as people: plain progress lines off a terminal, Ray's own lines only on request."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simreal import progress

REPO = Path(__file__).resolve().parents[1]


def test_off_a_terminal_progress_is_plain_lines_at_a_steady_interval(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIMREAL_PROGRESS_INTERVAL_S", "0.1")
    assert not progress.console.is_terminal  # pytest captures stderr
    stage = "translate (lccut) into a store whose name is long enough to be cut at eighty columns by a bar"
    with progress.progress_bar(stage, total=40, completed=10) as bar:
        for _ in range(6):
            time.sleep(0.1)
            bar.advance(5)
            bar.info("dropped 2")
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) >= 5, lines  # a first line, one every 0.1 s, a last one
    assert all(line.startswith(f"{stage}: ") for line in lines), lines  # whole, never cut or wrapped
    assert lines[0].startswith(f"{stage}: 10/40 frames (25%)")
    assert lines[-1].startswith(f"{stage}: 40/40 frames (100%)") and "frames/s" in lines[-1]
    assert "ETA" in lines[-2] and lines[-1].endswith("; dropped 2")
    assert "━" not in "".join(lines)


def collect_stderr(tmp_path: Path, *before: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("RAY_AUTH_MODE", None)  # as a user's shell has it: unset
    done = subprocess.run(
        [sys.executable, "-m", "simreal.cli.main", *before, "collect", "--frames", "4", "--out",
         str(tmp_path / "c.zarr"), "backend=procedural", "workers=1", "camera.width=160", "camera.height=120",
         "store.size=[64,32]", "filter.min_blob_pixels=4"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.mark.slow
def test_rays_own_lines_are_hidden_unless_verbose(tmp_path: Path) -> None:
    quiet = collect_stderr(tmp_path / "quiet")
    assert "Token authentication" not in quiet and "WARNING" not in quiet and " INFO " not in quiet, quiet
    assert all(line.startswith("collect: ") for line in quiet.splitlines() if line), quiet
    loud = collect_stderr(tmp_path / "loud", "--verbose")
    assert "Started a local Ray instance" in loud, loud
