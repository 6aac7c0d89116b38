"""Training harness shared by every training method (see ``simreal.training.method`` for the method contract).

``simreal.training.loop.train(cfg)`` runs one process; ``pipelines.train`` adds the Ray Train launcher.
"""

from simreal.training.errors import NonFiniteLossError, RunDirectoryError, TrainingError
from simreal.training.method import Phase, TrainContext, TrainingMethod
from simreal.training.registry import METHODS, MethodSpec, get_method, register_method

__all__ = [
    "METHODS",
    "MethodSpec",
    "NonFiniteLossError",
    "Phase",
    "RunDirectoryError",
    "TrainContext",
    "TrainingError",
    "TrainingMethod",
    "get_method",
    "register_method",
]
