"""What a restoration returns: :class:`Restoration`, its crop to the stamp shown, and the one-line account of
the steps that ran after the network (:func:`steps_text`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from galviewer.core.io.stamps import Stamp
from galviewer.errors import ParameterError

__all__ = ["Restoration", "crop_restoration", "steps_text"]


@dataclass
class Restoration:
    """A restored image with everything needed to judge it.

    Attributes
    ----------
    lq : numpy.ndarray
        The input, in its own units (after stamp padding / in-painting).
    data : numpy.ndarray
        Restored image in the input's units: ``scale · normalized + offset``, then anchored to the data's large
        scales and/or fused with the data where those steps ran (``meta["anchor"]``, ``meta["consistency"]``);
        in point-source mode the fitted star at the target PSF is added first (``meta["point_source"]``).
    normalized : numpy.ndarray
        Network output in the min-max normalised units of the input.
    sigma : numpy.ndarray or None
        Per-pixel spread of the 8 flip/rotation restorations, in the input's units.
    residual : numpy.ndarray
        ``lq − PSF ⊗ data``.
    model_input : numpy.ndarray
        The normalised LQ the network saw.
    scale, offset : float
        The eq. 8–9 (or fallback) mapping from normalised to input units.
    psf : numpy.ndarray
        The LQ PSF used for the rescaling and the residual.
    stamp : Stamp or None
    meta : dict
        Model name and sha256, rescale method, device, timing, the pipeline's steps (``"pipeline"``) and,
        once judged, the quality verdict (``"verdict"``).
    measurements : Measurements or None
        LQ and RS measured side by side, once the pipeline's ``verdict`` step has run.
    """

    lq: np.ndarray
    data: np.ndarray
    normalized: np.ndarray
    sigma: np.ndarray | None
    residual: np.ndarray
    model_input: np.ndarray
    scale: float
    offset: float
    psf: np.ndarray
    stamp: Stamp | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    measurements: Any = None


def steps_text(meta: dict[str, Any]) -> str:
    """What was done after the network, for status lines, panels and figures (empty when nothing).

    Parameters
    ----------
    meta : dict
        ``Restoration.meta``.

    Returns
    -------
    str
        E.g. ``"large scales anchored to the data (σ 2 px) · consistency: χ² 3.1 → 1"``.
    """
    parts = []
    if meta.get("context"):
        n = int(meta["context"])
        article = "an" if str(n).startswith("8") or n in (11, 18) else "a"  # "an 8 px", "an 11 px"
        parts.append(f"restored with {article} {n} px context margin")
    star = meta.get("point_source")
    decision = meta.get("point_source_decision") or {}
    if star:
        why = (f" (unresolved: spread_model {decision['spread_model']:.4f} ± {decision['spread_error']:.4f})"
               if decision.get("mode") == "auto" else "")
        parts.append(f"point source{why}: flux {star['flux']:.4g} PSF-fitted at ({star['x']:.2f}, {star['y']:.2f}), "
                     "restored as the target PSF")
    anchored = meta.get("anchor")
    if anchored:
        parts.append(f"large scales anchored to the data (σ {anchored['scale']:g} px)")
    cons = meta.get("consistency")
    if cons:
        parts.append(f"consistency: χ² {cons['chi2_network']:.3g} → {cons['chi2']:.3g}" if math.isfinite(cons["mu"])
                     else f"consistency: RS kept (χ² {cons['chi2_network']:.3g})")
    fixed = meta.get("repair")
    if fixed and fixed["iterations"]:
        n, left = fixed["regions"], fixed["left"]
        parts.append(f"repaired {n} residual structure{'s' if n != 1 else ''} ({fixed['iterations']} Landweber steps"
                     + (f", {left} left" if left else "") + ")")
    for step, why in (meta.get("skipped") or {}).items():
        parts.append(f"{'anchoring' if step == 'anchor' else step} skipped: {why}")
    return " · ".join(parts)


def crop_restoration(r: Restoration, margin: int) -> Restoration:
    """The central part of a restoration, ``margin`` pixels in from every side (context margin, issue 11).

    Restoring a cut-out ``2·margin`` larger than the stamp and cropping keeps the network's own edges out of the
    result; the residual is the larger one's, cropped, so it is computed with the context too.  The stamp (LQ,
    ERR, masks, WCS, origin) is cropped alike, a point source's fitted position moved into the kept pixels;
    ``meta["context"]`` records the margin.

    Raises
    ------
    ParameterError
        For a negative margin or one that leaves fewer than 8×8 pixels.
    """
    m = int(margin)
    if m < 0 or min(r.lq.shape) - 2 * m < 8:
        raise ParameterError("context", f"a margin of {margin} px leaves less than 8×8 of a {r.lq.shape} restoration")
    if m == 0:
        return r
    sl = (slice(m, -m), slice(m, -m))

    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a[sl])

    st = r.stamp
    if st is not None:
        st = dataclasses.replace(st, lq=cut(st.lq), err=cut(st.err), bad=cut(st.bad), padded=cut(st.padded),
                                 wcs=None if st.wcs is None else st.wcs[sl],
                                 origin=(st.origin[0] + m, st.origin[1] + m))
    meta = {**r.meta, "context": m}
    if meta.get("point_source"):  # the fitted star's position, in the kept stamp's pixels
        star = meta["point_source"]
        meta["point_source"] = {**star, "x": star["x"] - m, "y": star["y"] - m}
    return dataclasses.replace(r, lq=cut(r.lq), data=cut(r.data), normalized=cut(r.normalized), sigma=cut(r.sigma),
                               residual=cut(r.residual), model_input=cut(r.model_input), stamp=st, meta=meta)

