"""Make the GPU check's dependencies importable on a machine that has only Python and torch: standard library only.

    python3 scripts/gpu_site.py BUNDLE SITE     # prints what was importable before and what it installed (JSON)

Every wheel of BUNDLE/wheels (``scripts/gpu_bundle.py``) whose distribution this interpreter does not already have
is unpacked into SITE (no pip, no index: a wheel is a zip archive laid out as its install), which the caller puts on
PYTHONPATH. What the machine has stays as it is (its torch above all).
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import json
import platform
import sys
import zipfile
from pathlib import Path

# What the check's rows import beyond the standard library: recorded as found before anything is installed.
PROBED = ("torch", "numpy", "zarr", "numcodecs", "hydra", "omegaconf", "yaml", "rich", "segmentation_models_pytorch",
          "timm", "torchvision", "PIL", "safetensors", "ray", "cv2", "pytorch_fid", "tensorboard")  # fmt: skip


def importable() -> dict[str, bool]:
    return {name: importlib.util.find_spec(name) is not None for name in PROBED}


def distribution_of(wheel: Path) -> str:
    return wheel.name.split("-")[0].lower().replace("_", "-")


def installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def unpack(wheel: Path, site: Path) -> None:
    """A wheel's files into ``site``: its ``*.data/purelib`` and ``platlib`` at the top, other ``.data`` left out."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            parts = Path(member.filename).parts
            if parts and parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue  # scripts, headers, data: not needed to import
                parts = parts[2:]
            target = site.joinpath(*parts)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
            if member.external_attr >> 16 & 0o111:
                target.chmod(0o755)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    bundle, site = Path(argv[0]), Path(argv[1])
    report: dict = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "importable_before": importable(),
        "installed": [],
        "kept": [],
    }
    manifest_file = bundle / "manifest.json"
    if not manifest_file.is_file():
        report["error"] = f"no bundle at {bundle}: run python scripts/gpu_bundle.py on a machine with an index"
    else:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        ours = ".".join(platform.python_version_tuple()[:2])
        if manifest["python_version"] != ours:
            report["error"] = f"the bundle is for CPython {manifest['python_version']}, this is {ours}: rebuild it"
        else:
            site.mkdir(parents=True, exist_ok=True)
            for wheel in sorted((bundle / "wheels").glob("*.whl")):
                name = distribution_of(wheel)
                if installed(name):
                    report["kept"].append(name)
                else:
                    unpack(wheel, site)
                    report["installed"].append(name)
    print(json.dumps(report, indent=1))
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
