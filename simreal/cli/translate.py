"""`simreal translate`: bulk translation of a store with a trained translator."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from simreal.cli.errors import user_errors
from simreal.errors import ConfigError
from simreal.translate import STYLE_POLICIES, StyleOptions

console = Console()


@user_errors
def translate(
    checkpoint: Path = typer.Argument(..., help="Training run directory (or its checkpoint.pt) of a translating "
                                                "method (lcsae, sae, dpgan, oasis, spade, ...)."),
    input: str = typer.Option(..., "--input", help="Store to translate (sim frames; its labels are carried through)."),
    out: str = typer.Option(..., "--out", help="Translated store to create, or to continue when it exists."),
    style: str = typer.Option(None, "--style", help="Real store whose textures lcsae/sae-like methods borrow."),
    style_policy: str = typer.Option("random", "--style-policy", help="random | fixed | mean texture per frame."),
    style_index: int = typer.Option(0, "--style-index", help="The style frame for --style-policy fixed."),
    variants: int = typer.Option(1, "--variants", help="Translations per input frame (different style / noise)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice (style frames, noise)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Frames per forward pass."),
    actors: int = typer.Option(0, "--actors", help="Model actors (default: one per GPU, else CPU actors)."),
    bf16: bool = typer.Option(True, "--bf16/--fp32", help="bf16 autocast on GPU."),
    shard_size: int = typer.Option(32, "--shard-size", help="Frames per shard of a new output store."),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default local, or RAY_ADDRESS)."),
    scorer: Path = typer.Option(None, "--scorer", help="Held-out segmenter run: per-frame trust scores (label "
                                                       "consistency of each frame and of its source) in the store."),
) -> None:  # fmt: skip
    """Translate every frame of a store in parallel model actors; labels are copied through unchanged."""
    from pipelines.translate import TranslateJob, run_translate

    if style_policy not in STYLE_POLICIES:
        raise ConfigError(f"--style-policy must be one of {', '.join(STYLE_POLICIES)}, got {style_policy!r}")
    job = TranslateJob(
        checkpoint=checkpoint, input=input, out=out, variants=variants, seed=seed, batch_size=batch_size,
        actors=actors, bf16=bf16, shard_size=shard_size, scorer=scorer,
        style=StyleOptions(store=style, policy=style_policy, fixed_index=style_index),
    )  # fmt: skip
    result = run_translate(job, address=address)
    console.print(f"{result.out}: {result.frames} frames ({result.added} new, {result.seconds:.1f}s)")
