"""`simreal labels`: look at class sets, source schemes and the mappings between them."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from simreal.cli.arguments import OptionsCommand
from simreal.cli.errors import user_errors
from simreal.errors import LabelError
from simreal.labels import DEFAULT_CLASS_SET, get_class_set, get_mapping, list_class_sets, list_schemes

labels_app = typer.Typer(help="Class sets, source label schemes and mappings.", no_args_is_help=True)
console = Console()


def _swatch(color: tuple[int, int, int]) -> str:
    r, g, b = color
    return f"[on rgb({r},{g},{b})]    [/] {r:3d},{g:3d},{b:3d}"


@labels_app.command("show", cls=OptionsCommand)
@user_errors
def show(
    name: str = typer.Argument(DEFAULT_CLASS_SET, help="A class set (shared16, cityscapes19) or a scheme."),
) -> None:
    """Print the class table of a class set or source scheme (id, name, colour)."""
    try:
        table_def = get_class_set(name)
    except LabelError:
        from simreal.labels import get_scheme

        table_def = get_scheme(name)
    table = Table(title=f"{table_def.name}: {table_def.description}", title_justify="left")
    for col in ("id", "name", "colour"):
        table.add_column(col)
    for c in table_def.classes:
        table.add_row(str(c.id), c.name, _swatch(c.color))
    console.print(table)


@labels_app.command("map", cls=OptionsCommand)
@user_errors
def map_(
    scheme: str = typer.Argument(..., help="Source scheme, e.g. carla-0.9.14, cityscapes, camvid11, kitti."),
    to: str = typer.Option(DEFAULT_CLASS_SET, "--to", help="Target class set."),
) -> None:
    """Print how every id of a source scheme maps onto a class set, and what it can be scored on."""
    mapping = get_mapping(scheme, to)
    table = Table(title=f"{mapping.source.name} -> {mapping.target.name}", title_justify="left")
    for col in ("source id", "source name", "target id", "target name"):
        table.add_column(col)
    for sid, sname, tid, tname in mapping.describe():
        table.add_row(str(sid), sname, str(tid), tname, style="dim" if tid == mapping.target.ignore_index else None)
    console.print(table)
    evaluable = ", ".join(mapping.target.name_of(i) for i in mapping.evaluable_classes)
    console.print(f"scored on {len(mapping.evaluable_classes)} classes: {evaluable}")
    for a, b in mapping.eval_merge.items():
        console.print(f"predicted {mapping.target.name_of(a)} is scored as {mapping.target.name_of(b)}")


@labels_app.command("list", cls=OptionsCommand)
def list_all() -> None:
    """List the known class sets and source schemes."""
    for title, tables in (("class sets", list_class_sets()), ("source schemes", list_schemes())):
        console.print(f"[bold]{title}[/]")
        for t in tables:
            aliases = f" (also {', '.join(t.aliases)})" if t.aliases else ""
            console.print(f"  {t.name:18s} {t.num_classes:3d} ids  {t.description}{aliases}")
