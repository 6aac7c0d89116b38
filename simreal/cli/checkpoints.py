"""`simreal checkpoints import KIND PATH --out RUN_DIR`: start from the weights the reference repositories publish.

Examples::

    simreal checkpoints import oasis checkpoints/oasis_cityscapes/models --out runs/oasis-cityscapes
    simreal checkpoints import spade checkpoints/cityscapes --out runs/spade-cityscapes
    simreal checkpoints import sae checkpoints/mountain_pretrained --out runs/sae-mountain
    simreal synthesize runs/oasis-cityscapes --labels stores/town10-labelids --out stores/town10-oasis
    simreal train lcsae sim=S real=R outer_segmenter=SEG init=runs/sae-mountain out=runs/lcsae-ft
"""

from __future__ import annotations

from pathlib import Path

import typer

from simreal.cli.arguments import OptionsCommand
from simreal.cli.errors import user_errors

checkpoints_app = typer.Typer(
    help="Reference checkpoints (SAE, OASIS, DP-GAN, SPADE) as simreal runs.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@checkpoints_app.callback()
def _group() -> None:
    """Reference checkpoints (SAE, OASIS, DP-GAN, SPADE) as simreal runs."""


@checkpoints_app.command("import", cls=OptionsCommand)
@user_errors
def import_(
    kind: str = typer.Argument(..., help="sae | oasis | dpgan | spade"),
    path: Path = typer.Argument(..., help="folder of the reference's saved files (or one of them)"),
    out: Path = typer.Option(..., "--out", help="run directory to write (checkpoint.pt, config.yaml)"),
    which: str = typer.Option(None, "--which", help="saved iteration (file prefix): default best, else latest"),
    classes: str = typer.Option(
        None, "--classes", help="class set the weights were trained on (default cityscapes-labelids; SAE shared16)"
    ),
    z_dim: int = typer.Option(64, "--z-dim", help="OASIS / DP-GAN noise channels"),
    upsampling: str = typer.Option("more", "--upsampling", help="SPADE: normal | more (Cityscapes) | most"),
    size: str = typer.Option("512x256", "--size", help="SPADE VAE generators: the WIDTHxHEIGHT they paint"),
    crop: int = typer.Option(256, "--crop", help="SAE: the square crop its image discriminator was trained on"),
) -> None:
    """Map the reference's files key by key onto simreal's networks and write a run directory.

    The run paints with `simreal synthesize` / `simreal translate` as it is; `simreal train METHOD init=RUN_DIR`
    fine-tunes from it. Missing or unexpected keys and wrong shapes are refused with their names.
    """
    from simreal.checkpoints.importer import ImportOptions, import_checkpoints
    from simreal.data.resize import parse_size

    width, height = parse_size(size)
    options = ImportOptions(classes, which, z_dim, upsampling, (height, width), crop)
    result = import_checkpoints(kind, path, out, options)
    typer.echo(f"{result.method}: imported {', '.join(p.name for p in result.files.values())} into {result.run_dir}")
    for note in result.notes:
        typer.echo(f"  note: {note}")
