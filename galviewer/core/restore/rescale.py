"""From the network's normalised output back to the input's units, without any ground truth (eq. 8–9 of
Park et al. 2024 for stamps, a least-squares fit of PSF⊗RS to LQ for regions)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from galviewer.core.measure.background import background
from galviewer.core.psf.degrade import convolve
from galviewer.errors import ParameterError, RestoreError

__all__ = ["rescale_to_physical"]


def convolve32(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """PSF convolution kept in float32 for large images (a 4096² float64 copy alone is 128 MB)."""
    if image.size <= 256 * 256:
        return convolve(image, psf)
    from scipy import ndimage

    k = np.asarray(psf, dtype=np.float64)[::-1, ::-1]
    return ndimage.convolve(np.asarray(image, dtype=np.float32), k, output=np.float32, mode="reflect")


def _lstsq_line(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None, rows: int = 256) -> tuple[float, float]:
    """Least-squares ``y ≈ s·x + c`` over unmasked pixels, accumulating the normal equations by row blocks.

    Float64 sums over blocks of ``rows`` rows keep the memory to a few blocks whatever the image size.
    """
    n = sx = sy = sxx = sxy = 0.0
    for r0 in range(0, x.shape[0], rows):
        xb = np.asarray(x[r0: r0 + rows], dtype=np.float64)
        yb = np.asarray(y[r0: r0 + rows], dtype=np.float64)
        if mask is not None:
            keep = ~mask[r0: r0 + rows]
            xb, yb = xb[keep], yb[keep]
        xb, yb = xb.ravel(), yb.ravel()
        n += xb.size
        sx += float(xb.sum())
        sy += float(yb.sum())
        sxx += float(np.dot(xb, xb))
        sxy += float(np.dot(xb, yb))
    if n < 2:
        return float("nan"), float("nan")
    var = sxx - sx * sx / n
    if not var > 0:
        return float("nan"), float("nan")
    s = (sxy - sx * sy / n) / var
    return float(s), float((sy - s * sx) / n)


def _central_mean(img: np.ndarray, cx: float, cy: float, half: int = 2) -> float:
    ny, nx = img.shape
    ix = min(max(round(cx), half), nx - half)
    iy = min(max(round(cy), half), ny - half)
    return float(np.mean(img[iy - half : iy + half, ix - half : ix + half]))


def rescale_to_physical(
    lq: np.ndarray,
    rs: np.ndarray,
    psf: np.ndarray,
    *,
    method: Literal["paper", "lstsq"] = "paper",
    center: tuple[float, float] | None = None,
    mask: np.ndarray | None = None,
) -> tuple[float, float, str]:
    """Scale and offset mapping a normalised restoration to the LQ image's units.

    ``paper`` is eq. 8–9 of Park et al.: with l = background level (σ-clipped
    SExtractor mode) and u = mean of the central 4×4 pixels, measured on LQ and
    on PSF⊗RS, ``s = (u_LQ − l_LQ)/(u_RS − l_RS)`` and ``c = −s·l_RS + l_LQ``.
    ``lstsq`` fits ``LQ ≈ s·(PSF⊗RS) + c`` over all usable pixels, for regions
    with no source at their centre.

    Returns
    -------
    scale, offset : float
    method : str
        The method actually used (``"minmax"`` is reported by the caller's fallback).

    Raises
    ------
    RestoreError
        When the mapping is undefined (no contrast, or a non-positive scale).
    """
    conv = convolve32(rs, psf)
    if method == "paper":
        ny, nx = lq.shape
        cx, cy = center if center is not None else (nx // 2, ny // 2)
        l_lq = background(lq, mask=mask).level
        l_rs = background(conv, mask=mask).level
        u_lq = _central_mean(lq, cx, cy)
        u_rs = _central_mean(conv, cx, cy)
        denom = u_rs - l_rs
        s = (u_lq - l_lq) / denom if denom != 0 else float("nan")
        c = -s * l_rs + l_lq
    elif method == "lstsq":
        s, c = _lstsq_line(conv, lq, mask)
    else:
        raise ParameterError("rescale", f"unknown method {method!r}")
    if not (math.isfinite(s) and math.isfinite(c) and s > 0):
        raise RestoreError(f"the {method} rescaling is undefined for this input (scale {s:.3g})", "rescale")
    return float(s), float(c), method

