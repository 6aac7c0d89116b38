"""Markdown and HTML renderings of the report sections."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from simreal.report.document import Section, Table

HTML_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}img{max-width:100%}.warn{color:#a40}"
)


def to_markdown(title: str, sections: Sequence[Section]) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        if section.bullets:
            lines += [f"- {item}" for item in section.bullets] + [""]
        for table in section.tables:
            lines += _markdown_table(table) + [""]
        for caption, path in section.figures:
            lines += [f"![{caption}]({path})", ""]
    return "\n".join(lines)


def to_html(title: str, sections: Sequence[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{HTML_STYLE}</style></head><body>",
        f"<h1>{_inline_html(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        for paragraph in section.paragraphs:
            css = ' class="warn"' if paragraph.startswith("**Warning:**") else ""
            parts.append(f"<p{css}>{_inline_html(paragraph)}</p>")
        if section.bullets:
            parts.append("<ul>" + "".join(f"<li>{_inline_html(item)}</li>" for item in section.bullets) + "</ul>")
        for table in section.tables:
            parts.append(_html_table(table))
        for caption, path in section.figures:
            parts.append(
                f'<figure><img src="{html.escape(path)}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _markdown_table(table: Table) -> list[str]:
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [row(table.headers), "|" + "---|" * len(table.headers), *[row(cells) for cells in table.rows]]


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _inline_html(text: str) -> str:
    """The two Markdown inline forms the report uses: **bold** and `code`."""
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)
