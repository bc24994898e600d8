"""Steps ``point_source`` to ``residual`` of the pipeline on cut-outs as they are given.

:func:`restore_cutouts` is what :meth:`Restorer.restore_many <galviewer.core.restore.engine.Restorer.restore_many>`
runs; :class:`~galviewer.core.restore.pipeline.Pipeline` adds the cut-out with its margin, the cleaning, the crop
and the verdict around it.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from galviewer.core.io.fits import MAX_PIXEL_VALUE
from galviewer.core.io.stamps import Stamp, stamp_from_array
from galviewer.core.restore.calibration import SIGMA_CALIBRATED
from galviewer.core.restore.point_source import place
from galviewer.core.restore.poststeps import (
    POINT_RESCALE,
    _network_remainder,
    _partial,
    _star_core,
    add_star,
    anchor_step,
    decide_point_source,
    fuse_step,
    repair_step,
    star_psf,
    target_psf,
)
from galviewer.core.restore.rescale import convolve32, rescale_to_physical
from galviewer.core.restore.result import Restoration
from galviewer.errors import ParameterError, RestoreError

if TYPE_CHECKING:
    from galviewer.core.restore.engine import Restorer

__all__ = ["MAX_PIXEL_VALUE", "check_anchor", "check_point_source", "restore_cutouts"]

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool] | threading.Event | None
RescaleMethod = Literal["auto", "paper", "lstsq", "minmax"]



def check_point_source(value: Any) -> bool | str:
    """Point-source mode: True, False or ``"auto"`` (decided per source); ParameterError naming it otherwise."""
    if value == "auto" or isinstance(value, bool | np.bool_):
        return value if value == "auto" else bool(value)
    raise ParameterError("point_source", f"must be True, False or 'auto', got {value!r}")


def check_anchor(value: Any) -> float:
    """A valid anchoring σ in pixels (0: off); ParameterError naming ``anchor`` otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError("anchor", f"must be a number of pixels (0 for none), got {value!r}") from None
    if not (math.isfinite(v) and 0 <= v <= 64):
        raise ParameterError("anchor", f"must be 0 (off) or a σ of up to 64 pixels, got {value!r}")
    return v



def _cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


# Where a source in the context margin is brighter than the stamp's interior (EDGE_BAND px in from its edge), the
# network is run twice: once on the cut-out clipped at the interior's top (so the stamp keeps its own dynamic
# range), once on the full range; the second answer takes over within BLEND_PX[0] px of the clipped pixels and
# the first beyond BLEND_PX[1] px (a linear ramp).  Within ANCHOR_GUARD px of them the anchoring works on its own.
BLEND_PX = (0.5, 2.0)
ANCHOR_GUARD = 4.0
EDGE_BAND = 4


@dataclass
class Prepared:
    """The ``normalise`` step of one cut-out: the network's input(s) and how to map its output back."""

    norm: np.ndarray  # network input in [0, 1]
    lo: float
    hi: float
    seen: np.ndarray  # what ``norm`` was made from, in input units
    wide: np.ndarray | None = None  # the full-range input, where the margin holds brighter pixels
    wide_hi: float = math.nan
    distance: np.ndarray | None = None  # from the nearest clipped pixel (px), with ``wide``

    @property
    def weight(self) -> np.ndarray:
        """Where the full-range answer is taken (1) or the clipped one's (0): a ramp over :data:`BLEND_PX`."""
        a, b = BLEND_PX
        return np.clip((b - self.distance) / (b - a), 0.0, 1.0).astype(np.float32)

    @property
    def bright(self) -> np.ndarray:
        """The brighter sources' pixels and :data:`ANCHOR_GUARD` px around them."""
        return self.distance <= ANCHOR_GUARD


def _prepare(restorer: Restorer, st: Stamp, star: Any, margin: int = 0) -> Prepared:
    """The ``normalise`` step: min-max to [0, 1], the top of the range set by what the user sees.

    What the network is given must not depend on pixels outside the shown stamp (issue 23): a neighbour
    10–1,000× the target's peak in the 8-px margin set the min-max range and squeezed the target into the
    network's noise floor, changing RS by 2–17σ rms over the stamp (``benchmarks/margin_sources.py``).  With a
    context ``margin`` the top is the maximum of the stamp's interior (``EDGE_BAND`` px in from its edge, where a
    margin source's light does not reach); brighter pixels are clipped to it, and for their surroundings
    (within ``BLEND_PX`` px of them) a second, full-range input is made.  Where the interior holds the
    maximum — an isolated source, or a brighter neighbour inside the stamp — nothing changes.  In point-source
    mode the star's remainder is only clipped (no second pass)."""
    for step in ("anchor", "consistency"):  # a reason from an earlier restoration of the same stamp
        st.extra.pop(f"{step}_skipped", None)
    lq = np.asarray(st.lq, dtype=np.float32)
    if star is not None:  # the network restores what the star leaves, its core filled with sky
        lq = _network_remainder(st, star)
    lo, hi = float(lq.min()), float(lq.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ParameterError("image", "holds non-finite values")
    if max(abs(lo), abs(hi)) > MAX_PIXEL_VALUE:
        raise RestoreError(f"the image holds values up to {max(abs(lo), abs(hi)):.3g}, beyond any plausible "
                           f"pixel value (|v| <= {MAX_PIXEL_VALUE:g}): mark such pixels as bad (DQ flags or a "
                           "masked array) and try again", "image")
    if hi - lo <= 0 or (hi - lo) <= 1e-7 * max(abs(hi), abs(lo)):
        raise RestoreError("the image is constant: nothing to restore", "image")
    top = hi
    band = margin + EDGE_BAND if margin > 0 else 0
    if band > 0 and min(lq.shape) > 2 * band + 4:
        top = float(lq[band:-band, band:-band].max())
    if not (top < hi and top - lo > 1e-7 * max(abs(top), abs(lo))):
        return Prepared((lq - lo) / (hi - lo), lo, hi, lq)
    clipped = lq > top
    seen = np.minimum(lq, np.float32(top))
    prep = Prepared((seen - lo) / (top - lo), lo, top, seen)
    if star is None:
        from scipy import ndimage

        prep.distance = ndimage.distance_transform_edt(~clipped)
        prep.wide, prep.wide_hi = (lq - lo) / (hi - lo), hi
    return prep


def restore_cutouts(
    restorer: Restorer,
    images: Sequence[Stamp | np.ndarray],
    *,
    uncertainty: bool,
    rescale: RescaleMethod,
    consistency: bool,
    anchor: float,
    point_source: bool | str,
    repair: bool = False,
    margin: int = 0,
    batch_size: int | None = None,
    progress: Progress | None = None,
    cancel: Cancel = None,
) -> list[Restoration]:
    """Steps ``point_source`` to ``residual`` on cut-outs as they are (no crop, no verdict).

    ``margin`` is the context margin they were cut with: see :func:`_prepare` for how it sets the normalisation.

    Raises
    ------
    ParameterError
        For an unknown rescaling, an anchoring σ out of range or a non-finite input.
    RestoreError
        For a constant input, one beyond any plausible pixel value, or a broken network.
    RestoreCancelled
        When cancelled.
    """
    if rescale not in ("auto", "paper", "lstsq", "minmax"):
        raise ParameterError("rescale", f"must be auto, paper, lstsq or minmax, got {rescale!r}")
    anchor = check_anchor(anchor)
    t0 = time.perf_counter()
    stamps = [im if isinstance(im, Stamp) else stamp_from_array(im) for im in images]
    decided = [decide_point_source(restorer, st, point_source) for st in stamps]
    stars = [d[0] for d in decided]
    prepared = [_prepare(restorer, st, star, margin) for st, star in zip(stamps, stars, strict=True)]
    wide = [i for i, p in enumerate(prepared) if p.wide is not None]
    outs = restorer.restore_normalized([p.norm for p in prepared] + [prepared[i].wide for i in wide],
                                       uncertainty=uncertainty, progress=progress, cancel=cancel,
                                       batch_size=batch_size)
    for rs, spread in outs:
        if not (np.isfinite(rs).all() and (spread is None or np.isfinite(spread).all())):
            raise RestoreError(f"the network gave NaN or infinite pixels for a finite input in [0, 1]: the "
                               f"checkpoint {restorer.name!r} is broken or unstable", "model")
    second: list[Any] = [None] * len(prepared)
    for k, i in enumerate(wide):
        second[i] = outs[len(prepared) + k]
    results = [_to_units(restorer, st, star, prep, out, wide_out, rescale=rescale, anchor=anchor,
                         consistency=consistency, repair=repair)
               for st, star, prep, out, wide_out in zip(stamps, stars, prepared, outs, second, strict=False)]
    elapsed = (time.perf_counter() - t0) / max(len(stamps), 1)
    for r, (_, evidence) in zip(results, decided, strict=True):
        r.meta["seconds"] = elapsed
        r.meta["point_source_decision"] = evidence
    return results


def _to_units(restorer: Restorer, st: Stamp, star: Any, prepared: Prepared, out: tuple[np.ndarray, np.ndarray | None],
              wide_out: tuple[np.ndarray, np.ndarray | None] | None, *, rescale: RescaleMethod, anchor: float,
              consistency: bool, repair: bool = False) -> Restoration:
    """Steps ``units`` to ``residual`` on one cut-out (``wide_out``: the full-range pass, where there is one)."""
    norm_in, lo, hi, seen = prepared.norm, prepared.lo, prepared.hi, prepared.seen
    rs, spread = out
    net_lq = st.lq if star is None else st.lq - star.model
    method = rescale
    if method == "auto":
        method = ("paper" if max(st.lq.shape) <= 128 else "lstsq") if star is None else POINT_RESCALE
    note = ""
    mask = st.padded | st.bad
    if method == "minmax":
        s, c = hi - lo, lo
    else:
        try:
            s, c, _ = rescale_to_physical(seen, rs, restorer.psf, method=method, center=st.center_in_stamp,
                                          mask=_partial(mask))
        except RestoreError as exc:
            note = f"{exc.reason}; fell back to inverting the min-max normalisation"
            s, c, method = hi - lo, lo, "minmax"
    overflow = RestoreError(f"the restored image does not fit in float32 (input values {lo:.3g} to {hi:.3g}, "
                            f"scale {s:.3g}): rescale the input (e.g. to electrons/s) and try again", "image")
    with np.errstate(over="ignore", invalid="ignore"):
        data = (s * rs + c).astype(np.float32)
        sigma = None if spread is None else (abs(s) * spread).astype(np.float32)
    if not (np.isfinite(data).all() and (sigma is None or np.isfinite(sigma).all())):
        raise overflow
    if wide_out is not None:  # near the margin's bright sources: their own full-range restoration
        w, span = prepared.weight, prepared.wide_hi - lo
        with np.errstate(over="ignore", invalid="ignore"):
            data = ((1.0 - w) * data + w * (span * wide_out[0] + lo)).astype(np.float32)
            if sigma is not None and wide_out[1] is not None:
                sigma = ((1.0 - w) * sigma + w * (span * wide_out[1])).astype(np.float32)
        if not (np.isfinite(data).all() and (sigma is None or np.isfinite(sigma).all())):
            raise overflow
    # anchored to the data the network saw: in point-source mode, the remainder (the star's model, made by the
    # instrument PSF, is not what the model's Gaussian kernel would make of the target PSF: anchoring the sum
    # dug a ring 70σ below the sky around the WFC3/IR star)
    core = np.zeros(mask.shape, bool) if star is None else _star_core(star, mask.shape)
    anchored = anchor_step(restorer, st, net_lq, data, mask | core, anchor) if anchor > 0 else None
    if anchored is not None and wide_out is not None:
        # The margin's bright sources lie far beyond the network's range and their mismatch is hundreds
        # of σ: anchored together with their surroundings, the smoothing spread it over the faint sky around them
        # (3.7σ rms 10–20 px from a neighbour 700× the target's peak).  The surroundings are anchored without
        # them, the bright sources with everything, the two joined over ANCHOR_GUARD px.
        apart = anchor_step(restorer, st, net_lq, data, mask | core | prepared.bright, anchor)
        if apart is not None:
            g = np.clip((ANCHOR_GUARD - prepared.distance) / (ANCHOR_GUARD - 1.0), 0.0, 1.0)
            anchored = dataclasses.replace(anchored, image=(g * anchored.image + (1 - g) * apart.image
                                                            ).astype(np.float32))
    if anchored is not None:
        data = anchored.image
    # the star as the model's target PSF at its fitted flux: added back, and taken out again for the consistency
    # step and the residual, which treat it apart
    as_target = None if star is None else star.flux * place(target_psf(restorer), star.x, star.y, data.shape)
    if star is not None:
        data = add_star(star, net_lq, data, as_target)
    if consistency and star is not None:  # the rest is fused with what the star leaves, through the model's kernel
        fused = fuse_step(restorer, st, (data - as_target).astype(np.float32), mask,
                          lq=np.asarray(st.lq - star.model, dtype=np.float32))
        if fused is not None:
            fused = dataclasses.replace(fused, image=(fused.image + as_target).astype(np.float32))
    else:
        fused = fuse_step(restorer, st, data, mask) if consistency else None
    if fused is not None:
        data = fused.image
    # where the residual still holds structure (a bright neighbour's over-restored core, knots smoothed away),
    # RS is moved towards the data there and only there (issue 23, item 4).  Not in point-source mode: what is
    # left around a fitted star is the PSF model's own mismatch, which a repair would turn into invented light
    # (the STIS star's flux conservation went 0.99 → 1.06)
    repaired = None
    if repair and star is not None:
        st.extra["repair_skipped"] = "point-source mode: what the star leaves is its PSF model's mismatch"
    elif repair:
        repaired = repair_step(restorer, st, data, mask)
        if repaired is not None and repaired.iterations:
            data = repaired.image
    cal = restorer.sigma_calibration
    if sigma is not None and cal is not None:  # the spread of the flips → a 1σ, by the checkpoint's factors
        sigma = cal.apply(sigma, data, st.background_level, st.background_rms)
    with np.errstate(over="ignore", invalid="ignore"):  # once, on the image that is returned
        if star is None:
            residual = np.subtract(st.lq, convolve32(data, restorer.psf), dtype=np.float32)
        else:
            # the star through the PSF it was fitted with (its instrument's), the rest through the model's kernel:
            # through the Gaussian kernel a real PSF's wings and spikes could never be explained (issue 23, item 2;
            # χ² of the WFC3/IR star 1,849 → 9.5 against 19.5 for a plain PSF fit, the STIS star 4.7 → 3.6)
            rest = convolve32((data - as_target).astype(np.float32), restorer.psf)
            residual = np.subtract(st.lq, star.model + rest, dtype=np.float32)
    if not np.isfinite(residual).all():
        raise overflow
    md = restorer.metadata
    meta = {
        "model": restorer.name,
        "model_sha256": restorer.model_sha256 or md.weights_sha256,
        "model_path": "" if restorer.model_path is None else str(restorer.model_path),
        "rescale": method,
        "rescale_note": note,
        "scale": s,
        "offset": c,
        "input_min": lo,
        "input_max": hi,
        "uncertainty": spread is not None,
        "sigma_kind": None if spread is None else (SIGMA_CALIBRATED if cal is not None else "flip spread"),
        "device": str(restorer.device),
        "precision": "float16" if restorer.half else "float32",
        "psf_fwhm_pix": md.psf_fwhm_pix,
        "residual_psf": restorer.psf_source if star is None else
        f"the star through {star_psf(st, md.psf_fwhm_pix)[2]}, the rest through {restorer.psf_source}",
        "trained_fwhm_pix": restorer.trained_fwhm,
        "model_pixel_scale": md.pixel_scale_arcsec,
        "noise_rms_range": tuple(md.noise_rms_range),
        "input_noise_norm": st.background_rms / (hi - lo) if math.isfinite(st.background_rms) else math.nan,
        "normalisation": {"top": hi, "full_top": prepared.wide_hi if wide_out is not None else float(st.lq.max()),
                          "second_pass": wide_out is not None,
                          "blended_fraction": float(np.mean(prepared.weight > 0)) if wide_out is not None else 0.0},
        "gt_psf_fwhm_pix": md.extra.get("gt_psf_fwhm_pix"),
        "point_source": None if star is None else {
            "flux": star.flux, "x": star.x, "y": star.y, "sky": star.sky, "explained": star.explained,
            "psf": star_psf(st, md.psf_fwhm_pix)[2]},
        "anchor": None if anchored is None else {
            "scale": anchored.scale, "iterations": anchored.iterations,
            "threshold": anchored.threshold, "changed_fraction": anchored.changed_fraction},
        # a step that was asked for but could not run says why (panel header, CLI, figure)
        "skipped": {k: st.extra[f"{k}_skipped"] for k, asked in (("anchor", anchor > 0), ("consistency", consistency),
                                                                 ("repair", repair))
                    if asked and f"{k}_skipped" in st.extra},
        "repair": None if repaired is None else {
            "regions": len(repaired.regions), "left": repaired.left, "iterations": repaired.iterations,
            "window_pixels": repaired.window_pixels},
        "consistency": None if fused is None else {
            "mu": fused.mu, "chi2_network": fused.chi2_before, "chi2": fused.chi2_after,
            "changed_fraction": fused.changed_fraction},
    }
    return Restoration(lq=st.lq, data=data, normalized=rs.astype(np.float32, copy=False), sigma=sigma,
                       residual=residual, model_input=norm_in.astype(np.float32, copy=False), scale=s, offset=c,
                       psf=restorer.psf, stamp=st, meta=meta)
