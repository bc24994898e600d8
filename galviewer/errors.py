"""Named exceptions raised at galviewer's boundaries.

Every exception carries the object that was wrong (a file path or a parameter
name) and a human-readable reason, so that the command line and the GUI can show
"what" and "why" without parsing messages.  Each one also subclasses the builtin
exception a Python user would expect (GalSim's convention), so
``except ValueError`` keeps working.
"""

from __future__ import annotations

import os

__all__ = [
    "ExportError",
    "GalviewerError",
    "ImageLoadError",
    "OutputExistsError",
    "ParameterError",
    "RestoreCancelled",
    "RestoreError",
    "WeightsError",
]


class GalviewerError(Exception):
    """Base class of every galviewer error."""


class _PathError(GalviewerError):
    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)


class ImageLoadError(_PathError, OSError):
    """An image file could not be opened as a 2-D astronomical image.

    Parameters
    ----------
    path : str or path-like
        The file that failed.
    reason : str
        Why it failed.
    """


class WeightsError(_PathError, OSError):
    """A model checkpoint could not be read, written or does not fit its model."""


class ExportError(_PathError, OSError):
    """A result could not be written."""


class OutputExistsError(ExportError, FileExistsError):
    """The output file exists and overwriting was not requested."""


class ParameterError(GalviewerError, ValueError):
    """A parameter has an invalid value.

    Parameters
    ----------
    name : str
        The parameter's name as the user wrote it.
    reason : str
        Why the value is not acceptable.
    """

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


class RestoreError(GalviewerError, RuntimeError):
    """A restoration could not be carried out."""

    def __init__(self, reason: str, name: str | None = None) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}" if name else reason)


class RestoreCancelled(GalviewerError):
    """A restoration was cancelled by its caller (not an error to report)."""
