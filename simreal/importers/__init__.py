"""Dataset readers: turn a dataset on disk into (RGB image, raw source label ids) pairs."""

from simreal.importers.base import DatasetFormat, SamplePair
from simreal.importers.errors import ImportFailure
from simreal.importers.registry import FORMATS, get_format

__all__ = ["FORMATS", "DatasetFormat", "ImportFailure", "SamplePair", "get_format"]
