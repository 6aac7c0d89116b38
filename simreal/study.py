"""What ``simreal study`` measures and how it reads: its typed config, translator settings, the Table 4.3 analogue,
the targets, the results page. The orchestration (which run when, on which worker) is ``pipelines/study.py``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import MISSING, DictConfig

from simreal.config import compose_config, register_schema
from simreal.data.store import FrameStore
from simreal.errors import ConfigError

# LC-SAE report, Table 4.3 (CARLA -> Cityscapes, 400 images): (lambda_out, lambda_in) -> overall acc, mean acc,
# mIoU, FID. The baseline row (0, 0) is the plain swapping autoencoder.
REPORT_TABLE_4_3: dict[tuple[float, float], tuple[float, float, float, float]] = {
    (0.0, 0.0): (0.530, 0.167, 0.112, 65.26),
    (0.0, 1.0): (0.500, 0.170, 0.109, 60.13),
    (1.0, 0.0): (0.672, 0.326, 0.215, 61.95),
    (1.0, 1.0): (0.665, 0.332, 0.227, 68.59),
    (1.0, 5.0): (0.632, 0.329, 0.216, 64.78),
    (2.0, 2.0): (0.675, 0.351, 0.237, 66.26),
    (3.0, 0.0): (0.692, 0.382, 0.254, 76.08),
}
CLASS_WEIGHT_CAP = 10.0  # inverse-frequency weights are capped: a class seen in a handful of pixels must not dominate
TARGETS = {
    "heldout_miou": 0.35,  # held-out scorer on the evaluation store
    "consistency_ratio": 1.5,  # LC-SAE (lambda_out >= 1) mIoU over the SAE baseline's
    "downstream_gain": 0.03,  # LC-SAE-translated mix over sim only, mIoU
}


STUDY_METHODS = ("sae", "lcsae", "cut", "fastcut", "lccut")
LABEL_LOSS_METHODS = ("lcsae", "lccut")  # the methods with the report's outer loss (and an outer segmenter)


@dataclass
class TranslatorRun:
    """One entry of ``translators.runs``: a method and its loss settings (a key left out takes the value below)."""

    method: str = MISSING  # one of STUDY_METHODS
    lambda_outer: float = 0.0
    lambda_inner: float = 0.0  # LC-SAE only
    outer_loss: str = "ce"
    class_weights: bool = False
    overrides: list[str] = field(default_factory=list)  # this row's own training overrides (after the common ones)


# The typed keys of configs/study/default.yaml and its presets (values and their documentation live in the YAML).
@dataclass
class StudySimConfig:
    train: str | None = MISSING
    test: str | None = MISSING
    frames: int = MISSING
    test_frames: int = MISSING
    towns: list[str] = MISSING
    test_towns: list[str] = MISSING


@dataclass
class StudyRealConfig:
    dataset: str | None = MISSING
    train: str | None = MISSING
    train_split: str = MISSING
    eval_split: str = MISSING


@dataclass
class SegmenterPairConfig:  # overrides of `simreal train segmenter` (the study's and the demo's)
    outer: list[str] = MISSING
    heldout: list[str] = MISSING


@dataclass
class StudyTranslatorsConfig:
    common: list[str] = MISSING  # overrides of `simreal train sae|lcsae` shared by every run
    only: list[str] | None = MISSING
    runs: dict[str, TranslatorRun] = MISSING


@dataclass
class StudyTranslateConfig:
    styles: int = MISSING
    batch_size: int = MISSING


@dataclass
class StudyScoreConfig:
    fid: str = MISSING
    batch_size: int = MISSING


@dataclass
class StudyBenchConfig:
    mixes: list[str] = MISSING
    seeds: int = MISSING
    overrides: list[str] = MISSING  # overrides of configs/bench/default.yaml


@dataclass
class StudyConfig:
    preset: str = MISSING
    out: str = MISSING
    seed: int = MISSING
    address: str | None = MISSING
    size: list[int] = MISSING
    cpus_per_translator: int = MISSING
    sim: StudySimConfig = MISSING
    real: StudyRealConfig = MISSING
    eval: str | None = MISSING
    segmenters: SegmenterPairConfig = MISSING
    translators: StudyTranslatorsConfig = MISSING
    best: str = MISSING
    best_cut: str | None = MISSING
    translate: StudyTranslateConfig = MISSING
    score: StudyScoreConfig = MISSING
    bench: StudyBenchConfig = MISSING


register_schema("study", StudyConfig)


def compose_study_config(overrides: list[str] | None = None) -> DictConfig:
    """``configs/study/default.yaml`` + its selected preset + ``overrides``, typed by ``StudyConfig``."""
    return compose_config("study/default", overrides, what="study")


@dataclass(frozen=True)
class Translator:
    """One row of the study: a named, checked ``TranslatorRun`` (whose defaults fill the keys an entry leaves out)."""

    name: str
    method: str
    lambda_outer: float
    lambda_inner: float
    outer_loss: str
    class_weights: bool
    extra: tuple[str, ...] = ()

    @classmethod
    def from_entry(cls, name: str, entry: TranslatorRun) -> Translator:
        if entry.method not in STUDY_METHODS:
            raise ConfigError(
                f"translators.runs.{name}: method must be one of {', '.join(STUDY_METHODS)}, got {entry.method!r}"
            )
        if entry.lambda_inner and entry.method != "lcsae":
            raise ConfigError(f"translators.runs.{name}: lambda_inner is LC-SAE's; {entry.method} has no inner loss")
        if (entry.lambda_outer or entry.class_weights) and entry.method not in LABEL_LOSS_METHODS:
            raise ConfigError(
                f"translators.runs.{name}: {entry.method} has no label loss; use one of {', '.join(LABEL_LOSS_METHODS)}"
            )
        return cls(
            name, entry.method, entry.lambda_outer, entry.lambda_inner, entry.outer_loss, entry.class_weights,
            tuple(entry.overrides),
        )  # fmt: skip

    @property
    def uses_outer_segmenter(self) -> bool:
        return self.method in LABEL_LOSS_METHODS and self.lambda_outer > 0

    @property
    def family(self) -> str:
        """``sae`` for the swapping autoencoders (a style frame per translation), ``cut`` for the CUT family."""
        return "sae" if self.method in ("sae", "lcsae") else "cut"

    def overrides(self, outer_segmenter: Path, class_weights: Sequence[float] | None) -> list[str]:
        """The training overrides that make this row (besides data, budget and output)."""
        if self.method not in LABEL_LOSS_METHODS:
            return list(self.extra)
        overrides = [*self.extra, f"loss.lambda_outer={self.lambda_outer}", f"loss.outer_loss={self.outer_loss}"]
        if self.method == "lcsae":
            overrides.append(f"loss.lambda_inner={self.lambda_inner}")
        if self.uses_outer_segmenter:
            overrides.append(f"outer_segmenter={outer_segmenter}")
        if self.class_weights:
            if class_weights is None:
                raise ConfigError(f"translators.runs.{self.name}: class_weights needs the real store's class weights")
            overrides.append(f"loss.outer_class_weights=[{','.join(f'{w:.4f}' for w in class_weights)}]")
        return overrides

    def report_row(self) -> tuple[float, float, float, float] | None:
        """The report's Table 4.3 numbers for these lambdas (plain CE only; LC-SAE's rows)."""
        if self.family != "sae" or self.outer_loss != "ce" or self.class_weights:
            return None
        return REPORT_TABLE_4_3.get((self.lambda_outer, self.lambda_inner))


def selected_translators(runs: Mapping[str, TranslatorRun], only: Sequence[str] | None) -> list[Translator]:
    """The configured translators, or the ones ``only`` names (in the configured order)."""
    unknown = sorted(set(only or []) - set(runs))
    if unknown:
        raise ConfigError(f"translators.only names unknown runs {unknown}; the runs are: {', '.join(runs)}")
    return [Translator.from_entry(name, entry) for name, entry in runs.items() if only is None or name in only]


def inverse_frequency_weights(store_path: Path, cap: float = CLASS_WEIGHT_CAP) -> list[float]:
    """Per-class weights for a class-weighted CE (the report's future work): inverse pixel frequency over the store,
    scaled to mean 1 over the classes present, capped at ``cap``; absent classes get 0."""
    store = FrameStore.open(store_path)
    num_classes = max(store.class_set.ids) + 1
    counts = np.zeros(num_classes, np.int64)
    for start in range(0, len(store), store.shard_size):
        _, labels = store.read_range(start, start + store.shard_size)
        counts += np.bincount(labels.ravel(), minlength=256)[:num_classes]
    present = counts > 0
    if not present.any():
        raise ConfigError(f"{store_path} has no labelled pixel to weigh classes by")
    weights = np.zeros(num_classes)
    weights[present] = 1.0 / counts[present]
    weights[present] /= weights[present].mean()
    return [float(w) for w in np.minimum(weights, cap)]


def consistency_table(translators: Sequence[Translator], scores: Mapping[str, Any], sim_name: str) -> list[dict]:
    """Rows of the Table 4.3 analogue: raw sim frames, then every translator, with the report's numbers beside."""
    by_name = {store["name"]: store for store in scores["stores"]}
    rows = [_row("raw sim frames", None, by_name.get(sim_name), None)]
    for translator in translators:
        rows.append(_row(translator.name, translator, by_name.get(translator.name), translator.report_row()))
    return rows


def _row(name: str, translator: Translator | None, store: Mapping[str, Any] | None, report: Any) -> dict:
    consistency = (store or {}).get("consistency") or {}
    kid = (store or {}).get("kid") or {}
    return {
        "name": name,
        "method": translator.method if translator else "-",
        "lambda_outer": translator.lambda_outer if translator else None,
        "lambda_inner": translator.lambda_inner if translator and translator.method == "lcsae" else None,
        "outer_loss": (translator.outer_loss + (" (class-weighted)" if translator.class_weights else ""))
        if translator and translator.method in LABEL_LOSS_METHODS
        else "-",
        "pixel_acc": consistency.get("pixel_acc"),
        "mean_acc": consistency.get("mean_acc"),
        "miou": consistency.get("miou"),
        "fid": (store or {}).get("fid"),
        "kid": kid.get("mean"),
        "report": report,
    }


def check_targets(
    rows: Sequence[dict], translators: Sequence[Translator], heldout_miou: float | None, downstream: Sequence[dict]
) -> list[dict]:
    """Each target of the study with what was measured and whether it is met (None: not measured)."""
    by_name = {row["name"]: row for row in rows}
    sim = by_name["raw sim frames"]
    baseline = next((by_name[t.name] for t in translators if t.method == "sae"), None)
    with_outer = [by_name[t.name] for t in translators if t.method == "lcsae" and t.lambda_outer >= 1]
    best_outer = max(with_outer, key=lambda row: row["miou"] or -1.0, default=None)
    fid_rows = [by_name[t.name] for t in translators if t.method == "lcsae" and by_name[t.name]["fid"] is not None]
    best_fid = min(fid_rows, key=lambda row: row["fid"], default=None)
    mixes = {mix["name"]: mix for mix in downstream}
    sim_only, lcsae_mix = mixes.get("sim_only"), mixes.get("lcsae")

    targets = [
        {
            "target": f"held-out scorer mIoU >= {TARGETS['heldout_miou']} on the evaluation store",
            "measured": _fmt(heldout_miou),
            "met": None if heldout_miou is None else heldout_miou >= TARGETS["heldout_miou"],
        },
        {
            "target": "FID(LC-SAE translated, real) < FID(raw sim, real)",
            "measured": f"{_fmt(best_fid['fid'] if best_fid else None, 1)} ({best_fid['name'] if best_fid else '-'}) "
            f"vs {_fmt(sim['fid'], 1)}",
            "met": None if best_fid is None or sim["fid"] is None else best_fid["fid"] < sim["fid"],
        },
    ]
    ratio = None
    if best_outer and baseline and best_outer["miou"] is not None and baseline["miou"]:
        ratio = best_outer["miou"] / baseline["miou"]
    targets.append(
        {
            "target": f"LC-SAE (lambda_out >= 1) mIoU >= {TARGETS['consistency_ratio']} x SAE's and > raw sim's",
            "measured": f"{_fmt(best_outer['miou'] if best_outer else None)} "
            f"({best_outer['name'] if best_outer else '-'}) vs SAE {_fmt(baseline['miou'] if baseline else None)}, "
            f"sim {_fmt(sim['miou'])}",
            "met": None
            if ratio is None or sim["miou"] is None
            else ratio >= TARGETS["consistency_ratio"] and best_outer["miou"] > sim["miou"],
        }
    )
    gain = None
    if sim_only and lcsae_mix and sim_only["miou"]["mean"] is not None and lcsae_mix["miou"]["mean"] is not None:
        gain = lcsae_mix["miou"]["mean"] - sim_only["miou"]["mean"]
        apart = gain > (sim_only["miou"]["std"] or 0.0) + (lcsae_mix["miou"]["std"] or 0.0)
    targets.append(
        {
            "target": f"downstream: LC-SAE mix beats sim only by >= {100 * TARGETS['downstream_gain']:.0f} mIoU "
            "points, more than one std apart",
            "measured": "-" if gain is None else f"{100 * gain:+.1f} points",
            "met": None if gain is None else gain >= TARGETS["downstream_gain"] and apart,
        }
    )
    return targets + _cut_targets(by_name, translators, mixes)


def _cut_targets(by_name: Mapping[str, dict], translators: Sequence[Translator], mixes: Mapping[str, dict]) -> list:
    """LC-CUT's targets (issue 27), when the study has an LC-CUT row."""
    lccut = next((by_name[t.name] for t in translators if t.method == "lccut"), None)
    if lccut is None:
        return []
    sim = by_name["raw sim frames"]
    cut = next((by_name[t.name] for t in translators if t.method == "cut"), None)

    def below(a: float | None, b: float | None) -> bool | None:
        return None if a is None or b is None else a < b

    def at_least(a: float | None, *others: float | None) -> bool | None:
        return None if a is None or any(o is None for o in others) else all(a >= o for o in others)

    def mean(name: str) -> float | None:
        return mixes[name]["miou"]["mean"] if name in mixes else None

    return [
        {
            "target": "FID(LC-CUT translated, real) < FID(raw sim, real)",
            "measured": f"{_fmt(lccut['fid'], 1)} vs {_fmt(sim['fid'], 1)}",
            "met": below(lccut["fid"], sim["fid"]),
        },
        {
            "target": "LC-CUT mIoU >= CUT's and >= raw sim's",
            "measured": f"{_fmt(lccut['miou'])} vs CUT {_fmt(cut['miou'] if cut else None)}, sim {_fmt(sim['miou'])}",
            "met": at_least(lccut["miou"], cut["miou"] if cut else None, sim["miou"]),
        },
        {
            "target": "downstream: LC-CUT mix >= LC-SAE mix",
            "measured": f"{_fmt(mean('lccut'))} vs {_fmt(mean('lcsae'))}",
            "met": at_least(mean("lccut"), mean("lcsae")),
        },
        {
            "target": "downstream: real + LC-CUT >= real only",
            "measured": f"{_fmt(mean('real_lccut_50'))} vs {_fmt(mean('real_only'))}",
            "met": at_least(mean("real_lccut_50"), mean("real_only")),
        },
    ]


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def results_markdown(results: Mapping[str, Any], grid: str | None) -> str:
    """The results page (docs/results.md is this page of a full study run)."""
    setup = results["setup"]
    lines = [
        "# simreal study: the LC-SAE report's findings at small scale",
        "",
        f"Generated by `{setup['command']}` on {setup['hardware']}, {setup['created']}; wall time "
        f"{setup['wall_minutes']:.0f} min. Real domain: {setup['real']}; evaluation store: {setup['eval']} "
        f"({setup['eval_frames']} frames). Sim: the procedural world, {setup['sim_frames']} training frames and "
        f"{setup['test_frames']} held-out test frames from other towns and another seed.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *(f"| {t['target']} | {t['measured']} | {_verdict(t['met'])} |" for t in results["targets"]),
        "",
        "## Label consistency and realism (Table 4.3 analogue)",
        "",
        f"{setup['translated_images']} translated images per swapping autoencoder ({setup['test_frames']} held-out sim "
        f"frames x {setup['styles']} real style frames) and {setup['test_frames']} per CUT-family translator (one "
        "translation per frame: CUT translates into the real domain as a whole, with no style frame), segmented by "
        "the held-out scorer (DeepLabV3+ "
        f"{setup['heldout_encoder']}, mIoU {_fmt(setup['heldout_miou'])} on the evaluation store) and compared with "
        "the sim labels; FID/KID against the real training frames. In brackets: the report's numbers (CARLA -> "
        "Cityscapes, full scale, 400 images), where it has the row.",
        "",
        "| translator | λout | λin | outer loss | overall acc | mean acc | mIoU | FID | KID x1000 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["consistency"]:
        report = row["report"]

        def cell(value: float | None, index: int, digits: int = 3, report: Any = report) -> str:
            ours = _fmt(value, digits)
            return f"{ours} ({report[index]:.{digits}f})" if report else ours

        lam = lambda v: "-" if v is None else f"{v:g}"  # noqa: E731
        kid = "-" if row["kid"] is None else f"{1000 * row['kid']:.1f}"
        lines.append(
            f"| {row['name']} | {lam(row['lambda_outer'])} | {lam(row['lambda_inner'])} | {row['outer_loss']} | "
            f"{cell(row['pixel_acc'], 0)} | {cell(row['mean_acc'], 1)} | {cell(row['miou'], 2)} | "
            f"{cell(row['fid'], 3, 2)} | {kid} |"
        )
    lines += ["", "## Downstream: segmenters retrained on each mix, scored on the evaluation store", ""]
    if results["downstream"]:
        lines += ["| mix | mIoU (mean ± std over seeds) | pixel acc |", "|---|---|---|"]
        for mix in results["downstream"]:
            miou, acc = mix["miou"], mix["pixel_acc"]
            lines.append(f"| {mix['label']} | {_pm(miou)} | {_pm(acc)} |")
        lines += ["", f"Budget: {results['bench_budget']}."]
    else:
        lines.append("Not run yet.")
    if grid:
        lines += ["", "## Samples", "", f"![sim, SAE, LC-SAE, label, scorer prediction]({grid})"]
    lines += ["", "## Budget", "", *(f"- {stage}: {minutes:.1f} min" for stage, minutes in setup["stages"].items())]
    lines += ["", *setup["notes"], ""]
    return "\n".join(lines)


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else "yes" if met else "no"


def _pm(stat: Mapping[str, Any]) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{100 * stat['mean']:.1f} ± {100 * (stat['std'] or 0.0):.1f}"
