"""Stamps: cut-outs around a source, ready for restoration.

A stamp keeps the cut-out WCS (``astropy.nddata.Cutout2D``, which carries SIP
distortion along), its position in the parent image, and two masks: pixels that
lay outside the parent image (filled with noise matching the local background,
METHOD §3.3) and bad pixels (DQ-flagged or non-finite) that were in-painted.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.convolution import Gaussian2DKernel, interpolate_replace_nans
from astropy.nddata import Cutout2D
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from galviewer.core.io.fits import Image, ImageMeta, header_readnoise
from galviewer.core.measure.background import background
from galviewer.errors import ParameterError

__all__ = ["DEFAULT_CONTEXT", "MAX_CONTEXT", "Stamp", "check_context", "cutout", "refine_centroid", "stamp_from_array"]

# Context margin (px) of a restoration at a position — a click, ``restore --xy``/``--catalog``, a batch: the cut-out
# is this much larger on every side and the central stamp is kept.  Measured on the real HST set
# (benchmarks/results/realdata.md, anchored): with 8 px every galaxy meets issue 11's χ², flux, rms, border and
# new-source limits; with none the dwarf's RS/LQ rms (1.59) and 1-px rim (border 4.06) fail (realdata_context0.md);
# with 4 px the faint galaxy keeps 87 % of its flux, with 16 px the group gains 6 % (realdata_context16.md).  It
# costs 1.3–1.7× the restoration's time (README, Context margin).
DEFAULT_CONTEXT = 8
MAX_CONTEXT = 256


def check_context(context: Any, name: str = "context") -> int:
    """A context margin in pixels, 0–:data:`MAX_CONTEXT`, as an int; ParameterError naming ``name`` otherwise."""
    if not (isinstance(context, int | np.integer) and 0 <= context <= MAX_CONTEXT):
        raise ParameterError(name, f"must be 0–{MAX_CONTEXT} px, got {context!r}")
    return int(context)

MAX_STAMP_PIXELS = 1 << 26
# A stamp may lie at most this fraction outside its parent image (a source in a corner: 75 %);
# beyond it the network would mostly see the synthetic noise that fills the outside.
MAX_PADDED_FRACTION = 0.8


@dataclass
class Stamp:
    """A cut-out ready for restoration.

    Attributes
    ----------
    lq : numpy.ndarray
        float32 pixels in the parent's units, with padding and in-painting applied.
    err : numpy.ndarray or None
        1-σ uncertainty (padded/in-painted pixels get the background rms).
    bad : numpy.ndarray of bool
        Pixels that were in-painted (DQ-flagged or non-finite in the parent).
    padded : numpy.ndarray of bool
        Pixels outside the parent image, filled with background noise.
    wcs : astropy.wcs.WCS or None
        WCS of the stamp's own pixel grid.
    origin : (int, int)
        Parent pixel (x, y) of stamp pixel (0, 0).
    center : (float, float)
        Refined source position (x, y) in parent pixels, 0-based.
    requested : (float, float)
        Position asked for.
    background_level, background_rms : float
        Local background estimate used for padding and in-painting.
    source, ext : str
        Parent file and extension (empty for arrays).
    meta : ImageMeta or None
        Parent header facts.
    """

    lq: np.ndarray
    err: np.ndarray | None
    bad: np.ndarray
    padded: np.ndarray
    wcs: WCS | None
    origin: tuple[int, int]
    center: tuple[float, float]
    requested: tuple[float, float]
    background_level: float
    background_rms: float
    source: str = ""
    ext: str = ""
    meta: ImageMeta | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        return self.lq.shape  # type: ignore[return-value]

    @property
    def center_in_stamp(self) -> tuple[float, float]:
        """Refined source position in stamp pixels (x, y)."""
        return self.center[0] - self.origin[0], self.center[1] - self.origin[1]


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer):
        ny = nx = int(size)
    else:
        try:
            ny, nx = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ParameterError("size", f"must be an int or (ny, nx), got {size!r}") from None
    if ny < 8 or nx < 8:
        raise ParameterError("size", f"stamps must be at least 8×8 pixels, got {ny}×{nx}")
    if ny * nx > MAX_STAMP_PIXELS:
        raise ParameterError("size", f"{ny}×{nx} is too large for one stamp; restore it as a tiled region")
    return ny, nx


def _inpaint(
    lq: np.ndarray, bad: np.ndarray, level: float, rms: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Replace bad pixels by a Gaussian-weighted interpolation of their good neighbours (astropy).

    Returns the filled image and the mask of pixels with no good neighbour within reach of the kernel,
    which get the background level plus noise of the given rms (astropy's warning about them is
    replaced by that mask, which the caller judges).
    """
    tmp = lq.astype(np.float64)
    tmp[bad] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        filled = interpolate_replace_nans(tmp, Gaussian2DKernel(1.5), boundary="extend")
    left = ~np.isfinite(filled)
    if left.any():
        filled[left] = level + rng.normal(0.0, rms, size=int(left.sum())) if rms > 0 else level
    return filled.astype(np.float32), left


# In-painting must reach every pixel this close to the source centre, or the stamp is refused.
CENTRE_RADIUS = 5.0


def _check_centre(unreached: np.ndarray, cx: float, cy: float, where: str) -> None:
    """Refuse a stamp whose source centre lies in a masked hole too large to in-paint."""
    if not unreached.any():
        return
    yy, xx = np.indices(unreached.shape)
    near = (xx - cx) ** 2 + (yy - cy) ** 2 <= CENTRE_RADIUS**2
    hit = int((unreached & near).sum())
    if hit:
        raise ParameterError("position", f"the source at {where} lies in a hole of {int(unreached.sum())} bad "
                             f"(DQ-flagged, masked or NaN) pixels too wide to in-paint ({hit} of them within "
                             f"{CENTRE_RADIUS:g} px of the centre): there is no data to restore there")


def refine_centroid(
    data: np.ndarray, x: float, y: float, box: int = 9, bad: np.ndarray | None = None, iterations: int = 20
) -> tuple[float, float]:
    """Move (x, y) to the source's windowed centroid (SExtractor's XWIN_IMAGE/YWIN_IMAGE).

    The background (median of a 3·box region) is subtracted and the first moments
    are weighted by a Gaussian window (σ = box/4) centred on the current estimate,
    iterated to convergence: unbiased for symmetric sources wherever the start
    lies.  The result never moves further than ``box`` pixels from the start;
    when there is no positive signal the start position is returned.
    """
    ny, nx = data.shape
    half = box // 2
    sig2 = 2.0 * (box / 4.0) ** 2
    cx, cy = float(x), float(y)
    ix, iy = round(cx), round(cy)
    x0, x1 = max(ix - 3 * half, 0), min(ix + 3 * half + 1, nx)
    y0, y1 = max(iy - 3 * half, 0), min(iy + 3 * half + 1, ny)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return cx, cy
    region = np.asarray(data[y0:y1, x0:x1], dtype=np.float64)
    ok = np.isfinite(region)
    if bad is not None:
        ok &= ~np.asarray(bad[y0:y1, x0:x1], dtype=bool)
    if ok.sum() < 9:
        return cx, cy
    sub = np.where(ok, region - np.median(region[ok]), 0.0)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    for _ in range(iterations):
        w = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / sig2) * sub
        total = w.sum()
        if not total > 0:
            return float(x), float(y)
        nxc, nyc = float((w * xx).sum() / total), float((w * yy).sum() / total)
        if abs(nxc - x) > box or abs(nyc - y) > box:
            return float(x), float(y)
        done = abs(nxc - cx) < 1e-3 and abs(nyc - cy) < 1e-3
        cx, cy = nxc, nyc
        if done:
            break
    return cx, cy


def cutout(
    image: Image | np.ndarray,
    x: float,
    y: float,
    size: int | tuple[int, int] = 64,
    *,
    refine: bool = True,
    context: int = 0,
    err: np.ndarray | None = None,
    bad: np.ndarray | None = None,
    wcs: WCS | None = None,
    seed: int | None = None,
) -> Stamp:
    """Cut a stamp centred on a source.

    Parameters
    ----------
    image : Image or array_like
        Parent image.  With an array, ``err``, ``bad`` and ``wcs`` may be given.
    x, y : float
        0-based pixel position of the source (x = column, y = row).
    size : int or (ny, nx)
        Stamp size; 64 as in the paper.
    refine : bool
        Move the centre to the centroid of the source first.
    context : int
        Context margin (0–256 px): the stamp returned is ``size + 2·context`` wide, for
        :func:`~galviewer.core.restore.engine.crop_restoration` to bring back to ``size`` after restoring.  How much
        of it may lie outside the image is judged on the central ``size`` (the margin may fall off the image).
    seed : int, optional
        Seed for the noise that fills pixels outside the image; by default it is
        derived from the position, so the same click gives the same stamp.

    Returns
    -------
    Stamp
        The refined centre sits at stamp pixel ``(nx // 2, ny // 2)``.

    Raises
    ------
    ParameterError
        For a position outside the image, a bad size or mismatched arrays.
    """
    core_ny, core_nx = _size(size)
    c = check_context(context)
    ny, nx = _size((core_ny + 2 * c, core_nx + 2 * c))
    if isinstance(image, Image):
        data, err_arr, bad_arr, w = image.data, image.err, image.bad, image.wcs
        source, ext, meta = str(image.path), f"{image.meta.extname},{image.meta.extver}", image.meta
        noise = header_readnoise(image.header)
        extra = {"readnoise": noise} if math.isfinite(noise) else {}
    else:
        try:
            data = np.asarray(np.ma.getdata(image))
        except (ValueError, TypeError) as exc:
            raise ParameterError("image", f"is not a rectangular numeric array: {exc}") from None
        err_arr, bad_arr, w = err, bad, wcs
        if isinstance(image, np.ma.MaskedArray) and np.ma.getmask(image) is not np.ma.nomask:
            mask = np.ma.getmaskarray(image)
            bad_arr = mask if bad_arr is None or np.shape(bad_arr) != mask.shape else mask | np.asarray(bad_arr, bool)
        source, ext, meta, extra = "", "", None, {}
        if data.ndim != 2 or 0 in data.shape:
            raise ParameterError("image", f"must be a non-empty 2-D array, got shape {data.shape}")
        for name, arr in (("err", err_arr), ("bad", bad_arr)):
            if arr is not None and np.shape(arr) != data.shape:
                raise ParameterError(name, f"shape {np.shape(arr)} differs from the image's {data.shape}")
    if not (np.isfinite(x) and np.isfinite(y)):
        raise ParameterError("position", f"x and y must be finite, got ({x}, {y})")
    height, width = data.shape
    if not (-0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5):
        raise ParameterError("position", f"({x:.1f}, {y:.1f}) lies outside the {width}×{height} image")
    cx, cy = (refine_centroid(data, x, y, bad=bad_arr) if refine else (float(x), float(y)))
    ox, oy = round(cx) - nx // 2, round(cy) - ny // 2
    position = (ox + (nx - 1) / 2.0, oy + (ny - 1) / 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        cut = Cutout2D(np.asarray(data), position, (ny, nx), wcs=w, mode="partial", fill_value=np.nan, copy=True)
    got = (cut.origin_original[0] - cut.origin_cutout[0], cut.origin_original[1] - cut.origin_cutout[1])
    if got != (ox, oy):  # pragma: no cover - guards against a change in astropy's convention
        raise RuntimeError(f"Cutout2D placed the stamp at {got}, expected {(ox, oy)}")
    raw = np.asarray(cut.data, dtype=np.float64)
    # a float64 value beyond float32's range (a pixel the reader marked bad) becomes NaN here, not an overflow
    lq = np.where(np.abs(raw) < np.finfo(np.float32).max, raw, np.nan).astype(np.float32)
    padded = np.ones((ny, nx), dtype=bool)
    padded[cut.slices_cutout] = False
    outside = float(padded[c: c + core_ny, c: c + core_nx].mean())
    if outside > MAX_PADDED_FRACTION:
        raise ParameterError("size", f"a {core_nx}×{core_ny} stamp at ({cx:.1f}, {cy:.1f}) would lie "
                             f"{100 * outside:.1f} % "
                             f"outside the {width}×{height} image (at most {100 * MAX_PADDED_FRACTION:.0f} % may be "
                             "filled with synthetic noise); choose a smaller size")
    badmask = np.zeros((ny, nx), dtype=bool)
    if bad_arr is not None:
        badmask[cut.slices_cutout] = np.asarray(bad_arr[cut.slices_original], dtype=bool)
    badmask |= ~np.isfinite(lq) & ~padded
    err_stamp = None
    if err_arr is not None:
        err_stamp = np.full((ny, nx), np.nan, dtype=np.float32)
        err_stamp[cut.slices_cutout] = np.asarray(err_arr[cut.slices_original], dtype=np.float32)
    valid = ~(padded | badmask)
    if valid.sum() < 16:
        raise ParameterError("position", f"the stamp at ({cx:.1f}, {cy:.1f}) holds fewer than 16 usable pixels")
    bkg = background(lq, mask=~valid)
    rng = np.random.default_rng(seed if seed is not None else [abs(ox), abs(oy), nx, ny, int(ox < 0), int(oy < 0)])
    rms = bkg.rms if np.isfinite(bkg.rms) else 0.0
    if padded.any():
        lq[padded] = bkg.level + rng.normal(0.0, rms, size=int(padded.sum()))
    if badmask.any():
        lq, unreached = _inpaint(lq, badmask, bkg.level, rms, rng)
        _check_centre(unreached, cx - ox, cy - oy, f"({cx:.1f}, {cy:.1f})")
    if err_stamp is not None:
        fill = ~np.isfinite(err_stamp) | padded | badmask | (err_stamp <= 0)
        err_stamp[fill] = rms
    return Stamp(
        lq=lq,
        err=err_stamp,
        bad=badmask,
        padded=padded,
        wcs=cut.wcs,
        origin=(int(ox), int(oy)),
        center=(float(cx), float(cy)),
        requested=(float(x), float(y)),
        background_level=bkg.level,
        background_rms=rms,
        source=source,
        ext=ext,
        meta=meta,
        extra=extra,
    )


def stamp_from_array(array: np.ndarray, name: str = "image") -> Stamp:
    """Wrap a plain 2-D array as a stamp (no padding; non-finite and masked pixels are in-painted).

    A :class:`numpy.ma.MaskedArray`'s mask marks bad pixels, as DQ flags do for a FITS image.

    Raises
    ------
    ParameterError
        For arrays that are not 2-D, are empty, are ragged or not numeric, or have no usable pixel.
    """
    try:
        masked = np.ma.getmaskarray(array) if isinstance(array, np.ma.MaskedArray) else None
        a = np.asarray(np.ma.getdata(array))
    except (ValueError, TypeError) as exc:
        raise ParameterError(name, f"is not a rectangular numeric array: {exc}") from None
    if a.ndim != 2 or 0 in a.shape:
        raise ParameterError(name, f"must be a non-empty 2-D array, got shape {a.shape}")
    if a.dtype.kind not in "iuf":
        raise ParameterError(name, f"must hold real numbers, got dtype {a.dtype}")
    with np.errstate(over="ignore"):
        lq = np.asarray(a, dtype=np.float32).copy()
    finite = np.isfinite(lq)
    if masked is not None:
        finite &= ~masked
    if not finite.any():
        raise ParameterError(name, "has no finite, unmasked pixel")
    bkg = background(lq, mask=~finite)
    bad = ~finite
    ny, nx = lq.shape
    if bad.any():
        lq, unreached = _inpaint(lq, bad, bkg.level, 0.0, np.random.default_rng(0))
        _check_centre(unreached, (nx - 1) / 2.0, (ny - 1) / 2.0, f"the centre of {name}")
    return Stamp(
        lq=lq,
        err=None,
        bad=bad,
        padded=np.zeros_like(bad),
        wcs=None,
        origin=(0, 0),
        center=((nx - 1) / 2.0, (ny - 1) / 2.0),
        requested=((nx - 1) / 2.0, (ny - 1) / 2.0),
        background_level=bkg.level,
        background_rms=bkg.rms,
    )
