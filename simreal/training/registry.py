"""Registry of methods: ``@register_method("name", "description")`` on a ``TrainingMethod`` subclass.

Adding a method means one module in ``simreal/training/methods/`` (imported by that package's ``__init__``), one
config ``configs/train/<name>.yaml`` and the decorator; the loop, pipeline and CLI pick it up from here, and
``simreal.inference`` rebuilds any run's inference model through it (``docs/adding-a-method.md``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from simreal.config import register_schema
from simreal.errors import ConfigError
from simreal.training.method import TrainingMethod


class UnknownMethodError(ConfigError):
    """A method name that no module registered."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


@dataclass(frozen=True)
class MethodSpec:
    name: str
    description: str
    cls: type[TrainingMethod]

    @property
    def config_name(self) -> str:
        """The Hydra config of the method, relative to ``configs/``."""
        return f"train/{self.name}"


METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, description: str) -> Callable[[type[TrainingMethod]], type[TrainingMethod]]:
    def decorate(cls: type[TrainingMethod]) -> type[TrainingMethod]:
        if not (isinstance(cls, type) and issubclass(cls, TrainingMethod)):
            raise TypeError(f"@register_method({name!r}) must decorate a TrainingMethod subclass, got {cls!r}")
        existing = METHODS.get(name)
        if existing is not None and existing.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"training method {name!r} is already registered by {existing.cls.__module__}")
        spec = MethodSpec(name=name, description=description, cls=cls)
        register_schema(spec.config_name, cls.config_class)
        METHODS[name] = spec
        return cls

    return decorate


def load_builtin_methods() -> dict[str, MethodSpec]:
    """Import the built-in method modules (they register themselves) and return the registry."""
    importlib.import_module("simreal.training.methods")
    return METHODS


def get_method(name: str) -> MethodSpec:
    methods = load_builtin_methods()
    if name not in methods:
        raise UnknownMethodError(f"unknown training method {name!r}; registered: {', '.join(sorted(methods))}")
    return methods[name]
