from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pipelines.stages import StageClock


def test_stage_times_add_up_over_invocations_of_one_job(tmp_path: Path) -> None:
    first = StageClock(tmp_path)
    with first.stage("1/2 collect"):
        time.sleep(0.02)
    with pytest.raises(KeyboardInterrupt), first.stage("2/2 train 3 runs", key="2/2 train"):
        time.sleep(0.02)
        raise KeyboardInterrupt  # an interrupted stage still counts what it spent

    rerun = StageClock(tmp_path)  # the rerun that finishes the job
    assert rerun.seconds == pytest.approx(first.seconds)
    with rerun.stage("2/2 train 5 runs", key="2/2 train"):
        time.sleep(0.02)

    saved = json.loads((tmp_path / StageClock.FILE_NAME).read_text())
    assert list(saved) == ["1/2 collect", "2/2 train"]
    assert saved["2/2 train"] >= 0.04 and saved["1/2 collect"] >= 0.02
    assert rerun.total_minutes == pytest.approx(sum(saved.values()) / 60)
