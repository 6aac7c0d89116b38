"""``simreal train <method> key=value ...``: one sub-command per registered training method.

Examples::

    simreal train segmenter data=stores/cityscapes val=stores/cityscapes-val preset=heldout
    simreal train segmenter data=stores/tiny preset=tiny steps=3 out=runs/smoke
    simreal train segmenter out=runs/smoke resume=true steps=6      # continue a run

Every method understands ``preset=NAME`` (e.g. ``tiny``), ``steps=N``, ``out=DIR`` and ``resume=true|false|auto``;
any other key of ``configs/train/<method>.yaml`` can be overridden the same way (Hydra override grammar).
"""

from __future__ import annotations

import typer

from simreal.cli.arguments import RAY_ADDRESS, config_source, settings_command
from simreal.cli.errors import user_errors
from simreal.training.config import compose_training_config
from simreal.training.registry import MethodSpec, load_builtin_methods

train_app = typer.Typer(
    help="Train a model (segmenters, translators); one sub-command per training method.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@train_app.callback()
def _group() -> None:
    """Train a model (segmenters, translators); one sub-command per training method."""


OVERRIDES_HELP = (
    "settings as key=value or --key value, e.g. data=STORE preset=tiny --steps 100 --out runs/x resume=true "
    "(every setting and its default: below)"
)


def _add_method_command(spec: MethodSpec) -> None:
    @user_errors
    def command(overrides: list[str] | None = typer.Argument(None, help=OVERRIDES_HELP)) -> None:
        from pipelines.train import run_training  # the launcher; imports Ray only when it is used

        cfg = compose_training_config(spec.name, overrides or [])
        result = run_training(cfg)
        status = "interrupted" if result.interrupted else "finished"
        typer.echo(f"{spec.name}: {status} at step {result.step}; checkpoint: {result.checkpoint}")
        for key, value in sorted(result.scores.items()):
            if isinstance(value, float) and "/" not in key:  # headline scores; per-class ones are in metrics.jsonl
                typer.echo(f"  {key} = {value:.4f}")

    roles = " ".join(f"{role}=STORE" for role in spec.cls.data_roles)
    source = config_source(f"train/{spec.name}", lambda: compose_training_config(spec.name, []))
    usage = f"{spec.description}. Usage: {roles} [key=value | --key value ...]"
    train_app.command(name=spec.name, help=usage, cls=settings_command(source, RAY_ADDRESS))(command)


for _spec in load_builtin_methods().values():
    _add_method_command(_spec)
