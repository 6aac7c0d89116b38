"""`simreal synthesize CKPT --labels STORE --out STORE`: paint a store's label maps with a trained generator.

Examples::

    simreal synthesize runs/dpgan --labels stores/town10 --out stores/town10-dpgan --variants 3 --seed 7
    simreal synthesize runs/oasis/checkpoint.pt --labels stores/town10 --out stores/town10-oasis   # resumes
"""

from __future__ import annotations

from pathlib import Path

import typer

from simreal.cli.errors import user_errors


@user_errors
def synthesize(
    checkpoint: Path = typer.Argument(..., help="label-to-image run (dpgan, oasis, spade, ...) or its checkpoint.pt"),
    labels: Path = typer.Option(..., "--labels", help="frame store whose label maps are painted"),
    out: Path = typer.Option(..., "--out", help="output frame store (rerun with the same settings to resume)"),
    variants: int = typer.Option(1, "--variants", "-k", help="images per label map, each with different noise"),
    seed: int = typer.Option(0, "--seed", help="noise seed; a frame's noise depends on (seed, frame, variant)"),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="label maps painted per forward pass"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
) -> None:
    """Paint every label map of a store into images with a trained label-to-image generator."""
    from simreal.progress import progress_bar
    from simreal.synthesize import load_synthesizer, open_synthesis_job

    synthesizer = load_synthesizer(checkpoint, device)
    job = open_synthesis_job(synthesizer, labels, out, variants=variants, seed=seed)
    if job.done >= job.total:
        typer.echo(f"{out}: all {job.total} frames already painted")
        return
    with progress_bar(f"{synthesizer.method} synthesize", job.total, completed=job.done) as bar:
        painted = job.run(batch_size, on_batch=bar.advance)
    typer.echo(
        f"{out}: painted {painted} frame(s), {job.done} in total "
        f"({len(job.labels)} label maps x {variants} variant(s)); checkpoint {synthesizer.checkpoint_hash}"
    )
