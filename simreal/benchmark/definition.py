"""Benchmark definitions (``configs/bench/<name>.yaml``): composing them, their mixes, and the plan of runs.

A definition names training stores by role (``sim``, ``translated``, ``real``, ...), mixes of those roles with
sampling shares, a held-out evaluation store, a number of seeds and one segmenter recipe (a preset of
``configs/train/segmenter.yaml`` plus budget overrides). Every (mix, seed) pair becomes one ``RunSpec``: the fully
composed segmenter training config of that run, identical across mixes except for ``data``, ``out`` and ``seed``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from simreal.benchmark.config import BenchConfig
from simreal.benchmark.overlap import FrameIdentities, describe, find_overlaps
from simreal.config import as_overrides, compose_config
from simreal.data.mix import MixPart, normalized_parts
from simreal.data.store import FrameStore
from simreal.errors import BenchError
from simreal.progress import progress_bar
from simreal.training.config import compose_training_config

MIX_FILE = "mix.yaml"
# Keys of a run's training config that do not change what it learns (left out of its fingerprint).
UNLEARNED_KEYS = ("out", "data", "progress", "tensorboard", "log_every", "sample_every", "checkpoint_every")


class BenchConfigError(BenchError):
    """A benchmark definition or command line that cannot be run as asked."""


@dataclass(frozen=True)
class Mix:
    name: str
    label: str
    parts: dict[str, float]  # store role -> share of the sampled training frames (sums to 1)


@dataclass(frozen=True)
class RunSpec:
    """One training + evaluation run: a mix, a seed and everything needed to carry it out anywhere."""

    mix: Mix
    seed: int
    run_dir: str
    stores: dict[str, str]  # store role -> absolute path, for the roles of the mix
    eval_store: str
    train_config: dict[str, Any]  # resolved segmenter config; data = <run_dir>/mix.yaml
    fingerprint: str

    @property
    def mix_parts(self) -> list[MixPart]:
        return [MixPart(self.stores[role], share) for role, share in self.mix.parts.items()]


def compose_bench_config(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """``configs/bench/<name>.yaml`` + its selected preset + ``overrides``, typed by ``BenchConfig``.

    A store role may be given as ``role=STORE`` (short for ``stores.role=STORE``). The preset is applied before the
    user's overrides, so ``preset=tiny seeds=5`` keeps five seeds.
    """
    config_name = f"bench/{name}"
    base = compose_config(config_name, [], what=f"bench {name}")
    if OmegaConf.get_type(base) is not BenchConfig:
        raise BenchConfigError(
            f"configs/{config_name}.yaml must start with `# @package _global_` and list `- /schema/bench@_here_` first "
            "in its defaults (the keys and types of every benchmark definition); see configs/bench/default.yaml"
        )
    unset = OmegaConf.missing_keys(base)
    if unset:
        raise BenchConfigError(
            f"configs/{config_name}.yaml does not set {', '.join(sorted(unset))}; see configs/bench/default.yaml"
        )
    overrides = [_expand_store_shorthand(override, set(base.stores)) for override in overrides]
    return compose_config(config_name, overrides, what=f"bench {name}")


def _expand_store_shorthand(override: str, roles: set[str]) -> str:
    key, sep, value = override.partition("=")
    return f"stores.{key}={value}" if sep and key in roles else override


def planned_mixes(cfg: BenchConfig) -> tuple[list[Mix], list[str]]:
    """The mixes to run, and one note per mix left out (a store not given, or not selected with ``only``)."""
    roles = set(cfg.stores)
    only = cfg.only or None
    unknown = sorted(set(only or []) - set(cfg.mixes))
    if unknown:
        raise BenchConfigError(f"only= names unknown mixes {unknown}; the mixes are: {', '.join(cfg.mixes)}")
    mixes, notes = [], []
    for name, entry in cfg.mixes.items():
        parts = entry.parts
        bad_roles = sorted(set(parts) - roles)
        if bad_roles:
            raise BenchConfigError(f"mix {name!r} uses unknown store roles {bad_roles}; roles: {', '.join(roles)}")
        shares = normalized_parts([MixPart(role, weight) for role, weight in parts.items()])
        label = entry.label or name
        missing = [role for role in parts if not cfg.stores[role]]
        if only is not None and name not in only:
            notes.append(f"{name} ({label}): not selected by only=")
        elif missing:
            given = " ".join(f"{role}=STORE" for role in missing)
            notes.append(f"{name} ({label}): skipped, no store given for {', '.join(missing)} (pass {given})")
        else:
            mixes.append(Mix(name, label, {part.store: part.weight for part in shares}))
    if not mixes:
        raise BenchConfigError(
            "no mix can run: pass the training stores as role=STORE (roles: " + ", ".join(roles) + ")"
        )
    return mixes, notes


def check_stores(cfg: BenchConfig, mixes: Sequence[Mix], crop: Sequence[int]) -> FrameStore:
    """Open the evaluation store and every training store the mixes use; return the evaluation store.

    Training stores must share the evaluation store's class set (the network predicts its ids) and be at least as
    large as the training crop.
    """
    eval_store = FrameStore.open(evaluation_store(cfg))
    expected = eval_store.class_set.to_attrs()
    for role in sorted({role for mix in mixes for role in mix.parts}):
        store = FrameStore.open(Path(cfg.stores[role]).expanduser())
        if store.class_set.to_attrs() != expected:
            raise BenchConfigError(
                f"{role} store {store.path} uses class set {store.class_set.name!r} but the evaluation store uses "
                f"{eval_store.class_set.name!r}; import both with the same class set"
            )
        if len(store) == 0:
            raise BenchConfigError(f"{role} store {store.path} holds no committed frames")
        width, height = crop  # typed as [width, height], like store sizes
        if store.height < height or store.width < width:
            raise BenchConfigError(
                f"{role} store {store.path} has {store.width}x{store.height} frames, smaller than the training crop "
                f"{width}x{height}; set segmenter.overrides.crop=[WIDTH,HEIGHT]"
            )
    if len(eval_store) == 0:
        raise BenchConfigError(f"evaluation store {eval_store.path} holds no committed frames")
    check_no_overlap(eval_store, {role: Path(cfg.stores[role]) for mix in mixes for role in mix.parts})
    return eval_store


def evaluation_store(cfg: BenchConfig) -> Path:
    """The held-out real store every mix is scored on (required)."""
    if not cfg.eval:
        raise BenchConfigError("pass eval=STORE: the held-out real store every mix is scored on")
    return Path(cfg.eval).expanduser()


def check_no_overlap(eval_store: FrameStore, training: Mapping[str, Path]) -> None:
    """Refuse an evaluation store that is, or shares frames with, a training store: its scores would be inflated."""
    total = len(eval_store) + sum(len(FrameStore.open(path)) for path in training.values())
    with progress_bar("checking eval/train overlap", total=total) as bar:
        overlaps = find_overlaps(eval_store.path, dict(training), FrameIdentities(progress=bar.advance))
    if overlaps:
        raise BenchConfigError(
            "the evaluation store must be held out from training: "
            + "; ".join(describe(overlap, eval_store.path) for overlap in overlaps)
            + ". Pass eval= a store none of the training stores shares frames with (e.g. another split)"
        )


def training_config(cfg: BenchConfig, seed: int, run_dir: Path, encoder_weights: str | None) -> DictConfig:
    """The segmenter config of one run: the bench's recipe with this run's seed, run directory and mix file."""
    recipe = OmegaConf.to_container(cfg.segmenter.overrides, resolve=True)
    overrides = [
        f"preset={json.dumps(cfg.segmenter.preset)}",
        *as_overrides(recipe),
        f"model.encoder_weights={json.dumps(encoder_weights)}",
        f"seed={int(seed)}",
        f"out={json.dumps(str(run_dir))}",
        f"data={json.dumps(str(run_dir / MIX_FILE))}",
        "val=null",
        "eval_every=0",  # scored once at the end, on the evaluation store, by the benchmark
        "progress=false",
        "resume=auto",
        "launcher=local",
    ]
    return compose_training_config("segmenter", overrides)


def plan_runs(cfg: BenchConfig, mixes: Sequence[Mix], encoder_weights: str | None) -> list[RunSpec]:
    """One ``RunSpec`` per mix and seed, under ``<out>/runs/<mix>/seed<k>``."""
    if cfg.seeds < 1:
        raise BenchConfigError(f"seeds must be >= 1, got {cfg.seeds}")
    out = Path(cfg.out).expanduser().resolve()
    eval_store = str(evaluation_store(cfg).resolve())
    specs = []
    for mix in mixes:
        stores = {role: str(Path(cfg.stores[role]).expanduser().resolve()) for role in mix.parts}
        for seed in range(cfg.seeds):
            run_dir = out / "runs" / mix.name / f"seed{seed}"
            train_cfg = OmegaConf.to_container(training_config(cfg, seed, run_dir, encoder_weights), resolve=True)
            specs.append(
                RunSpec(
                    mix=mix,
                    seed=seed,
                    run_dir=str(run_dir),
                    stores=stores,
                    eval_store=eval_store,
                    train_config=train_cfg,
                    fingerprint=run_fingerprint(train_cfg, mix, stores, eval_store),
                )
            )
    return specs


def run_fingerprint(train_config: Mapping[str, Any], mix: Mix, stores: Mapping[str, str], eval_store: str) -> str:
    """A hash of everything that decides a run's result: recipe, seed, mix shares, store paths, evaluation store."""
    learned = {key: value for key, value in train_config.items() if key not in UNLEARNED_KEYS}
    payload = {"train": learned, "mix": [[stores[r], w] for r, w in mix.parts.items()], "eval": eval_store}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve_encoder_weights(cfg: BenchConfig, decision_file: Path | None = None) -> tuple[str | None, str]:
    """The encoder weights every run starts from, and a sentence for the report saying which.

    ImageNet (or any named) weights are tried once; when they cannot be obtained (offline, no
    ``$SIMREAL_WEIGHTS_DIR`` copy) every run trains from scratch instead, so all mixes still start alike. The
    decision is kept in ``decision_file``: a rerun reuses it, so finished runs stay valid even if the network
    comes or goes in between (and an offline rerun does not wait for download retries again).
    """
    from simreal.models.segmenter import WeightsUnavailableError, build_segmenter

    requested = cfg.segmenter.encoder_weights
    if requested is None or requested.lower() in ("", "none", "null"):
        return None, "no: trained from scratch (segmenter.encoder_weights=null)"
    if decision_file is not None and decision_file.is_file():
        decision = json.loads(decision_file.read_text(encoding="utf-8"))
        if decision.get("requested") == requested:
            return decision["used"], decision["note"]
    model = training_config(cfg, 0, Path("unused"), requested).model
    try:
        build_segmenter(
            model.architecture,
            2,
            encoder_weights=requested,
            encoder_name=model.encoder_name,
            encoder_depth=model.encoder_depth,
        )
        used, note = requested, f"yes: {requested} encoder weights"
    except WeightsUnavailableError as err:
        reason = type(err.__cause__).__name__ if err.__cause__ is not None else str(err)
        used, note = None, f"no: {requested} encoder weights could not be obtained ({reason}); trained from scratch"
    if decision_file is not None:
        decision_file.parent.mkdir(parents=True, exist_ok=True)
        decision = {"requested": requested, "used": used, "note": note}
        decision_file.write_text(json.dumps(decision, indent=2), encoding="utf-8")
    return used, note
