"""scripts/gpu_check.py: its table survives failing rows and its --quick mode runs the GPU code paths on a CPU."""

from __future__ import annotations

import time

import pytest
from rich.console import Console

from scripts import gpu_check


def test_a_failing_row_is_reported_and_the_check_goes_on() -> None:
    check = gpu_check.Check(deadline=time.monotonic() + 60)

    def broken() -> gpu_check.Row:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    check.run("train", "oasis", broken)
    check.run("synthesis", "dpgan fp32", lambda: gpu_check.Row("", "", result="51.0 ms/img"))
    late = gpu_check.Check(deadline=time.monotonic() - 1)
    late.run("train", "spade compiled", lambda: pytest.fail("a row past the budget must not run"))

    rows = check.rows + late.rows
    assert [(r.section, r.case, r.status) for r in rows] == [
        ("train", "oasis", "FAILED"),
        ("synthesis", "dpgan fp32", "ok"),
        ("train", "spade compiled", "skipped"),
    ]
    assert "RuntimeError: CUDA out of memory" in rows[0].note and "test_gpu_check.py" in rows[0].note
    console = Console(record=True, width=240)
    console.print(gpu_check.build_table(rows, "GPU check"))
    text = console.export_text()
    assert "CUDA out of memory" in text and "51.0 ms/img" in text and "time budget spent" in text


def test_quick_mode_trains_every_method_and_times_every_synthesizer_on_cpu() -> None:
    rows = gpu_check.main(["--device", "cpu", "--quick", "--sections", "train,synthesis"])

    assert [row.case for row in rows] == [case for case, _, _ in gpu_check.TRAIN_CASES] + [
        f"{method} fp32" for method in gpu_check.PAPER_MS_TITAN_RTX
    ]
    failed = {row.case: row.note for row in rows if row.status != "ok"}
    assert not failed, failed
    assert all("losses finite" in row.note for row in rows if row.section == "train")
    assert "VGG19 on random weights" in next(row.note for row in rows if row.case == "spade")


@pytest.mark.slow
def test_quick_mode_ray_train_resumes_and_translate_runs_on_cpu() -> None:
    rows = gpu_check.main(["--device", "cpu", "--quick", "--sections", "ray,translate"])

    assert [(row.section, row.case) for row in rows] == [
        ("ray", "start"),
        ("ray train", "dpgan resume"),
        ("translate", "lcsae"),
        ("translate", "dpgan"),
    ]
    failed = {row.case: row.note for row in rows if row.status != "ok"}
    assert not failed, failed
    assert rows[1].result == "2 + 2 steps resumed"


def test_unknown_sections_are_refused() -> None:
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--sections", "train,warp"])
