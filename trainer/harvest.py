"""Harvest galaxy stamps from real images with the paper's selection (METHOD §3.1, §3.3).

For each image: photutils detection of 5 connected pixels above 1.5σ (the SExtractor-like settings of §3.1,
on the image smoothed by a 2-px-FWHM Gaussian as SExtractor's default filter does, deblended with SExtractor's
multi-threshold scheme), then for each source

1. stamp side w = 2·⌊4a + 5⌋ (a = semi-major axis, photutils' second-moment ``semimajor_axis``, SExtractor's
   A_IMAGE); reject w > 128;
2. reject a semi-minor axis or a half-light radius (photutils ``flux_radius(0.5)``) below the PSF FWHM;
3. reject S/N < 20 (segment flux over its error);
4. reject when another source's peak inside the w×w box exceeds 0.8 × this source's peak;
5. reject when the sharpest pixel-to-pixel step in the central 10×10, relative to the peak, is sharper than
   the PSF's own (cosmic rays, hot pixels, unresolved stars);
6. remove stars by their locus in the size–magnitude diagram: the stellar locus is the median half-light
   radius of the most compact fifth of the S/N > 50 sources (when that is point-like, ≤ 0.75 FWHM; a
   Gaussian PSF's is 0.5 FWHM), and anything within 20 % of it is a star (rule 2 already removes most
   unsaturated stars; this catches the rest of the sequence);
7. reject stamps truncated by the image edge (or holding flagged pixels), then pad (w < 64) with noise
   matching the local sky (σ-clipped level and rms of a box of at least 128 px around the source) or trim
   (w > 64) to 64×64;
8. optionally (``max_rms``, 0.02 as for the paper's JWST GT set, §3.3) reject stamps whose background rms
   after min-max normalisation is not below that value;
9. fit a PSF-convolved Sérsic profile to every kept galaxy for its (q, n, R50); its flux is the segment flux
   and its noise the background rms, so that ``catalog.ecsv`` feeds ``simulate sersic --prior-from``.

Writes the shard format of ``simulate`` (GT stamps + (q, n, flux, r50, noise) per stamp), ``catalog.ecsv``
(every kept galaxy: file, extension, position, w, S/N and the parameters) and ``rejections.json`` (count per
rule) into the output folder, which appears only when complete.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from galviewer.errors import GalviewerError, ParameterError
from trainer.shards import ShardWriter

__all__ = ["HarvestConfig", "HarvestResult", "harvest", "harvest_image"]

RULES = ("too_large", "too_small", "low_snr", "bright_neighbour", "too_sharp", "star", "truncated", "noisy",
         "fit_failed")


@dataclass(frozen=True)
class HarvestConfig:
    """Selection parameters (defaults: the paper's, §3.1 and §3.3)."""

    psf_fwhm: float = 1.88
    nsigma: float = 1.5
    npixels: int = 5
    max_w: int = 128
    min_snr: float = 20.0
    neighbour_frac: float = 0.8
    star_tolerance: float = 0.2
    max_rms: float | None = 0.02
    stamp: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("psf_fwhm", "nsigma", "min_snr", "neighbour_frac"):
            if not getattr(self, name) > 0:
                raise ParameterError(name, f"must be > 0, got {getattr(self, name)}")
        if self.npixels < 1:
            raise ParameterError("npixels", f"must be >= 1, got {self.npixels}")
        if self.max_w < 8:
            raise ParameterError("max_w", f"must be >= 8, got {self.max_w}")
        if self.max_rms is not None and not self.max_rms > 0:
            raise ParameterError("max_rms", f"must be > 0 (or None to keep every stamp), got {self.max_rms}")
        if self.stamp < 16:
            raise ParameterError("stamp", f"must be >= 16, got {self.stamp}")


@dataclass
class HarvestResult:
    """Kept stamps with their parameters and catalogue rows, and the count of rejections per rule."""

    stamps: list[np.ndarray] = field(default_factory=list)
    params: list[np.ndarray] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    detected: int = 0


def _psf_sharpness(fwhm: float) -> float:
    """Largest pixel-to-pixel step of the pixel-integrated Gaussian PSF, relative to its peak."""
    from galviewer.core.psf.gaussian import gaussian_psf

    k = gaussian_psf(fwhm, 11)
    return _sharpness(k)


def _sharpness(img: np.ndarray) -> float:
    peak = float(img.max())
    if not peak > 0:
        return math.inf
    step = max(float(np.abs(np.diff(img, axis=0)).max()), float(np.abs(np.diff(img, axis=1)).max()))
    return step / peak


def harvest_image(image: Any, cfg: HarvestConfig, result: HarvestResult | None = None) -> HarvestResult:
    """Apply the selection to one image (a :class:`galviewer.core.io.fits.Image` or a 2-D array)."""
    from galviewer.core.io.fits import Image
    from galviewer.core.io.stamps import cutout
    from galviewer.core.measure.background import background
    from galviewer.core.measure.detect import detect
    from galviewer.core.measure.sersic import fit_sersic
    from galviewer.core.psf.gaussian import gaussian_psf

    res = result if result is not None else HarvestResult()
    data = np.asarray(image.data if isinstance(image, Image) else image, dtype=np.float32)
    sources = detect(image, nsigma=cfg.nsigma, npixels=cfg.npixels, smooth_fwhm=2.0, max_sources=100_000,
                     deblend=True)
    res.detected += len(sources)
    if not sources:
        return res
    # Half-light radii and peaks on the background-subtracted image, for rules 2, 4 and 6.
    bkg = background(data, mask=None if not isinstance(image, Image) or image.bad is None else image.bad)
    sub = data - bkg.level
    from photutils.aperture import CircularAperture

    r50 = np.empty(len(sources))
    peak = np.empty(len(sources))
    for k, s in enumerate(sources):
        ap = CircularAperture((s.x, s.y), r=max(3.0 * s.a, 3.0))
        m = ap.to_mask(method="center")
        cut = m.cutout(sub, fill_value=0.0)
        peak[k] = float(np.max(cut * m.data)) if cut is not None else math.nan
        r50[k] = _half_light_radius(sub, s.x, s.y, max(4.0 * s.a, 4.0))
    snr = np.array([s.snr if math.isfinite(s.snr) else s.flux / (bkg.rms * math.sqrt(s.area)) for s in sources])
    bright = snr > 50
    locus = math.nan
    if bright.sum() >= 5:
        compact = np.sort(r50[bright])[: max(1, int(bright.sum()) // 5)]
        locus = float(np.median(compact))
        if not locus <= 0.75 * cfg.psf_fwhm:  # the compact end is resolved galaxies, not a stellar sequence
            locus = math.nan
    psf_sharp = _psf_sharpness(cfg.psf_fwhm)
    psf = gaussian_psf(cfg.psf_fwhm, 7)
    rng = np.random.default_rng(cfg.seed + res.detected)
    xy = np.array([[s.x, s.y] for s in sources])
    src_name = str(getattr(image, "path", "")) if isinstance(image, Image) else "array"
    ext = f"{image.meta.extname},{image.meta.extver}" if isinstance(image, Image) else ""
    for k, s in enumerate(sources):
        w = 2 * math.floor(4 * s.a + 5)
        if w > cfg.max_w:
            res.rejected["too_large"] += 1
            continue
        if s.b < cfg.psf_fwhm or not r50[k] >= cfg.psf_fwhm:
            res.rejected["too_small"] += 1
            continue
        if not snr[k] >= cfg.min_snr:
            res.rejected["low_snr"] += 1
            continue
        near = (np.abs(xy[:, 0] - s.x) <= w / 2) & (np.abs(xy[:, 1] - s.y) <= w / 2)
        near[k] = False
        if near.any() and np.nanmax(peak[near]) > cfg.neighbour_frac * peak[k]:
            res.rejected["bright_neighbour"] += 1
            continue
        ix, iy = round(s.x), round(s.y)
        centre = sub[max(iy - 5, 0): iy + 5, max(ix - 5, 0): ix + 5]
        if centre.size == 0 or _sharpness(centre) > psf_sharp:
            res.rejected["too_sharp"] += 1
            continue
        if math.isfinite(locus) and abs(r50[k] - locus) <= cfg.star_tolerance * locus:
            res.rejected["star"] += 1
            continue
        try:
            st = cutout(image, s.x, s.y, w, refine=False)
        except GalviewerError:
            res.rejected["truncated"] += 1
            continue
        if st.padded.any() or st.bad.any():
            res.rejected["truncated"] += 1
            continue
        # Local sky from a box of at least 128 px (a w×w stamp is mostly galaxy; its clipped rms is biased high).
        half = max(64, int(1.5 * w))
        box = data[max(iy - half, 0): iy + half, max(ix - half, 0): ix + half]
        sky = background(box)
        gt = _to_stamp(st.lq, cfg.stamp, sky.level, sky.rms, rng)
        span = float(gt.max() - gt.min())
        rms_norm = sky.rms / span if span > 0 else math.inf
        if cfg.max_rms is not None and not rms_norm < cfg.max_rms:
            res.rejected["noisy"] += 1
            continue
        fit = fit_sersic(gt, psf, err=sky.rms if sky.rms > 0 else None)
        if not fit.ok:
            res.rejected["fit_failed"] += 1
            continue
        params = np.array([fit.q, fit.n, s.flux, fit.r50, sky.rms], dtype=np.float64)
        res.stamps.append(gt)
        res.params.append(params)
        res.rows.append({"file": os.path.basename(src_name), "ext": ext, "id": s.id, "x": s.x, "y": s.y, "a": s.a,
                         "w": w, "snr": float(snr[k]), "q": fit.q, "n": fit.n, "flux": s.flux, "r50": fit.r50,
                         "noise": sky.rms, "rms_norm": rms_norm, "e1": fit.e1, "e2": fit.e2})
    return res


def _half_light_radius(sub: np.ndarray, x: float, y: float, rmax: float) -> float:
    """Radius enclosing half the flux inside ``rmax`` (curve of growth on 0.25-px radii)."""
    ny, nx = sub.shape
    r_int = math.ceil(rmax) + 1
    x0, x1 = max(int(x) - r_int, 0), min(int(x) + r_int + 1, nx)
    y0, y1 = max(int(y) - r_int, 0), min(int(y) + r_int + 1, ny)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    rr = np.hypot(xx - x, yy - y).ravel()
    vals = sub[y0:y1, x0:x1].ravel()
    inside = rr <= rmax
    rr, vals = rr[inside], vals[inside]
    order = np.argsort(rr)
    cum = np.cumsum(vals[order])
    total = cum[-1] if cum.size else 0.0
    if not total > 0:
        return math.nan
    i = int(np.searchsorted(cum, 0.5 * total))
    return float(rr[order][min(i, len(rr) - 1)])


def _to_stamp(img: np.ndarray, size: int, level: float, rms: float, rng: np.random.Generator) -> np.ndarray:
    """Pad (with noise matching the background) or trim a square stamp to ``size``×``size``, centred."""
    w = img.shape[0]
    if w >= size:
        o = (w - size) // 2
        return np.ascontiguousarray(img[o: o + size, o: o + size], dtype=np.float32)
    out = (level + rng.normal(0.0, rms if rms > 0 else 0.0, (size, size))).astype(np.float32)
    o = (size - w) // 2
    out[o: o + w, o: o + w] = img
    return out


def harvest(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    cfg: HarvestConfig | None = None,
    *,
    ext: str | None = None,
    overwrite: bool = False,
    echo: Callable[[str], None] | None = None,
) -> HarvestResult:
    """Harvest every image of ``paths`` into one shard folder (see the module docstring).

    Raises
    ------
    ParameterError
        For no input, or when no stamp survives the selection (nothing is written then).
    ImageLoadError
        For an unreadable image.
    """
    from astropy.table import Table

    from galviewer.core.io.fits import open_image

    cfg = cfg or HarvestConfig()
    if not paths:
        raise ParameterError("paths", "give at least one FITS image")
    res = HarvestResult()
    for p in paths:
        with open_image(p, ext) as image:
            n0 = len(res.stamps)
            harvest_image(image, cfg, res)
            if echo is not None:
                echo(f"{p}: {len(res.stamps) - n0} stamps kept")
    if not res.stamps:
        raise ParameterError("paths", f"no galaxy passed the selection in {len(paths)} image(s): "
                             f"{res.detected} detected, rejected {json.dumps(res.rejected)}")
    info = {"kind": "harvest", "seed": cfg.seed, "stamp": cfg.stamp, "psf_fwhm_pix": cfg.psf_fwhm,
            "sources": [os.path.basename(str(p)) for p in paths], "selection": cfg.__dict__,
            "rejected": res.rejected, "detected": res.detected}
    writer = ShardWriter(out, info=info, overwrite=overwrite)
    try:
        writer.add(np.stack(res.stamps), np.stack(res.params))
        Table(rows=res.rows).write(writer.tmp / "catalog.ecsv", format="ascii.ecsv")
        (writer.tmp / "rejections.json").write_text(json.dumps({"detected": res.detected, **res.rejected}, indent=1))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return res
