"""Build ``build/gpu-bundle``: the wheels the GPU check needs on a machine that has only torch, for its Python.

    python scripts/gpu_bundle.py                          # the lent GPU machine: CPython 3.12, torch 2.11
    python scripts/gpu_bundle.py --python-version 3.11 --torch-version 2.14   # this machine, for the CPU test

What the GPU machine is known to have: Python 3.12 and torch (with torch's own dependencies); no index. So the
bundle holds wheels (Linux x86_64, that CPython) of everything ``scripts/gpu_check.py`` imports beyond torch: the
closure of ROOTS' requirements in this environment, minus torch's own closure, at the versions installed here,
except torchvision, which must match the target torch. simreal itself travels as the repository (the check runs
from its root). Left out, with the rows that need them skipped there: Ray (its wheel alone is 79 MB), OpenCV (the
procedural renderer; 50 MB), pytorch-fid and tensorboard.

The bundle is refused above ``--limit-mib`` (default 56: the device takes 64 MiB with the working tree, which is
about 3 MB). ``build/gpu-bundle/manifest.json`` lists every wheel with its size; ``requirements.txt`` the pins.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
# What gpu_check's rows import beyond torch (their dependencies follow from the installed metadata).
ROOTS = ("numpy", "zarr", "numcodecs", "hydra-core", "omegaconf", "pyyaml", "rich", "segmentation-models-pytorch",
         "safetensors", "pillow", "torchvision")  # fmt: skip
# Required by a dependency but not imported by any row (pins.pop): left out of the 64 MiB.
LEFT_OUT = {"click": "typer's; no row parses a command line", "hf-xet": "huggingface_hub's downloads; none here"}
# Published as a source archive only (pure Python): built into a py3-none-any wheel here.
BUILT_HERE = ("antlr4-python3-runtime",)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")


def requirement_closure(roots: tuple[str, ...], stop: set[str]) -> dict[str, str]:
    """Distribution name -> installed version, for ``roots`` and what they require here (markers evaluated for this
    interpreter), not descending into ``stop``."""
    found: dict[str, str] = {}
    todo = [canonicalize_name(root) for root in roots]
    while todo:
        name = todo.pop()
        if name in found or name in stop:
            continue
        found[name] = metadata.version(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return found


def torchvision_for(torch_version: str) -> str:
    """The torchvision release series built against a torch release (torch 2.X pairs with torchvision 0.(X+15))."""
    major, minor = (int(part) for part in torch_version.split(".")[:2])
    if major != 2:
        raise SystemExit(f"no torchvision pairing known for torch {torch_version}")
    return f"0.{minor + 15}.*"


def download(pins: dict[str, str], python_version: str, wheels: Path) -> None:
    digits = python_version.replace(".", "")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", python_version, "--implementation", "cp", "-d", str(wheels)]  # fmt: skip
    for platform in PLATFORMS:
        command += ["--platform", platform]
    for abi in (f"cp{digits}", "abi3", "none"):
        command += ["--abi", abi]
    command += [f"{name}=={version}" for name, version in sorted(pins.items()) if name not in BUILT_HERE]
    subprocess.run(command, check=True)
    built = [f"{name}=={pins[name]}" for name in BUILT_HERE if name in pins]
    if built:
        wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), *built]
        subprocess.run(wheel, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python-version", default="3.12", help="the target CPython (default: the GPU machine's)")
    parser.add_argument("--torch-version", default="2.11", help="the target's torch (picks torchvision)")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "gpu-bundle")
    parser.add_argument("--limit-mib", type=float, default=56.0)
    args = parser.parse_args(argv)

    torch_closure = set(requirement_closure(("torch",), set()))
    pins = requirement_closure(ROOTS, stop=torch_closure)
    pins["torchvision"] = torchvision_for(args.torch_version)
    for name in LEFT_OUT:
        pins.pop(name, None)
    if args.out.exists():
        shutil.rmtree(args.out)
    wheels = args.out / "wheels"
    wheels.mkdir(parents=True)
    download(pins, args.python_version, wheels)

    files = sorted(wheels.glob("*.whl"))
    sizes = {path.name: path.stat().st_size for path in files}
    total = sum(sizes.values())
    names = [path.name.split("-")[0].lower().replace("_", "-") for path in files]
    (args.out / "requirements.txt").write_text("".join(f"{name}\n" for name in sorted(names)), encoding="utf-8")
    manifest = {
        "python_version": args.python_version,
        "torch_version": args.torch_version,
        "wheels": sizes,
        "total_bytes": total,
        "left_out": {
            "ray": "79 MB wheel",
            "opencv-python-headless": "50 MB",
            "pytorch-fid": "scoring only",
            "tensorboard": "logging only",
        },  # fmt: skip
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    for name, size in sorted(sizes.items(), key=lambda item: -item[1]):
        print(f"{size / 2**20:7.2f} MiB  {name}")
    print(f"{total / 2**20:7.2f} MiB  in {len(files)} wheels for CPython {args.python_version} -> {args.out}")
    if total > args.limit_mib * 2**20:
        print(f"refused: the bundle is over {args.limit_mib:g} MiB", file=sys.stderr)
        shutil.rmtree(args.out)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
