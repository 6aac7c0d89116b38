"""The `simreal` command: parses arguments and hands over to a pipeline; no work is done here."""

from __future__ import annotations

import typer

from simreal.cli.bench import bench
from simreal.cli.collect import collect
from simreal.cli.datasets import datasets_app
from simreal.cli.demo import demo
from simreal.cli.labels import labels_app
from simreal.cli.score import score
from simreal.cli.synthesize import synthesize
from simreal.cli.train import train_app
from simreal.cli.translate import translate

app = typer.Typer(
    name="simreal",
    help="Turn CARLA (or procedural) simulator frames into realistic, correctly labelled training data.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
app.add_typer(labels_app, name="labels")
app.add_typer(datasets_app, name="datasets")
app.command("collect")(collect)
app.add_typer(train_app, name="train")
app.command("synthesize")(synthesize)
app.command("translate")(translate)
app.command("score")(score)
app.command("demo")(demo)
app.command("bench")(bench)

if __name__ == "__main__":
    app()
