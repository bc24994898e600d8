"""Opening FITS files that may be hostile or damaged: regular files only, gzip decompressed with its CRC
checked into a bounded memory-mapped temporary file, other compressions named, damaged headers described."""

from __future__ import annotations

import gc
import os
import stat
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Any

from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from galviewer.errors import ImageLoadError

# A .gz file is decompressed (CRC and length checked) into an anonymous temporary file that is then
# memory-mapped; it may hold at most this many bytes (a 16384² float64 image, or a 23170² float32 one).
MAX_GZIP_BYTES = 2 << 30

# Magic numbers of compressions astropy does not read through galviewer, named in the error.
_OTHER_COMPRESSIONS = ((b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"PK\x03\x04", "zip"),
                       (b"\x28\xb5\x2f\xfd", "zstd"))



class _Quiet:
    """Collect astropy warnings during a read instead of letting them escape."""

    def __enter__(self) -> list[str]:
        self._cm = warnings.catch_warnings(record=True)
        self._log = self._cm.__enter__()
        warnings.simplefilter("always")
        self.messages: list[str] = []
        return self.messages

    def __exit__(self, *exc: object) -> None:
        self.messages.extend(str(w.message) for w in self._log)
        self._cm.__exit__(*exc)


def _gunzip(path: Path, limit: int | None = None) -> Any:
    """Decompress a gzip file completely, checking every member's CRC-32 and length, into an anonymous
    temporary file (deleted when closed, even if the process is killed); return it opened read-only.

    Raises
    ------
    ImageLoadError
        For a corrupt or truncated stream, or one that decompresses to more than ``limit`` bytes
        (default :data:`MAX_GZIP_BYTES`).
    """
    limit = MAX_GZIP_BYTES if limit is None else limit
    total = 0
    try:
        with open(path, "rb") as src, tempfile.TemporaryFile(prefix="galviewer-gunzip-") as tmp:
            d = zlib.decompressobj(wbits=31)
            while True:
                data = src.read(1 << 20)
                if not data:
                    break
                while data:
                    if d.eof:  # another gzip member follows, or the zero padding some tools append
                        if not data.strip(b"\0"):
                            break
                        d = zlib.decompressobj(wbits=31)
                    out = d.decompress(data, 1 << 24)
                    total += len(out)
                    if total > limit:
                        raise ImageLoadError(path, f"decompresses to more than {limit / 2**30:.0f} GiB; gunzip it "
                                             "first (uncompressed FITS files are memory-mapped)")
                    tmp.write(out)
                    data = d.unconsumed_tail or d.unused_data
            if not d.eof:
                raise ImageLoadError(path, "truncated gzip stream (the file ends before the gzip trailer)")
            tmp.flush()
            tmp.seek(0)  # the duplicate shares the file offset
            return os.fdopen(os.dup(tmp.fileno()), "rb")
    except zlib.error as exc:
        reason = "CRC check failed" if "check" in str(exc) else str(exc)
        raise ImageLoadError(path, f"corrupt gzip stream ({reason}): the file was damaged") from None
    except OSError as exc:
        if isinstance(exc, ImageLoadError):
            raise
        raise ImageLoadError(path, f"cannot decompress: {exc.strerror or exc}") from exc


def _header_damage(head: bytes) -> str:
    """Why the first header of a file cannot be parsed, when it is plain to see (non-ASCII or no END)."""
    for i in range(0, len(head) - 79, 80):
        card = head[i: i + 80]
        bad = [b for b in card if not 0x20 <= b <= 0x7E]
        if bad:
            return (f"header card {i // 80 + 1} holds a non-ASCII byte 0x{bad[0]:02x} (FITS headers are "
                    f"printable ASCII)")
        if card.startswith(b"END     ") or card.rstrip() == b"END":
            return ""
    return ""


def check_regular_file(path: Path, error: type[ImageLoadError] = ImageLoadError) -> None:
    """Refuse a missing path, a folder, a FIFO, a device or a socket before anything opens it.

    Raises
    ------
    ImageLoadError
        Naming the path and what it is.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise error(path, "no such file") from None
    except OSError as exc:
        raise error(path, f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise error(path, "is a folder, not a FITS file")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise error(path, f"is {kind}, not a regular file; galviewer reads only regular files")


def _open_fits(path: Path, memmap: bool = True) -> fits.HDUList:
    check_regular_file(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(2880)
    except OSError as exc:
        raise ImageLoadError(path, f"cannot read: {exc.strerror}") from exc
    if not head:
        raise ImageLoadError(path, "empty file")
    gz = head[:2] == b"\x1f\x8b"
    for magic, name in _OTHER_COMPRESSIONS:
        if head.startswith(magic):
            raise ImageLoadError(path, f"is {name}-compressed; galviewer reads FITS and gzip-compressed FITS "
                                 f"(.fits.gz): decompress it first")
    if not gz and not head.startswith(b"SIMPLE  ="):
        raise ImageLoadError(path, "not a FITS file (no SIMPLE card at the start)")
    source: Any = path
    if gz:
        source = _gunzip(path)
        head = source.read(2880)
        source.seek(0)
        if not head.startswith(b"SIMPLE  ="):
            source.close()
            raise ImageLoadError(path, "gzip file that does not hold FITS (no SIMPLE card at the start)")
    failure = ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(source, memmap=memmap, lazy_load_hdus=False, ignore_missing_simple=False)
        except Exception as exc:  # astropy raises many types for damaged files; zlib its own
            failure = _header_damage(head) or f"not a readable FITS file: {type(exc).__name__}: {exc}"
        if failure:
            # astropy can leave its file handle to the garbage collector when it fails mid-way;
            # release it here, quietly, instead of leaking a ResourceWarning to the caller.
            if gz:
                source.close()
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    if failure:
        raise ImageLoadError(path, failure)
    damage = [str(w.message) for w in caught if issubclass(w.category, AstropyUserWarning)
              and any(t in str(w.message).lower() for t in ("truncat", "unexpected extra", "corrupt"))]
    if damage:
        hdul.close()
        raise ImageLoadError(path, f"damaged FITS file (truncated?): {damage[0]}")
    return hdul
