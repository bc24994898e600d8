"""A labelled figure of one restoration (PNG, PDF or SVG): LQ | RS | residual/σ | uncertainty.

Every panel has axes in stamp pixels and a colour bar in the image's units (the residual in units of the noise,
on a diverging map from −5σ to +5σ); the title states the file, extension, source position (pixels and
RA/Dec), the model and its checksum, the rescaling, the kernel of the residual and the quality verdict — what
a reader of the figure needs to judge it without the app.  Drawn with matplotlib's object API on the Agg
canvas (no GUI, no pyplot state), written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from galviewer.core.io.fits import sexagesimal
from galviewer.core.restore.calibration import sigma_title
from galviewer.core.restore.result import steps_text
from galviewer.errors import ExportError

__all__ = ["FIGURE_FORMATS", "restoration_figure"]

FIGURE_FORMATS = (".png", ".pdf", ".svg")


def _lines(restoration: Any, verdict: Any) -> tuple[list[str], str, str]:
    st = restoration.stamp
    m = restoration.meta
    head = []
    if st is not None:
        name = Path(st.source).name if st.source else "(array)"
        ext = f" [{st.ext}]" if st.ext else ""
        cx, cy = st.center
        where = f"source at x={cx:.2f} y={cy:.2f} (0-based image pixels)"
        if st.wcs is not None:
            try:
                sc = st.wcs.pixel_to_world(*st.center_in_stamp)
                ra, dec = float(sc.ra.deg), float(sc.dec.deg)
                if math.isfinite(ra) and math.isfinite(dec):
                    where += f", {sexagesimal(ra, dec)} (RA {ra:.6f}, Dec {dec:+.6f} deg)"
            except Exception:
                pass
        ny, nx = st.lq.shape
        head.append(f"{name}{ext} · {where} · {nx}×{ny} px stamp")
    sha = str(m.get("model_sha256") or "")[:12]
    steps = steps_text(m)
    head.append(f"model {m.get('model')} ({sha or 'no checksum'}) · RS = {restoration.scale:.4g}·out "
                f"{'+' if restoration.offset >= 0 else '−'} {abs(restoration.offset):.4g} ({m.get('rescale')})"
                + (f" · {steps}" if steps else "")
                + f" · residual kernel: {m.get('residual_psf') or 'the model PSF'}")
    if verdict is None:
        return head, "quality not assessed", "ok"
    if verdict.ok:
        return head, "quality ok: " + "; ".join(c.text for c in verdict.checks.values()), "ok"
    if verdict.level == "caution":  # the data are explained; only the training range is left (amber, not red)
        return head, "QUALITY CAUTION (the data are explained): " + "; ".join(verdict.failures), "caution"
    return head, "QUALITY FAILS: " + "; ".join(verdict.failures), "fail"


def restoration_figure(path: str | os.PathLike[str], restoration: Any, *, verdict: Any = None,
                       overwrite: bool = False, dpi: int = 150) -> Path:
    """Write a labelled figure of a restoration.

    Parameters
    ----------
    path : path-like
        Destination; ``.png``, ``.pdf`` or ``.svg``.
    restoration : Restoration
    verdict : Verdict, optional
        Its quality verdict (:func:`galviewer.core.restore.verdict.assess`), printed in the title; default the one in
        ``restoration.meta["verdict"]`` if any.
    overwrite : bool
        Replace an existing file.
    dpi : int
        Resolution of PNG output.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ExportError
        For an unknown format or a file that cannot be written.
    OutputExistsError
        The file exists and ``overwrite`` is False.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from galviewer._atomic import atomic_write
    from galviewer.core.measure.background import background

    p = Path(path)
    if p.suffix.lower() not in FIGURE_FORMATS:
        raise ExportError(p, f"unknown figure format {p.suffix!r}: use {', '.join(FIGURE_FORMATS)}")
    r = restoration
    if verdict is None:
        verdict = r.meta.get("verdict")
    st = r.stamp
    unit = (st.meta.bunit if st is not None and st.meta is not None else "") or "counts (no BUNIT)"
    noise = st.err if st is not None and st.err is not None else (background(r.lq).rms or 1.0)
    finite = np.asarray(r.lq)[np.isfinite(r.lq)]
    lo, hi = (np.percentile(finite, [0.25, 99.75]) if finite.size else (0.0, 1.0))
    if not hi > lo:
        hi = lo + 1.0
    from astropy.visualization import AsinhStretch, ImageNormalize
    from matplotlib.patches import Circle

    norm = ImageNormalize(vmin=lo, vmax=hi, stretch=AsinhStretch(0.1))
    off = st.padded if st is not None and st.padded.any() else None

    def shown(a: np.ndarray) -> np.ndarray:  # beyond the image: no data, drawn blank (not restored noise)
        a = np.asarray(a, dtype=np.float64)
        return a if off is None else np.where(off, np.nan, a)

    panels = [("LQ (input)", shown(r.lq), dict(cmap="gray", norm=norm), unit),
              ("RS (restored)", shown(r.data), dict(cmap="gray", norm=norm), unit),
              ("residual / σ  (LQ − PSF⊗RS)", shown(np.asarray(r.residual) / noise),
               dict(cmap="RdBu_r", vmin=-5, vmax=5), "σ")]
    if r.sigma is not None:
        top = float(np.nanpercentile(r.sigma, 99.5)) or 1.0
        panels.append((sigma_title(r.meta), shown(r.sigma), dict(cmap="viridis", vmin=0.0, vmax=top),
                       unit))
    head, quality, level = _lines(r, verdict)
    fig = Figure(figsize=(3.4 * len(panels), 4.1), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels))
    for ax, (title, img, kw, u) in zip(np.atleast_1d(axes), panels, strict=True):
        im = ax.imshow(np.asarray(img, dtype=np.float64), origin="lower", interpolation="nearest", **kw)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x (stamp px)", fontsize=8)
        ax.set_ylabel("y (stamp px)", fontsize=8)
        ax.tick_params(labelsize=7)
        cb = fig.colorbar(im, ax=ax, shrink=0.82, pad=0.02)
        cb.set_label(u, fontsize=8)
        cb.ax.tick_params(labelsize=7)
    found = getattr(verdict, "structure", None)
    if found is not None and found.regions:  # where RS does not explain the data, circled on the residual
        ax = np.atleast_1d(axes)[2]
        for x, y, z, _ in found.regions:
            ax.add_patch(Circle((x, y), 3.5, fill=False, edgecolor="black", linewidth=1.0))
            ax.annotate(f"{z:+.0f}σ", (x, y), xytext=(5, 5), textcoords="offset points", fontsize=7)
    if st is not None:
        ox, oy = st.origin
        fig.text(0.5, 0.005, f"stamp pixel (0, 0) = image pixel ({ox}, {oy}), 0-based; LQ and RS share one asinh "
                 f"stretch ({lo:.4g} to {hi:.4g} {unit})", ha="center", va="bottom", fontsize=7, color="0.3")
    colour = {"ok": "black", "caution": "#b9770e"}.get(level, "#c0392b")  # amber: only the training range
    fig.suptitle("\n".join(head) + "\n" + quality, fontsize=8, color=colour, ha="center")

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format=p.suffix.lower()[1:], dpi=dpi)

    return atomic_write(p, write, overwrite=overwrite)
