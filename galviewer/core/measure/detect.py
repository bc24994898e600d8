"""Source detection with photutils, as a photutils user would run it: ``Background2D`` with the SExtractor
estimator, a Gaussian-smoothed image, ``detect_sources`` (and ``deblend_sources``) and ``SourceCatalog``;
large images are detected in tiles, and a mosaic chip by chip.

Cluster fields are detected twice, as cluster and deep-field catalogues are made (SExtractor's "cold" and
"hot" modes, GEMS and CANDELS): a *cold* pass with the coarse background mesh keeps bright, large galaxies
whole, and a *hot* pass with a mesh four times finer and a finer deblending contrast takes the light of a bright
galaxy's halo as background, so that the faint galaxies on it stand above it.  A hot source whose centroid lies within
``max(3 px, 1.5 × its semi-major axis)`` of a cold one is that source (the cold entry, whole, is kept); the
others are added.  On the 400² Frontier Fields cD field the cold pass alone found 26 sources and missed the
galaxies on the cD's halo; both find them (``tests/core/measure/test_detect.py`` lists them)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from galviewer.core.io.cosmics import cleanable, cosmic_ray_mask
from galviewer.core.io.fits import Image
from galviewer.errors import ParameterError

__all__ = ["Detections", "Source", "detect", "detect_mosaic"]


class Detections(list):  # type: ignore[type-arg]
    """The sources :func:`detect` keeps, brightest first; ``found`` counts all it found before the cap."""

    def __init__(self, sources: Sequence[Source] = (), found: int | None = None) -> None:
        super().__init__(sources)
        self.found = len(self) if found is None else int(found)

    @property
    def capped(self) -> bool:
        """True when ``max_sources`` dropped some of the sources found."""
        return self.found > len(self)


@dataclass(frozen=True)
class Source:
    """A detected source (0-based pixel coordinates of the parent image)."""

    id: int
    x: float
    y: float
    flux: float
    flux_err: float
    area: float
    a: float
    b: float
    theta_deg: float

    @property
    def snr(self) -> float:
        """Segment flux over its error."""
        return self.flux / self.flux_err if self.flux_err > 0 else math.nan


def detect(
    image: Image | np.ndarray,
    *,
    nsigma: float = 3.0,
    npixels: int = 10,
    smooth_fwhm: float = 2.0,
    box_size: int = 64,
    max_sources: int = 1000,
    deblend: bool = True,
    hot: bool = True,
    cosmic_rays: bool = True,
) -> Detections:
    """Detect sources with photutils, brightest first.

    Parameters
    ----------
    image : Image or 2-D array
    nsigma : float
        Threshold above the local background, in units of the local background rms.
    npixels : int
        Minimum number of connected pixels above the threshold.
    smooth_fwhm : float
        FWHM (pixels) of the Gaussian the image is smoothed with before thresholding (0: none).
    box_size : int
        ``Background2D`` mesh size.
    max_sources : int
        Keep the brightest ones; the result's ``found`` says how many there were before this cap.
    deblend : bool
        Split blended sources with ``photutils.segmentation.deblend_sources`` (SExtractor's multi-threshold
        scheme: 32 levels, contrast 0.005).  On by default: in cluster fields, undeblended segments merge
        neighbouring galaxies into one "source" whose centroid can lie on empty sky.
    hot : bool
        Add a second ("hot") pass with a mesh of ``box_size // 4`` (at least 8) px, whose background follows
        the halo of bright galaxies, and merge its new sources (module docstring).  On by default: without it
        galaxies on a cluster galaxy's halo are not found.
    cosmic_rays : bool
        On a single exposure (FLT/FLC, :func:`~galviewer.core.io.cosmics.cleanable`) leave the cosmic-ray pixels
        L.A.Cosmic finds out of the segments (:func:`~galviewer.core.io.cosmics.cosmic_ray_mask`, the stamps'
        star-safe settings), so that a long cosmic-ray track is not listed as a source.  On by default; on the STIS
        CCD FLT of the real-data set (a crowded star field) it drops 7 of 1,062 segments of SCI,1 for 0.9 s (the
        2-px smoothing and the 10-px minimum already drop single-pixel hits).

    Returns
    -------
    Detections
        A list of :class:`Source`, brightest first, with ``found`` and ``capped``.  Images larger than
        ``DETECT_TILE × DETECT_TILE`` are processed in overlapping tiles so that memory stays within a few times the
        image's size.

    Raises
    ------
    ParameterError
        For a bad parameter or an image too small for the background mesh.
    """
    if not nsigma > 0:
        raise ParameterError("nsigma", f"must be > 0, got {nsigma}")
    if npixels < 1:
        raise ParameterError("npixels", f"must be >= 1, got {npixels}")
    if max_sources < 1:
        raise ParameterError("max_sources", f"must be >= 1, got {max_sources}")
    if not smooth_fwhm >= 0:
        raise ParameterError("smooth_fwhm", f"must be >= 0, got {smooth_fwhm}")
    data = image.data if isinstance(image, Image) else np.asarray(image)
    if data.ndim != 2:
        raise ParameterError("image", f"must be 2-D, got shape {data.shape}")
    box = int(min(box_size, *data.shape))
    if box < 8:
        raise ParameterError("image", f"{data.shape[1]}×{data.shape[0]} is too small to detect sources in")
    bad = image.bad if isinstance(image, Image) else None
    if cosmic_rays and isinstance(image, Image) and cleanable(image):
        bad = np.asarray(bad, dtype=bool) | cosmic_ray_mask(image)
    err = image.err if isinstance(image, Image) else None
    ny, nx = data.shape
    # Large images are detected tile by tile (each tile with a margin, a source kept by the tile whose core
    # holds its centroid), so that memory follows the tile, not the image: photutils' arrays are float64.
    core = DETECT_TILE if ny * nx > DETECT_TILE**2 else max(ny, nx)
    margin = DETECT_MARGIN if core < max(ny, nx) else 0
    found: list[Source] = []
    label_offset = 0
    for y0 in range(0, ny, core):
        for x0 in range(0, nx, core):
            ys = slice(max(y0 - margin, 0), min(y0 + core + margin, ny))
            xs = slice(max(x0 - margin, 0), min(x0 + core + margin, nx))
            tile = _detect_tile(
                np.asarray(data[ys, xs], dtype=np.float32),
                None if bad is None else np.asarray(bad[ys, xs], dtype=bool),
                None if err is None else np.asarray(err[ys, xs], dtype=np.float32),
                nsigma=nsigma, npixels=npixels, smooth_fwhm=smooth_fwhm, box=box, deblend=deblend, hot=hot)
            top = 0
            for src in tile:
                x, y = src.x + xs.start, src.y + ys.start
                top = max(top, src.id)
                if x0 - 0.5 <= x < x0 + core - 0.5 and y0 - 0.5 <= y < y0 + core - 0.5:
                    found.append(dataclasses.replace(src, id=src.id + label_offset, x=x, y=y))
            label_offset += top
    found.sort(key=lambda src: -src.flux)
    return Detections(found[:max_sources], found=len(found))


# Images larger than DETECT_TILE² are detected in DETECT_TILE² tiles with DETECT_MARGIN px of overlap
# (benchmarks/detect_memory.py: peak memory of an 8192² image within 4× the image).  A source whose
# segment reaches further than the margin beyond its tile's core is measured truncated.
DETECT_TILE = 2048
DETECT_MARGIN = 128


def _detect_tile(
    data: np.ndarray, bad: np.ndarray | None, err: np.ndarray | None, *, nsigma: float, npixels: int,
    smooth_fwhm: float, box: int, deblend: bool, hot: bool = False,
) -> list[Source]:
    """Cold (and hot) detection on one image (or tile); positions relative to it, in no particular order."""
    cold = _detect_pass(data, bad, err, nsigma=nsigma, npixels=npixels, smooth_fwhm=smooth_fwhm, box=box,
                        deblend=deblend)
    if not hot:
        return cold
    fine = _detect_pass(data, bad, err, nsigma=nsigma, npixels=npixels, smooth_fwhm=smooth_fwhm,
                        box=max(8, box // HOT_MESH_DIVISOR), deblend=deblend, contrast=HOT_CONTRAST)
    top = max((s.id for s in cold), default=0)
    merged = list(cold)
    if cold:
        cx, cy = np.array([s.x for s in cold]), np.array([s.y for s in cold])
    for s in fine:
        if cold and np.min(np.hypot(cx - s.x, cy - s.y)) <= max(HOT_MATCH_PIX, 1.5 * s.a):
            continue  # the same source: the cold entry holds it whole
        merged.append(dataclasses.replace(s, id=top + s.id))
    return merged


# A hot-pass source this close to a cold one (or 1.5 × its semi-major axis, if more) is the same source.
HOT_MATCH_PIX = 3.0
# The hot pass's mesh is the cold one's side over this (64 -> 16 px): finer meshes ate small galaxies too.
HOT_MESH_DIVISOR = 4
# Deblending contrast of the hot pass: a faint galaxy inside what is left of a bright halo's segment holds well
# under 0.5 % of its light (SExtractor's DEBLEND_MINCONT 0.005, the cold pass's), so the hot pass splits finer.
HOT_CONTRAST = 0.001


def _detect_pass(
    data: np.ndarray, bad: np.ndarray | None, err: np.ndarray | None, *, nsigma: float, npixels: int,
    smooth_fwhm: float, box: int, deblend: bool, contrast: float = 0.005,
) -> list[Source]:
    """photutils detection with one background mesh; positions relative to the image, in no particular order."""
    from astropy.convolution import convolve
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, SExtractorBackground
    from photutils.segmentation import SourceCatalog, detect_sources, make_2dgaussian_kernel
    from photutils.utils.exceptions import NoDetectionsWarning

    badm = ~np.isfinite(data)
    if bad is not None:
        badm |= bad
    if badm.all():
        return []
    work = np.where(badm, np.float32(0.0), data)
    box = int(min(box, max(8, min(data.shape) // 2)))  # at least two meshes a side
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mesh = Background2D(work, box, filter_size=3, mask=badm, sigma_clip=SigmaClip(3.0),
                                bkg_estimator=SExtractorBackground())
        level, rms = mesh.background, mesh.background_rms
    except ValueError:
        # photutils refuses when every mesh is mostly masked or covered by sources (a small crowded cut-out):
        # one σ-clipped level and rms for the whole image instead of a traceback
        from astropy.stats import sigma_clipped_stats

        _, median, std = sigma_clipped_stats(work, mask=badm, sigma=3.0)
        level, rms = np.full(data.shape, median), np.full(data.shape, std if std > 0 else 1.0)
    sub = np.where(badm, 0.0, work - level)
    del work
    if smooth_fwhm > 0:
        size = 2 * math.ceil(1.5 * smooth_fwhm) + 1
        sub_s = convolve(sub, make_2dgaussian_kernel(smooth_fwhm, size=size), mask=badm, normalize_kernel=True)
    else:
        sub_s = sub
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)  # an empty field is an answer, not a warning
        segm = detect_sources(sub_s, nsigma * rms, n_pixels=int(npixels), mask=badm)
    if segm is None:
        return []
    if deblend:
        from photutils.segmentation import deblend_sources

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            segm = deblend_sources(sub_s, segm, n_pixels=int(npixels), n_levels=32, contrast=contrast,
                                   progress_bar=False)
    # Without an ERR array (DRZ, plain images) the error is the local background rms: the S/N is then
    # background-limited (no source Poisson term, whose gain the header need not give), not empty.
    err = rms if err is None else np.where(np.isfinite(err) & (err > 0), err, rms)
    del level, rms
    with warnings.catch_warnings():
        # NaN centroids of fully masked segments are dropped below, not reported
        warnings.simplefilter("ignore", RuntimeWarning)
        cat = SourceCatalog(sub, segm, convolved_data=sub_s, error=err, mask=badm)
        flux = np.asarray(cat.segment_flux, dtype=float)
        flux_err = np.asarray(cat.segment_flux_err, dtype=float)
        x, y = np.asarray(cat.x_centroid, float), np.asarray(cat.y_centroid, float)
        a, b = np.asarray(cat.semimajor_axis.value, float), np.asarray(cat.semiminor_axis.value, float)
        theta = np.asarray(cat.orientation.value, float)
        area = np.asarray(cat.area.value, float)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(flux)
    return [Source(int(cat.label[i]), float(x[i]), float(y[i]), float(flux[i]), float(flux_err[i]), float(area[i]),
                   float(a[i]), float(b[i]), float(theta[i])) for i in np.flatnonzero(ok)]


def detect_mosaic(mosaic: Any, **kwargs: Any) -> Detections:
    """:func:`detect` on every chip of a :class:`~galviewer.core.io.mosaic.Mosaic`, positions on the canvas, one
    list brightest first.

    Keyword arguments go to ``detect`` (``max_sources`` applies to each chip, and to the merged list).
    """
    merged, found = [], 0
    for chip, (ox, oy) in zip(mosaic.chips, mosaic.offsets, strict=True):
        got = detect(chip, **kwargs)
        found += got.found
        merged += [dataclasses.replace(s, x=s.x + ox, y=s.y + oy) for s in got]
    merged.sort(key=lambda s: -s.flux)
    cap = int(kwargs.get("max_sources", 1000))
    return Detections([dataclasses.replace(s, id=i + 1) for i, s in enumerate(merged[:cap])], found=found)
