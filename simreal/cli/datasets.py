"""`simreal datasets`: the registry, importing into frame stores, checking and looking at them."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from simreal.cli.arguments import OptionsCommand
from simreal.cli.errors import fail, user_errors
from simreal.data.convert import FrameSpec
from simreal.data.images import save_png
from simreal.data.registry import get_dataset, load_registry
from simreal.data.resize import parse_size
from simreal.data.store import FrameStore
from simreal.data.verify import verify_store
from simreal.data.visualize import store_grid

datasets_app = typer.Typer(
    help="Dataset registry, importing to frame stores, verifying and viewing them.", no_args_is_help=True
)
console = Console()


@datasets_app.command("list", cls=OptionsCommand)
@user_errors
def list_datasets(
    stores: Path = typer.Option(Path("data"), "--stores", help="Folder searched for imported stores (*.zarr)."),
) -> None:
    """Show every registered dataset, whether its root exists, and the frame stores imported so far."""
    table = Table(title="datasets.yaml", title_justify="left")
    for col in ("name", "format", "scheme", "splits", "root", "found"):
        table.add_column(col)
    for entry in load_registry().values():
        found = "[green]yes[/]" if entry.root.is_dir() else "[dim]no[/]"
        table.add_row(entry.name, entry.format, entry.scheme, ",".join(entry.splits), str(entry.root), found)
    console.print(table)
    found_stores = sorted(p for p in stores.glob("**/*.zarr") if (p / "zarr.json").is_file()) if stores.is_dir() else []
    if found_stores:
        stores_table = Table(title=f"frame stores under {stores}", title_justify="left")
        for col in ("store", "frames", "size", "class set", "source"):
            stores_table.add_column(col)
        for path in found_stores:
            try:
                s = FrameStore.open(path)
            except Exception as err:  # a broken store is listed, not fatal
                stores_table.add_row(str(path), "?", "?", "?", f"[red]{err}[/]")
                continue
            stores_table.add_row(str(path), str(len(s)), f"{s.width}x{s.height}", s.class_set.name, s.attrs["source"])
        console.print(stores_table)


@datasets_app.command("import", cls=OptionsCommand)
@user_errors
def import_dataset(
    name: str = typer.Argument(None, help="A dataset of datasets.yaml (omit with --format/--root/--scheme)."),
    split: str = typer.Option("train", "--split", help="Which split to import."),
    out: str = typer.Option(..., "--out", help="The frame store to create (a .zarr folder or URL)."),
    size: str = typer.Option(None, "--size", help="Target WIDTHxHEIGHT, default from the registry or 512x256."),
    fmt: str = typer.Option(None, "--format", help="Reader for a dataset not in the registry."),
    root: Path = typer.Option(None, "--root", help="Dataset root for --format."),
    scheme: str = typer.Option(None, "--scheme", help="Source label scheme for --format (never guessed)."),
    class_set: str = typer.Option("shared16", "--class-set", help="Target class set."),
    unknown: str = typer.Option("error", "--unknown", help="Ids outside the scheme: 'error' or 'ignore' (255)."),
    policy: str = typer.Option("crop", "--policy", help="Aspect policy: 'crop' (short side + centre) or 'stretch'."),
    interpolation: str = typer.Option("lanczos", "--interpolation", help="Image resampling: lanczos, area, linear."),
    keep_source_label: bool = typer.Option(False, "--keep-source-label", help="Also store the raw source ids."),
    shard_size: int = typer.Option(32, "--shard-size", help="Frames per zarr shard."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store at --out."),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default: local, or RAY_ADDRESS)."),
) -> None:
    """Import a dataset split into a frame store, labels remapped to the class set, in parallel."""
    from pipelines.import_dataset import ImportJob, run_import

    if unknown not in ("error", "ignore"):
        raise fail(f"--unknown must be 'error' or 'ignore', got {unknown!r}")
    options: dict = {}
    dataset_name = name or ""
    if name:
        if fmt or root or scheme:
            raise fail("give either a registered NAME or --format/--root/--scheme, not both")
        entry = get_dataset(name)
        fmt, root, scheme, options = entry.format, entry.root, entry.scheme, entry.options
        size = size or entry.size
        if split not in entry.splits:
            raise fail(f"dataset {name!r} has splits {', '.join(entry.splits)}, not {split!r}")
    elif not (fmt and root and scheme):
        raise fail("name a registered dataset, or give all of --format, --root and --scheme")
    spec = FrameSpec(parse_size(size or "512x256"), policy, interpolation, unknown, keep_source_label)
    job = ImportJob(
        format=fmt,
        root=Path(root),
        split=split,
        scheme=scheme,
        out=out,
        class_set=class_set,
        spec=spec,
        options=tuple(sorted(options.items())),
        shard_size=shard_size,
        dataset_name=dataset_name,
        overwrite=overwrite,
    )
    result = run_import(job, address=address)
    console.print(f"imported {result.frames} frames into {result.out}")
    if result.unknown_pixels:
        listing = ", ".join(f"id {k}: {v} px" for k, v in sorted(result.unknown_pixels.items()))
        console.print(f"[yellow]unknown ids mapped to ignore[/]: {listing}")


@datasets_app.command("verify", cls=OptionsCommand)
@user_errors
def verify(store: str = typer.Argument(..., help="The frame store to check (a folder or URL).")) -> None:
    """Check a store's integrity (metadata, shapes, dtypes, label ids, provenance); non-zero exit on problems."""
    report = verify_store(store)
    for start, stop in report.uncommitted:
        console.print(
            f"[yellow]uncommitted data[/] frames {start}..{stop - 1} ({stop - start} frames written after the last "
            "commit, by a writer that stopped first): readers do not see them; the next collect/translate on this "
            "store overwrites them",
            soft_wrap=True,
        )
    if report.ok:
        console.print(f"[green]ok[/] {store}: {report.frames} committed frames verified")
        return
    for problem in report.problems:
        console.print(f"[red]problem[/] {problem}")
    raise fail(f"{store}: {len(report.problems)} problem(s) found")


@datasets_app.command("show", cls=OptionsCommand)
@user_errors
def show(
    store: str = typer.Argument(..., help="The frame store to show (a folder or URL)."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    n: int = typer.Option(8, "--n", help="How many frames (spread over the store)."),
) -> None:
    """Write a PNG grid: image | colourised label, one row per frame."""
    opened = FrameStore.open(store)
    save_png(store_grid(opened, n), out)
    console.print(f"wrote {out} ({min(n, len(opened))} of {len(opened)} frames)")
