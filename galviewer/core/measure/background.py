"""Background level and noise of a stamp, as SExtractor estimates them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.stats import sigma_clipped_stats

from galviewer.errors import ParameterError

__all__ = ["Background", "background", "sky_plane", "usable_pixels"]


@dataclass(frozen=True)
class Background:
    """Result of :func:`background`.

    Attributes
    ----------
    level : float
        Background level (mode estimate or median, see ``method``).
    rms : float
        σ-clipped standard deviation.
    mean, median : float
        σ-clipped mean and median.
    method : str
        ``"mode"`` (2.5·median − 1.5·mean) or ``"median"`` (crowded field fallback).
    npix : int
        Pixels used.
    """

    level: float
    rms: float
    mean: float
    median: float
    method: str
    npix: int


def usable_pixels(data: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Boolean map of pixels that are finite and not masked.

    Raises
    ------
    ParameterError
        If ``mask`` does not have the image's shape.
    """
    valid = np.isfinite(data)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != data.shape:
            raise ParameterError("mask", f"shape {m.shape} differs from the image's {data.shape}")
        valid &= ~m
    return valid


def background(
    image: np.ndarray, mask: np.ndarray | None = None, sigma: float = 3.0, maxiters: int = 10
) -> Background:
    """Estimate the background level and rms with σ-clipping and the SExtractor mode.

    The level is ``2.5·median − 1.5·mean`` of the σ-clipped pixels, unless the
    mean and median differ by more than 30 % of σ (a crowded or source-dominated
    region), where SExtractor falls back to the median.

    Parameters
    ----------
    image : array_like
        2-D (or any-D) pixels; non-finite values are ignored.
    mask : array_like of bool, optional
        True for pixels to ignore.
    sigma : float
        Clipping threshold in σ.
    maxiters : int
        Clipping iterations.

    Returns
    -------
    Background

    Raises
    ------
    ParameterError
        If no finite, unmasked pixel is left or the mask has another shape.
    """
    data = np.asarray(image, dtype=np.float64)
    valid = usable_pixels(data, mask)
    n = int(valid.sum())
    if n == 0:
        raise ParameterError("image", "no finite, unmasked pixels to estimate a background from")
    values = data[valid]
    mean, median, std = sigma_clipped_stats(values, sigma=sigma, maxiters=maxiters)
    mean, median, std = float(mean), float(median), float(std)
    if std > 0 and abs(mean - median) / std > 0.3:
        return Background(median, std, mean, median, "median", n)
    return Background(2.5 * median - 1.5 * mean, std, mean, median, "mode", n)


def sky_plane(image: np.ndarray, sky: np.ndarray) -> tuple[float, np.ndarray | None]:
    """A least-squares plane through the ``sky`` pixels (True = no source, usable) and how significant its slope is.

    Returns
    -------
    significance : float
        The larger of abs(slope) / its error along x and y, the errors from the σ-clipped scatter about the plane
        (white noise: correlated noise makes this an overestimate, so use a generous threshold); NaN with fewer
        than 50 sky pixels.
    plane : numpy.ndarray or None
        The plane evaluated on the whole image (None where the significance is NaN).
    """
    img = np.asarray(image, dtype=np.float64)
    sky = np.asarray(sky, dtype=bool) & np.isfinite(img)
    if int(sky.sum()) < 50:
        return float("nan"), None
    yy, xx = np.nonzero(sky)
    xm, ym = xx.mean(), yy.mean()
    a = np.column_stack([np.ones(xx.size), xx - xm, yy - ym])
    coef, *_ = np.linalg.lstsq(a, img[sky], rcond=None)
    resid = img[sky] - a @ coef
    keep = np.abs(resid - np.median(resid)) < 3.0 * 1.4826 * np.median(np.abs(resid - np.median(resid))) + 1e-300
    if keep.sum() >= 50:  # once more without the outliers (a stray unmasked source)
        coef, *_ = np.linalg.lstsq(a[keep], img[sky][keep], rcond=None)
        resid = img[sky][keep] - a[keep] @ coef
        a = a[keep]
    sd = float(np.std(resid))
    if not sd > 0:
        return float("nan"), None
    err = sd * np.sqrt(np.diag(np.linalg.inv(a.T @ a)))
    gy, gx = np.mgrid[:img.shape[0], :img.shape[1]].astype(np.float64)
    plane = coef[0] + coef[1] * (gx - xm) + coef[2] * (gy - ym)
    return float(max(abs(coef[1]) / err[1], abs(coef[2]) / err[2])), plane
