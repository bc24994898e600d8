"""Source positions from a user's catalogue: ECSV, FITS or CSV tables (x/y or RA/Dec) and DS9 region files.

Used by ``galviewer restore --catalog`` and ``galviewer survey`` so that both read a catalogue the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from galviewer.errors import ImageLoadError

__all__ = ["Positions", "read_positions"]

# Table formats by suffix (astropy's guessing reads a CSV as whitespace-separated when it has one column).
_FORMATS = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv", ".fits": "fits", ".fit": "fits", ".fts": "fits",
            ".gz": None}


class Positions(list):  # type: ignore[type-arg]
    """(label, x, y) rows; ``sky`` is True when they came from sky coordinates (RA/Dec columns or sky regions)
    through the image's WCS, so that another chip's WCS places the same rows elsewhere."""

    def __init__(self, rows: Any = (), sky: bool = False) -> None:
        super().__init__(rows)
        self.sky = sky


def read_positions(path: str | os.PathLike[str], image: Any, origin: int = 0) -> Positions:
    """The sources a catalogue lists, as (label, x, y) in 0-based pixels of ``image``.

    Parameters
    ----------
    path : path-like
        An ECSV, FITS or CSV table with columns ``x,y`` or ``xcentroid,ycentroid`` (origin ``origin``),
        SExtractor's ``X_IMAGE,Y_IMAGE`` (always 1-based) or ``ra,dec`` in degrees (through the image's WCS);
        an ``id`` column gives the labels.  Or a DS9 region file (``.reg``), pixel or sky regions.
    image : Image
        The image the positions refer to (its WCS converts RA/Dec).
    origin : {0, 1}
        Pixel convention of x, y columns.

    Returns
    -------
    Positions
        A list of (str, float, float), with ``sky`` saying whether they came through the WCS.

    Raises
    ------
    ImageLoadError
        Missing or unreadable file, no position columns, non-numeric columns, or sky positions without a
        celestial WCS — each naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageLoadError(p, "catalogue file not found")
    if p.suffix.lower() == ".reg":
        return _region_positions(p, image)
    from astropy.table import Table

    suffixes = [s.lower() for s in p.suffixes[-2:]]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None and len(suffixes) == 2 and suffixes[-1] == ".gz":
        fmt = _FORMATS.get(suffixes[0])
    try:
        table = Table.read(str(p), format=fmt) if fmt else Table.read(str(p))
    except Exception as exc:
        raise ImageLoadError(p, f"not a readable ECSV/FITS/CSV table: {exc}") from exc
    if len(table) == 0:
        raise ImageLoadError(p, "the catalogue has no rows")
    cols = {c.lower(): c for c in table.colnames}
    ids = [str(i) for i in table[cols["id"]]] if "id" in cols else [str(k) for k in range(1, len(table) + 1)]

    def numeric(name: str) -> np.ndarray:
        try:
            return np.asarray(np.ma.filled(table[cols[name]], np.nan), dtype=float).reshape(len(table))
        except (TypeError, ValueError):
            raise ImageLoadError(p, f"column {cols[name]!r} is not numeric (dtype {table[cols[name]].dtype}, first "
                                 f"value {table[cols[name]][0]!r})") from None

    for xname, yname in (("x", "y"), ("xcentroid", "ycentroid"), ("x_image", "y_image")):
        if xname in cols and yname in cols:
            off = 1.0 if xname == "x_image" else float(origin)  # SExtractor's X_IMAGE/Y_IMAGE are 1-based
            return Positions([(i, float(x) - off, float(y) - off)
                              for i, x, y in zip(ids, numeric(xname), numeric(yname), strict=True)])
    if "ra" in cols and "dec" in cols:
        if image.wcs is None:
            raise ImageLoadError(p, "ra/dec columns need an image with a celestial WCS")
        with np.errstate(invalid="ignore"):
            try:
                xs, ys = image.wcs.all_world2pix(numeric("ra"), numeric("dec"), 0, quiet=True)
            except Exception as exc:
                raise ImageLoadError(p, f"the image's WCS cannot place these RA/Dec: {exc}") from None
        return Positions([(i, float(x), float(y)) for i, x, y in zip(ids, xs, ys, strict=True)], sky=True)
    raise ImageLoadError(p, f"no position columns: need x,y or xcentroid,ycentroid or ra,dec; have {table.colnames}")


def _region_positions(p: Path, image: Any) -> Positions:
    """The centres of the regions of a DS9 file (sky regions through the image's WCS)."""
    from regions import PixCoord, Regions

    try:
        regs = Regions.read(str(p), format="ds9")
    except Exception as exc:
        raise ImageLoadError(p, f"not a readable DS9 region file: {exc}") from exc
    out = Positions()
    for k, reg in enumerate(regs, start=1):
        if not hasattr(reg, "to_pixel") and not hasattr(reg, "center"):
            continue
        if not hasattr(reg, "center") or not isinstance(reg.center, PixCoord):
            if image.wcs is None:
                raise ImageLoadError(p, "sky regions need an image with a celestial WCS")
            reg = reg.to_pixel(image.wcs)
            out.sky = True
        if not hasattr(reg, "center"):
            continue
        label = str(reg.meta.get("text", k)) if hasattr(reg, "meta") else str(k)
        out.append((label, float(reg.center.x), float(reg.center.y)))
    if not out:
        raise ImageLoadError(p, "no region with a centre in the file")
    return out
