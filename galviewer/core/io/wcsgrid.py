"""Lines of constant RA and Dec over an image, for a coordinate grid overlay (as DS9's *Coordinate Grid*).

The lines are traced through the image's full WCS (``all_world2pix``: SIP and lookup-table distortions
included), so they bend where the sky does; spacing is chosen from round values (seconds of time for RA,
arcseconds for Dec) to give a few lines across the image.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from galviewer.errors import ParameterError

__all__ = ["GridLine", "format_dec", "format_ra", "wcs_grid"]

# Candidate spacings: RA in seconds of time, Dec in arcseconds.
_RA_STEPS_S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
_DEC_STEPS_AS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 18000, 36000)


@dataclass(frozen=True)
class GridLine:
    """One grid line in 0-based pixel coordinates (NaN where it leaves the image)."""

    axis: str  # "ra" or "dec"
    value: float  # degrees
    label: str
    x: np.ndarray
    y: np.ndarray

    @property
    def label_position(self) -> tuple[float, float] | None:
        """Where to write the label: the line's first point inside the image, or None."""
        ok = np.flatnonzero(np.isfinite(self.x) & np.isfinite(self.y))
        return (float(self.x[ok[0]]), float(self.y[ok[0]])) if ok.size else None


def _decimals(step: float) -> int:
    return 0 if step >= 1 else math.ceil(-math.log10(step) - 1e-9)


def format_ra(deg: float, step_s: float = 1.0) -> str:
    """RA in hours as ``hh:mm:ss.s`` with as many decimals as the spacing needs.

    Not :func:`galviewer.core.io.fits.sexagesimal` (astropy's ``Angle.to_string``, fixed precision): a grid
    label's precision follows its spacing, and astropy rounds 23:59:59.998 to "24:00:00" at precision 0.
    """
    d = _decimals(step_s)
    total = round((deg % 360.0) / 15.0 * 3600.0, d) % 86400.0
    h, rem = divmod(total, 3600.0)
    m, s = divmod(rem, 60.0)
    return f"{int(h):02d}:{int(m):02d}:{s:0{3 + d if d else 2}.{d}f}"


def format_dec(deg: float, step_as: float = 1.0) -> str:
    """Dec as ``±dd:mm:ss.s`` with as many decimals as the spacing needs."""
    d = _decimals(step_as)
    sign = "-" if deg < 0 else "+"
    total = round(abs(deg) * 3600.0, d)
    dd, rem = divmod(total, 3600.0)
    m, s = divmod(rem, 60.0)
    return f"{sign}{int(dd):02d}:{int(m):02d}:{s:0{3 + d if d else 2}.{d}f}"


def _step(span: float, candidates: tuple[float, ...], unit_deg: float, target: int) -> float:
    for c in candidates:
        if span / (c * unit_deg) <= target:
            return c
    return candidates[-1]


def wcs_grid(wcs, shape: tuple[int, int], *, lines: int = 5, samples: int = 160,
             box: tuple[float, float, float, float] | None = None) -> list[GridLine]:
    """Lines of constant RA and Dec crossing an image.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        Celestial WCS of the image (distortions honoured).
    shape : (ny, nx)
        Image shape.
    lines : int
        About how many lines of each kind across the image (at most this many + 1).
    samples : int
        Points along each line.
    box : (x0, x1, y0, y1), optional
        The part of the image on show (pixel coordinates; clipped to the image): the spacing is chosen for it and
        the lines are traced across it only, so that a zoomed view gets finer, labelled lines (the viewer passes
        its view).  Default: the whole image.

    Returns
    -------
    list of GridLine
        RA lines first; empty when the WCS gives no finite sky positions over the image.

    Raises
    ------
    ParameterError
        For a WCS without celestial axes or a bad shape.
    """
    if wcs is None or not getattr(wcs, "has_celestial", False):
        raise ParameterError("wcs", "the image has no celestial WCS: no coordinate grid")
    ny, nx = (int(v) for v in shape)
    if ny < 2 or nx < 2:
        raise ParameterError("shape", f"must be at least 2×2, got {shape}")
    w = wcs.celestial
    x0, x1, y0, y1 = -0.5, nx - 0.5, -0.5, ny - 0.5
    if box is not None:
        bx0, bx1 = sorted((float(box[0]), float(box[1])))
        by0, by1 = sorted((float(box[2]), float(box[3])))
        x0, x1, y0, y1 = max(x0, bx0), min(x1, bx1), max(y0, by0), min(y1, by1)
        if not (x1 - x0 >= 1 and y1 - y0 >= 1):
            return []  # the view shows (almost) none of the image
    gy, gx = np.meshgrid(np.linspace(y0, y1, 33), np.linspace(x0, x1, 33), indexing="ij")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ra, dec = w.all_pix2world(gx.ravel(), gy.ravel(), 0)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return []
    ra, dec = ra[ok], dec[ok]
    ra0 = float(np.median(ra))
    dra = (ra - ra0 + 180.0) % 360.0 - 180.0  # unwrapped around the image's centre: no jump at RA 0
    dec_lo, dec_hi = float(dec.min()), float(dec.max())
    ra_lo, ra_hi = ra0 + float(dra.min()), ra0 + float(dra.max())
    ra_step_s = _step(ra_hi - ra_lo, _RA_STEPS_S, 15.0 / 3600.0, lines)
    dec_step_as = _step(dec_hi - dec_lo, _DEC_STEPS_AS, 1.0 / 3600.0, lines)
    out: list[GridLine] = []
    pad_dec = 0.02 * (dec_hi - dec_lo) + 1e-9
    pad_ra = 0.02 * (ra_hi - ra_lo) + 1e-9

    def trace(r: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                x, y = w.all_world2pix(r, d, 0, quiet=True)
            except Exception:
                x, y = w.wcs_world2pix(r, d, 0)
        inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        return np.where(inside, x, np.nan), np.where(inside, y, np.nan)

    step = ra_step_s * 15.0 / 3600.0
    for v in np.arange(math.ceil(ra_lo / step) * step, ra_hi + 1e-12, step)[: lines * 3]:
        d = np.linspace(dec_lo - pad_dec, dec_hi + pad_dec, samples)
        x, y = trace(np.full_like(d, v % 360.0), d)
        if np.isfinite(x).sum() >= 2:
            out.append(GridLine("ra", float(v % 360.0), format_ra(v, ra_step_s), x, y))
    step = dec_step_as / 3600.0
    for v in np.arange(math.ceil(dec_lo / step) * step, dec_hi + 1e-12, step)[: lines * 3]:
        r = np.linspace(ra_lo - pad_ra, ra_hi + pad_ra, samples)
        x, y = trace(r % 360.0, np.full_like(r, v))
        if np.isfinite(x).sum() >= 2:
            out.append(GridLine("dec", float(v), format_dec(v, dec_step_as), x, y))
    return out
