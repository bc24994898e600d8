"""FITS input and stamp output.

Reads HST calibrated products the way astronomers know them:

* FLT/FLC (ACS, WFC3): ``SCI``/``ERR``/``DQ`` per chip (EXTVER 1 and 2), electrons;
* DRZ/DRC: ``SCI``/``WHT``/``CTX``, electrons/s (WHT is a weight, not an rms);
* any plain FITS file holding a 2-D image (primary or first image extension), ``.gz`` too.

The WCS is built with ``astropy.wcs.WCS(header, hdulist)`` so SIP and
lookup-table (``D2IMARR``/``WCSDVARR``) distortions are applied.  Uncompressed
files are memory-mapped; the returned :class:`Image` keeps the file open until
:meth:`Image.close` (or the end of a ``with`` block).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning

from galviewer.core.io.hdus import (
    _as_2d,
    _declared_shape,
    _extver,
    _find,
    _images_in,
    _is_image_hdu,
    _pick_science,
    _twins,
    list_images,
    parse_ext,
    plane_header,
)
from galviewer.core.io.safeopen import _open_fits, _Quiet
from galviewer.errors import ImageLoadError

__all__ = ["Image", "ImageMeta", "header_readnoise", "list_images", "open_image", "parse_ext", "sexagesimal"]


def sexagesimal(ra: float, dec: float) -> str:
    """``hh:mm:ss.ss ±dd:mm:ss.s`` of RA and Dec in degrees (as DS9 shows them); empty for NaN."""
    from astropy.coordinates import Angle

    if not (np.isfinite(ra) and np.isfinite(dec)):
        return ""
    r = Angle(ra, unit="deg").wrap_at("360d").to_string(unit="hourangle", sep=":", precision=2, pad=True)
    d = Angle(dec, unit="deg").to_string(unit="deg", sep=":", precision=1, alwayssign=True, pad=True)
    return f"{r} {d}"

# Refuse to map images whose declared size is absurd (protects against corrupt headers).
MAX_PIXELS = 1 << 30

@dataclass(frozen=True)
class ImageMeta:
    """Header facts about an image.

    Attributes
    ----------
    kind : str
        ``"FLT"`` (also FLC, RAW-like per-chip files), ``"DRZ"`` (also DRC, and any image whose header holds
        drizzle keywords D001SCAL/D001PIXF/NDRIZIM) or ``"plain"``.
    extname, extver : str, int
        The science extension read.
    instrument, detector, filter : str
        From INSTRUME, DETECTOR, FILTER or FILTER1/FILTER2 (CLEAR elements dropped).
    exptime : float
        Seconds (NaN when absent).
    bunit : str
        Pixel unit as written in the header.
    photflam, photzpt : float
        Inverse sensitivity and zero point (NaN when absent).
    photplam : float
        Pivot wavelength in Å (NaN when absent).
    magzero, magzero_key : float, str
        A magnitude zero point of the image's own units written in the header (the first of
        ``MAGZERO_KEYS`` present; NaN and "" when none), used for AB magnitudes where PHOTFLAM/PHOTPLAM are not.
    pixel_scale : float
        Arcsec per pixel from the WCS (NaN without a celestial WCS).
    """

    kind: str = "plain"
    extname: str = "PRIMARY"
    extver: int = 1
    instrument: str = ""
    detector: str = ""
    filter: str = ""
    exptime: float = float("nan")
    bunit: str = ""
    photflam: float = float("nan")
    photzpt: float = float("nan")
    pixel_scale: float = float("nan")
    photplam: float = float("nan")
    warnings: tuple[str, ...] = ()
    magzero: float = float("nan")
    magzero_key: str = ""


@dataclass
class Image:
    """A 2-D science image with its uncertainty, data quality and WCS.

    Attributes
    ----------
    data : numpy.ndarray
        Science pixels (possibly a read-only memory map, big-endian as on disk).
    err : numpy.ndarray or None
        1-σ uncertainty per pixel in the units of ``data`` (FLT ERR); None when unknown.
    bad : numpy.ndarray of bool or None
        True where the pixel must not be used (DQ ≠ 0 outside ``dq_ignore_bits``,
        zero DRZ weight, non-finite data).
    dq : numpy.ndarray or None
        Raw DQ flags when present.
    weight : numpy.ndarray or None
        DRZ WHT array when present.
    wcs : astropy.wcs.WCS or None
        Full WCS including distortion; None when the header has no celestial WCS.
    header : astropy.io.fits.Header
        Science header merged over the primary header (science keys win).
    meta : ImageMeta
    path : pathlib.Path
    """

    data: np.ndarray
    err: np.ndarray | None
    bad: np.ndarray | None
    dq: np.ndarray | None
    weight: np.ndarray | None
    wcs: WCS | None
    header: fits.Header
    meta: ImageMeta
    path: Path
    _hdul: Any = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        return self.data.shape  # type: ignore[return-value]

    def close(self) -> None:
        """Release the file (memory maps stay valid only while open)."""
        if self._hdul is not None:
            self._hdul.close()
            self._hdul = None

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def images(self) -> list[tuple[str, int, tuple[int, ...]]]:
        """The file's 2-D image extensions, as :func:`list_images` gives them (no second read of the file)."""
        return _images_in(self._hdul) if self._hdul is not None else list_images(self.path)

    def pixel_to_world(self, x: float, y: float) -> tuple[float, float]:
        """RA, Dec in degrees of a 0-based pixel position (NaN without a WCS)."""
        if self.wcs is None:
            return float("nan"), float("nan")
        ra, dec = self.wcs.all_pix2world(x, y, 0)
        return float(ra), float(dec)


def _filter_name(h: fits.Header) -> str:
    if "FILTER" in h:
        return str(h["FILTER"]).strip()
    names = [str(h.get(k, "")).strip() for k in ("FILTER1", "FILTER2")]
    names = [n for n in names if n and not n.upper().startswith("CLEAR") and n.upper() != "N/A"]
    return ";".join(names)


MAX_PIXEL_VALUE = 1e30
"""Larger pixel values are not data (float32 holds up to 3.4e38; a restoration multiplies them further): an image's
such pixels are marked bad on reading, and an array handed to the restorer with them is refused by name."""

MAGZERO_KEYS = ("MAGZERO", "MAGZPT", "MAGZP", "ZEROPNT", "ABMAGZP", "ZP_AB")
"""Header keywords read, in this order, as a zero point m = ZP − 2.5 log10(pixel sum) of the image's units."""


def header_readnoise(h: fits.Header) -> float:
    """The read noise a header gives (the median of READNSE, READNSEA…D, the amplifiers'), NaN when none."""
    noise = [h.get(k) for k in ("READNSE", "READNSEA", "READNSEB", "READNSEC", "READNSED")]
    noise = [float(v) for v in noise if isinstance(v, int | float) and not isinstance(v, bool) and v > 0]
    return float(np.median(noise)) if noise else math.nan


def _magzero(h: fits.Header) -> dict[str, Any]:
    for key in MAGZERO_KEYS:
        v = _float(h, key)
        if math.isfinite(v):
            return {"magzero": v, "magzero_key": key}
    return {}


def _float(h: fits.Header, key: str) -> float:
    try:
        return float(h[key])
    except (KeyError, TypeError, ValueError):
        return float("nan")


def open_image(
    path: str | os.PathLike[str], ext: str | int | tuple[str, int] | None = None, *, dq_ignore_bits: int = 0
) -> Image:
    """Open a 2-D image from an HST FLT/FLC, DRZ/DRC or plain FITS file.

    Parameters
    ----------
    path : path-like
        The file (``.fits``, ``.fits.gz``, ...).
    ext : str, int or (str, int), optional
        ``"SCI,2"``, ``("SCI", 2)`` or an HDU index.  Default: ``SCI,1`` when
        present, else the first 2-D image.
    dq_ignore_bits : int
        DQ bits that do not make a pixel bad (e.g. 64+32 to keep warm pixels
        and CTE tails).  Default 0: every flagged pixel is bad.

    Returns
    -------
    Image

    Raises
    ------
    ImageLoadError
        Missing file, not FITS, damaged or truncated file, no 2-D image, a
        cube, all-NaN data, or an unknown extension.
    """
    p = Path(path)
    ext = parse_ext(ext)
    hdul = _open_fits(p)
    try:
        with _Quiet() as notes:
            idx, hdu = _pick_science(hdul, ext, p)
            twins = _twins(hdul, hdu)
            if len(twins) > 1:
                name = str(hdu.header.get("EXTNAME", "")).upper()
                notes.append(f"{len(twins)} extensions are named {name},{_extver(hdu.header)} (HDUs "
                             f"{', '.join(map(str, twins))}): HDU {idx} is read; choose another by its number "
                             "(--ext N)")
            if not _is_image_hdu(hdu):
                raise ImageLoadError(p, f"HDU {idx} is a {type(hdu).__name__}, not an image")
            shape = _declared_shape(hdu)
            if np.prod([max(s, 1) for s in shape], dtype=float) > MAX_PIXELS:
                raise ImageLoadError(p, f"declared image size {shape} is too large ({MAX_PIXELS} pixels at most)")
            try:
                try:
                    raw = hdu.data
                except ValueError as exc:
                    if "memory-mapped" not in str(exc):
                        raise
                    # Scaled (BZERO/BSCALE) data cannot be memory-mapped; read it into memory instead.
                    hdul.close()
                    hdul = _open_fits(p, memmap=False)
                    idx, hdu = _pick_science(hdul, ext, p)
                    raw = hdu.data
                plane = ext[1] if isinstance(ext, tuple) and ext[0] == "PLANE" else None
                data = _as_2d(raw, p, f"HDU {idx}", plane)
            except ImageLoadError:
                raise
            except (OSError, ValueError, TypeError, IndexError) as exc:
                raise ImageLoadError(p, f"image data unreadable (truncated file?): {exc}") from exc
            if data.dtype.kind in "iu" or (hdu.header.get("BSCALE", 1) != 1 or hdu.header.get("BZERO", 0) != 0):
                data = np.asarray(data, dtype=np.float32)
            bad = np.isfinite(data)
            np.logical_not(bad, out=bad)  # in place: one image-sized mask, not two
            if bad.all():
                raise ImageLoadError(p, "all pixels are NaN or infinite")
            # |v| beyond MAX_PIXEL_VALUE is not data (a float32 file's 1e300 reads as inf, a float64 file's stays
            # finite): every such pixel is bad, as NaN and inf are, and the file's notes say how many
            nonfinite = int(bad.sum())
            bad |= data >= MAX_PIXEL_VALUE  # >=: float32 rounds 1e30 up, and the restorer compares in float64
            bad |= data <= -MAX_PIXEL_VALUE
            absurd = int(bad.sum()) - nonfinite
            if absurd:
                notes.append(f"{absurd} pixel(s) beyond ±{MAX_PIXEL_VALUE:g} are not data: marked bad (in-painted "
                             "in a stamp, shown in its MASK)")
            primary = hdul[0].header
            sci_h = hdu.header if plane is None else plane_header(hdul, idx, plane)
            merged = primary.copy() if idx != 0 else fits.Header()
            for card in sci_h.cards:
                if card.keyword in ("", "COMMENT", "HISTORY"):
                    continue
                try:
                    merged[card.keyword] = (card.value, card.comment)
                except (ValueError, KeyError):
                    continue
            extname = "PLANE" if plane else str(sci_h.get("EXTNAME", "PRIMARY" if idx == 0 else str(idx))).upper()
            extver = plane or _extver(sci_h)
            filetype = str(primary.get("FILETYPE", "")).upper()
            name = p.name.lower()
            wht = _find(hdul, "WHT", extver)
            errh = _find(hdul, "ERR", extver)
            dqh = _find(hdul, "DQ", extver)
            drizzle_keys = any(k in merged for k in ("D001SCAL", "D001PIXF", "NDRIZIM"))
            if wht is not None or drizzle_keys or any(t in name for t in ("_drz", "_drc")):
                kind = "DRZ"  # WHT, drizzle keywords or the name: FILETYPE='SCI' is written on both kinds
            elif errh is not None or dqh is not None or any(t in name for t in ("_flt", "_flc")) or filetype == "SCI":
                kind = "FLT"
            else:
                kind = "plain"
            err = _companion(errh, data.shape, "ERR", notes)
            dq = _companion(dqh, data.shape, "DQ", notes)
            weight = _companion(wht, data.shape, "WHT", notes) if kind == "DRZ" else None
            if dq is not None:
                bad |= (np.asarray(dq).astype(np.int64) & ~int(dq_ignore_bits)) != 0
            if weight is not None:
                bad |= ~(np.asarray(weight) > 0)
            if err is not None:
                err = np.asarray(err, dtype=np.float32)
            wcs = _read_wcs(sci_h, hdul, data.shape)
            scale = float("nan")
            if wcs is not None:
                try:
                    from astropy.wcs.utils import proj_plane_pixel_scales

                    scales = proj_plane_pixel_scales(wcs.celestial) * 3600.0
                    scale = float(np.sqrt(scales[0] * scales[1]))
                except (ValueError, IndexError):
                    scale = float("nan")
            meta = ImageMeta(
                kind=kind,
                extname=extname,
                extver=extver,
                instrument=str(merged.get("INSTRUME", "")).strip(),
                detector=str(merged.get("DETECTOR", "")).strip(),
                filter=_filter_name(merged),
                exptime=_float(merged, "EXPTIME"),
                bunit=str(sci_h.get("BUNIT", primary.get("BUNIT", ""))).strip(),
                photflam=_float(merged, "PHOTFLAM"),
                photzpt=_float(merged, "PHOTZPT"),
                pixel_scale=scale,
                photplam=_float(merged, "PHOTPLAM"),
                **_magzero(merged),
            )
        meta = dataclasses.replace(meta, warnings=tuple(dict.fromkeys(notes)))
    except ImageLoadError:
        hdul.close()
        raise
    except Exception as exc:
        hdul.close()
        raise ImageLoadError(p, f"could not read image: {type(exc).__name__}: {exc}") from exc
    return Image(data=data, err=err, bad=bad if bad.any() else np.zeros(data.shape, bool), dq=dq, weight=weight,
                 wcs=wcs, header=merged, meta=meta, path=p, _hdul=hdul)


def _companion(hdu: Any, shape: tuple[int, ...], what: str, notes: list[str]) -> np.ndarray | None:
    """The ERR/DQ/WHT array of a science extension, or None.

    One whose shape differs from the science array's (e.g. stwcs's test FLTs carry 2×2 placeholders) is
    ignored with a note, as DS9 would still show the image: the noise then comes from the background.
    """
    if hdu is None:
        return None
    if hdu.data is None:
        # HST writes constant ERR/DQ arrays as header-only HDUs with NPIX1/NPIX2/PIXVALUE.
        if "PIXVALUE" in hdu.header:
            return np.full(shape, hdu.header["PIXVALUE"], dtype=np.float32 if what != "DQ" else np.int32)
        return None
    arr = np.asarray(hdu.data)
    if arr.ndim != 2:
        arr = arr.squeeze() if arr.size == int(np.prod(shape)) else arr
    if arr.shape != shape:
        notes.append(f"{what} extension has shape {arr.shape}, the science array {shape}: ignored"
                     + (" (noise from the background)" if what == "ERR" else ""))
        return None
    return arr


def _read_wcs(header: fits.Header, hdul: fits.HDUList, shape: tuple[int, ...]) -> WCS | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        warnings.simplefilter("ignore", AstropyWarning)
        try:
            w = WCS(header, hdul)
        except Exception:
            try:
                w = WCS(header)
            except Exception:
                return None
    if not w.has_celestial:
        return None
    w.pixel_shape = (shape[1], shape[0])
    return w
