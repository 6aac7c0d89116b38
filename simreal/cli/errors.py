"""Turning the expected failures of a command into one clear line and a non-zero exit, not a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True)

# Exceptions that carry a message meant for the user. Anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    KeyError,
    ValueError,
    RuntimeError,
    OSError,
)


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def user_errors(func: F) -> F:
    """Report expected failures as ``error: <message>`` with exit status 1 (2 for Ctrl-C)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            raise fail("interrupted; frames committed so far are kept", code=130) from None
        except USER_ERRORS as err:
            text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            raise fail(f"{text}") from None

    return wrapper  # type: ignore[return-value]
