"""The steps after the network: point-source mode (fit, remainder, star added back), large-scale anchoring and
data consistency, each on one stamp, each saying in ``Stamp.extra`` why it was skipped where it cannot apply.

They are called by :mod:`galviewer.core.restore.pipeline` in its fixed order; ``restorer`` is the
:class:`~galviewer.core.restore.engine.Restorer` whose model and kernel they use.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from galviewer.core.io.stamps import Stamp
from galviewer.core.psf.gaussian import gaussian_psf
from galviewer.core.restore.point_source import place
from galviewer.errors import ParameterError

__all__ = ["POINT_RESCALE", "STAR_CORE", "add_star", "anchor_step", "decide_point_source", "fit_star", "fuse_step",
           "repair_step", "star_psf", "target_psf"]

# How point-source mode brings the network's restoration of the remainder (LQ minus the fitted star, its core
# filled with sky: _network_remainder) back to the input's units.  The remainder is no galaxy at the stamp's
# centre, so eq. 8–9 would measure the filled core; inverting the min-max normalisation is exact for what the
# network was given.  Measured on the two real stars (8-px margin, with / without the 8 flips): minmax — STIS
# RS/LQ rms 0.29 / 0.53, border 1.11, WFC3/IR 0.61 / 0.62, 1.02, no new source, flux 0.990 / 1.036; eq. 8–9
# ("paper") — the same for STIS but a new source on the WFC3/IR star's spike with the flips; least squares
# ("lstsq") — rms STIS 0.41 / 0.78, WFC3/IR 0.75 / 0.80.  (Before the core was filled no rule served both stars:
# eq. 8–9 left the STIS star at rms 15.5, least squares the WFC3/IR star at 3.8.)
POINT_RESCALE = "minmax"
# Point-source mode: the remainder is kept unrestored within STAR_CORE[0] FWHM of the star, restored beyond
# STAR_CORE[1] (see add_star).
STAR_CORE = (2.0, 4.0)


def _partial(mask: np.ndarray) -> np.ndarray | None:
    """A mask for the post-steps and fits, or None when it masks nothing (or everything: nothing to use)."""
    return mask if mask.any() and not mask.all() else None


def _star_radius(star: Any, shape: tuple[int, int]) -> np.ndarray:
    """Distance of every pixel from a fitted star, in units of its PSF's FWHM."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.hypot(xx - star.x, yy - star.y) / max(star.fwhm, 1.0)


def _star_core(star: Any, shape: tuple[int, int]) -> np.ndarray:
    """The pixels within ``STAR_CORE[0]`` FWHM of a fitted star, where point-source mode keeps the data."""
    return _star_radius(star, shape) < STAR_CORE[0]


def _network_remainder(st: Stamp, star: Any) -> np.ndarray:
    """What the network restores in point-source mode: the stamp less the fitted star, its core filled with sky.

    Within ``STAR_CORE[0]`` FWHM the remainder is the PSF model's mismatch (−1,500σ to +280σ on the STIS star)
    and the result there is the data's own remainder anyway (:meth:`add_star`); left in, it set the
    min-max range and put the rest of the stamp at a noise 18× below anything the network was trained on, which
    it answered with a lattice of 4-px dots.  The core is filled with the median of the remainder between
    ``STAR_CORE[0]`` and ``STAR_CORE[1]`` FWHM plus noise of the stamp's background rms (seeded by the star's
    position: the same click gives the same input)."""
    rem = np.asarray(st.lq, dtype=np.float64) - star.model
    r = _star_radius(star, rem.shape)
    core = _star_core(star, rem.shape)
    ring = ~core & (r < STAR_CORE[1]) & ~(st.padded | st.bad)
    level = float(np.median(rem[ring])) if ring.any() else float(np.median(rem[~core]))
    rms = st.background_rms if math.isfinite(st.background_rms) else 0.0
    rng = np.random.default_rng([abs(round(100 * star.x)), abs(round(100 * star.y)), *rem.shape])
    rem[core] = level + rng.normal(0.0, rms, int(core.sum()))
    return rem.astype(np.float32)


def star_psf(st: Stamp, model_fwhm: float) -> tuple[np.ndarray, float, str]:
    """The PSF a star of this stamp is fitted with: its instrument's, or the model's LQ Gaussian for a bare array.

    Returns
    -------
    (kernel, FWHM in pixels, where it came from)
    """
    meta = getattr(st, "meta", None)
    if meta is None:
        return gaussian_psf(model_fwhm, 15), model_fwhm, "the model's LQ Gaussian"
    from galviewer.core.psf.instrument import instrument_psf

    inst = instrument_psf(meta)
    return inst.kernel, inst.fwhm_pix, inst.describe(ascii=True)



def target_psf(restorer: Any) -> np.ndarray:
    """The model's target (GT) PSF, the image of a restored star.

    Raises
    ------
    ParameterError
        When the model does not state its target PSF.
    """
    fwhm = restorer.metadata.extra.get("gt_psf_fwhm_pix")
    if not fwhm:
        raise ParameterError("point_source", f"the model {restorer.name!r} does not state its target (GT) PSF, so "
                             "a star cannot be restored as one")
    return gaussian_psf(float(fwhm), 2 * math.ceil(2 * float(fwhm)) + 1)


def add_star(star: Any, remainder: np.ndarray, data: np.ndarray, as_target: np.ndarray) -> np.ndarray:
    """The restoration of a point-source stamp: the star as the target PSF (``as_target``, the model's target PSF
    at the star's fitted flux and position), plus the network's restoration of the remainder away from the star
    and the remainder itself (unrestored) on it.

    Near a bright star's core the remainder is the PSF model's mismatch, hundreds of σ bright, far outside
    the network's range: restored, it came back as a ring 80σ *below* the sky around the WFC3/IR star.  Within
    ``STAR_CORE[0]`` FWHM the data's own remainder is kept; the network's answer takes over by
    ``STAR_CORE[1]`` FWHM (a cosine ramp)."""
    a, b = STAR_CORE
    w = np.clip((_star_radius(star, data.shape) - a) / (b - a), 0.0, 1.0)
    w = 0.5 - 0.5 * np.cos(np.pi * w)  # 0 on the star, 1 away from it
    rem = np.asarray(remainder, dtype=np.float64)
    out = w * data + (1.0 - w) * rem + as_target
    return out.astype(np.float32)


def fit_star(restorer: Any, st: Stamp) -> Any:
    """Fit the star at the stamp's centre with the input's PSF (point-source mode)."""
    from galviewer.core.restore.point_source import fit_point_source

    target_psf(restorer)  # refuse before the fit if the model cannot say what a restored star looks like
    kernel, fwhm, _ = star_psf(st, restorer.metadata.psf_fwhm_pix)
    return fit_point_source(st.lq, kernel, st.center_in_stamp, fwhm=fwhm, mask=_partial(st.padded | st.bad))


def _post_noise(restorer: Any, st: Stamp, data: np.ndarray, step: str) -> np.ndarray | float | None:
    """The noise a post-step (anchoring, consistency, repair) works with, or None (reason in ``st.extra``)."""
    if data.size > restorer.MAX_CONSISTENCY_PIXELS:
        st.extra[f"{step}_skipped"] = f"larger than {restorer.MAX_CONSISTENCY_PIXELS} pixels"
        return None
    noise: np.ndarray | float = st.err if st.err is not None else st.background_rms
    if np.ndim(noise) == 0 and not (math.isfinite(float(noise)) and float(noise) > 0):
        st.extra[f"{step}_skipped"] = "no noise estimate"
        return None
    return noise


def _post_step(restorer: Any, st: Stamp, data: np.ndarray, step: str, run: Any) -> Any:
    """``run(noise)`` for a post-step, or None where it cannot apply (the reason in ``st.extra``)."""
    noise = _post_noise(restorer, st, data, step)
    if noise is None:
        return None
    try:
        return run(noise)
    except ParameterError as exc:
        st.extra[f"{step}_skipped"] = exc.reason
        return None


def anchor_step(restorer: Any, st: Stamp, lq: np.ndarray, data: np.ndarray, mask: np.ndarray,
                scale: float) -> Any:
    """The large-scale anchoring of one restoration to ``lq`` (the stamp's data, or in point-source mode what
    the star leaves), or None where it cannot apply (reason in the stamp)."""
    from galviewer.core.restore.consistency import anchor

    return _post_step(restorer, st, data, "anchor",
                      lambda noise: anchor(lq, data, restorer.psf, noise, scale=scale, mask=_partial(mask)))


def repair_step(restorer: Any, st: Stamp, data: np.ndarray, mask: np.ndarray) -> Any:
    """The local repair of one restoration against the stamp's data
    (:func:`~galviewer.core.restore.consistency.repair`), or None where it cannot apply (reason in the stamp)."""
    from galviewer.core.restore.consistency import repair

    return _post_step(restorer, st, data, "repair",
                      lambda noise: repair(st.lq, data, restorer.psf, noise, mask=_partial(mask)))


def fuse_step(restorer: Any, st: Stamp, data: np.ndarray, mask: np.ndarray, lq: np.ndarray | None = None) -> Any:
    """The data-consistency step on one restoration, or None where it cannot apply (reason in the stamp).

    ``lq`` is the data it must explain through the model's kernel (default the stamp's; in point-source mode
    what the fitted star leaves)."""
    from galviewer.core.restore.consistency import fuse

    return _post_step(restorer, st, data, "consistency",
                      lambda noise: fuse(st.lq if lq is None else lq, data, restorer.psf, noise,
                                         mask=_partial(mask)))


def decide_point_source(restorer: Any, st: Stamp, mode: bool | str) -> tuple[Any, dict[str, Any]]:
    """The ``point_source`` step: the star to restore as one (or None) and the evidence for the decision.

    ``mode`` True fits the star (and refuses a stamp without one, naming why); False restores the source as
    it is; ``"auto"`` fits a star and keeps it only where :func:`~galviewer.core.measure.spread.spread_model`
    says the source is unresolved with confidence — a resolved source, or one without a star of S/N ≥ 5 at the
    centre, is restored as it is.
    """
    if mode is False or mode is None:
        return None, {"mode": "off", "point": False, "reason": "point-source mode off"}
    if mode is True:
        star = fit_star(restorer, st)
        return star, {"mode": "on", "point": True, "reason": "point-source mode asked for"}
    from galviewer.core.measure.spread import spread_model

    try:
        star = fit_star(restorer, st)
    except ParameterError as exc:
        return None, {"mode": "auto", "point": False, "reason": exc.reason}
    kernel, fwhm, _ = star_psf(st, restorer.metadata.psf_fwhm_pix)
    noise = st.err if st.err is not None else st.background_rms
    sp = spread_model(np.asarray(st.lq, dtype=np.float64) - star.sky, place(kernel, star.x, star.y, st.lq.shape),
                      noise, fwhm=fwhm, center=(star.x, star.y), mask=st.padded | st.bad)
    evidence = {"mode": "auto", "point": sp.point, "spread_model": sp.value, "spread_error": sp.error,
                "threshold": sp.threshold, "reason": sp.describe()}
    return (star if sp.point else None), evidence
