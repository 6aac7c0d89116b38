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
    """Print ``error: <message>`` as one line on stderr and return the exit to raise."""
    one_line = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    # soft_wrap: the line is not wrapped at the terminal width; markup off in the message: it may hold [brackets]
    err_console.print("[bold red]error:[/] ", end="", highlight=False, markup=True)
    err_console.print(one_line, highlight=False, markup=False, soft_wrap=True)
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
