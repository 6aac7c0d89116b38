"""Why a dataset on disk could not be read. Every failure is an ``ImportFailure`` with a message that names
the file or directory at fault, so a user can fix the dataset without reading the importer's code."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simreal.errors import ImporterError

# How many offending names a message lists before it only gives the count.
_LISTED_NAMES = 5


def _few(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED_NAMES])
    more = len(names) - _LISTED_NAMES
    return f"{shown}, ... ({more} more)" if more > 0 else shown


class ImportFailure(ImporterError):
    """Base class of every error raised while reading a dataset."""


class LayoutError(ImportFailure):
    """A directory or file that the dataset layout requires is missing."""

    def __init__(self, dataset: str, expected: Path, detail: str = "") -> None:
        self.expected = expected
        hint = f" ({detail})" if detail else ""
        super().__init__(f"{dataset}: expected directory {expected} does not exist{hint}")


class EmptyDirectory(ImportFailure):
    """A directory exists but holds no file of the kind the layout expects."""

    def __init__(self, dataset: str, directory: Path, wanted: str) -> None:
        self.directory = directory
        super().__init__(f"{dataset}: no {wanted} found in {directory}")


class UnpairedFiles(ImportFailure):
    """Images without a label, or labels without an image."""

    def __init__(self, dataset: str, kind: str, names: Sequence[str], where: Path) -> None:
        self.names = sorted(names)
        super().__init__(f"{dataset}: {len(self.names)} {kind} (looked in {where}): {_few(self.names)}")


class AmbiguousFiles(ImportFailure):
    """Two files claim the same sample key, so pairing would be a guess."""

    def __init__(self, dataset: str, key: str, paths: Sequence[Path]) -> None:
        self.key = key
        listed = ", ".join(str(p) for p in paths)
        super().__init__(f"{dataset}: several files share the sample key {key!r}: {listed}")


class UnknownSplit(ImportFailure):
    """The requested split does not exist for this dataset or configuration."""

    def __init__(self, dataset: str, split: str, known: Sequence[str], detail: str = "") -> None:
        self.split = split
        hint = f"; {detail}" if detail else ""
        super().__init__(f"{dataset}: unknown split {split!r}, known splits: {', '.join(known)}{hint}")


class UnknownFormat(ImportFailure):
    """No dataset format is registered under this name."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(f"unknown dataset format {name!r}, known formats: {', '.join(sorted(known))}")


class InvalidOption(ImportFailure):
    """A format option is missing, malformed or contradicts another option."""


class UnreadableImage(ImportFailure):
    """OpenCV could not decode the file, or it decoded to a pixel type the importers do not accept."""

    def __init__(self, path: Path, reason: str = "cannot be decoded (missing, truncated or not an image)") -> None:
        self.path = path
        super().__init__(f"{path}: {reason}")


class InvalidLabel(ImportFailure):
    """A label file decoded, but its pixels cannot be read as uint8 class ids."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: {reason}")


class NotSingleChannel(InvalidLabel):
    """A label that should hold one id per pixel has colour channels."""

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        super().__init__(
            path,
            f"label must be a single-channel id image, got shape {shape} (a colour-coded label needs a colour map)",
        )


class UnmappedColour(InvalidLabel):
    """A colour-coded label holds colours that the colour map does not list."""

    def __init__(self, path: Path, colours: Sequence[tuple[int, int, int]], pixels: int) -> None:
        self.colours = list(colours)
        names = [f"({r},{g},{b})" for r, g, b in self.colours]
        super().__init__(path, f"{len(names)} RGB colours ({pixels} pixels) are not in the colour map: {_few(names)}")


class SizeMismatch(ImportFailure):
    """Image and label of one sample differ in size."""

    def __init__(self, image: Path, label: Path, image_size: tuple[int, int], label_size: tuple[int, int]) -> None:
        self.image_size = image_size
        self.label_size = label_size
        super().__init__(
            f"{label}: label size {label_size[0]}x{label_size[1]} (WxH) differs from "
            f"image {image} size {image_size[0]}x{image_size[1]}"
        )
