"""Every bad input, across commands: one ``error:`` line on stderr, no traceback, a non-zero exit status, and every
store that existed before the command byte-identical after it.

Each case builds what it needs (a broken dataset, a damaged store, a trap in the file system) and returns the
command line; the commands run in-process through the console script's entry point.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from layouts import write_bdd100k, write_camvid, write_carla
from stores import make_procedural_store

from simreal.cli.main import main
from simreal.data.store import FrameStore
from simreal.data.verify import verify_store
from simreal.training.config import compose_training_config
from simreal.training.loop import train

pytestmark = pytest.mark.usefixtures("ray_local")

TINY = ["preset=tiny", "steps=2", "progress=false"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-inputs")
    sim = make_procedural_store(root / "sim.zarr", "flat", frames=6)
    real = make_procedural_store(root / "real.zarr", "textured", frames=4)
    empty = FrameStore.create(root / "empty.zarr", height=64, width=128).path
    rng = np.random.default_rng(0)
    city = FrameStore.create(root / "city.zarr", height=64, width=128, class_set="cityscapes19")
    city.append(
        rng.integers(0, 255, (4, 64, 128, 3), dtype=np.uint8), rng.integers(0, 19, (4, 64, 128), dtype=np.uint8),
        [{"frame": i} for i in range(4)],
    )  # fmt: skip

    def run(method: str, name: str, *data: str) -> Path:
        return train(compose_training_config(method, [*TINY, *data, f"out={root / name}"])).run_dir

    return {
        "root": root,
        "sim": sim,
        "real": real,
        "empty": empty,
        "city": city.path,
        "sae": run("sae", "sae", f"sim={sim}", f"real={real}"),
        "dpgan": run("dpgan", "dpgan", f"real={real}"),
        "segmenter": run("segmenter", "seg", f"data={real}"),
        "city_segmenter": run("segmenter", "seg-city", f"data={city.path}"),
    }


@dataclass(frozen=True)
class Case:
    build: Callable[[dict[str, Path], Path], list[str]]  # (world, tmp_path) -> command line
    message: str  # a fragment of the one error line
    status: int = 1


def camvid_import(root: Path, out: Path, *extra: str) -> list[str]:
    return ["datasets", "import", "--format", "camvid", "--root", str(root), "--scheme", "camvid11", "--split",
            "train", "--out", str(out), "--size", "64x32", *extra]  # fmt: skip


def broken_camvid(tmp: Path, breaks: Callable[[list], None]) -> list[str]:
    written = write_camvid(tmp / "camvid", n=3)
    breaks(written)
    return camvid_import(tmp / "camvid", tmp / "out.zarr")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def edited_store(world: dict[str, Path], tmp: Path, **attrs: object) -> Path:
    store = tmp / "edited.zarr"
    shutil.copytree(world["sim"], store)
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["simreal"].update(attrs)
    (store / "zarr.json").write_text(json.dumps(meta))
    return store


def overlapping_eval(world: dict[str, Path], tmp: Path) -> list[str]:
    real = FrameStore.open(world["real"])
    copy = FrameStore.create(tmp / "eval.zarr", height=real.height, width=real.width)
    copy.append(np.stack([real.rgb(1)]), np.stack([real.label(1)]), [{"copied": 1}])
    return ["bench", "default", f"real={world['real']}", f"eval={copy.path}", "preset=tiny", f"out={tmp}/b"]


def translate(world: dict[str, Path], tmp: Path, run: str, store: str, *extra: str) -> list[str]:
    return ["translate", str(world[run]), "--input", str(world[store]), "--out", str(tmp / "t.zarr"), *extra]


def score(world: dict[str, Path], store: str, segmenter: str) -> list[str]:
    return ["score", str(world[store]), "--reference", str(world["real"]), "--segmenter", str(world[segmenter]),
            "--fid", "off"]  # fmt: skip


def collect(tmp: Path, *extra: str) -> list[str]:
    return ["collect", "--out", str(tmp / "c.zarr"), *extra]


# ------------------------------------------------------------------ checkpoints that cannot be read
def garbage_file(tmp: Path, name: str = "garbage.pt") -> Path:
    path = tmp / name
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def foreign_pickle(tmp: Path, name: str = "foreign.pt") -> Path:
    path = tmp / name
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "epoch": 3}))  # another program's pickle
    return path


def tensors_file(tmp: Path) -> Path:
    """A PyTorch file of plain tensors: readable, but not a training run's checkpoint."""
    torch.save({"weights": torch.zeros(2)}, tmp / "weights.pt")
    return tmp / "weights.pt"


def truncated_run(world: dict[str, Path], tmp: Path, run: str) -> Path:
    """A copy of a run directory whose checkpoint.pt lost its second half (an interrupted copy)."""
    copy = tmp / f"{run}-copy"
    shutil.copytree(world[run], copy)
    truncate(copy / "checkpoint.pt")
    return copy


def synthesize(world: dict[str, Path], tmp: Path, checkpoint: Path | str) -> list[str]:
    return ["synthesize", str(checkpoint), "--labels", str(world["sim"]), "--out", str(tmp / "painted.zarr")]


def score_with(world: dict[str, Path], segmenter: Path) -> list[str]:
    return ["score", str(world["sim"]), "--reference", str(world["real"]), "--segmenter", str(segmenter),
            "--fid", "off"]  # fmt: skip


def resume(world: dict[str, Path], run: Path, method: str = "sae") -> list[str]:
    return ["train", method, f"sim={world['sim']}", f"real={world['real']}", *TINY, f"out={run}", "resume=true"]


def bench_with_encoder(world: dict[str, Path], tmp: Path, weights: Path) -> list[str]:
    return ["bench", "default", f"real={world['real']}", f"eval={world['sim']}", "preset=tiny", f"out={tmp}/b",
            f"segmenter.encoder_weights={weights}"]  # fmt: skip


def reference_file(tmp: Path, make: Callable[[Path, str], Path]) -> list[str]:
    folder = tmp / "reference"
    folder.mkdir()
    make(folder, "best_G.pth")
    return ["checkpoints", "import", "dpgan", str(folder), "--out", str(tmp / "imported")]


NOT_TORCH, TRUNCATED, PICKLE = "not a PyTorch file", "truncated or damaged", "plain Python pickle"
CHECKPOINT_CASES: dict[str, Case] = {
    "translate: garbage checkpoint": Case(
        lambda w, t: ["translate", str(garbage_file(t)), "--input", str(w["sim"]), "--out", str(t / "o.zarr")],
        NOT_TORCH,
    ),
    "translate: truncated checkpoint": Case(
        lambda w, t: [
            "translate",
            str(truncated_run(w, t, "sae")),
            "--input",
            str(w["sim"]),
            "--out",
            str(t / "o.zarr"),
            "--style",
            str(w["real"]),
        ],  # fmt: skip
        TRUNCATED,
    ),
    "translate: another program's pickle": Case(
        lambda w, t: ["translate", str(foreign_pickle(t)), "--input", str(w["sim"]), "--out", str(t / "o.zarr")],
        PICKLE,
    ),
    "translate: a torch file that is no run": Case(
        lambda w, t: ["translate", str(tensors_file(t)), "--input", str(w["sim"]), "--out", str(t / "o.zarr")],
        "is not a simreal checkpoint",
    ),
    "synthesize: garbage checkpoint": Case(lambda w, t: synthesize(w, t, garbage_file(t)), NOT_TORCH),
    "synthesize: truncated checkpoint": Case(lambda w, t: synthesize(w, t, truncated_run(w, t, "dpgan")), TRUNCATED),
    "synthesize: another program's pickle": Case(lambda w, t: synthesize(w, t, foreign_pickle(t)), PICKLE),
    "synthesize: a run of another method": Case(lambda w, t: synthesize(w, t, w["segmenter"]), "segmenter"),
    "score: garbage segmenter": Case(lambda w, t: score_with(w, garbage_file(t)), NOT_TORCH),
    "score: truncated segmenter": Case(lambda w, t: score_with(w, truncated_run(w, t, "segmenter")), TRUNCATED),
    "score: another program's pickle": Case(lambda w, t: score_with(w, foreign_pickle(t)), PICKLE),
    "score: a run of another method": Case(lambda w, t: score_with(w, w["dpgan"]), "not a segmenter"),
    "bench: garbage encoder weights": Case(lambda w, t: bench_with_encoder(w, t, garbage_file(t)), NOT_TORCH),
    "bench: another program's pickle": Case(
        lambda w, t: bench_with_encoder(w, t, foreign_pickle(t, "enc.pth")), PICKLE
    ),
    "train resume: truncated checkpoint": Case(lambda w, t: resume(w, truncated_run(w, t, "sae")), TRUNCATED),
    "train resume: garbage checkpoint": Case(
        lambda w, t: (t / "run").mkdir() or garbage_file(t / "run", "checkpoint.pt") and resume(w, t / "run"),
        NOT_TORCH,
    ),
    "train resume: a run of another method": Case(
        lambda w, t: resume(w, shutil.copytree(w["dpgan"], t / "dpgan-copy")), "belongs to method 'dpgan'"
    ),
    "checkpoints import: garbage file": Case(lambda w, t: reference_file(t, garbage_file), NOT_TORCH),
    "checkpoints import: another program's pickle": Case(lambda w, t: reference_file(t, foreign_pickle), PICKLE),
}


CASES: dict[str, Case] = {
    # --- datasets on disk
    "truncated PNG image": Case(
        lambda w, t: broken_camvid(t, lambda s: truncate(s[1].image_path)), "cannot be decoded"
    ),
    "corrupt JPEG image": Case(lambda w, t: [*_bdd(t), "--out", str(t / "o.zarr")], "cannot be decoded"),
    "16-bit label beyond uint8": Case(
        lambda w, t: broken_camvid(
            t, lambda s: cv2.imwrite(str(s[0].label_path), np.full(s[0].ids.shape, 300, np.uint16))
        ),
        "must fit in uint8",
    ),
    "RGBA label image": Case(
        lambda w, t: broken_camvid(
            t, lambda s: cv2.imwrite(str(s[2].label_path), np.zeros((*s[2].ids.shape, 4), np.uint8))
        ),
        "single-channel",
    ),
    "label ids outside the scheme": Case(
        lambda w, t: broken_camvid(
            t, lambda s: cv2.imwrite(str(s[0].label_path), np.full(s[0].ids.shape, 200, np.uint8))
        ),
        "200",
    ),
    "image/label size mismatch": Case(lambda w, t: _carla_size_mismatch(t), "differs from image"),
    "unpaired files": Case(lambda w, t: broken_camvid(t, lambda s: s[1].label_path.unlink()), "without"),
    "empty root": Case(
        lambda w, t: (t / "nothing").mkdir() or camvid_import(t / "nothing", t / "o.zarr"), "does not exist"
    ),
    "missing root": Case(lambda w, t: camvid_import(t / "nowhere", t / "o.zarr"), "nowhere"),
    # --- names
    "unknown label scheme": Case(
        lambda w, t: [
            "datasets",
            "import",
            "--format",
            "camvid",
            "--root",
            str(t),
            "--scheme",
            "carla-9",
            "--out",
            str(t / "o.zarr"),
        ],  # fmt: skip
        "unknown label scheme 'carla-9'",
    ),
    "unknown class set": Case(
        lambda w, t: [*camvid_import(t, t / "o.zarr"), "--class-set", "shared17"], "unknown class set 'shared17'"
    ),
    "unknown dataset": Case(lambda w, t: ["datasets", "import", "kittty", "--out", str(t / "o.zarr")], "kittty"),
    "unknown training method": Case(lambda w, t: ["train", "lcsea"], "No such command 'lcsea'", status=2),
    # --- damaged and empty stores
    "store of an unknown format version": Case(
        lambda w, t: ["datasets", "show", str(edited_store(w, t, format_version=99)), "--out", str(t / "g.png")],
        "format version 99",
    ),
    "committed_frames beyond the rows": Case(
        lambda w, t: ["datasets", "show", str(edited_store(w, t, committed_frames=1000)), "--out", str(t / "g.png")],
        "committed_frames is 1000",
    ),
    "zero-frame store to train": Case(
        lambda w, t: ["train", "segmenter", f"data={w['empty']}", *TINY, f"out={t / 'r'}"], "no committed frames"
    ),
    "zero-frame store to translate": Case(
        lambda w, t: translate(w, t, "sae", "empty", "--style", str(w["real"])), "no committed frames"
    ),
    "zero-frame store to score": Case(lambda w, t: score(w, "empty", "segmenter"), "holds 0 frame(s)"),
    # --- runs that do not fit
    "translate with a segmenter checkpoint": Case(lambda w, t: translate(w, t, "segmenter", "sim"), "segmenter"),
    "translate with another class set": Case(
        lambda w, t: translate(w, t, "sae", "city", "--style", str(w["real"])), "cityscapes19"
    ),
    "score with a segmenter of another class set": Case(lambda w, t: score(w, "sim", "city_segmenter"), "cityscapes19"),
    "bench evaluating on a training store": Case(
        lambda w, t: ["bench", "default", f"real={w['real']}", f"eval={w['real']}", "preset=tiny", f"out={t}/b"],
        "is the evaluation store itself",
    ),
    "bench evaluating on frames it trains on": Case(overlapping_eval, "shares 1 frame(s)"),
    # --- export
    "export of a missing store": Case(lambda w, t: ["export", str(t / "nowhere.zarr"), str(t / "out")], "nowhere"),
    "export of merged classes to cityscapes": Case(
        lambda w, t: ["export", str(w["sim"]), str(t / "out"), "--layout", "cityscapes"], "cannot be exported"
    ),
    "export into an occupied folder": Case(
        lambda w, t: (
            (t / "out").mkdir() or (t / "out" / "a.txt").write_text("x") and ["export", str(w["sim"]), str(t / "out")]
        ),  # fmt: skip
        "already exists",
    ),
    # --- the command line
    "invalid Hydra override": Case(lambda w, t: collect(t, "--frames", "2", "camera.fovv=3"), "camera.fovv"),
    "--frames 0": Case(lambda w, t: collect(t, "--frames", "0"), "--frames must be positive"),
    "--frames negative": Case(lambda w, t: collect(t, "--frames", "-3"), "--frames must be positive"),
    "--size not WIDTHxHEIGHT": Case(
        lambda w, t: [*camvid_import(t, t / "o.zarr")[:-2], "--size", "512"], "size must look like 512x256"
    ),
    "output path is an existing file": Case(
        lambda w, t: (
            (t / "taken").write_text("mine") and collect(t, "--frames", "2")[:2] + [str(t / "taken"), "--frames", "2"]
        ),
        "already exists",
    ),
    "unreachable CARLA server": Case(
        lambda w, t: collect(t, "--frames", "2", "--backend", "carla", "--servers", "127.0.0.1:9", "carla.timeout_s=1"),
        "no CARLA server answered at 127.0.0.1:9",
    ),
}


def _bdd(tmp: Path) -> list[str]:
    written = write_bdd100k(tmp / "bdd", n=2)
    written[0].image_path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return ["datasets", "import", "--format", "bdd100k", "--root", str(tmp / "bdd"), "--scheme", "bdd100k",
            "--split", "train", "--size", "64x32"]  # fmt: skip


def _carla_size_mismatch(tmp: Path) -> list[str]:
    written = write_carla(tmp / "carla", n=2, label_mode="grey")
    cv2.imwrite(str(written[1].label_path), np.zeros((40, 64), np.uint8))  # 64x40 label for a 64x32 frame
    return ["datasets", "import", "--format", "carla", "--root", str(tmp / "carla"), "--scheme", "carla-0.9.14",
            "--split", "train", "--out", str(tmp / "o.zarr"), "--size", "64x32"]  # fmt: skip


def store_digests(*roots: Path) -> dict[str, str]:
    """sha256 of every file of every frame store, and of every checkpoint and weights file, under the roots."""
    digests = {}
    for root in roots:
        for path in [*root.rglob("*.pt"), *root.rglob("*.pth")]:
            digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        for marker in root.rglob("zarr.json"):
            if marker.parent.name.endswith(".zarr") or marker.parent.suffix == ".zarr":
                for path in sorted(p for p in marker.parent.rglob("*") if p.is_file()):
                    digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    out, err = capsys.readouterr()
    return int(stopped.value.code or 0), out, err


def assert_one_clear_line(status: int, out: str, err: str, expected_status: int, fragment: str) -> None:
    assert "Traceback" not in out + err, out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert fragment in errors[0], errors[0]
    assert status == expected_status, (status, errors[0])


@pytest.mark.parametrize("name", [*CASES, *CHECKPOINT_CASES])
def test_bad_input_gives_one_clear_line_and_keeps_every_store(
    name: str, world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES.get(name) or CHECKPOINT_CASES[name]
    argv = case.build(world, tmp_path)
    before = store_digests(world["root"], tmp_path)
    status, out, err = run_cli(argv, capsys)
    assert_one_clear_line(status, out, err, case.status, case.message)
    after = store_digests(world["root"], tmp_path)
    assert {path: after.get(path) for path in before} == before


def test_nan_loss_stops_with_the_loss_and_step(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import simreal.training.methods.segmenter as segmenter

    real_loss = segmenter.F.cross_entropy
    monkeypatch.setattr(segmenter.F, "cross_entropy", lambda *a, **k: real_loss(*a, **k) * float("nan"))
    before = store_digests(world["root"])
    status, out, err = run_cli(["train", "segmenter", f"data={world['sim']}", *TINY, f"out={tmp_path / 'r'}"], capsys)
    assert_one_clear_line(status, out, err, 1, "is nan at step")
    assert store_digests(world["root"]) == before


def test_no_space_left_while_writing_keeps_what_was_committed(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from zarr.storage import LocalStore

    out = tmp_path / "painted.zarr"
    argv = ["synthesize", str(world["dpgan"]), "--labels", str(world["sim"]), "--out", str(out), "--batch-size", "2"]
    real_set = LocalStore.set
    image_writes = []

    async def disk_full_after_one_batch(self: LocalStore, key: str, value: object) -> None:
        if key.startswith("rgb/c"):
            image_writes.append(key)
            if len(image_writes) > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), key)
        await real_set(self, key, value)

    monkeypatch.setattr(LocalStore, "set", disk_full_after_one_batch)
    before = store_digests(world["root"])
    status, stdout, err = run_cli(argv, capsys)
    assert_one_clear_line(status, stdout, err, 1, "No space left on device")
    assert store_digests(world["root"]) == before
    assert verify_store(out).ok and len(FrameStore.open(out)) == 2  # the batch written before the disk filled up
    monkeypatch.setattr(LocalStore, "set", real_set)
    assert run_cli(argv, capsys)[0] == 0  # with space again, the same command continues
    assert verify_store(out).ok and len(FrameStore.open(out)) == len(FrameStore.open(world["sim"]))


def _kill_workers_running(task_name: str, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL every process whose title says it runs ``task_name`` (Ray titles workers ``ray::<task>``)."""
    while not stop.is_set():
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(f"ray::{task_name}".encode()):
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed.append(int(entry.name))
                except ProcessLookupError:
                    pass
        time.sleep(0.002)


def test_a_killed_import_worker_is_one_line_and_leaves_no_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_camvid(tmp_path / "camvid", n=12, size=(1600, 1200))  # big frames: each task runs long enough to be seen
    out = tmp_path / "o.zarr"
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_workers_running, args=("_import_shard", stop, killed), daemon=True)
    killer.start()
    try:
        status, stdout, err = run_cli([*camvid_import(tmp_path / "camvid", out)[:-2], "--size", "64x32",
                                       "--shard-size", "4"], capsys)  # fmt: skip
    finally:
        stop.set()
        killer.join()
    assert killed, "no import worker was seen running"
    assert_one_clear_line(status, stdout, err, 1, "a Ray worker died while importing train")
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_ctrl_c_during_translate_keeps_the_committed_frames(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = make_procedural_store(tmp_path / "big.zarr", "flat", frames=64)
    out = tmp_path / "t.zarr"

    def interrupt_after_first_commit() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            if (out / "zarr.json").is_file() and len(FrameStore.open(out)) > 0:
                break
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    before = store_digests(world["root"], tmp_path)
    threading.Thread(target=interrupt_after_first_commit, daemon=True).start()
    status, stdout, err = run_cli(["translate", str(world["dpgan"]), "--input", str(big), "--out", str(out),
                                   "--shard-size", "2", "--batch-size", "2"], capsys)  # fmt: skip
    assert_one_clear_line(status, stdout, err, 130, "interrupted")
    assert {k: v for k, v in store_digests(world["root"], tmp_path).items() if k in before} == before
    assert verify_store(out).ok and 0 < len(FrameStore.open(out)) < 64
