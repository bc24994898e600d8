"""Atomic, non-clobbering file writes shared by every writer in galviewer."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from galviewer.errors import ExportError, OutputExistsError

__all__ = ["atomic_write", "safe_label", "sweep_folder", "sweep_stale_parts"]


def _file_mode() -> int:
    """Permissions of a newly created file under the process umask (mkstemp would leave 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def sweep_stale_parts(path: Path) -> list[Path]:
    """Remove the temporary files a killed writer of ``path`` left beside it.

    Temporary names are ``.{name}.{pid}.{random}.part``; a file whose writing process no longer exists
    is a remnant of a write that never finished (SIGKILL, power cut) and is deleted.  Returns what was removed.
    """
    return _sweep(path.parent.glob(f".{glob.escape(path.name)}.*.part"))


def sweep_folder(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove every temporary file of a killed writer in ``folder`` (any target name), as
    :func:`sweep_stale_parts` does for one target: a survey sweeps its folder when all its writers are done."""
    return _sweep(Path(folder).glob(".*.part"))


def _sweep(parts: Iterable[Path]) -> list[Path]:
    removed = []
    for part in parts:
        fields = part.name.rsplit(".", 3)  # "" + name, pid, random (mkstemp's: no dot), "part"
        pid_text = fields[1] if len(fields) == 4 else ""
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
                removed.append(part)
    return removed


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    sweep_stale_parts(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent)
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


def safe_label(label: str, max_len: int = 64) -> str:
    """Reduce a catalogue label to a safe file-name part: letters, digits, ``-``, ``_``, ``.`` and ``+``;
    no path separator, no leading dot, at most ``max_len`` characters (``_`` when nothing is left)."""
    import re

    text = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(label)).strip("._")
    return text[:max_len] or "_"
