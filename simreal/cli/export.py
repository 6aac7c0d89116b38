"""`simreal export STORE OUT --layout cityscapes|mmseg|folder`: a store's frames in the layout a trainer reads.

Examples::

    simreal export data/town10_lccut.zarr exports/town10 --layout mmseg --split train
    simreal export data/town10_cs19.zarr exports/cs-style --layout cityscapes --frames 500   # resumes when rerun
"""

from __future__ import annotations

from pathlib import Path

import typer

from simreal.cli.errors import user_errors


@user_errors
def export(
    store: str = typer.Argument(..., help="Frame store to export (a folder or URL)."),
    out: Path = typer.Argument(..., help="Folder to write (refused when it holds something else; see --overwrite)."),
    layout: str = typer.Option("folder", "--layout", help="cityscapes | mmseg | folder"),
    split: str = typer.Option("train", "--split", help="Split folder name (cityscapes: train | val | test)."),
    frames: int = typer.Option(None, "--frames", help="Export the first N committed frames (default: all)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT when it holds something else."),
    min_consistency: float = typer.Option(
        None, "--min-consistency", help="Keep frames whose trust mIoU (translate --scorer) is at least this, in [0, 1]."
    ),
) -> None:
    """Write every frame with its labels in a directory layout segmentation trainers read, plus manifest.json."""
    from simreal.export import ExportJob, run_export

    result = run_export(ExportJob(store, out, layout, split, frames, overwrite, min_consistency))
    typer.echo(f"{result.out}: {result.frames} frames ({result.written} written now); manifest {result.manifest}")
    for note in result.notes:
        typer.echo(f"  {note}")
