"""An install without the source tree: the wheel carries configs/ and datasets.yaml, and the installed command
finds them from any working directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(REPO), "-w",
         str(out)], check=True, capture_output=True, cwd=out, timeout=600,
    )  # fmt: skip
    return next(out.glob("simreal-*.whl"))


def test_the_wheel_carries_every_config_and_the_dataset_registry(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        f"simreal/_configs/{p.relative_to(REPO / 'configs').as_posix()}" for p in (REPO / "configs").rglob("*.yaml")
    }
    assert shipped and shipped <= names, sorted(shipped - names)[:5]
    assert "simreal/_datasets.yaml" in names
    assert (
        zipfile.ZipFile(wheel).read("simreal/_configs/collect.yaml") == (REPO / "configs" / "collect.yaml").read_bytes()
    )


def test_the_installed_package_finds_its_configs_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip install puts in site-packages
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    probe = (
        "import simreal.config as c; from simreal.collect.config import compose_collect_config; "
        "from simreal.data.registry import load_registry; "
        "print(c.__file__); print(c.config_dir()); print(compose_collect_config([]).frames); "
        "print(sorted(load_registry()))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SIMREAL_CONFIG_DIR", "SIMREAL_DATASETS")}
    done = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env={**env, "PYTHONPATH": str(site)},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    package, configs, frames, datasets = done.stdout.splitlines()[-4:]
    assert package.startswith(str(site)) and configs.startswith(str(site))
    assert int(frames) > 0 and "camvid" in datasets
