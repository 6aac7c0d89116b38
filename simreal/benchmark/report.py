"""The benchmark report as Markdown and HTML, rendered like the score report from the tables of ``results.json``.

Scores are shown in percent as ``mean ± std`` over seeds; gains are in mIoU points relative to the baseline mixes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simreal.report.document import Section, Table
from simreal.report.render import to_html, to_markdown

BASELINE_TITLES = {"sim": "sim only", "real": "real only"}


def percent(stat: Mapping[str, Any] | None, signed: bool = False) -> str:
    """``41.2 ± 1.3`` from a ``{"mean", "std"}`` of fractions; ``-`` when there is no value."""
    if not stat or stat.get("mean") is None:
        return "-"
    sign = "+" if signed else ""
    return f"{100 * stat['mean']:{sign}.1f} ± {100 * stat['std']:.1f}"


def result_tables(results: Mapping[str, Any]) -> list[tuple[str, Table]]:
    mixes = results["mixes"]
    baselines = results.get("baselines", {})
    gain_titles = {short: f"Δ mIoU vs {BASELINE_TITLES.get(short, base)}" for short, base in baselines.items()}
    header = ["mix", "training stores (share)", "seeds", "mIoU", "mean acc", "pixel acc", *gain_titles.values()]
    rows = []
    for mix in mixes:
        parts = ", ".join(f"{role} {100 * share:.0f}%" for role, share in mix["parts"].items())
        gains = [percent(mix["gains"].get(short), signed=True) for short in gain_titles]
        row = [mix["label"], parts, str(len(mix["seeds"]))]
        rows.append(row + [percent(mix[m]) for m in ("miou", "mean_acc", "pixel_acc")] + gains)
    class_names = list(mixes[0]["per_class_iou"]) if mixes else []
    class_rows = [[name] + [percent(mix["per_class_iou"].get(name)) for mix in mixes] for name in class_names]
    return [
        ("Scores on the evaluation store (%, mean ± std over seeds)", Table(header, rows)),
        ("Per-class IoU (%, mean ± std over seeds)", Table(["class", *[mix["label"] for mix in mixes]], class_rows)),
    ]


def setup_lines(results: Mapping[str, Any]) -> list[str]:
    budget = results["budget"]
    evaluation = results["evaluation"]
    return [
        f"Evaluation store: `{evaluation['store']}` ({evaluation['frames']} frames, "
        f"{len(evaluation['classes'])} classes scored: {', '.join(evaluation['classes'])})",
        f"Segmenter: DeepLabV3+ `{budget['architecture']}` (encoder {budget['encoder']}), output stride "
        f"{budget['output_stride']}",
        f"Pretrained encoder weights: {results['pretrained']}",
        f"Budget, identical for every mix: {budget['steps']} steps, batch {budget['batch_size']}, crop "
        f"{budget['crop'][0]}x{budget['crop'][1]}, horizontal flips {'on' if budget['hflip'] else 'off'}, SGD lr "
        f"{budget['lr']} (encoder x{budget['encoder_lr_mult']}), momentum {budget['momentum']}, weight decay "
        f"{budget['weight_decay']}, poly decay power {budget['poly_power']}",
        f"Seeds: {', '.join(str(s) for s in results['seeds'])}",
        f"Hardware: {'; '.join(results['hardware'])}",
        f"Training time: {results['train_seconds']:.0f} s in total over {len(results['runs'])} runs",
    ]


def report_sections(results: Mapping[str, Any], chart: str | None = None) -> list[Section]:
    sections = [Section("Setup", paragraphs=[results["question"]], bullets=setup_lines(results))]
    for title, table in result_tables(results):
        sections.append(Section(title, tables=[table]))
    if chart:
        sections[1].figures.append(("mIoU per mix", chart))
    if results["skipped"]:
        sections.append(Section("Mixes not run", bullets=list(results["skipped"])))
    return sections


def write_markdown(results: Mapping[str, Any], path: Path, chart: str | None = None) -> Path:
    title = f"Downstream benchmark `{results['benchmark']}`"
    path.write_text(to_markdown(title, report_sections(results, chart)), encoding="utf-8")
    return path


def write_html(results: Mapping[str, Any], path: Path, chart: str | None = None) -> Path:
    title = f"Downstream benchmark `{results['benchmark']}`"
    path.write_text(to_html(title, report_sections(results, chart)), encoding="utf-8")
    return path
