"""Atomic, non-clobbering file writes shared by every writer in galviewer."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from galviewer.errors import ExportError, OutputExistsError

__all__ = ["atomic_write"]


def _file_mode() -> int:
    """Permissions of a newly created file under the process umask (mkstemp would leave 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[Path], None],
    *,
    overwrite: bool = False,
    error: type[ExportError] = ExportError,
) -> Path:
    """Write a file through a temporary file in the same folder, then rename it into place.

    Parameters
    ----------
    path : path-like
        Final destination.
    write : callable
        Called with the temporary path; must write the complete file there.
    overwrite : bool
        Replace an existing file.  Without it an existing file raises
        :class:`~galviewer.errors.OutputExistsError` and is left untouched.
    error : type
        Exception class (an :class:`ExportError` subclass) raised on failure.

    Returns
    -------
    pathlib.Path
        The destination path.
    """
    dest = Path(path)
    if dest.exists() and not overwrite:
        raise OutputExistsError(dest, "file exists; pass overwrite=True (or --overwrite) to replace it")
    if not dest.parent.is_dir():
        raise error(dest, f"folder {dest.parent} does not exist")
    try:
        with _temp_beside(dest) as tmp:
            write(tmp)
            os.chmod(tmp, _MODE)
            if not overwrite and dest.exists():
                raise OutputExistsError(dest, "file appeared while writing; not replaced")
            os.replace(tmp, dest)
    except (OutputExistsError, error):
        raise
    except OSError as exc:
        raise error(dest, f"could not write: {exc.strerror or exc}") from exc
    return dest
