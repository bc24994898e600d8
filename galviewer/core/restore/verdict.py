"""A quality verdict for a restoration, computed without any ground truth.

Each check compares the restoration with its own input and says whether the restoration explains it:

* ``chi2`` — residual χ² per pixel, ``mean(((LQ − PSF⊗RS) / σ)²)`` over usable pixels, σ the stamp's ERR
  (or the background rms): at most 3;
* ``flux`` — flux conservation in the Kron ellipse defined on LQ, ``Σ(PSF⊗RS − bkg) / Σ(LQ − bkg)`` (bkg LQ's):
  within 5 % of 1;
* ``rms`` — background rms of RS over that of LQ (σ-clipped, source pixels masked): at most 1 (a
  restoration must not be noisier than its input);
* ``border`` — rms of the residual in σ along the stamp's 4-px frame over that of the interior, both on
  background pixels: at most 1.5 (the network's edges must not show), or a frame residual of at most 1σ rms
  (below the noise nothing shows, whatever the ratio);
* ``new_sources`` — sources in RS (photutils, 5 connected pixels above 3× the *input's* noise) whose peak
  lies outside every source of LQ (3σ, dilated by 2 px): none.

* ``centre`` — a source of LQ (3σ, dilated by 2 px) covers the stamp's centre (a catalogue position or a
  merged detection on empty sky is flagged, never ``ok``);
* ``structure`` — no local structure in the residual beyond the data's noise: the residual seen through the
  matched filter of the restoration's kernel (the optimal detector of a PSF-shaped feature), over the same filter's
  noise measured on LQ's own sky (so drizzled images' correlated noise counts as noise), has no region of
  ``STRUCTURE_PIXELS`` connected pixels beyond ``LIMITS["structure"]`` σ and beyond 5 % of the filtered data
  there (the flux check's tolerance: a bright core explained to 1 % is many σ off and still right).  This is RS
  compared with a classical deconvolution of LQ at the resolution the data support: with a linear deconvolution
  filter F (Wiener) of the kernel K, ``F⊗K⊗RS − F⊗LQ = −F⊗residual`` exactly, and the matched filter is the
  F that sees a PSF-scale feature best.  What the kernel removes entirely cannot be tested against data — the
  calibrated σ states it;
* ``range`` — the input lies inside what the model was trained on: its background rms after min-max
  normalisation (the inverse of its peak S/N) within the model's noise range (a factor 2 of slack), and,
  for an image with a WCS, its pixel scale and instrument PSF FWHM (arcsec) within 30 % of the model's
  (the model's LQ PSF is its degradation kernel on top of its GT PSF).

The limits are those of issue 11; :func:`assess` returns every value, so callers can show them beside the
numbers and never print a bare "ok".
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from galviewer.core.measure.background import background
from galviewer.errors import ParameterError

__all__ = ["CAUTION_CHECKS", "LIMITS", "STRUCTURE_PIXELS", "Check", "ResidualStructure", "Verdict", "assess",
           "compare_restoration", "judge", "region_conservation", "residual_structure"]

LIMITS = {"chi2": 3.0, "flux": 0.05, "rms": 1.0, "border": 1.5, "new_sources": 0, "sources": 1.0, "centre": 1,
          "structure": 5.0, "range": 0.3}
#: a residual structure: this many connected pixels beyond LIMITS["structure"] σ of the matched-filtered noise
STRUCTURE_PIXELS = 5
#: fewest sky pixels the matched filter's noise is measured on (fewer: the white-noise value from σ)
_MIN_SKY = 64
# Checks that say where the input lies, not whether the restoration explains it: failing only these is a caution.
CAUTION_CHECKS = ("range",)
_FRAME = 4
_INTERIOR = 8


@dataclass(frozen=True)
class Check:
    """One check: its value, its limit and whether it passes (a NaN value is reported, not passed)."""

    name: str
    value: float
    limit: float
    ok: bool
    text: str


@dataclass(frozen=True)
class ResidualStructure:
    """The residual through the matched filter, in units of that filter's noise (:func:`residual_structure`).

    Attributes
    ----------
    z : numpy.ndarray
        Matched-filtered residual over the filter's noise (0 where less than half the kernel lies on good pixels).
    regions : list of (x, y, z, pixels)
        Each connected region beyond the limit: its centroid (0-based stamp pixels), its most significant
        signed value and its size; worst first.
    signal : numpy.ndarray or None
        The data (LQ less its background) through the same filter, in units of the same noise.
    noise_from : str
        Where the filter's noise was measured: ``"LQ sky (N px)"`` — what the segmentation leaves, less the pixels
        whose filtered LQ, high-passed at 4 px, lies beyond 3σ (a source's wings) — or, with fewer than 64 such
        pixels or when they are under half of it (a stamp filled by its galaxy), ``"σ (white noise: too little
        sky)"``.
    """

    z: np.ndarray
    regions: list[tuple[float, float, float, int]]
    noise_from: str
    signal: np.ndarray | None = None


@dataclass
class Verdict:
    """Every check of one restoration; ``structure`` holds the map the ``structure`` check read."""

    checks: dict[str, Check] = field(default_factory=dict)
    structure: ResidualStructure | None = None

    @property
    def ok(self) -> bool:
        """True when every check passes."""
        return all(c.ok for c in self.checks.values())

    @property
    def level(self) -> str:
        """``"ok"``; ``"caution"`` when the only failing checks say the input lies outside the model's training
        range (:data:`CAUTION_CHECKS`) while the restoration explains its data (amber); ``"fail"`` when it does
        not explain them (red)."""
        failed = {k for k, c in self.checks.items() if not c.ok}
        return "ok" if not failed else "caution" if failed <= set(CAUTION_CHECKS) else "fail"

    @property
    def failures(self) -> list[str]:
        """The texts of the checks that fail."""
        return [c.text for c in self.checks.values() if not c.ok]

    def summary(self) -> str:
        """``ok (χ² 1.1, flux 0.98, ...)`` or the failures, for a status column or a header."""
        if self.ok:
            return "ok (" + ", ".join(c.text for c in self.checks.values()) + ")"
        return "; ".join(self.failures)

    def to_dict(self) -> dict[str, Any]:
        """Values and pass/fail per check (NaN as None)."""
        return {k: {"value": None if not math.isfinite(c.value) else c.value, "limit": c.limit, "ok": c.ok}
                for k, c in self.checks.items()}


def _segments(img: np.ndarray, rms: float, mask: np.ndarray | None) -> np.ndarray:
    """Label image of the sources of ``img`` (3σ over its background, 5 connected pixels, 1-px smoothing)."""
    from photutils.segmentation import detect_sources
    from photutils.utils.exceptions import NoDetectionsWarning
    from scipy import ndimage

    sub = img - background(img, mask=mask).level
    smooth = ndimage.gaussian_filter(sub, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        seg = detect_sources(smooth, 3.0 * rms / 2.0, n_pixels=5, mask=mask)  # smoothing by σ=1 halves the rms
    return np.zeros(img.shape, int) if seg is None else seg.data


def assess(restoration: Any, measurements: Any = None, *, inside: np.ndarray | None = None) -> Verdict:
    """Judge a :class:`~galviewer.core.restore.engine.Restoration` against its own input.

    Parameters
    ----------
    restoration : Restoration
    measurements : Measurements, optional
        From :func:`~galviewer.core.measure.compare.compare_restoration` (its flux conservation is used);
        computed when not given.  Not used for a region.
    inside : numpy.ndarray of bool, optional
        A region's pixels (:class:`~galviewer.core.restore.regions.RegionRestoration`): every check is measured on
        them, flux conservation is that of the region (Σ(PSF⊗RS − bkg) / Σ(LQ − bkg) over its pixels), and there is
        no ``centre`` check (a region need not hold a source at its centre).

    Returns
    -------
    Verdict
    """
    from scipy import ndimage

    lq = np.asarray(restoration.lq, dtype=np.float64)
    rs = np.asarray(restoration.data, dtype=np.float64)
    residual = np.asarray(restoration.residual, dtype=np.float64)
    st = restoration.stamp
    bad = np.zeros(lq.shape, bool) if st is None else (st.bad | st.padded)
    if inside is not None:
        inside = np.asarray(inside, bool)
        if inside.shape != lq.shape:
            raise ParameterError("inside", f"shape {inside.shape} differs from the restoration's {lq.shape}")
    lq_bkg = background(lq, mask=bad if bad.any() else None)
    if st is not None and st.err is not None:
        sigma = np.asarray(st.err, dtype=np.float64)
    else:
        sigma = np.full(lq.shape, lq_bkg.rms)
    use = ~bad & np.isfinite(sigma) & (sigma > 0)
    measured = use if inside is None else use & inside
    z = np.where(use, residual / np.where(use, sigma, 1.0), 0.0)
    checks: dict[str, Check] = {}

    chi2 = float(np.mean(z[measured] ** 2)) if measured.any() else math.nan
    checks["chi2"] = Check("chi2", chi2, LIMITS["chi2"], chi2 <= LIMITS["chi2"], f"χ² {chi2:.3g}")

    if inside is None:
        if measurements is None:
            measurements = compare_restoration(restoration)
        fc = float(measurements.flux_conservation)
    else:
        fc = region_conservation(restoration, measured, bad)
    checks["flux"] = Check("flux", fc, LIMITS["flux"], abs(fc - 1.0) <= LIMITS["flux"], f"flux {fc:.3g}")

    lq_seg = _segments(lq, lq_bkg.rms, bad if bad.any() else None)
    sources = ndimage.binary_dilation(lq_seg > 0, iterations=2)
    sky = measured & ~sources
    rs_rms = background(rs, mask=~sky if sky.any() else None).rms
    lq_rms = background(lq, mask=~sky if sky.any() else None).rms
    ratio = rs_rms / lq_rms if lq_rms > 0 else math.nan
    checks["rms"] = Check("rms", ratio, LIMITS["rms"], ratio <= LIMITS["rms"], f"RS/LQ rms {ratio:.3g}")

    frame = np.zeros(lq.shape, bool)
    frame[:_FRAME], frame[-_FRAME:], frame[:, :_FRAME], frame[:, -_FRAME:] = True, True, True, True
    inner = np.zeros(lq.shape, bool)
    inner[_INTERIOR:-_INTERIOR, _INTERIOR:-_INTERIOR] = True
    f, i = frame & sky, inner & sky
    frame_rms = float(np.sqrt(np.mean(z[f] ** 2))) if f.sum() >= 16 else math.nan
    border = (frame_rms / float(np.sqrt(np.mean(z[i] ** 2)))
              if f.sum() >= 16 and i.sum() >= 16 and np.any(z[i]) else math.nan)
    # A frame whose residual is below the noise (≤ 1σ rms) shows nothing, whatever the ratio: a large galaxy
    # leaves few, very well fitted sky pixels inside, and the ratio of two sub-noise numbers is not a frame.
    quiet = math.isfinite(frame_rms) and frame_rms <= 1.0
    checks["border"] = Check("border", border, LIMITS["border"], border <= LIMITS["border"] or quiet,
                             f"border/interior {border:.3g}"
                             + (f" (frame residual {frame_rms:.2f}σ, below the noise)"
                                if quiet and not border <= LIMITS["border"] else ""))

    # RS is smoother than LQ: its sources are detected at the threshold of the input's noise, so that a
    # "new source" is one the data would have shown at 3σ.
    rs_seg = _segments(rs, lq_bkg.rms, bad if bad.any() else None)
    if inside is not None:
        rs_seg = np.where(inside, rs_seg, 0)
    new = 0
    for sl, label in zip(ndimage.find_objects(rs_seg), range(1, int(rs_seg.max()) + 1), strict=False):
        if sl is None:
            continue
        part = np.where(rs_seg[sl] == label, rs[sl], -np.inf)
        py, px = np.unravel_index(int(np.argmax(part)), part.shape)
        if not sources[sl][py, px]:
            new += 1
    checks["new_sources"] = Check("new_sources", float(new), LIMITS["new_sources"], new <= LIMITS["new_sources"],
                                  f"{new} new source{'s' if new != 1 else ''}")
    checks["sources"] = _source_fluxes(lq - lq_bkg.level, residual, sigma, lq_seg, measured)
    found = residual_structure(lq - lq_bkg.level, residual, restoration.psf, bad=~measured, sources=sources,
                               sigma=sigma)
    checks["structure"] = _structure_check(found)
    if inside is None:
        ny, nx = lq.shape
        cx, cy = st.center_in_stamp if st is not None else ((nx - 1) / 2, (ny - 1) / 2)
        ix, iy = min(max(round(cx), 0), nx - 1), min(max(round(cy), 0), ny - 1)
        centred = bool(sources[iy, ix])
        checks["centre"] = Check("centre", float(centred), 1, centred,
                                 "a source at the stamp centre" if centred else "no source at the stamp centre")
    checks["range"] = _training_range(restoration)
    return Verdict(checks, structure=found)


def region_conservation(restoration: Any, measured: np.ndarray, bad: np.ndarray) -> float:
    """Σ(PSF⊗RS − bkg) / Σ(LQ − bkg) over the ``measured`` pixels of a region, PSF⊗RS being ``LQ − residual``
    as the pipeline made it and bkg LQ's background measured off the ``bad`` pixels (one background for both: a
    sky offset of the restoration is flux it did not conserve): the region's table and its verdict's flux
    check both."""
    lq = np.asarray(restoration.lq, dtype=np.float64)
    conv = lq - np.asarray(restoration.residual, dtype=np.float64)  # PSF⊗RS, as the residual was made
    level = background(lq, mask=bad if bad.any() else None).level
    lq_sum = float(np.sum(lq[measured] - level))
    conv_sum = float(np.sum(conv[measured] - level))
    return conv_sum / lq_sum if lq_sum > 0 else math.nan


def residual_structure(signal: np.ndarray, residual: np.ndarray, psf: np.ndarray, *,
                       bad: np.ndarray | None = None, sources: np.ndarray | None = None,
                       sigma: np.ndarray | float | None = None, limit: float | None = None) -> ResidualStructure:
    """The residual through the matched filter of ``psf``, in units of the filter's noise on the data.

    Parameters
    ----------
    signal : numpy.ndarray
        LQ minus its background level (its sky, filtered the same way, sets the noise).
    residual : numpy.ndarray
        ``LQ − PSF⊗RS``.
    psf : numpy.ndarray
        The kernel of the residual; the filter is it, flipped and scaled to unit L2 norm, so that white noise
        keeps its rms.
    bad : numpy.ndarray of bool, optional
        Pixels not measured (flagged, beyond the image, outside a region).
    sources : numpy.ndarray of bool, optional
        LQ's sources (their pixels are not sky).
    sigma : numpy.ndarray or float, optional
        The per-pixel noise, used only when the stamp holds fewer than 64 sky pixels.
    limit : float, optional
        Threshold in σ of the filtered noise (default ``LIMITS["structure"]``, the verdict's).

    Returns
    -------
    ResidualStructure
    """
    from scipy import ndimage
    from scipy.signal import fftconvolve

    signal = np.asarray(signal, np.float64)
    residual = np.asarray(residual, np.float64)
    good = np.isfinite(signal) & np.isfinite(residual)
    if bad is not None:
        good &= ~np.asarray(bad, bool)
    k = np.asarray(psf, np.float64)[::-1, ::-1]
    k = k / math.sqrt(float(np.sum(k**2)))
    cover = fftconvolve(good.astype(np.float64), k**2, mode="same")  # kernel energy on measured pixels
    m_res = fftconvolve(np.where(good, residual, 0.0), k, mode="same")
    m_sig = fftconvolve(np.where(good, signal, 0.0), k, mode="same")
    full = good & (cover > 0.95)
    sky = full if sources is None else full & ~ndimage.binary_dilation(sources, iterations=2)

    def robust_rms(v: np.ndarray) -> float:
        return 1.4826 * float(np.median(np.abs(v - np.median(v))))

    def high_pass(x: np.ndarray) -> np.ndarray:  # a neighbour's wings or a halo's gradient are not noise
        w = good.astype(np.float64)
        return x - ndimage.gaussian_filter(np.where(good, x, 0.0), 4.0) / np.maximum(
            ndimage.gaussian_filter(w, 4.0), 1e-3)

    if sky.sum() >= _MIN_SKY:
        from astropy.stats import sigma_clip

        hp_sig = high_pass(m_sig)[sky]
        noisy = ~np.ma.getmaskarray(sigma_clip(hp_sig, sigma=3.0, maxiters=10))  # light the segments missed
        if noisy.sum() < max(_MIN_SKY, sky.sum() // 2):
            sky[:] = False  # mostly light, not sky (a stamp filled by its galaxy)
        else:
            sky[sky] = noisy
    if sky.sum() >= _MIN_SKY:
        noise, zero = robust_rms(m_sig[sky]), float(np.median(m_res[sky]))
        where = f"LQ sky ({int(sky.sum())} px)"
    else:
        s = np.broadcast_to(np.asarray(np.nan if sigma is None else sigma, np.float64), signal.shape)
        noise = float(np.median(s[good])) if good.any() else math.nan
        zero, where = 0.0, "σ (white noise: too little sky)"
    live = good & (cover >= 0.5)
    if not (math.isfinite(noise) and noise > 0):
        return ResidualStructure(np.zeros(signal.shape), [], "no noise estimate")
    z = np.where(live, (m_res - zero) / (noise * np.sqrt(np.maximum(cover, 1e-12))), 0.0)
    # beyond the noise *and* beyond the flux check's 5 % of the filtered data there: a bright core explained
    # to 1 % is many σ off and still right, an invented blob on the sky is not
    relative = np.abs(m_res - zero) > LIMITS["flux"] * np.abs(m_sig)
    limit = LIMITS["structure"] if limit is None else float(limit)
    labels, _ = ndimage.label((np.abs(z) > limit) & relative)
    regions = []
    for j, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        part = labels[sl] == j
        size = int(part.sum())
        if size < STRUCTURE_PIXELS:
            continue
        yy, xx = np.nonzero(part)
        vals = z[sl][part]
        peak = float(vals[np.argmax(np.abs(vals))])
        regions.append((float(xx.mean() + sl[1].start), float(yy.mean() + sl[0].start), peak, size))
    regions.sort(key=lambda r: -abs(r[2]))
    return ResidualStructure(z, regions, where, np.where(live, m_sig / noise, 0.0))


def _structure_check(found: ResidualStructure) -> Check:
    """The ``structure`` check of a :class:`ResidualStructure`."""
    lim = LIMITS["structure"]
    if found.regions:
        x, y, peak, size = found.regions[0]
        more = f" and {len(found.regions) - 1} more" if len(found.regions) > 1 else ""
        sense = "PSF⊗RS above the data: over-restored" if peak < 0 else "PSF⊗RS below the data: light lost"
        text = f"residual structure at ({x:.0f}, {y:.0f}): {peak:+.1f}σ over {size} px{more} ({sense})"
        structure = Check("structure", abs(peak), lim, False, text)
    else:
        worst = float(np.max(np.abs(found.z))) if found.z.size else 0.0
        structure = Check("structure", worst, lim, True, f"no residual structure beyond {lim:g}σ")
    return structure




def _source_fluxes(signal: np.ndarray, residual: np.ndarray, sigma: np.ndarray, seg: np.ndarray,
                   use: np.ndarray) -> Check:
    """Every source of LQ keeps its flux: over each of its segments, Σ PSF⊗RS = Σ (LQ − residual) within 5 % of
    Σ LQ (background-subtracted), or within 2σ of that sum's noise where that is larger (issue 23, item 4).  The
    value is the worst source's |Σ residual| over its allowance (≤ 1 passes)."""
    frame = np.ones(seg.shape, bool)
    frame[_FRAME:-_FRAME, _FRAME:-_FRAME] = False
    labels = np.where(use, seg, 0).ravel()  # per-segment sums in one pass over the stamp
    n = int(seg.max()) + 1

    def per_label(values: np.ndarray) -> np.ndarray:
        return np.bincount(labels, weights=np.asarray(values, np.float64).ravel(), minlength=n)

    count = np.bincount(labels, minlength=n)
    total, lost, var = per_label(signal), per_label(residual), per_label(np.square(sigma))
    # a source cut by the stamp's edge is the border check's
    keep = (count >= 5) & (total > 0) & ~np.isin(np.arange(n), seg[frame & use])
    keep[0] = False
    allowance = np.maximum(LIMITS["flux"] * total, 2.0 * np.sqrt(var))
    off = np.where(keep, np.abs(lost) / np.where(keep, allowance, 1.0), 0.0)
    k = int(np.argmax(off))
    worst = float(off[k])
    if worst > 0:
        yy, xx = np.nonzero(labels.reshape(seg.shape) == k)
        where, ratio = (float(xx.mean()), float(yy.mean())), 1.0 - float(lost[k]) / float(total[k])
    else:
        where, ratio = (math.nan, math.nan), 1.0
    ok = worst <= LIMITS["sources"]
    text = ("every source's flux within 5 % or 2σ" if ok else
            f"a source at ({where[0]:.0f}, {where[1]:.0f}) keeps {ratio:.3g} of its flux")
    return Check("sources", worst, LIMITS["sources"], ok, text)


def judge(restoration: Any, measurements: Any = None) -> tuple[Any, Verdict]:
    """Measure a restoration (unless given its measurements), judge it, and attach the verdict to
    ``restoration.meta["verdict"]`` (where the FITS writer and the viewer find it).

    Returns
    -------
    (Measurements, Verdict)
    """
    if measurements is None:
        measurements = compare_restoration(restoration)
    verdict = assess(restoration, measurements)
    restoration.meta["verdict"] = verdict
    return measurements, verdict


def _training_range(restoration: Any) -> Check:
    """Is the input inside the model's training range (noise after min-max, pixel scale, PSF FWHM)?"""
    m = restoration.meta
    st = restoration.stamp
    out = []
    noise = float(m.get("input_noise_norm", math.nan))
    lo, hi = m.get("noise_rms_range", (math.nan, math.nan))
    if math.isfinite(noise) and lo > 0 and noise < lo / 2:
        out.append(f"noise {noise:.2g} of the range, below training's {lo:g} (peak S/N too high)")
    elif math.isfinite(noise) and noise > 2 * hi:
        out.append(f"noise {noise:.2g} of the range, above training's {hi:g}")
    scale = float(getattr(getattr(st, "meta", None), "pixel_scale", math.nan))
    model_scale = float(m.get("model_pixel_scale", math.nan))
    trained = m.get("trained_fwhm_pix")
    if trained and getattr(st, "meta", None) is not None:
        # A model trained with real PSFs over a range of core widths in pixels (any pixel scale): the input's
        # PSF in pixels must lie in that range (each in quadrature with the GT PSF, as a star's LQ image is).
        from galviewer.core.psf.instrument import fine_fwhm, instrument_psf

        gt = float(m.get("gt_psf_fwhm_pix") or 0.0)
        core = fine_fwhm(instrument_psf(st.meta).kernel)  # as the trainer measured its kernels
        lo_f, hi_f = math.hypot(trained[0], gt), math.hypot(trained[1], gt)
        fwhm = math.hypot(core, gt)
        tol = LIMITS["range"]
        if not (lo_f * (1 - tol) <= fwhm <= hi_f * (1 + tol)):
            out.append(f"PSF FWHM {core:.2f} px outside the model's {trained[0]:.2f}–{trained[1]:.2f} px")
    elif math.isfinite(scale) and math.isfinite(model_scale):
        from galviewer.core.psf.instrument import instrument_psf

        if abs(scale / model_scale - 1) > LIMITS["range"]:
            out.append(f"pixel scale {scale:.3g}″ vs the model's {model_scale:.3g}″")
        gt = m.get("gt_psf_fwhm_pix") or 0.0
        model_fwhm = math.hypot(float(m.get("psf_fwhm_pix", math.nan)), float(gt)) * model_scale
        inst = instrument_psf(st.meta)
        fwhm = inst.fwhm_pix * inst.pixel_scale
        if math.isfinite(model_fwhm) and abs(fwhm / model_fwhm - 1) > LIMITS["range"]:
            out.append(f"PSF FWHM {fwhm:.3f}″ vs the model's {model_fwhm:.3f}″")
    text = "outside training: " + "; ".join(out) if out else "in training range"
    return Check("range", noise, LIMITS["range"], not out, text)


def compare_restoration(restoration: Any, err: np.ndarray | float | None = None,
                        lq_psf: np.ndarray | None = None) -> Any:
    """:func:`~galviewer.core.measure.compare.compare` on a :class:`~galviewer.core.restore.result.Restoration`,
    with its stamp's error map and mask.

    LQ's Sérsic fit uses ``lq_psf``, by default the instrument PSF of the stamp's parent image
    (:func:`galviewer.core.psf.instrument.instrument_psf`), so that ``measure`` gives LQ the same numbers
    with and without a restoration; the residual and flux conservation use the restoration's own PSF.
    """
    from galviewer.core.measure.compare import compare
    from galviewer.core.psf.gaussian import gaussian_psf

    stamp = restoration.stamp
    if lq_psf is None and stamp is not None and stamp.meta is not None:
        from galviewer.core.psf.instrument import instrument_psf

        lq_psf = instrument_psf(stamp.meta).fitting_kernel(min(restoration.lq.shape))
    if err is None and stamp is not None and stamp.err is not None:
        err = stamp.err
    mask = (stamp.bad | stamp.padded) if stamp is not None else None  # only pixels of the image are measured
    fwhm = restoration.meta.get("gt_psf_fwhm_pix")
    rs_psf = gaussian_psf(float(fwhm), 7) if fwhm else None
    rs_err = None
    if restoration.sigma is not None:
        floor = background(restoration.data, mask=mask).rms
        rs_err = np.sqrt(restoration.sigma.astype(np.float64) ** 2 + floor**2)
    m = compare(restoration.lq, restoration.data, restoration.psf, err=err, mask=mask, rs_psf=rs_psf,
                rs_err=rs_err, lq_psf=lq_psf)
    return m.with_units(stamp.meta if stamp is not None else None)
