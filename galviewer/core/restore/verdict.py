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

__all__ = ["CAUTION_CHECKS", "LIMITS", "Check", "Verdict", "assess", "compare_restoration", "judge"]

LIMITS = {"chi2": 3.0, "flux": 0.05, "rms": 1.0, "border": 1.5, "new_sources": 0, "sources": 1.0, "centre": 1,
          "range": 0.3}
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


@dataclass
class Verdict:
    """Every check of one restoration."""

    checks: dict[str, Check] = field(default_factory=dict)

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


def assess(restoration: Any, measurements: Any = None) -> Verdict:
    """Judge a :class:`~galviewer.core.restore.engine.Restoration` against its own input.

    Parameters
    ----------
    restoration : Restoration
    measurements : Measurements, optional
        From :func:`~galviewer.core.measure.compare.compare_restoration` (its flux conservation is used);
        computed when not given.

    Returns
    -------
    Verdict
    """
    from scipy import ndimage

    lq = np.asarray(restoration.lq, dtype=np.float64)
    rs = np.asarray(restoration.data, dtype=np.float64)
    st = restoration.stamp
    bad = np.zeros(lq.shape, bool) if st is None else (st.bad | st.padded)
    lq_bkg = background(lq, mask=bad if bad.any() else None)
    if st is not None and st.err is not None:
        sigma = np.asarray(st.err, dtype=np.float64)
    else:
        sigma = np.full(lq.shape, lq_bkg.rms)
    use = ~bad & np.isfinite(sigma) & (sigma > 0)
    z = np.where(use, np.asarray(restoration.residual, dtype=np.float64) / np.where(use, sigma, 1.0), 0.0)
    checks: dict[str, Check] = {}

    chi2 = float(np.mean(z[use] ** 2)) if use.any() else math.nan
    checks["chi2"] = Check("chi2", chi2, LIMITS["chi2"], chi2 <= LIMITS["chi2"], f"χ² {chi2:.3g}")

    if measurements is None:
        measurements = compare_restoration(restoration)
    fc = float(measurements.flux_conservation)
    checks["flux"] = Check("flux", fc, LIMITS["flux"], abs(fc - 1.0) <= LIMITS["flux"], f"flux {fc:.3g}")

    lq_seg = _segments(lq, lq_bkg.rms, bad if bad.any() else None)
    sources = ndimage.binary_dilation(lq_seg > 0, iterations=2)
    sky = use & ~sources
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
    checks["sources"] = _source_fluxes(lq - lq_bkg.level, np.asarray(restoration.residual, np.float64), sigma,
                                       lq_seg, use)
    ny, nx = lq.shape
    cx, cy = st.center_in_stamp if st is not None else ((nx - 1) / 2, (ny - 1) / 2)
    ix, iy = min(max(round(cx), 0), nx - 1), min(max(round(cy), 0), ny - 1)
    centred = bool(sources[iy, ix])
    checks["centre"] = Check("centre", float(centred), 1, centred,
                             "a source at the stamp centre" if centred else "no source at the stamp centre")
    checks["range"] = _training_range(restoration)
    return Verdict(checks)


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
