"""scripts/gpu_check.py: its table survives failing rows and missing modules, its --quick mode runs the GPU code
paths on a CPU, and scripts/gpu_run.sh starts where the GPU machine would: a Python that has torch and nothing else."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from scripts import gpu_check

REPO = Path(__file__).resolve().parents[1]


def test_a_failing_row_is_reported_and_the_check_goes_on(tmp_path: Path) -> None:
    check = gpu_check.Check(deadline=time.monotonic() + 60, json_path=tmp_path / "rows.json")

    def broken() -> gpu_check.Row:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    check.run("train", "oasis", broken)
    check.run("synthesis", "dpgan fp32", lambda: gpu_check.Row("", "", result="51.0 ms/img"))
    check.run("ray", "start", lambda: pytest.fail("must not run"), needs=("no_such_module_here",))
    late = gpu_check.Check(deadline=time.monotonic() - 1)
    late.run("train", "spade compiled", lambda: pytest.fail("a row past the budget must not run"))

    rows = check.rows + late.rows
    assert [(r.section, r.case, r.status) for r in rows] == [
        ("train", "oasis", "failed"),
        ("synthesis", "dpgan fp32", "ok"),
        ("ray", "start", "skipped"),
        ("train", "spade compiled", "skipped"),
    ]
    assert "RuntimeError: CUDA out of memory" in rows[0].note and "test_gpu_check.py" in rows[0].note
    assert rows[2].note == "no_such_module_here not importable"
    text = gpu_check.format_table(rows, "GPU check")
    assert "CUDA out of memory" in text and "51.0 ms/img" in text and "time budget spent" in text
    saved = json.loads((tmp_path / "rows.json").read_text())  # written after every row
    assert [record["status"] for record in saved] == ["failed", "ok", "skipped"]


def test_every_registered_method_has_a_train_row() -> None:
    from simreal.config import config_dir
    from simreal.training.registry import load_builtin_methods

    methods = {method for _, method, _ in gpu_check.train_cases()}
    shipped = {name for name in load_builtin_methods() if (config_dir() / "train" / f"{name}.yaml").is_file()}
    assert methods == shipped and {"segmenter", "lccut", "semguided"} <= methods
    assert {"segmenter outer", "segmenter heldout"} <= {case for case, _, _ in gpu_check.train_cases()}
    assert {"lccut", "lcsae", "dpgan"} <= set(gpu_check.translating_methods())


def test_quick_mode_trains_every_method_and_times_every_synthesizer_on_cpu() -> None:
    rows = gpu_check.main(["--device", "cpu", "--quick", "--sections", "train,synthesis"])

    assert [row.case for row in rows] == [
        "machine",
        *(case for case, _, _ in gpu_check.train_cases()),
        *(f"{method} fp32" for method in gpu_check.PAPER_MS_TITAN_RTX),
    ]
    failed = {row.case: row.note for row in rows if row.status != "ok"}
    assert not failed, failed
    assert all("losses finite" in row.note for row in rows if row.section == "train")
    assert "VGG19 on random weights" in next(row.note for row in rows if row.case == "spade")


@pytest.mark.slow
def test_quick_mode_ray_train_resumes_and_translate_runs_on_cpu() -> None:
    rows = gpu_check.main(["--device", "cpu", "--quick", "--sections", "translate,ray"])

    translating = gpu_check.translating_methods()
    assert [(row.section, row.case) for row in rows] == [
        ("environment", "machine"),
        *(("translate", method) for method in translating),
        ("ray", "start"),
        ("ray train", "dpgan resume"),
    ]
    failed = {row.case: row.note for row in rows if row.status != "ok"}
    assert not failed, failed
    assert rows[-1].result == "2 + 2 steps resumed"
    assert all("pipeline" in row.result for row in rows if row.section == "translate")


def test_unknown_sections_are_refused() -> None:
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--sections", "train,warp"])


# ------------------------------------------------------------------------------------------ the bare machine
def torch_only_site(root: Path) -> Path:
    """A folder that holds torch and its own dependencies only (links into this environment), like the GPU
    machine's Python: nothing of simreal's other requirements."""
    site = root / "torch-only"
    site.mkdir()
    seen: set[str] = set()
    todo = ["torch"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        dist = metadata.distribution(name)
        for requirement in dist.requires or []:
            req = Requirement(requirement)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
        for top in {Path(str(file)).parts[0] for file in dist.files or []}:
            source = Path(str(dist.locate_file(top)))
            if top not in ("..", "bin") and source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    return site


def bundle_for_this_python() -> Path:
    bundle = Path(os.environ.get("GPU_BUNDLE", REPO / "build" / "gpu-bundle"))
    manifest = bundle / "manifest.json"
    ours = ".".join(map(str, sys.version_info[:2]))
    if not manifest.is_file() or json.loads(manifest.read_text())["python_version"] != ours:
        pytest.skip(
            f"no bundle for CPython {ours} at {bundle}: build it with `python scripts/gpu_bundle.py --python-version "
            f"{ours} --torch-version <this torch>` (downloads about 50 MB); see docs/benchmarks.md"
        )
    return bundle


@pytest.mark.slow
def test_gpu_run_starts_on_a_python_with_only_torch(tmp_path: Path) -> None:
    bundle = bundle_for_this_python()
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = next((venv / "lib").glob("python*/site-packages"))
    (site_packages / "torch-only.pth").write_text(str(torch_only_site(tmp_path)) + "\n")
    python3 = venv / "bin" / "python3"
    assert subprocess.run([python3, "-c", "import numpy"], capture_output=True).returncode != 0, "not bare"
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "OUT": str(tmp_path / "out"),
           "GPU_BUNDLE": str(bundle), "GPU_SITE": str(tmp_path / "site"), "OMP_NUM_THREADS": "2"}  # fmt: skip
    done = subprocess.run(
        [str(REPO / "scripts" / "gpu_run.sh"), "--device", "cpu", "--quick", "--sections", "train,translate,ray"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    environment = json.loads((tmp_path / "out" / "environment.json").read_text())
    assert not environment["importable_before"]["numpy"] and "numpy" in environment["installed"]
    rows = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    by_status = {status: [r for r in rows if r["status"] == status] for status in ("ok", "skipped", "failed")}
    assert not by_status["failed"], by_status["failed"]
    assert all(row["note"].endswith("not importable") for row in by_status["skipped"]), by_status["skipped"]
    assert {row["case"] for row in by_status["skipped"]} == {"start", "dpgan resume"}  # Ray is not in the bundle
    assert sum(row["section"] == "train" for row in by_status["ok"]) == len(gpu_check.train_cases())
    assert (tmp_path / "out" / "gpu_check.txt").read_text().count("\n") > len(rows)
