"""Chunk files of a survey: the stamps of up to ``chunk_size`` sources of one chip as FITS cubes, and their rows.

Layout of ``{stem}_{EXT}{VER}_c{k:04d}.fits`` (``EXT`` the chip's extension name, ``k`` the chunk's number):

- primary HDU: no data; the chip's WCS (``relax=True``, SIP included) and the provenance (model, sha256, settings);
- ``RS``, ``LQ``, ``SIGMA`` (when computed), ``RESID``: float32 cubes (plane, y, x) in the image's unit (BUNIT);
- ``MASK``: uint8 cube, 1 = in-painted bad pixel, 2 = outside the parent image;
- ``STAMPS``: one row per source of the chunk, restored or not: its catalogue row (:meth:`BatchResult.row`, text
  columns in ASCII) plus ``plane`` (−1: not restored), ``origin_x``, ``origin_y`` (parent pixel of the stamp's
  (0, 0)) and ``crpix1``, ``crpix2`` (the stamp's own WCS = the primary's with these CRPIX).

A chunk file is written atomically, so a file that exists is complete; it is named by its input, chip and number,
so a chunk run twice (a worker lost after writing) replaces itself with the same content: never a duplicate.
"""

from __future__ import annotations

import math
import os
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CHUNK_CUBES", "ascii_text", "read_rows", "read_stamp", "write_chunk"]

CHUNK_CUBES = ("RS", "LQ", "SIGMA", "RESID", "MASK")
"""The cube extensions of a chunk file, in order (SIGMA only where the pipeline computes it)."""

_ASCII = {"χ²": "chi2", "χ": "chi", "²": "2", "σ": "sigma", "Σ": "sum", "×": "x", "−": "-", "–": "-", "—": "-",
          "⊗": "(x)", "≤": "<=", "≥": ">=", "±": "+-", "→": "->", "≈": "~", "µ": "u", "μ": "mu", "…": "...",
          "°": " deg", "″": "arcsec", "′": "arcmin", "⚑": "!", "’": "'", "‘": "'", "“": '"', "”": '"', "·": "*"}


def ascii_text(text: str) -> str:
    """``text`` in printable ASCII, as FITS table strings must be (χ² → chi2, σ → sigma, − → -, …)."""
    for k, v in _ASCII.items():
        text = text.replace(k, v)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c if " " <= c <= "~" else " " for c in text)


def write_chunk(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]], restorations: Sequence[Any],
                header: Any, *, bunit: str = "", overwrite: bool = True) -> Path:
    """Write one chunk file (module docstring) atomically.

    Parameters
    ----------
    path : path-like
    rows : sequence of dict
        One catalogue row per source; the same keys in each.
    restorations : sequence of Restoration or None
        Per row: the restoration (its stamp gives the origin and the mask) or None (failed: no plane).
    header : astropy.io.fits.Header
        The primary header: the chip's WCS and the provenance.
    bunit : str
        The image's unit, written as BUNIT on every cube but MASK.
    overwrite : bool
        Replace an existing file (a rerun chunk: deterministic, the same content).

    Returns
    -------
    pathlib.Path
    """
    from astropy.io import fits
    from astropy.table import Table

    from galviewer._atomic import atomic_write

    planes = [r for r in restorations if r is not None]
    placement, k = [], 0  # plane, origin_x, origin_y, crpix1, crpix2 of each row
    for r in restorations:
        if r is None:
            placement.append((-1, -1, -1, math.nan, math.nan))
            continue
        w = r.stamp.wcs
        crpix = (float(w.wcs.crpix[0]), float(w.wcs.crpix[1])) if w is not None else (math.nan, math.nan)
        placement.append((k, int(r.stamp.origin[0]), int(r.stamp.origin[1]), *crpix))
        k += 1
    cols = {name: [ascii_text(v) if isinstance(v, str) else v for v in (row[name] for row in rows)]
            for name in rows[0]}
    cols.update(zip(("plane", "origin_x", "origin_y", "crpix1", "crpix2"), map(list, zip(*placement, strict=True)),
                    strict=True))
    table = fits.table_to_hdu(Table(cols))
    table.name = "STAMPS"
    table.header["NSOURCES"] = (len(rows), "rows: every source of the chunk")
    table.header["NPLANES"] = (len(planes), "restored sources: planes of the cubes")
    hdus: list[Any] = [fits.PrimaryHDU(header=header)]
    if planes:
        cubes = {"RS": [r.data for r in planes], "LQ": [r.lq for r in planes], "RESID": [r.residual for r in planes]}
        if all(r.sigma is not None for r in planes):
            cubes["SIGMA"] = [r.sigma for r in planes]
        cubes["MASK"] = [r.stamp.bad.astype(np.uint8) | (r.stamp.padded.astype(np.uint8) << 1) for r in planes]
        for name in CHUNK_CUBES:
            if name not in cubes:
                continue
            arr = np.stack(cubes[name]).astype(np.uint8 if name == "MASK" else np.float32)
            hdu = fits.ImageHDU(arr, name=name)
            if bunit and name != "MASK":
                hdu.header["BUNIT"] = bunit
            hdu.header.add_comment("plane k = row of STAMPS whose PLANE is k")
            hdus.append(hdu)
    hdus.append(table)
    hdul = fits.HDUList(hdus)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            hdul.writeto(tmp, output_verify="exception", overwrite=True)

    return atomic_write(path, write, overwrite=overwrite)


def read_rows(path: str | os.PathLike[str]) -> Any:
    """The ``STAMPS`` table of a chunk file (an astropy Table), with ``chunk`` = the file's name."""
    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unit strings the FITS standard does not know
        table = Table.read(str(path), hdu="STAMPS", character_as_bytes=False, mask_invalid=False)
    table["chunk"] = Path(path).name
    return table


def read_stamp(path: str | os.PathLike[str], plane: int) -> dict[str, Any]:
    """Plane ``plane`` of a chunk file: its cubes' images and its own WCS.

    Returns
    -------
    dict
        ``{"RS": array, "LQ": array, …, "wcs": astropy.wcs.WCS or None, "row": the STAMPS row}``.
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        out: dict[str, Any] = {n: np.array(hdul[n].data[plane]) for n in CHUNK_CUBES if n in names}
        rows = hdul["STAMPS"].data
        row = rows[list(rows["plane"]).index(plane)]
        out["row"] = {name: row[name] for name in rows.names}
        header = hdul[0].header
        w = None
        if "CTYPE1" in header:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w = WCS(header, relax=True)
            crpix = np.array([float(row["crpix1"]), float(row["crpix2"])])
            w.wcs.crpix = crpix
            if w.sip is not None:  # SIP's reference pixel moves with CRPIX (as Cutout2D does)
                from astropy.wcs import Sip

                w.sip = Sip(w.sip.a, w.sip.b, w.sip.ap, w.sip.bp, crpix)
        out["wcs"] = w
    return out
