"""Synthesis of low-quality (HST-like) images from high-quality ones (METHOD §3).

Shared by the app's tests and the trainer: PSF convolution, white Gaussian noise
and the correlated noise of drizzled ACS images (GalSim's COSMOS model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from galviewer.core.psf.gaussian import ACS_WFC_PIXEL_SCALE, DEFAULT_LQ_FWHM_PIX, gaussian_psf
from galviewer.errors import ParameterError

__all__ = ["Degraded", "add_noise", "convolve", "correlated_noise", "degrade"]


def _image(arr: np.ndarray, name: str = "image") -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim != 2 or 0 in a.shape:
        raise ParameterError(name, f"must be a non-empty 2-D array, got shape {a.shape}")
    return a


def convolve(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Convolve a 2-D image with a PSF kernel (same size, mirror-reflected borders).

    Parameters
    ----------
    image : array_like
        2-D image.
    psf : array_like
        2-D kernel with odd sides, normally of unit sum.

    Returns
    -------
    numpy.ndarray
        float64 image of the input's shape.
    """
    a = _image(image)
    k = np.asarray(psf, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ParameterError("psf", f"must be a 2-D kernel with odd sides, got shape {k.shape}")
    if not np.isfinite(k).all():
        raise ParameterError("psf", "contains NaN or inf")
    if k.shape[0] * k.shape[1] > 121:
        from scipy.signal import oaconvolve

        pad = (k.shape[0] // 2, k.shape[1] // 2)
        padded = np.pad(a, ((pad[0], pad[0]), (pad[1], pad[1])), mode="symmetric")
        return oaconvolve(padded, k, mode="valid")
    return ndimage.convolve(a, k[::-1, ::-1], mode="reflect")


def add_noise(image: np.ndarray, rms: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise of the given rms."""
    if not (np.isfinite(rms) and rms >= 0):
        raise ParameterError("noise_rms", f"must be >= 0, got {rms}")
    a = _image(image)
    return a + rng.normal(0.0, rms, size=a.shape) if rms > 0 else a.copy()


def correlated_noise(
    shape: tuple[int, int], rms: float, rng: np.random.Generator, pixel_scale: float = ACS_WFC_PIXEL_SCALE
) -> np.ndarray:
    """Correlated noise with the correlation function of drizzled ACS F814W images.

    Uses GalSim's COSMOS noise model (``galsim.getCOSMOSNoise``, measured on
    0.03″ drizzled ACS images), drawn at ``pixel_scale`` and scaled to the
    requested per-pixel rms.

    Parameters
    ----------
    shape : (ny, nx)
    rms : float
        Per-pixel standard deviation of the result.
    rng : numpy.random.Generator
        Source of the GalSim seed, so results are reproducible.
    pixel_scale : float
        Arcsec per pixel of the target image.
    """
    import galsim

    if not (np.isfinite(rms) and rms >= 0):
        raise ParameterError("noise_rms", f"must be >= 0, got {rms}")
    ny, nx = int(shape[0]), int(shape[1])
    if ny < 1 or nx < 1:
        raise ParameterError("shape", f"must be positive, got {shape}")
    if rms == 0:
        return np.zeros((ny, nx))
    deviate = galsim.BaseDeviate(int(rng.integers(1, 2**31 - 1)))
    noise = galsim.getCOSMOSNoise(rng=deviate).withVariance(float(rms) ** 2)
    im = galsim.ImageD(nx, ny, scale=pixel_scale)
    im.addNoise(noise)
    out = im.array.copy()
    # The drawn field's variance follows the model; rescale the realisation to the requested rms exactly.
    std = out.std()
    return out * (rms / std) if std > 0 else out


@dataclass(frozen=True)
class Degraded:
    """An LQ image and how it was made."""

    lq: np.ndarray
    psf: np.ndarray
    noise_rms: float
    correlated: bool


def degrade(
    gt: np.ndarray,
    *,
    fwhm: float = DEFAULT_LQ_FWHM_PIX,
    noise_rms: float = 0.0,
    rng: np.random.Generator | None = None,
    correlated: bool = False,
    psf_size: int = 7,
    pixel_scale: float = ACS_WFC_PIXEL_SCALE,
) -> Degraded:
    """Make an HST-quality image: convolve with a Gaussian PSF and add noise (METHOD §3).

    Parameters
    ----------
    gt : array_like
        2-D high-quality image.
    fwhm : float
        PSF FWHM in pixels (default: ACS/WFC at 0.05″, 1.88 px).
    noise_rms : float
        Noise rms in the image's units.
    rng : numpy.random.Generator, optional
        Required when ``noise_rms > 0``.
    correlated : bool
        Use drizzle-like correlated noise instead of white noise.
    psf_size : int
        Kernel side (7 as in the paper).
    pixel_scale : float
        Arcsec per pixel (only used for correlated noise).

    Returns
    -------
    Degraded
    """
    psf = gaussian_psf(fwhm, psf_size)
    blurred = convolve(gt, psf)
    if noise_rms > 0:
        if rng is None:
            raise ParameterError("rng", "a numpy Generator is needed to add noise")
        if correlated:
            lq = blurred + correlated_noise(blurred.shape, noise_rms, rng, pixel_scale)
        else:
            lq = add_noise(blurred, noise_rms, rng)
    else:
        if noise_rms < 0 or not np.isfinite(noise_rms):
            raise ParameterError("noise_rms", f"must be >= 0, got {noise_rms}")
        lq = blurred
    return Degraded(lq=lq, psf=psf, noise_rms=float(noise_rms), correlated=bool(correlated and noise_rms > 0))
