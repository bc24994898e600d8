"""Point-spread-function kernels and FWHM conversions.

The restoration model was trained (METHOD §3) on LQ images made by convolving
with a 7×7 Gaussian matching the HST/ACS PSF at 0.05″/pixel: effective
σ ≈ 0.8 px, FWHM ≈ 1.88 px ≈ 0.094″.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from galviewer.errors import ParameterError

__all__ = [
    "ACS_WFC_FWHM_ARCSEC",
    "ACS_WFC_PIXEL_SCALE",
    "DEFAULT_LQ_FWHM_PIX",
    "JWST_NIRCAM_FWHM_ARCSEC",
    "fwhm_to_sigma",
    "gaussian_psf",
    "hst_fwhm_pixels",
    "pixelated_gaussian",
    "sigma_to_fwhm",
]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
ACS_WFC_PIXEL_SCALE = 0.05
ACS_WFC_FWHM_ARCSEC = 0.094
DEFAULT_LQ_FWHM_PIX = ACS_WFC_FWHM_ARCSEC / ACS_WFC_PIXEL_SCALE
# NIRCam F200W, the paper's reference band for the "JWST quality" targets.
JWST_NIRCAM_FWHM_ARCSEC = 0.066


def fwhm_to_sigma(fwhm: float) -> float:
    """Gaussian σ from FWHM."""
    return float(fwhm) / FWHM_PER_SIGMA


def sigma_to_fwhm(sigma: float) -> float:
    """Gaussian FWHM from σ."""
    return float(sigma) * FWHM_PER_SIGMA


def hst_fwhm_pixels(pixel_scale: float) -> float:
    """ACS/WFC PSF FWHM in pixels of the given scale (arcsec/pixel)."""
    if not (math.isfinite(pixel_scale) and pixel_scale > 0):
        raise ParameterError("pixel_scale", f"must be a positive number of arcsec per pixel, got {pixel_scale}")
    return ACS_WFC_FWHM_ARCSEC / pixel_scale


def pixelated_gaussian(shape: tuple[int, int], x: float, y: float, fwhm: float) -> np.ndarray:
    """A unit-flux circular Gaussian centred at 0-based pixel ``(x, y)``, integrated over square pixels.

    Parameters
    ----------
    shape : (int, int)
        Image shape (rows, columns).
    x, y : float
        Centre (column, row); pixel centres are at integers.
    fwhm : float
        Full width at half maximum in pixels.

    Returns
    -------
    numpy.ndarray
        The image; its sum is below 1 where the profile extends past the edges.
    """
    s = math.sqrt(2.0) * fwhm_to_sigma(fwhm)

    def line(n: int, c: float) -> np.ndarray:
        return np.diff(0.5 * erf((np.arange(n + 1) - 0.5 - c) / s))

    return np.outer(line(shape[0], y), line(shape[1], x))


def gaussian_psf(fwhm: float = DEFAULT_LQ_FWHM_PIX, size: int = 7) -> np.ndarray:
    """A circular Gaussian PSF integrated over square pixels, normalised to unit sum.

    Parameters
    ----------
    fwhm : float
        Full width at half maximum in pixels.
    size : int
        Odd side length of the kernel (METHOD §3: 7).

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` float64 kernel centred on the middle pixel.
    """
    if not (isinstance(size, int | np.integer) and size >= 1 and size % 2 == 1):
        raise ParameterError("size", f"PSF size must be a positive odd integer, got {size!r}")
    if not (math.isfinite(fwhm) and fwhm > 0):
        raise ParameterError("fwhm", f"PSF FWHM must be a positive number of pixels, got {fwhm!r}")
    c = (size - 1) / 2.0
    kernel = pixelated_gaussian((size, size), c, c, fwhm)
    return kernel / kernel.sum()
