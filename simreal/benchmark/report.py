"""The benchmark report as Markdown and HTML, both rendered from the same tables of ``results.json``.

Scores are shown in percent as ``mean ± std`` over seeds; gains are in mIoU points relative to the baseline mixes.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASELINE_TITLES = {"sim": "sim only", "real": "real only"}


@dataclass(frozen=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


def percent(stat: Mapping[str, Any] | None, signed: bool = False) -> str:
    """``41.2 ± 1.3`` from a ``{"mean", "std"}`` of fractions; ``-`` when there is no value."""
    if not stat or stat.get("mean") is None:
        return "-"
    sign = "+" if signed else ""
    return f"{100 * stat['mean']:{sign}.1f} ± {100 * stat['std']:.1f}"


def result_tables(results: Mapping[str, Any]) -> list[Table]:
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
        Table("Scores on the evaluation store (%, mean ± std over seeds)", header, rows),
        Table("Per-class IoU (%, mean ± std over seeds)", ["class", *[mix["label"] for mix in mixes]], class_rows),
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


def write_markdown(results: Mapping[str, Any], path: Path, chart: str | None = None) -> Path:
    lines = [f"# Downstream benchmark `{results['benchmark']}`", "", results["question"], ""]
    lines += [f"- {line}" for line in setup_lines(results)] + [""]
    for table in result_tables(results):
        lines += [f"## {table.title}", "", _markdown_row(table.header), _markdown_row(["---"] * len(table.header))]
        lines += [_markdown_row(row) for row in table.rows] + [""]
    if chart:
        lines += [f"![mIoU per mix]({chart})", ""]
    if results["skipped"]:
        lines += ["## Mixes not run", ""] + [f"- {note}" for note in results["skipped"]] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_html(results: Mapping[str, Any], path: Path, chart: str | None = None) -> Path:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>simreal bench {esc(results['benchmark'])}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}td:first-child,th:first-child"
        "{text-align:left}</style></head><body>",
        f"<h1>Downstream benchmark <code>{esc(results['benchmark'])}</code></h1>",
        f"<p>{esc(results['question'])}</p>",
        "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in setup_lines(results)) + "</ul>",
    ]
    for table in result_tables(results):
        parts.append(f"<h2>{esc(table.title)}</h2><table>")
        parts.append("<tr>" + "".join(f"<th>{esc(cell)}</th>" for cell in table.header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in table.rows]
        parts.append("</table>")
    if chart:
        parts.append(f"<p><img src='{esc(chart)}' alt='mIoU per mix'></p>")
    if results["skipped"]:
        parts.append("<h2>Mixes not run</h2><ul>")
        parts += [f"<li>{esc(note)}</li>" for note in results["skipped"]]
        parts.append("</ul>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
