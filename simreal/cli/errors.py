"""Turning the expected failures of a command into one clear line and a non-zero exit, not a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from simreal.errors import SimrealError

F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    # soft_wrap: the message stays one line whatever the terminal width
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def user_message(err: SimrealError) -> str:
    """The message of a simreal error, also when Ray re-raised it from a task (Ray's copy adds a remote traceback)."""
    cause = getattr(err, "cause", None)
    return str(cause if isinstance(cause, SimrealError) else err)


def user_errors(func: F) -> F:
    """Report simreal's own errors as ``error: <message>`` with exit status 1 (130 for Ctrl-C).

    Every other exception is a bug in simreal and propagates with its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            raise fail("interrupted; frames committed so far are kept", code=130) from None
        except SimrealError as err:
            raise fail(user_message(err)) from None

    return wrapper  # type: ignore[return-value]
