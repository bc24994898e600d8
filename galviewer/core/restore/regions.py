"""Regions restored through the one pipeline: a rectangle, ellipse or polygon's bounding box, cut with the
context margin, restored as one piece (tiled within the memory budget) and cropped back."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from galviewer.core.io.fits import Image
from galviewer.core.io.regions import AnyRegion, region_stamp
from galviewer.errors import RestoreError

__all__ = ["RegionRestoration", "restore_region"]


@dataclass
class RegionRestoration:
    """A restored region: the restoration of its bounding box and the in-region mask."""

    region: AnyRegion
    restoration: Any
    inside: np.ndarray

    def summary(self) -> dict[str, float]:
        """Numbers over the pixels inside the region, all above one background: LQ's σ-clipped mode in the box.

        ``flux_lq`` and ``flux_rs`` are the sums of LQ and RS above it, ``flux_lq_err`` the first's 1-σ error
        (√Σσ² from the stamp's error map, else the background rms: uncorrelated noise); ``conservation`` is
        Σ(PSF⊗RS − bkg) / Σ(LQ − bkg), PSF⊗RS being ``LQ − residual`` (the verdict's flux check); ``psf_spill``
        is Σ(RS − PSF⊗RS) / Σ(LQ − bkg), the light the PSF carries across the region's edge, so that
        flux_rs / flux_lq = conservation + psf_spill exactly; ``resid_rms_over_noise`` is the rms of
        LQ − PSF⊗RS divided by the LQ background rms.
        """
        from galviewer.core.measure.background import background
        from galviewer.core.restore.verdict import region_conservation

        r = self.restoration
        st = r.stamp
        bad = st.bad | st.padded
        lq = np.asarray(r.lq, dtype=np.float64)
        bkg = background(lq, mask=bad)
        rs_bkg = background(r.data, mask=bad)
        use = self.inside & ~bad
        lq_sum = float(np.sum(lq[use] - bkg.level))
        rs_sum = float(np.sum(np.asarray(r.data, dtype=np.float64)[use] - bkg.level))
        conservation = region_conservation(r, use, bad)  # Σ(PSF⊗RS − bkg) / Σ(LQ − bkg), the verdict's
        noise = bkg.rms if bkg.rms and math.isfinite(bkg.rms) else float("nan")
        err = np.asarray(st.err, dtype=np.float64)[use] if st.err is not None else np.full(int(use.sum()), noise)
        resid = r.residual[use]
        sig = r.sigma[use] if r.sigma is not None else None
        return {
            "pixels": float(use.sum()),
            "flux_lq": lq_sum,
            "flux_lq_err": float(np.sqrt(np.sum(err**2))),
            "flux_rs": rs_sum,
            "conservation": conservation,
            # Σ(RS − PSF⊗RS) / Σ(LQ − bkg): what the region's sums differ by beyond the conservation
            "psf_spill": rs_sum / lq_sum - conservation if lq_sum > 0 else float("nan"),
            "noise_lq": noise,
            "noise_rs": float(rs_bkg.rms),
            "resid_rms_over_noise": float(np.sqrt(np.mean((resid - np.median(resid)) ** 2)) / noise),
            "sigma_median": float(np.median(sig)) if sig is not None else float("nan"),
        }


def restore_region(pipeline: Any, image: Image | np.ndarray, region: AnyRegion, *, progress: Any = None,
                   cancel: Any = None, judge: bool = True) -> RegionRestoration:
    """Restore a region as one piece with ``pipeline``'s settings (see
    :meth:`Pipeline.run_region <galviewer.core.restore.pipeline.Pipeline.run_region>`).

    The region is judged like a click (:func:`~galviewer.core.restore.verdict.assess` on its pixels:
    χ², the region's flux conservation, RS/LQ rms, border, new sources, every source's flux, residual structure,
    training range; no centre check) unless ``judge`` is False; the verdict is in
    ``restoration.meta["verdict"]``.

    The bounding box is cut ``pipeline.config.context`` px larger on every side, cleaned, restored with the
    network output mapped to the input's units by least squares over the pixels *inside* the region, and cropped
    back, so the network's edges fall outside it.  Point-source mode does not apply to regions.

    Raises
    ------
    ParameterError
        When the region misses the image.
    RestoreError
        When the region is constant or every pixel in it is flagged.
    RestoreCancelled
        When cancelled.
    """
    context = pipeline.config.context
    stamp, inside = region_stamp(image, region, context)
    stamp = pipeline.clean(image, stamp)
    if not (inside & ~stamp.bad).any():
        raise RestoreError("every pixel inside the region is flagged bad", "region")
    # Least squares over the region's own pixels: outside pixels (e.g. of an ellipse's box) do not steer the scale.
    fit_mask = stamp.padded | stamp.bad | ~inside
    fitted = dataclasses.replace(stamp, bad=fit_mask & ~stamp.padded) if not inside.all() else stamp
    r = pipeline.restore_stamps([fitted], rescale="lstsq", progress=progress, cancel=cancel, image=image,
                                region=True)[0]
    m = context
    # the stamp shown keeps its own bad-pixel mask (the fit's mask also held the pixels outside the region)
    r.stamp = dataclasses.replace(r.stamp, bad=stamp.bad[m: stamp.bad.shape[0] - m, m: stamp.bad.shape[1] - m])
    r.meta["region"] = region.ds9()
    rr = RegionRestoration(region, r, inside[m: inside.shape[0] - m, m: inside.shape[1] - m])
    if judge:
        from galviewer.core.restore.verdict import assess

        r.meta["verdict"] = assess(r, inside=rr.inside)
    return rr
