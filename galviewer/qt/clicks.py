"""Click and panels: a click (or `t`) restores the source under the mouse through the pipeline, the panels show
LQ | RS | residual | uncertainty at once, and the measurements and verdict follow from their own job."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Qt

from galviewer.core.io.fits import Image
from galviewer.core.io.mosaic import Mosaic
from galviewer.core.io.stamps import Stamp
from galviewer.core.measure.compare import Measurements, compare
from galviewer.core.psf.instrument import instrument_psf
from galviewer.core.restore.consistency import ANCHOR_SCALE
from galviewer.core.restore.pipeline import Pipeline, PipelineConfig
from galviewer.core.restore.result import Restoration

if TYPE_CHECKING:
    from galviewer.qt.main_window import MainWindow

__all__ = ["CHECK_NAMES", "ClickController", "ClickResult", "quality_status"]

# Short names of the verdict's checks for the status line.
CHECK_NAMES = {"chi2": "χ²", "flux": "flux", "rms": "RS/LQ rms", "border": "border", "new_sources": "new sources",
               "sources": "a source's flux", "structure": "residual structure",
               "centre": "no source at the centre", "range": "outside training"}


def quality_status(verdict: Any, details: str = "") -> str:
    """The verdict in a few words for the status line (what fails, by short name), ``details`` appended to a
    failure; empty without a verdict."""
    if verdict is None:
        return ""
    if verdict.ok:
        return " · quality ok"
    head = " · quality: caution, " if verdict.level == "caution" else " · QUALITY FAILS: "
    return head + ", ".join(CHECK_NAMES.get(k, k) for k, c in verdict.checks.items() if not c.ok) + details


def _num(value: float, spec: str) -> str:
    """A number for the status line, "—" where it could not be measured (never a raw "nan")."""
    return format(value, spec) if math.isfinite(value) else "— (not measured)"


@dataclass
class ClickResult:
    """What one click produces."""

    stamp: Stamp
    restoration: Restoration
    measurements: Measurements | None  # filled by the "compare" job after the panels show; None for a region
    cosmic_rays: int


class ClickController:
    """Restores and measures what is clicked; owns the ``restore`` (stamps), ``compare`` and ``measure`` results."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window

    def config(self) -> PipelineConfig:
        """The pipeline settings the toolbar asks for (its boxes start at the pipeline's defaults)."""
        w = self.w
        return PipelineConfig(size=w.size_box.value(), context=w.margin_box.value(),
                              uncertainty=w.tta_box.isChecked(), consistency=w.cons_box.isChecked(),
                              repair=w.repair_box.isChecked(),
                              anchor=ANCHOR_SCALE if w.anchor_box.isChecked() else 0.0,
                              point_source=self.point_source_mode(), clean_cosmic_rays=w.cr_box.isChecked())

    def point_source_mode(self) -> bool | str:
        """The *point source* box: half-ticked "auto" (unresolved sources only), ticked always, unticked never."""
        state = self.w.star_box.checkState()
        return {Qt.CheckState.Checked: True, Qt.CheckState.Unchecked: False}.get(state, "auto")

    def pipeline(self) -> Pipeline | None:
        """The pipeline every click, region and batch of the window runs (None while the model loads)."""
        return None if self.w.restorer is None else Pipeline(self.w.restorer, self.config())

    def restore_at(self, x: float, y: float) -> None:
        """Cut a stamp at (x, y), clean, restore and measure it in the background; the latest click wins."""
        w = self.w
        target = self.chip_at(x, y)
        if target is None:
            return
        pipe = self.pipeline()
        if pipe is None:
            w.pending_click = (x, y)
            w.statusBar().showMessage("waiting for the model to load…")
            return
        image, cx, cy = target

        def job(progress, cancelled):
            r = pipe.run(image, cx, cy, progress=progress, cancel=cancelled, judge=False)
            return ClickResult(r.stamp, r, None, int(r.meta.get("cosmic_rays", 0))), pipe

        w.view.set_markers(np.array([[x, y]]))
        w.panels.info.setText(f"restoring x={x:.1f} y={y:.1f}…")
        w.jobs.submit("restore", job)

    def chip_at(self, x: float, y: float) -> tuple[Image, float, float] | None:
        """The image to cut from and the position in its pixels: the chip under (x, y) for a mosaic (None in a
        gap between chips, said in the status bar), else the open image itself (None outside it)."""
        image = self.w.image
        if image is None:
            return None
        if isinstance(image, Mosaic):
            hit = image.locate(x, y)
            if hit is None:
                self.w.statusBar().showMessage(f"x={x:.1f} y={y:.1f} falls between the chips", 5000)
                return None
            return hit[1], hit[2], hit[3]
        if not (0 <= x < image.data.shape[1] and 0 <= y < image.data.shape[0]):
            return None
        return image, x, y

    def to_view(self, stamp: Any, x: float, y: float) -> tuple[float, float]:
        """Where a position in the pixels of ``stamp``'s image is on show (the canvas of a mosaic)."""
        image = self.w.image
        if isinstance(image, Mosaic) and stamp is not None and stamp.ext in image.exts:
            return image.to_canvas(stamp.ext, x, y)
        return x, y

    def world(self, stamp: Any, x: float, y: float) -> tuple[float, float]:
        """RA, Dec (deg) of a position in ``stamp``'s image (through its chip's WCS for a mosaic)."""
        if self.w.image is None:
            return math.nan, math.nan
        return self.w.image.pixel_to_world(*self.to_view(stamp, x, y))

    def measure_at(self, x: float, y: float) -> None:
        """imexam-style `r`/`a`: Sérsic fit, Kron/isophotal photometry and radial profile of LQ at (x, y)."""
        target = self.chip_at(x, y)
        if target is None:
            return
        image, cx, cy = target
        cut = Pipeline(None, self.config().replace(context=0))  # the stamp a restoration is measured on
        psf = instrument_psf(image.meta, image.header).fitting_kernel(cut.config.size)  # as LQ is fitted

        def job(progress, cancelled):
            stamp = cut.cut(image, cx, cy)
            return stamp, compare(stamp.lq, None, psf, err=stamp.err, mask=stamp.bad).with_units(stamp.meta)

        self.w.statusBar().showMessage(f"measuring x={x:.1f} y={y:.1f}…")
        self.w.jobs.submit("measure", job)

    def show_stamp_mask(self) -> None:
        """The in-painted pixels (DQ-flagged and cosmic rays) of the stamp on show, over the LQ panel."""
        w = self.w
        st = w.result.stamp if w.result is not None else None
        show = w.dq_box.isChecked() and st is not None and bool(st.bad.any())
        w.panels.views["LQ"].set_mask(st.bad if show else None)

    def on_restored(self, value: tuple[ClickResult, Pipeline]) -> None:
        """Show the restoration at once; the measurements and verdict follow from their own job (latest wins)."""
        res, pipe = value
        self.show(res, pipe)

    def show(self, res: ClickResult, pipe: Pipeline | None = None) -> None:
        """Show a restoration (of a click or a batch row); measure it with ``pipe`` unless it is measured."""
        w = self.w
        w.result, w.region_result = res, None
        padded = res.stamp.padded
        # the part of the stamp beyond the image is no data: blank, not restored noise (issue 23, item 5)
        w.panels.show_restoration(res.restoration, outside=padded if padded.any() else None)
        self.show_stamp_mask()
        cx, cy = res.stamp.center
        w.view.set_markers(np.array([self.to_view(res.stamp, cx, cy)]))
        r = res.restoration
        if res.measurements is not None or pipe is None:
            if res.measurements is not None:
                self.on_measured((r, res.measurements))
            return

        def job(progress, cancelled):
            return r, pipe.judge(r)[0]

        w.table.show_rows(["LQ", "RS"], [("measuring…", "", ["", ""])])
        w.jobs.submit("compare", job)
        w.statusBar().showMessage(f"restored x={cx:.2f} y={cy:.2f} in {r.meta['seconds'] * 1e3:.0f} ms, "
                                  f"{res.cosmic_rays} cosmic-ray pixels cleaned; measuring…", 15000)

    def on_measured(self, value: tuple[Restoration, Measurements]) -> None:
        """The table, the verdict in the panel header and the status line of the restoration on show."""
        r, m = value
        w = self.w
        if w.result is None or w.result.restoration is not r:
            return  # a newer restoration is on show
        w.result.measurements = m
        w.table.show_measurements(m)
        cx, cy = w.result.stamp.center
        ra, dec = self.world(w.result.stamp, cx, cy)
        point = ("" if not m.point_like else
                 " — a star, restored in point-source mode (the target PSF at its fitted flux)"
                 if r.meta.get("point_source") else
                 " — unresolved source: the network broadens stars; tick 'point source' (fully) to restore it as a "
                 "star")
        verdict = r.meta.get("verdict")
        w.panels.show_verdict(verdict)
        # The status line names what fails in a few words (it must fit the bar); the numbers are in the panel
        # header and in the status bar's tooltip.
        quality = quality_status(verdict, " (details: panel header)")
        w.status_colour(verdict is None or verdict.ok, verdict is not None and verdict.level == "caution")
        full = (f"restored x={cx:.2f} y={cy:.2f} (RA {ra:.6f} Dec {dec:.6f}), {w.result.cosmic_rays} cosmic-ray "
                f"pixels cleaned, flux conservation {_num(m.flux_conservation, '.3f')}, residual χ² "
                f"{_num(m.residual_chi2, '.2f')}"
                + ("" if verdict is None or verdict.ok else f" · QUALITY FAILS: {'; '.join(verdict.failures)}")
                + point)
        point_hint = "" if not point else (" · point-source mode" if r.meta.get("point_source") else
                                           " · unresolved: try 'point source'")
        w.statusBar().setToolTip(full)
        w.statusBar().showMessage(
            f"restored x={cx:.2f} y={cy:.2f} · flux cons. {_num(m.flux_conservation, '.3f')} · χ² "
            f"{_num(m.residual_chi2, '.3g')}"
            f"{quality}{point_hint}", 30000)

    def on_lq_measured(self, value: tuple[Stamp, Measurements]) -> None:
        """`r`/`a`: LQ's numbers in the table and the status line."""
        stamp, m = value
        self.w.table.show_measurements(m)
        cx, cy = stamp.center
        p = m.phot
        kron = f"Kron flux {p.images['LQ'].kron_flux:.5g} ± {p.images['LQ'].kron_flux_err:.2g}" if p.ok \
            else p.reason
        self.w.statusBar().showMessage(f"LQ at x={cx:.2f} y={cy:.2f}: Sérsic n {m.fits['LQ'].n:.3g}, "
                                       f"R50 {m.fits['LQ'].r50:.3g} px, {kron}", 15000)
