"""``simreal bench NAME key=value ...``: the downstream segmentation benchmark (configs/bench/NAME.yaml).

Examples::

    simreal bench default sim=stores/town10 translated=stores/town10-lcsae real=stores/cs-train eval=stores/cs-val
    simreal bench default sim=S real=R eval=E preset=tiny seeds=2 out=runs/bench-smoke
    simreal bench default ... segmenter.overrides.steps=2000 only=[sim_only,lcsae]

Mixes whose stores are not given are skipped (the report lists them). Rerunning with the same ``out=`` skips
finished runs and continues interrupted ones.
"""

from __future__ import annotations

import typer

from simreal.cli.errors import user_errors

OVERRIDES_HELP = (
    "ROLE=STORE for the training stores (sim, translated, translated_sae, synthesized, synthesized_spade, real), "
    "eval=STORE, and key=value overrides: seeds=3 preset=heldout|outer|tiny out=DIR only=[mix,...] "
    "segmenter.overrides.steps=N (see configs/bench/NAME.yaml)"
)


@user_errors
def bench(
    name: str = typer.Argument(..., help="benchmark definition: configs/bench/NAME.yaml; 'default' is built in"),
    overrides: list[str] | None = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Train one segmenter recipe on several mixes of stores, score each on real frames (mean ± std over seeds)."""
    from pipelines.bench import run_benchmark  # imports Ray; keep `simreal --help` fast
    from simreal.benchmark.definition import compose_bench_config

    cfg = compose_bench_config(name, overrides or [])
    outcome = run_benchmark(cfg, benchmark=name)
    typer.echo(f"bench {name}: {outcome.trained} runs trained, {outcome.reused} reused from {outcome.out_dir}")
    for mix in outcome.results["mixes"]:
        miou = mix["miou"]
        value = "-" if miou["mean"] is None else f"{100 * miou['mean']:.1f} ± {100 * miou['std']:.1f}"
        typer.echo(f"  {mix['label']:<32} mIoU {value}")
    for note in outcome.results["skipped"]:
        typer.echo(f"  {note}")
    typer.echo(f"report: {outcome.out_dir / 'report.md'} (also report.html, results.json, miou.png)")
