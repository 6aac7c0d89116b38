"""The `simreal` command: parses arguments and hands over to a pipeline; no work is done here."""

from __future__ import annotations

import os
import sys

import typer
from omegaconf import DictConfig

# typer 0.29 parses with its own copy of click; its exceptions are only importable from there (pinned in pyproject)
from typer._click.exceptions import ClickException, UsageError

from simreal.cli.arguments import RAY_ADDRESS, OptionsCommand, config_source, settings_command
from simreal.cli.bench import bench
from simreal.cli.checkpoints import checkpoints_app
from simreal.cli.collect import collect
from simreal.cli.datasets import datasets_app
from simreal.cli.demo import demo
from simreal.cli.errors import fail
from simreal.cli.export import export
from simreal.cli.fid_weights import fid_weights
from simreal.cli.labels import labels_app
from simreal.cli.score import score
from simreal.cli.study import study
from simreal.cli.synthesize import synthesize
from simreal.cli.train import train_app
from simreal.cli.translate import translate


def compose_collect() -> DictConfig:
    from simreal.collect.config import compose_collect_config

    return compose_collect_config([])


def compose_demo() -> DictConfig:
    from simreal.demo import compose_demo_config

    return compose_demo_config([])


def compose_study() -> DictConfig:
    from simreal.study import compose_study_config

    return compose_study_config([])


def compose_bench() -> DictConfig:
    from simreal.benchmark.definition import compose_bench_config

    return compose_bench_config("default", [])


app = typer.Typer(
    name="simreal",
    help="Turn CARLA (or procedural) simulator frames into realistic, correctly labelled training data.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show Ray's own warnings and info lines."),
    config_dir: str = typer.Option(
        None, "--config-dir", help="A configs/ folder to use instead of the shipped one (also SIMREAL_CONFIG_DIR)."
    ),
) -> None:
    """Turn CARLA (or procedural) simulator frames into realistic, correctly labelled training data."""
    if verbose:
        os.environ["SIMREAL_VERBOSE"] = "1"  # read where Ray starts, in this process and its workers
    if config_dir:
        os.environ["SIMREAL_CONFIG_DIR"] = config_dir  # Ray workers compose configs too


app.add_typer(labels_app, name="labels")
app.add_typer(datasets_app, name="datasets")
app.command("collect", cls=settings_command(config_source("collect", compose_collect)))(collect)
app.add_typer(train_app, name="train")
app.add_typer(checkpoints_app, name="checkpoints")
app.command("synthesize", cls=OptionsCommand)(synthesize)
app.command("translate", cls=OptionsCommand)(translate)
app.command("score", cls=OptionsCommand)(score)
app.command("export", cls=OptionsCommand)(export)
app.command("fid-weights", cls=OptionsCommand)(fid_weights)
app.command("demo", cls=settings_command(config_source("demo", compose_demo)))(demo)
app.command("bench", cls=settings_command(config_source("bench/default", compose_bench), RAY_ADDRESS))(bench)
app.command("study", cls=settings_command(config_source("study/default", compose_study)))(study)


def main(argv: list[str] | None = None) -> None:
    """The console script: the app, with command-line mistakes (unknown command or option, a value of the wrong
    type) reported like every other expected failure: one ``error:`` line, exit status 2."""
    command = typer.main.get_command(app)
    try:
        status = command.main(args=argv, prog_name="simreal", standalone_mode=False)
    except UsageError as err:
        hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
        raise SystemExit(fail(f"{err.format_message()}{hint}", code=2).exit_code) from None
    except ClickException as err:
        raise SystemExit(fail(err.format_message(), code=err.exit_code).exit_code) from None
    except typer.Abort:
        raise SystemExit(fail("interrupted", code=130).exit_code) from None
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
