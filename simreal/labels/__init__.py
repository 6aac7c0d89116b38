"""Label schemes, class sets and remapping between them."""

from simreal.labels.carla_versions import carla_scheme_for_version
from simreal.labels.registry import (
    DEFAULT_CLASS_SET,
    clear_cache,
    get_class_set,
    get_mapping,
    get_scheme,
    list_class_sets,
    list_schemes,
)
from simreal.labels.tables import (
    IGNORE,
    LabelClass,
    LabelMapping,
    LabelTable,
    RemapReport,
    UnknownLabelIdError,
)

__all__ = [
    "DEFAULT_CLASS_SET",
    "IGNORE",
    "LabelClass",
    "LabelMapping",
    "LabelTable",
    "RemapReport",
    "UnknownLabelIdError",
    "carla_scheme_for_version",
    "clear_cache",
    "get_class_set",
    "get_mapping",
    "get_scheme",
    "list_class_sets",
    "list_schemes",
]
