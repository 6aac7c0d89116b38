"""From per-run records to per-mix summaries: mean ± std over seeds and gains over the baseline mixes.

Gains are paired by seed: every mix trains from the same initialisation and data order seed for seed, so the
difference ``mix - baseline`` is taken per seed first and then averaged (its spread is the spread of the gain,
not of the two scores).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from simreal.benchmark.definition import Mix

HEADLINE_METRICS = ("miou", "mean_acc", "pixel_acc")


def mean_std(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """``{"mean", "std", "n"}`` of the finite values (sample std, 0 for one value; None for none)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return {"mean": float(np.mean(finite)), "std": std, "n": len(finite)}


def paired_gain(records: Sequence[Mapping], baseline: Sequence[Mapping], metric: str = "miou") -> dict[str, Any]:
    """Mean ± std over the seeds both sets share of ``metric(mix) - metric(baseline)``."""
    base_by_seed = {record["seed"]: record["scores"][metric] for record in baseline}
    differences = [
        record["scores"][metric] - base_by_seed[record["seed"]]
        for record in records
        if base_by_seed.get(record["seed"]) is not None and record["scores"][metric] is not None
    ]
    return mean_std(differences)


def summarize(mixes: Sequence[Mix], records: Sequence[Mapping], baselines: Mapping[str, str]) -> list[dict[str, Any]]:
    """One summary per mix (in the mixes' order) with headline and per-class statistics and gains.

    ``baselines`` maps a short name (``sim``) to a mix name (``sim_only``); a baseline that did not run gives no
    gains (None).
    """
    by_mix: dict[str, list[Mapping]] = {mix.name: [] for mix in mixes}
    for record in records:
        by_mix.setdefault(record["mix"], []).append(record)
    summaries = []
    for mix in mixes:
        runs = sorted(by_mix[mix.name], key=lambda r: r["seed"])
        class_names = list(runs[0]["scores"]["per_class_iou"]) if runs else []
        summaries.append(
            {
                "name": mix.name,
                "label": mix.label,
                "parts": dict(mix.parts),
                "seeds": [r["seed"] for r in runs],
                **{metric: mean_std(r["scores"][metric] for r in runs) for metric in HEADLINE_METRICS},
                "per_class_iou": {
                    name: mean_std(r["scores"]["per_class_iou"].get(name) for r in runs) for name in class_names
                },
                "gains": {
                    short: paired_gain(runs, by_mix[base]) if by_mix.get(base) else None
                    for short, base in baselines.items()
                },
            }
        )
    return summaries


def best_mix(summaries: Sequence[Mapping], metric: str = "miou") -> Mapping | None:
    """The summary with the highest mean ``metric`` (None when nothing has a score yet)."""
    scored = [s for s in summaries if s[metric]["mean"] is not None]
    return max(scored, key=lambda s: s[metric]["mean"]) if scored else None
