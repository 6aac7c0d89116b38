"""One argument style across the CLI: every setting of every command is a flag or a ``key=value``, by one name.

- Commands whose settings are a Hydra config (``collect``, ``train METHOD``, ``demo``, ``study``, ``bench``) take
  ``key=value`` overrides; a flag ``--key value`` / ``--key=value`` is the same override (``-`` in a flag name is
  ``_``: ``--batch-size 4`` is ``batch_size=4``; a bare ``--key`` is ``key=true``). Their ``--help`` lists every
  setting with its default from the composed config (one source: the config files).
- Commands with options (``translate``, ``score``, ``synthesize``, ``datasets import``, ...) take ``--key value``;
  ``key=value`` naming one of their options is the same flag (``out=X`` is ``--out X``, ``bf16=false`` is ``--fp32``).

A setting given twice with different values, in either style, is refused with one line: never resolved silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from typer._click import Context
from typer._click.exceptions import UsageError
from typer._click.formatting import HelpFormatter
from typer.core import TyperCommand, TyperOption

from simreal.errors import ConfigError

_FLAG = re.compile(r"^--(?P<name>[A-Za-z][\w.\-]*)(?:=(?P<value>.*))?$", re.S)
_OVERRIDE = re.compile(r"^(?P<prefix>\+\+|\+|~)?(?P<key>[A-Za-z_][\w.\-]*)(?:@[\w.]*)?=(?P<value>.*)$", re.S)
RAY_ADDRESS = {"address": "ray.address"}  # every command takes --address / address=; some configs keep it under ray.
_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


@dataclass(frozen=True)
class _Given:
    key: str
    value: str
    text: str  # as the user wrote it, for the message


def _check_once(given: list[_Given]) -> None:
    seen: dict[str, _Given] = {}
    for item in given:
        first = seen.setdefault(item.key, item)
        if first.value != item.value:
            raise ConfigError(f"{first.text} and {item.text} disagree on {item.key}; give the setting once")


def _truth(value: str, text: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"{text}: expected true or false")


def override_key(text: str) -> str | None:
    """The config key a ``key=value`` override sets (``+a.b=1`` -> ``a.b``), None for other tokens."""
    match = _OVERRIDE.match(text)
    return match.group("key") if match else None


def merge_overrides(*groups: list[str]) -> list[str]:
    """The overrides of every group, refused when two set one key to different values."""
    merged = [item for group in groups for item in group]
    given = [_Given(key, item.split("=", 1)[1], item) for item in merged if (key := override_key(item))]
    _check_once(given)
    return merged


def _before_double_dash(args: list[str]) -> tuple[list[str], list[str]]:
    """(the arguments to rewrite, ``--`` and what follows it, passed on as they are)."""
    cut = args.index("--") if "--" in args else len(args)
    return args[:cut], args[cut:]


def settings_arguments(args: list[str], declared: set[str], aliases: dict[str, str] | None = None) -> list[str]:
    """Flags that are not ``declared`` options become ``key=value`` overrides; disagreeing settings are refused.
    ``aliases`` renames keys (``address`` -> ``ray.address``), given as a flag or as an override."""
    aliases = aliases or {}
    args, rest = _before_double_dash(args)
    out: list[str] = []
    given: list[_Given] = []
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        flag = _FLAG.match(token)
        if flag and f"--{flag.group('name')}" not in declared:
            key = flag.group("name").replace("-", "_")
            key = aliases.get(key, key)
            value = flag.group("value")
            if value is None:
                following = args[index] if index < len(args) else None
                if following is None or following.startswith("--") or _OVERRIDE.match(following):
                    value = "true"
                else:
                    value, index = following, index + 1
            text = f"--{flag.group('name')} {value}" if flag.group("value") is None else token
            given.append(_Given(key, value, text))
            out.append(f"{key}={value}")
            continue
        key = override_key(token)
        if key is not None:
            value = token.split("=", 1)[1]
            if key in aliases:
                key, token = aliases[key], f"{aliases[key]}={value}"
            given.append(_Given(key, value, token))
        out.append(token)
    _check_once(given)
    return out + rest


def option_arguments(args: list[str], options: list[TyperOption]) -> list[str]:
    """``key=value`` tokens naming an option become that option; an option given twice with different values is
    refused (repeatable options excepted)."""
    by_flag = {name: option for option in options for name in (*option.opts, *option.secondary_opts)}
    args, rest = _before_double_dash(args)
    out: list[str] = []
    given: list[_Given] = []
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        match = _OVERRIDE.match(token)
        flag = f"--{match.group('key').replace('_', '-')}" if match and not match.group("prefix") else None
        if flag in by_flag and flag in by_flag[flag].opts:
            option, value = by_flag[flag], match.group("value")  # type: ignore[union-attr]
            if option.is_flag:
                on = _truth(value, token)
                if not on and not option.secondary_opts:
                    raise ConfigError(f"{token}: {flag} is a switch; leave it out for false")
                out.append(option.opts[0] if on else option.secondary_opts[0])
                value = str(on).lower()
            else:
                out.extend([flag, value])
            given.append(_Given(option.name or flag, value, token))
            continue
        name, equals, inline = token.partition("=")
        option = by_flag.get(name) if token.startswith("--") else None
        out.append(token)
        if option is None:
            continue
        if option.is_flag:
            value = str(name in option.opts).lower()
            text = token
        elif equals:
            value, text = inline, token
        elif index < len(args):
            value, text = args[index], f"{token} {args[index]}"
            out.append(args[index])
            index += 1
        else:
            continue  # click reports the missing value
        if not option.multiple:
            given.append(_Given(option.name or name, value, text))
    _check_once(given)
    return out + rest


@contextmanager
def _usage_errors(ctx: Context) -> Iterator[None]:
    """A mistake in the arguments is a usage error: one line and exit status 2, like an unknown option."""
    try:
        yield
    except ConfigError as err:
        raise UsageError(str(err), ctx) from None


class OptionsCommand(TyperCommand):
    """A command with options: ``key=value`` naming an option is that option."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        options = [param for param in self.params if isinstance(param, TyperOption)]
        with _usage_errors(ctx):
            args = option_arguments(args, options)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        from rich.console import Console

        Console().print(" Every option is also a key=value: --batch-size 4 is batch_size=4, --fp32 is bf16=false.\n")


def settings_command(
    source: Callable[[Context], tuple[DictConfig, Path]], aliases: dict[str, str] | None = None
) -> type[TyperCommand]:
    """The command class of a Hydra-config command: flags are overrides, ``--help`` lists the settings that
    ``source(ctx)`` composes (the config and its YAML file, whose comments describe the keys); ``aliases`` are names
    every command shares for a key this config keeps elsewhere (``address`` -> ``ray.address``)."""

    class SettingsCommand(TyperCommand):
        def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
            declared = {name for param in self.params if isinstance(param, TyperOption) for name in param.opts}
            with _usage_errors(ctx):
                args = settings_arguments(args, declared | {"--help", "-h"}, aliases)
            return super().parse_args(ctx, args)

        def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
            super().format_help(ctx, formatter)
            config, yaml_file = source(ctx)
            rows = settings_rows(config, yaml_file)
            from rich.console import Console
            from rich.table import Table
            from rich.text import Text

            table = Table(title=f"Settings: --key value or key=value (defaults: {yaml_file.name} and its schema)",
                          title_justify="left", show_header=True, box=None, pad_edge=False)  # fmt: skip
            for column in ("setting", "default", "what it is"):
                table.add_column(column, overflow="fold")
            for row in rows:
                table.add_row(*(Text(cell) for cell in row))  # values like [a,b] are not markup
            Console(soft_wrap=False).print(table)

    return SettingsCommand


def config_source(name: str, compose: Callable[[], DictConfig]) -> Callable[[Context], tuple[DictConfig, Path]]:
    """The settings of ``configs/<name>.yaml`` as ``compose()`` makes them with no overrides."""

    def source(ctx: Context) -> tuple[DictConfig, Path]:
        from simreal.config import config_dir

        return compose(), config_dir() / f"{name}.yaml"

    return source


def settings_rows(config: DictConfig, yaml_file: Path) -> list[tuple[str, str, str]]:
    """(dotted key, default, comment) of every leaf setting of ``config``; comments from ``yaml_file``."""
    comments = yaml_comments(yaml_file.read_text(encoding="utf-8")) if yaml_file.is_file() else {}
    rows = []
    for key, value in _leaves(OmegaConf.to_container(config, resolve=False)):
        rows.append((key, _show(value), comments.get(key, "")))
    return rows


def _leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        return [leaf for key, child in node.items() for leaf in _leaves(child, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), node)]


def _show(value: Any) -> str:
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=False)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value)


_YAML_KEY = re.compile(r"^(?P<indent> *)(?P<key>[\w.\-]+):(?P<rest>.*)$")


def yaml_comments(text: str) -> dict[str, str]:
    """Dotted key -> the comment on its line (and the comment lines right below it, indented past the key)."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last: str | None = None
    last_indent = -1
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            indent = len(line) - len(line.lstrip())
            if last is not None and indent > last_indent and comments.get(last):
                comments[last] += " " + stripped.lstrip("#").strip()
            continue
        match = _YAML_KEY.match(line)
        if not match or line.lstrip().startswith("- "):
            last = None
            continue
        indent = len(match.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = ".".join([*(k for _, k in stack), match.group("key")])
        stack.append((indent, match.group("key")))
        _, hash_, comment = _split_comment(match.group("rest"))
        comments[key] = comment.strip() if hash_ else ""
        last, last_indent = key, indent
    return comments


def _split_comment(rest: str) -> tuple[str, str, str]:
    """``value  # comment`` -> (value, '#', comment), minding quotes."""
    quote = None
    for position, char in enumerate(rest):
        if char in "'\"" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None and (position == 0 or rest[position - 1] in " \t"):
            return rest[:position], "#", rest[position + 1 :]
    return rest, "", ""
