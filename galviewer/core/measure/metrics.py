"""Image-quality metrics of the paper (§4.1): PSNR (eq. 3–4) and SSIM (eq. 5)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from galviewer.errors import ParameterError

__all__ = ["psnr", "ssim"]


def _pair(gt: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(gt, dtype=np.float64)
    b = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or 0 in a.shape:
        raise ParameterError("gt", f"must be a non-empty 2-D image, got shape {a.shape}")
    if b.shape != a.shape:
        raise ParameterError("x", f"shape {b.shape} differs from the ground truth's {a.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ParameterError("gt" if not np.isfinite(a).all() else "x", "contains NaN or inf")
    return a, b


def psnr(gt: np.ndarray, x: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, with MAX = the peak of the ground truth (eq. 3–4).

    Parameters
    ----------
    gt : array_like
        Ground-truth image (for the paper's numbers: min-max normalised).
    x : array_like
        Image to score, same shape.

    Returns
    -------
    float
        ``10·log10(max(gt)² / MSE)``; ``inf`` for identical images.

    Raises
    ------
    ParameterError
        For mismatched shapes, non-finite values or a non-positive peak.
    """
    a, b = _pair(gt, x)
    peak = float(a.max())
    if not peak > 0:
        raise ParameterError("gt", f"peak must be > 0 for PSNR, got {peak}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak**2 / mse))


def ssim(gt: np.ndarray, x: np.ndarray, data_range: float | None = None, sigma: float = 1.5) -> float:
    """Structural similarity (eq. 5) with a Gaussian window of σ = 1.5 pixels.

    Local means, variances and covariance are Gaussian-weighted (window truncated
    at 3.5σ, population statistics), with C1 = (0.01·L)², C2 = (0.03·L)² and
    L = ``data_range``; the mean is taken over pixels at least one window
    half-width from the border — the conventions of Wang et al. (2004) as
    implemented by scikit-image's ``structural_similarity(gaussian_weights=True)``.

    Parameters
    ----------
    gt, x : array_like
        Images of the same shape.
    data_range : float, optional
        Dynamic range L; default the ground truth's peak-to-peak (1 for min-max normalised stamps).
    sigma : float
        Window σ in pixels.

    Returns
    -------
    float
    """
    a, b = _pair(gt, x)
    if data_range is None:
        data_range = float(np.ptp(a))
    if not data_range > 0:
        raise ParameterError("data_range", f"must be > 0, got {data_range}")
    if not sigma > 0:
        raise ParameterError("sigma", f"must be > 0, got {sigma}")
    truncate = 3.5
    half = int(truncate * sigma + 0.5)
    if min(a.shape) < 2 * half + 1:
        raise ParameterError("gt", f"image {a.shape} is smaller than the {2 * half + 1}-pixel SSIM window")

    def blur(img: np.ndarray) -> np.ndarray:
        return gaussian_filter(img, sigma, truncate=truncate, mode="reflect")

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(smap[half:-half, half:-half].mean())
