"""The error contract: simreal's own errors are one line and survive Ray's pickling; bugs keep their tracebacks."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pipelines.ray_runtime import task_error_cause
from simreal.cli.errors import user_errors
from simreal.errors import SimrealError, StoreError
from simreal.importers.errors import SizeMismatch
from simreal.training.errors import NonFiniteLossError


def test_errors_cross_process_boundaries_with_class_message_and_fields() -> None:
    size = SizeMismatch(Path("i.png"), Path("l.png"), (64, 32), (64, 40))
    nan = NonFiniteLossError("G/rec", float("nan"), step=7, checkpoint=Path("run/checkpoint.pt"))
    for err in (size, nan, StoreError("plain message")):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err) and isinstance(copy, SimrealError)
    copy = pickle.loads(pickle.dumps(nan))
    assert (copy.step, copy.checkpoint, copy.loss_name) == (7, Path("run/checkpoint.pt"), "G/rec")
    assert pickle.loads(pickle.dumps(size)).label_size == (64, 40)


def _app(raises: BaseException) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @user_errors
    def command() -> None:
        raise raises

    return app


def test_a_simreal_error_is_one_line_and_a_bug_keeps_its_traceback() -> None:
    result = CliRunner().invoke(_app(StoreError("data/x.zarr is damaged")), [])
    assert result.exit_code == 1 and result.stderr.strip() == "error: data/x.zarr is damaged"
    bug = CliRunner().invoke(_app(KeyError("internal_key")), [])
    assert bug.exit_code != 0 and isinstance(bug.exception, KeyError)  # not swallowed into a user error


@pytest.mark.usefixtures("ray_local")
def test_errors_from_ray_tasks_keep_their_class_and_bugs_keep_the_remote_traceback() -> None:
    import ray

    @ray.remote(max_retries=0)
    def fails(err: BaseException) -> None:
        raise err

    with pytest.raises(Exception) as user:
        ray.get(fails.remote(StoreError("out.zarr: no space left")))
    cause = task_error_cause(user.value)
    assert type(cause) is StoreError and str(cause) == "out.zarr: no space left"
    with pytest.raises(Exception) as bug:
        ray.get(fails.remote(KeyError("internal_key")))
    kept = task_error_cause(bug.value)
    assert not isinstance(kept, SimrealError) and "raise err" in str(kept) and "internal_key" in str(kept)
