"""Kron, isophotal and pixel-to-pixel photometry defined on LQ and applied unchanged to RS/GT (METHOD §4).

The source is detected on the background-subtracted LQ stamp with photutils
(``detect_sources``: ``npixels`` connected pixels above ``nsigma`` × the background
rms, on the stamp smoothed by a 2-px-FWHM Gaussian, as SExtractor does).  The
segment containing the stamp centre (else one within 3 px; none: not measured) is the source; the
other segments are masked.  Its Kron ellipse (``kron_params`` = SExtractor's
2.5, 1.4) and segment come from LQ's :class:`photutils.segmentation.SourceCatalog`,
and every other image is measured through ``detection_catalog=`` with the same
apertures, so LQ, RS and GT numbers are directly comparable.  One background model for LQ and its
restorations: LQ's σ-clipped SExtractor mode is subtracted from LQ and from RS alike (RS is in LQ's units and
must reproduce LQ above LQ's sky, so a sky offset of RS counts as its flux, as it does in the flux conservation);
only an independent image such as a ground truth (``own_background``) has its own estimated.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from galviewer.core.measure.background import background, usable_pixels
from galviewer.core.psf.degrade import convolve
from galviewer.core.psf.gaussian import gaussian_psf
from galviewer.errors import ParameterError

__all__ = ["ImagePhotometry", "Photometry", "photometry"]

# The source is the segment under the stamp centre, or one whose nearest pixel lies this close to it.
CENTRE_TOLERANCE = 3.0
# The segment under the centre is the source's own only if its centroid lies within CENTRE_TOLERANCE or this
# many rms semi-major axes of the centre (a large galaxy's centroid may sit off a clicked knot):
# else the position is on another source's light (a hot-mode fragment of a bright galaxy's wing).
OWNER_FRACTION = 1.0
# A sky tilted more than this (σ of the plane's slope; generous, as drizzled noise is correlated) makes the
# background of LQ and RS a plane through the sky around the sources instead of a constant.
SKY_TILT_SIGMA = 8.0
# Neighbours' segments (1.5σ isophotes) are grown by this much before a fit masks them: their wings lie beyond.
NEIGHBOUR_GROW = 2


@dataclass(frozen=True)
class ImagePhotometry:
    """Photometry of one image through the LQ-defined apertures (input units, background subtracted).

    Attributes
    ----------
    kron_flux, kron_flux_err : float
        Flux in the Kron ellipse.
    iso_flux, iso_flux_err : float
        Flux in the isophotal (segment) area.
    background : float
        Background level subtracted.
    fwhm : float
        FWHM (px) of a Gaussian fitted to the radial profile (photutils ``RadialProfile``).
    radii, profile, profile_err : numpy.ndarray
        Azimuthally averaged radial profile about the LQ centroid.
    cog_radii, cog : numpy.ndarray
        Curve of growth (flux within circular radius).
    r50_cog : float
        Radius enclosing half of the Kron flux, from the curve of growth.
    """

    kron_flux: float
    kron_flux_err: float
    iso_flux: float
    iso_flux_err: float
    background: float
    fwhm: float
    radii: np.ndarray
    profile: np.ndarray
    profile_err: np.ndarray
    cog_radii: np.ndarray
    cog: np.ndarray
    r50_cog: float


@dataclass
class Photometry:
    """Result of :func:`photometry`.

    Attributes
    ----------
    ok : bool
        False when no source was detected (then ``reason`` says why and the numbers are NaN).
    x, y : float
        LQ centroid (0-based pixels).
    kron_a, kron_b, theta : float
        Kron ellipse semi-axes (px, already multiplied by the Kron radius) and angle (rad, from +x).
    segment_area : int
        Pixels of the isophotal area.
    segment, kron_mask : numpy.ndarray of bool
        The isophotal area and the Kron ellipse (pixel centres inside).
    images : dict of str to ImagePhotometry
        ``"LQ"`` and every other image passed.
    pixels : dict of str to numpy.ndarray
        Background-subtracted pixel values inside the Kron ellipse (the pixel-to-pixel table).
    kron_aperture : photutils.aperture.EllipticalAperture
        The Kron aperture itself, to re-measure any image with photutils.
    neighbours : numpy.ndarray of bool
        The other sources' segments (deblended), grown by ``NEIGHBOUR_GROW`` px and never into the source's
        own segment: what a Sérsic fit of the source masks.
    kron_only : dict of str to (float, float)
        Kron flux and its error of each ``kron_only`` image, measured like the others.
    sky_tilt : float
        Significance (σ) of a linear gradient of the sky around the sources (:func:`~galviewer.core.measure.
        background.sky_plane`).
    sky_plane : bool
        True when it exceeded ``SKY_TILT_SIGMA``: the background of LQ and RS is then that plane, not a constant
        (a source on a bright galaxy's halo), and the Sérsic fits take a plane sky too.
    """

    ok: bool
    reason: str
    x: float = math.nan
    y: float = math.nan
    kron_a: float = math.nan
    kron_b: float = math.nan
    theta: float = math.nan
    segment_area: int = 0
    segment: np.ndarray | None = None
    kron_mask: np.ndarray | None = None
    images: dict[str, ImagePhotometry] = field(default_factory=dict)
    pixels: dict[str, np.ndarray] = field(default_factory=dict)
    kron_aperture: Any = field(default=None, repr=False)
    neighbours: np.ndarray | None = None
    kron_only: dict[str, tuple[float, float]] = field(default_factory=dict)
    sky_tilt: float = math.nan
    sky_plane: bool = False


def _check(name: str, arr: Any, shape: tuple[int, ...] | None) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim != 2 or min(a.shape) < 8:
        raise ParameterError(name, f"must be a 2-D stamp of at least 8×8 pixels, got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ParameterError(name, f"shape {a.shape} differs from the LQ stamp's {shape}")
    return a


def _profiles(data: np.ndarray, xy: tuple[float, float], mask: np.ndarray, err: np.ndarray | None,
              rmax: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    from photutils.profiles import CurveOfGrowth, RadialProfile

    edges = np.arange(0.0, rmax + 1.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # photutils warns on masked / partial apertures at the edge
        rp = RadialProfile(data, xy, edges, error=err, mask=mask)
        try:
            fwhm = float(rp.gaussian_fwhm)
        except Exception:  # the Gaussian fit can fail on a pathological profile
            fwhm = math.nan
        cog = CurveOfGrowth(data, xy, edges[1:], error=err, mask=mask)
    perr = rp.profile_error if err is not None else np.full(len(rp.profile), np.nan)
    return (np.asarray(rp.radius), np.asarray(rp.profile), np.asarray(perr), np.asarray(cog.radius),
            np.asarray(cog.profile), fwhm)


def photometry(
    lq: np.ndarray,
    others: dict[str, np.ndarray] | None = None,
    *,
    err: np.ndarray | float | None = None,
    mask: np.ndarray | None = None,
    nsigma: float = 1.5,
    npixels: int = 5,
    kron_params: tuple[float, float, float] = (2.5, 1.4, 0.0),
    center: tuple[float, float] | None = None,
    own_background: tuple[str, ...] = ("GT",),
    kron_only: dict[str, np.ndarray] | None = None,
) -> Photometry:
    """Kron and isophotal photometry of the central source, apertures defined on LQ.

    Parameters
    ----------
    lq : array_like
        LQ stamp (input units).
    others : dict of str to array_like, optional
        Images of the same shape (e.g. ``{"RS": rs, "GT": gt}``) measured through LQ's apertures.
    err : array_like or float, optional
        1-σ noise of LQ per pixel (default: the background rms); errors of the other
        images use the same map, which is what is known about them.
    mask : array_like of bool, optional
        Pixels to ignore (True = bad).
    nsigma, npixels : float, int
        Detection threshold and connected-pixel count (paper §3.1: 1.5σ, 5 pixels).
    kron_params : (float, float, float)
        photutils Kron parameters (scale, minimum radius, minimum circular radius).
    center : (float, float), optional
        Where the source is (default: the stamp centre).
    own_background : tuple of str
        Names in ``others`` that are independent images with a sky of their own (a ground truth), whose
        background is estimated on them; every other image (RS) is measured above LQ's background.
    kron_only : dict of str to array_like, optional
        Images whose Kron flux alone is wanted, above LQ's background (the pipeline's PSF⊗RS: the flux
        conservation is its Kron flux over LQ's, the same sum with the same neighbour correction).

    Returns
    -------
    Photometry
        ``ok`` is False, with the reason, when nothing is detected; never raises for that.

    Raises
    ------
    ParameterError
        For images that are not finite 2-D stamps of at least 8×8, or shapes that differ.
    """
    from photutils.segmentation import SourceCatalog, detect_sources

    data_lq = _check("lq", lq, None)
    others = {k: _check(k, v, data_lq.shape) for k, v in (others or {}).items()}
    good = usable_pixels(data_lq, mask)
    if good.sum() < 16:
        raise ParameterError("lq", "fewer than 16 finite, unmasked pixels")
    if np.ptp(data_lq[good]) == 0:
        raise ParameterError("lq", "is constant")
    bad = ~good
    for img in others.values():
        bad |= ~np.isfinite(img)
    bkg = background(data_lq, mask=bad)
    if err is None:
        err_map = np.full(data_lq.shape, bkg.rms)
    else:
        err_map = np.broadcast_to(np.asarray(err, dtype=np.float64), data_lq.shape).copy()
        if not np.isfinite(err_map[~bad]).all():
            raise ParameterError("err", "contains NaN or inf where the data are usable")
    images = {"LQ": data_lq, **others}
    ny, nx = data_lq.shape
    cx, cy = center if center is not None else ((nx - 1) / 2.0, (ny - 1) / 2.0)
    if not bkg.rms > 0:
        return Photometry(ok=False, reason="the background rms is zero; cannot set a detection threshold")
    from photutils.utils.exceptions import NoDetectionsWarning

    def segment(level: Any) -> tuple[Any, np.ndarray]:
        smooth = convolve(np.where(bad, 0.0, data_lq - level), gaussian_psf(2.0, 5))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoDetectionsWarning)  # reported through ok/reason below
            return detect_sources(smooth, nsigma * bkg.rms, n_pixels=npixels, mask=bad), smooth

    lq_level: Any = bkg.level
    segm, smooth = segment(lq_level)
    tilt, plane = math.nan, None
    if segm is not None:
        from scipy.ndimage import binary_dilation

        from galviewer.core.measure.background import sky_plane

        # One background model for LQ and its restorations: on a bright galaxy's halo a constant level leaves
        # the halo in every aperture (the galaxy on the cD halo: Kron flux twice its Sérsic total), so
        # where the sky around the sources is tilted it is a plane, as SExtractor's local background would be.
        tilt, plane = sky_plane(data_lq, ~bad & ~binary_dilation(segm.data > 0, iterations=3))
        if plane is not None and tilt > SKY_TILT_SIGMA:
            lq_level = plane
            segm, smooth = segment(lq_level)
    levels = {"LQ": lq_level, **{k: background(v, mask=bad).level if k in own_background else lq_level
                                 for k, v in others.items()}}
    sub = {k: np.where(bad, 0.0, v - levels[k]) for k, v in images.items()}
    if segm is None:
        return Photometry(ok=False, reason=f"no source of {npixels} connected pixels above {nsigma}σ")
    # Blends are split (SExtractor's multi-threshold deblending) so that the apertures are those of the
    # source at the centre, not of the blend it belongs to.
    from photutils.segmentation import deblend_sources

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            segm = deblend_sources(smooth, segm, n_pixels=npixels, n_levels=32, contrast=0.005, progress_bar=False)
        except ValueError:
            pass  # photutils declines some tiny segments; the undeblended map is still valid
    ix, iy = min(max(round(cx), 0), nx - 1), min(max(round(cy), 0), ny - 1)
    label = int(segm.data[iy, ix])
    if label == 0:
        yy, xx = np.nonzero(segm.data)
        d = np.hypot(xx - cx, yy - cy)
        k = int(np.argmin(d))
        if d[k] > CENTRE_TOLERANCE:  # never measure a neighbour silently
            return Photometry(ok=False, reason=f"no source at the stamp centre (the nearest is {d[k]:.1f} px away)")
        label = int(segm.data[yy[k], xx[k]])
    neighbours = (segm.data != label) & (segm.data != 0)
    # photutils masks the other segments itself when computing the Kron radius and fluxes.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cat_lq = SourceCatalog(sub["LQ"], segm, convolved_data=smooth, error=err_map, mask=bad,
                               kron_params=kron_params)
        src = _row(cat_lq, label)
        kron_ap = src.kron_aperture

    def through_lq(data: np.ndarray) -> Any:
        """The source's row of a catalogue of ``data`` measured through LQ's apertures (``detection_catalog``)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _row(SourceCatalog(data, segm, convolved_data=smooth, error=err_map, mask=bad,
                                      kron_params=kron_params, detection_catalog=cat_lq), label)

    if kron_ap is None or not np.isfinite(src.kron_flux):
        return Photometry(ok=False, reason="photutils could not define a Kron aperture for the source")
    seg_mask = segm.data == label
    kmask = kron_ap.to_mask(method="center").to_image(data_lq.shape).astype(bool) & ~bad & ~neighbours
    xy = (float(src.x_centroid), float(src.y_centroid))
    size = float(getattr(src.semimajor_axis, "value", src.semimajor_axis))
    off = math.hypot(xy[0] - cx, xy[1] - cy)
    if off > max(CENTRE_TOLERANCE, OWNER_FRACTION * size):  # the light here is a larger source's, not a source's own
        return Photometry(ok=False, reason=f"the light at ({cx:.1f}, {cy:.1f}) belongs to a larger source centred "
                                           f"{off:.1f} px away at ({xy[0]:.1f}, {xy[1]:.1f}); click that source")
    rmax = float(min(max(2.0 * kron_ap.a, 6.0), 0.5 * min(nx, ny) - 1))
    results: dict[str, ImagePhotometry] = {}
    pixels: dict[str, np.ndarray] = {}
    for name, data in sub.items():
        s = src if name == "LQ" else through_lq(data)
        radii, prof, perr, cog_r, cog, fwhm = _profiles(data, xy, bad | neighbours, err_map, rmax)
        kf = float(s.kron_flux)
        # np.interp needs increasing abscissae: noise can make the growth curve dip, so take its running maximum.
        half = float(np.interp(0.5 * kf, np.maximum.accumulate(cog), cog_r)) if kf > 0 else math.nan
        results[name] = ImagePhotometry(
            kron_flux=kf, kron_flux_err=float(s.kron_flux_err), iso_flux=float(s.segment_flux),
            iso_flux_err=float(s.segment_flux_err), background=_at(levels[name], xy), fwhm=fwhm, radii=radii,
            profile=prof, profile_err=perr, cog_radii=cog_r, cog=cog, r50_cog=float(half),
        )
        pixels[name] = data[kmask]
    kron_only_out: dict[str, tuple[float, float]] = {}
    for name, img in (kron_only or {}).items():
        s = through_lq(np.where(bad, 0.0, _check(name, img, data_lq.shape) - lq_level))
        kron_only_out[name] = (float(s.kron_flux), float(s.kron_flux_err))
    return Photometry(
        ok=True, reason="", x=xy[0], y=xy[1], kron_a=float(kron_ap.a), kron_b=float(kron_ap.b),
        theta=float(kron_ap.theta.to_value("rad") if hasattr(kron_ap.theta, "to_value") else kron_ap.theta),
        segment_area=int(seg_mask.sum()), segment=seg_mask, kron_mask=kmask, images=results, pixels=pixels,
        kron_aperture=kron_ap, neighbours=_grown(neighbours, seg_mask), kron_only=kron_only_out, sky_tilt=tilt,
        sky_plane=not np.isscalar(lq_level),
    )


def _row(cat: Any, label: int) -> Any:
    """One label's row of a photutils ``SourceCatalog`` (``get_label``; ``select_label`` before photutils 3)."""
    return cat.get_label(label) if hasattr(cat, "get_label") else cat.select_label(label)


def _at(level: Any, xy: tuple[float, float]) -> float:
    """A background level (a constant or a plane) at the source's centroid."""
    if np.isscalar(level):
        return float(level)
    iy = min(max(round(xy[1]), 0), level.shape[0] - 1)
    ix = min(max(round(xy[0]), 0), level.shape[1] - 1)
    return float(level[iy, ix])


def _grown(neighbours: np.ndarray, own: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    if not neighbours.any():
        return neighbours
    return binary_dilation(neighbours, iterations=NEIGHBOUR_GROW) & ~own
