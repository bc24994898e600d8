"""Which HDU of a FITS file is the image: extension specs (``SCI,2``, ``3``, ``PLANE,2``), the file's 2-D images,
same-named extensions, and the planes of a cube (a WFPC2 waiver file's four chips, each with its WCS and
photometry from the group parameter table that follows it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from galviewer.core.io.safeopen import _open_fits
from galviewer.errors import ImageLoadError, ParameterError

__all__ = ["list_images", "parse_ext", "plane_header"]

def parse_ext(ext: str | int | tuple[str, int] | None) -> str | int | tuple[str, int] | None:
    """Normalise an extension spec: ``"SCI,1"`` → ``("SCI", 1)``, ``"3"`` → ``3``.

    Raises
    ------
    ParameterError
        For a malformed spec.
    """
    if ext is None or isinstance(ext, int):
        return ext
    if isinstance(ext, tuple):
        if len(ext) != 2:
            raise ParameterError("ext", f"expected (EXTNAME, EXTVER), got {ext!r}")
        return (str(ext[0]).upper(), int(ext[1]))
    text = str(ext).strip()
    if text.isdigit():
        return int(text)
    if "," in text:
        name, _, ver = text.partition(",")
        if not ver.strip().isdigit() or not name.strip():
            raise ParameterError("ext", f"expected NAME,VER such as SCI,1, got {ext!r}")
        return (name.strip().upper(), int(ver))
    if not text:
        raise ParameterError("ext", "empty extension name")
    return (text.upper(), 1)


def _is_image_hdu(hdu: Any) -> bool:
    return isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU)


def _declared_shape(hdu: Any) -> tuple[int, ...]:
    """Shape the header declares, (…, NAXIS2, NAXIS1), read without touching the data.

    For a tile-compressed image this is the decompressed shape: astropy ≥ 6 gives the image header
    (NAXISn), older versions the table's (ZNAXISn).
    """
    h = hdu.header
    key = "ZNAXIS" if isinstance(hdu, fits.CompImageHDU) and "ZNAXIS" in h else "NAXIS"
    try:
        naxis = int(h.get(key, 0))
        if not 0 <= naxis <= 999:
            return ()
        return tuple(int(h.get(f"{key}{i}", 0)) for i in range(naxis, 0, -1))
    except (TypeError, ValueError):
        return ()


def list_images(path: str | os.PathLike[str]) -> list[tuple[str, int, tuple[int, ...]]]:
    """The 2-D image extensions of a file as ``(EXTNAME, EXTVER, shape)``; science (SCI) first.

    Raises
    ------
    ImageLoadError
        When the file cannot be read as FITS.
    """
    with _open_fits(Path(path)) as hdul:
        return _images_in(hdul)


def _extver(header: fits.Header) -> int:
    """EXTVER as an integer; a value that is not one (a damaged or hand-made header) counts as absent (1)."""
    value = header.get("EXTVER", 1)
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) \
            or value != int(value):
        return 1
    return int(value)


def _named(hdu: Any, name: str, ver: int) -> bool:
    """True when ``hdu`` is extension ``name,ver`` (EXTNAME case-insensitive; a primary HDU without EXTNAME is
    PRIMARY,1, as :func:`_images_in` lists it)."""
    own = str(hdu.header.get("EXTNAME", "")).upper() or ("PRIMARY" if isinstance(hdu, fits.PrimaryHDU) else "")
    return own == name and _extver(hdu.header) == ver


def _find(hdul: fits.HDUList, name: str, ver: int) -> Any | None:
    return next((hdu for hdu in hdul if _named(hdu, name, ver)), None)


def _twins(hdul: fits.HDUList, hdu: Any) -> list[int]:
    """The indices of the HDUs with the same EXTNAME and EXTVER as ``hdu`` (itself included; [] without a name)."""
    name = str(hdu.header.get("EXTNAME", "")).upper()
    if not name:
        return []
    ver = _extver(hdu.header)
    return [i for i, h in enumerate(hdul) if _named(h, name, ver)]


MAX_PLANES = 64  # a cube with more planes than this is not offered plane by plane
# What a WFPC2 waiver (GEIS) file's group parameter table gives each plane
PLANE_KEYS = ("CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "CTYPE1", "CTYPE2",
              "PHOTFLAM", "PHOTPLAM", "PHOTZPT", "PHOTMODE", "DETECTOR", "ORIENTAT")


def _cube_planes(hdu: Any) -> int:
    """How many planes a 3-D image HDU holds (0 for anything else)."""
    shape = _declared_shape(hdu) if _is_image_hdu(hdu) else ()
    return shape[0] if len(shape) == 3 and min(shape) > 1 and shape[0] <= MAX_PLANES else 0


def plane_header(hdul: fits.HDUList, idx: int, plane: int) -> fits.Header:
    """The header of one plane of the cube at HDU ``idx``: its own header as 2-D, updated with the plane's row of
    a group parameter table that follows it (WCS, photometry, detector), when there is one."""
    h = hdul[idx].header.copy()
    for key in ("NAXIS3", "CRPIX3", "CRVAL3", "CDELT3", "CTYPE3", "CUNIT3", "WCSAXES", "CD1_3", "CD2_3", "CD3_1",
                "CD3_2", "CD3_3", "PC1_3", "PC2_3", "PC3_1", "PC3_2", "PC3_3"):
        h.remove(key, ignore_missing=True, remove_all=True)
    h["NAXIS"] = 2
    n = _cube_planes(hdul[idx])
    for t in hdul[idx + 1:idx + 2]:
        if isinstance(t, fits.TableHDU | fits.BinTableHDU) and t.data is not None and len(t.data) == n:
            names = {c.upper(): c for c in t.columns.names}
            for key in PLANE_KEYS:
                if key in names:
                    v = t.data[names[key]][plane - 1]
                    h[key] = v.strip() if isinstance(v, str) else v.item() if hasattr(v, "item") else v
    return h


def _pick_science(hdul: fits.HDUList, ext: Any, path: Path) -> tuple[int, Any]:
    if isinstance(ext, tuple) and ext[0] == "PLANE":
        for i, hdu in enumerate(hdul):
            n = _cube_planes(hdu)
            if n:
                if not 1 <= ext[1] <= n:
                    raise ImageLoadError(path, f"plane {ext[1]} does not exist (HDU {i} holds planes 1 to {n})")
                return i, hdu
        raise ImageLoadError(path, "PLANE: the file holds no cube of planes")
    if ext is None:
        sci = _find(hdul, "SCI", 1)
        if sci is not None:
            return hdul.index(sci), sci
        for i, hdu in enumerate(hdul):
            if _is_image_hdu(hdu) and len([s for s in _declared_shape(hdu) if s > 1]) >= 2:
                return i, hdu
        for i, hdu in enumerate(hdul):
            if _is_image_hdu(hdu) and _declared_shape(hdu):
                return i, hdu
        raise ImageLoadError(path, "no image data: the file holds no 2-D image HDU")
    if isinstance(ext, int):
        if not 0 <= ext < len(hdul):
            raise ImageLoadError(path, f"extension {ext} does not exist (the file has {len(hdul)} HDUs)")
        return ext, hdul[ext]
    hdu = _find(hdul, ext[0], ext[1])
    if hdu is None:
        available = [f"{n},{v}" for n, v, _ in _images_in(hdul)]
        raise ImageLoadError(path, f"extension {ext[0]},{ext[1]} not found; images here: {available}")
    return hdul.index(hdu), hdu


def _images_in(hdul: fits.HDUList) -> list[tuple[str, int, tuple[int, ...]]]:
    """The 2-D image HDUs of an open file as ``(EXTNAME, EXTVER, shape)``, science (SCI) first."""
    out = []
    for i, hdu in enumerate(hdul):
        if _is_image_hdu(hdu) and len([s for s in _declared_shape(hdu) if s > 1]) == 2:
            ver = _extver(hdu.header)
            out.append((str(hdu.header.get("EXTNAME", "PRIMARY" if i == 0 else i)).upper(), ver,
                        _declared_shape(hdu)))
        elif _cube_planes(hdu) and not any(e[0] == "PLANE" for e in out):  # the first cube, plane by plane
            out += [("PLANE", k, _declared_shape(hdu)[1:]) for k in range(1, _cube_planes(hdu) + 1)]
    out.sort(key=lambda t: (t[0] != "SCI", t[0], t[1]))
    return out


def _as_2d(arr: np.ndarray | None, path: Path, what: str, plane: int | None = None) -> np.ndarray:
    if arr is None:
        raise ImageLoadError(path, f"{what} has no data")
    if plane is not None and arr.ndim == 3:
        return arr[plane - 1]
    if arr.ndim < 2:
        raise ImageLoadError(path, f"{what} is {arr.ndim}-D, not a 2-D image")
    if arr.ndim > 2:
        squeezed = arr.reshape([s for s in arr.shape if s != 1]) if sum(s > 1 for s in arr.shape) >= 2 else arr
        if squeezed.ndim != 2:
            raise ImageLoadError(path, f"{what} is a {arr.ndim}-D cube of shape {arr.shape}; choose one plane"
                                 + (f" (--ext PLANE,k, k = 1 to {arr.shape[0]})" if arr.ndim == 3
                                    and arr.shape[0] <= MAX_PLANES else ""))
        arr = squeezed
    if 0 in arr.shape:
        raise ImageLoadError(path, f"{what} has zero size {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise ImageLoadError(path, f"{what} has non-numeric pixels ({arr.dtype})")
    return arr


