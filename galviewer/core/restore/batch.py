"""Batch mode: detect the sources of an image, restore and measure them all, export stamps and a catalogue.

Detection is photutils' (``Background2D`` with the SExtractor estimator, a
Gaussian-smoothed image, ``detect_sources`` and ``SourceCatalog``), so the list
matches what a photutils user gets with the same parameters.  Restoration batches
forward passes (``Restorer.restore_many``); measurement is :func:`compare` per
source (Sérsic fits of LQ and RS, Kron and isophotal photometry).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from galviewer.core.io.fits import Image, write_stamp
from galviewer.core.io.stamps import DEFAULT_CONTEXT, MAX_CONTEXT, Stamp, cutout
from galviewer.errors import GalviewerError, OutputExistsError, ParameterError, RestoreCancelled

__all__ = ["BatchResult", "Detections", "Source", "detect", "export_batch", "restore_sources"]

Progress = Callable[[int, int], None]


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

    Returns
    -------
    Detections
        A list of :class:`Source`, brightest first, with ``found`` and ``capped``.  Images larger than
        ``DETECT_TILE``² are processed in overlapping tiles so that memory stays within a few times the
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
                nsigma=nsigma, npixels=npixels, smooth_fwhm=smooth_fwhm, box=box, deblend=deblend)
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
    smooth_fwhm: float, box: int, deblend: bool,
) -> list[Source]:
    """photutils detection on one image (or tile); positions relative to it, in no particular order."""
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
            segm = deblend_sources(sub_s, segm, n_pixels=int(npixels), n_levels=32, contrast=0.005, progress_bar=False)
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


@dataclass
class BatchResult:
    """One source of a batch: its stamp, restoration and measurements, or why it failed."""

    source: Source
    stamp: Stamp | None = None
    restoration: Any = None
    measurements: Any = None
    verdict: Any = None
    cosmic_rays: int = 0
    error: str = ""

    def row(self) -> dict[str, Any]:
        """Catalogue row: position, detection and the headline measurements (NaN where missing)."""
        s = self.source
        out: dict[str, Any] = {"id": s.id, "x": s.x, "y": s.y, "det_flux": s.flux, "det_snr": s.snr,
                               "status": self.error or (self.verdict.summary() if self.verdict is not None
                                                        else "restored, not measured")}
        out["x_stamp"], out["y_stamp"] = self.stamp.center if self.stamp is not None else (math.nan, math.nan)
        m = self.measurements
        for name in ("LQ", "RS"):
            f = m.fits.get(name) if m is not None else None
            p = m.phot.images.get(name) if m is not None and m.phot.ok else None
            out[f"n_{name}"] = f.n if f is not None else math.nan
            out[f"r50_{name}"] = f.r50 if f is not None else math.nan
            out[f"e1_{name}"] = f.e1 if f is not None else math.nan
            out[f"e2_{name}"] = f.e2 if f is not None else math.nan
            out[f"kron_flux_{name}"] = p.kron_flux if p is not None else math.nan
            out[f"iso_flux_{name}"] = p.iso_flux if p is not None else math.nan
        out["point_like"] = bool(m is not None and m.point_like)
        out["quality_ok"] = bool(self.verdict is not None and self.verdict.ok)
        out["flux_conservation"] = m.flux_conservation if m is not None else math.nan
        out["residual_chi2"] = m.residual_chi2 if m is not None else math.nan
        return out


def restore_sources(
    restorer: Any,
    image: Image | np.ndarray,
    sources: Sequence[Source],
    *,
    size: int = 64,
    context: int = DEFAULT_CONTEXT,
    uncertainty: bool | None = None,
    consistency: bool | None = None,
    anchor: float | None = None,
    clean: Callable[[Stamp], tuple[Stamp, int]] | None = None,
    measure: bool = True,
    chunk: int = 8,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[BatchResult]:
    """Cut out, (clean,) restore in batches, and measure every source; failures are kept, not raised.

    Parameters
    ----------
    restorer : galviewer.Restorer
    image : Image or 2-D array
    sources : sequence of Source
    size : int
        Stamp side.
    context : int
        Context margin (px): each cut-out is ``size + 2·context`` wide and its central ``size`` is kept
        (:func:`~galviewer.core.restore.engine.crop_restoration`; 0–256).
    uncertainty : bool, optional
        8 flips/rotations (default: the restorer's setting).
    consistency : bool, optional
        Fuse each restoration with its data (default: the restorer's setting).
    anchor : float, optional
        σ (px) of the large-scale anchoring, 0 for none (default: the restorer's setting).
    clean : callable, optional
        Cosmic-ray cleaning of each stamp (e.g. :func:`galviewer.core.io.cosmics.clean_cosmic_rays`).
    measure : bool
        Run :func:`compare` on each restoration.
    chunk : int
        Stamps per ``restore_many`` call (the cancel granularity).
    progress : callable(done, total), optional
        One step per restored and per measured source.
    cancel : callable() -> bool, optional

    Raises
    ------
    RestoreCancelled
        When cancelled (results so far are discarded).
    """
    from galviewer.core.restore.engine import crop_restoration
    from galviewer.core.restore.verdict import judge

    if chunk < 1:
        raise ParameterError("chunk", f"must be >= 1, got {chunk}")
    if not (isinstance(context, int) and 0 <= context <= MAX_CONTEXT):
        raise ParameterError("context", f"must be 0–{MAX_CONTEXT} px, got {context!r}")
    results = [BatchResult(s) for s in sources]
    total = len(results) * (2 if measure else 1)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    def check() -> None:
        if cancel is not None and cancel():
            raise RestoreCancelled("batch cancelled")

    todo: list[BatchResult] = []
    for res in results:
        check()
        try:
            st = cutout(image, res.source.x, res.source.y, size, context=context)
            if clean is not None:
                st, res.cosmic_rays = clean(st)
            res.stamp = st
            todo.append(res)
        except GalviewerError as exc:
            res.error = str(exc)
            tick()
    for start in range(0, len(todo), chunk):
        check()
        part = todo[start: start + chunk]
        try:
            restored = restorer.restore_many([r.stamp for r in part], uncertainty=uncertainty, cancel=cancel,
                                             consistency=consistency, anchor=anchor)
        except RestoreCancelled:
            raise
        except GalviewerError:
            restored = []
            for r in part:  # find the culprit(s) one by one
                try:
                    restored.append(restorer.restore(r.stamp, uncertainty=uncertainty, cancel=cancel,
                                                     consistency=consistency, anchor=anchor))
                except RestoreCancelled:
                    raise
                except GalviewerError as exc:
                    restored.append(None)
                    r.error = str(exc)
        for r, rr in zip(part, restored, strict=True):
            if rr is not None:
                rr = crop_restoration(rr, context)  # (no margin: rr itself)
                r.stamp = rr.stamp
            r.restoration = rr
            tick()
    if measure:
        for r in results:
            if r.restoration is None:
                if not r.error:
                    tick()
                continue
            check()
            try:
                r.measurements, r.verdict = judge(r.restoration)
            except GalviewerError as exc:
                r.error = f"measurement failed: {exc}"
            tick()
    if progress is not None:
        progress(total, total)
    return results


def export_batch(folder: str | os.PathLike[str], results: Sequence[BatchResult], *, stem: str = "source",
                 wcs: Any = None, overwrite: bool = False) -> list[Path]:
    """Write one FITS stamp per restored source and an ECSV catalogue of all of them.

    Files: ``{stem}_{id:05d}.fits`` and ``{stem}_catalog.ecsv`` (with RA/Dec when ``wcs`` is given).
    Nothing is written when any target exists and ``overwrite`` is False.

    Raises
    ------
    ParameterError
        For an empty batch or a folder that is a file.
    OutputExistsError
        When a target exists and ``overwrite`` is False (lists how many).
    """
    from astropy.table import Table

    from galviewer._atomic import atomic_write

    if not results:
        raise ParameterError("results", "there is nothing to export: restore some sources first")
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise ParameterError("folder", f"{out} is a file, not a folder")
    stamps = [(r, out / f"{stem}_{r.source.id:05d}.fits") for r in results if r.restoration is not None]
    catalog = out / f"{stem}_catalog.ecsv"
    targets = [p for _, p in stamps] + [catalog]
    clashes = [p for p in targets if p.exists()]
    if clashes and not overwrite:
        raise OutputExistsError(clashes[0], f"{len(clashes)} of the {len(targets)} output files exist already; "
                                "nothing was written")
    out.mkdir(parents=True, exist_ok=True)
    written = [write_stamp(p, r.restoration, overwrite=overwrite) for r, p in stamps]
    table = Table(rows=[r.row() for r in results])
    if wcs is not None and getattr(wcs, "has_celestial", False):
        ra, dec = wcs.all_pix2world(np.asarray(table["x"], float), np.asarray(table["y"], float), 0)
        table["ra"], table["dec"] = ra, dec
        table["ra"].unit = table["dec"].unit = "deg"
    for name in ("x", "y", "x_stamp", "y_stamp"):
        if name in table.colnames:
            table[name].unit = "pix"
            table[name].description = "0-based pixel coordinate in the parent image"
    bunits = {r.stamp.meta.bunit for r in results if r.stamp is not None and r.stamp.meta is not None}
    bunit = bunits.pop() if len(bunits) == 1 else ""
    for name in table.colnames:
        if name.startswith(("kron_flux_", "iso_flux_", "det_flux")):
            table[name].description = f"flux in the image's unit (BUNIT {bunit!r})" if bunit else \
                "flux in the image's unit (no BUNIT)"
            if bunit:
                from astropy import units as u

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", u.UnitsWarning)
                    table[name].unit = u.Unit(bunit.replace("ELECTRONS", "electron").replace("electrons", "electron"),
                                              parse_strict="silent")
    table.meta["comments"] = ["galviewer batch: detection (photutils) + restoration + compare() measurements"]
    written.append(atomic_write(catalog, lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True),
                                overwrite=overwrite))
    return written
