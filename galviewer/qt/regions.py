"""Regions: draw, move or import a rectangle, ellipse or polygon and it is restored as one piece through the
pipeline (the latest request wins); DS9 region files in and out."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog

from galviewer.core.io.mosaic import Mosaic
from galviewer.core.io.regions import AnyRegion, read_regions, write_regions
from galviewer.core.restore.regions import RegionRestoration
from galviewer.errors import GalviewerError
from galviewer.qt.clicks import ClickResult, quality_status

if TYPE_CHECKING:
    from galviewer.qt.main_window import MainWindow

__all__ = ["RegionController"]


class RegionController:
    """Restores regions (``restore`` channel, a :class:`RegionRestoration` result) and reads/writes DS9 files."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window

    def restore_region(self, region: AnyRegion) -> None:
        """Restore a region as one piece (tiled), in the background with progress and Cancel; latest wins."""
        w = self.w
        if w.image is None:
            return
        if isinstance(w.image, Mosaic):
            w.statusBar().showMessage("regions are restored on one chip: choose SCI,1 or SCI,2 in 'ext' "
                                      "(a region could straddle the gap between chips)", 8000)
            return
        pipe = w.clicks.pipeline()
        if pipe is None:
            w.statusBar().showMessage("the model is still loading; try again in a moment", 5000)
            return
        image = w.image

        def job(progress, cancelled):
            return pipe.run_region(image, region, progress=progress, cancel=cancelled)

        w.panels.info.setText(f"restoring {region.describe()}…")
        w.jobs.submit("restore", job)

    def restore_selected(self) -> None:
        """Restore the selected region (or the last one drawn)."""
        view = self.w.view
        roi = view.selected_roi or (view.rois[-1] if view.rois else None)
        if roi is None:
            self.w.statusBar().showMessage("no region: choose a drag mode in the toolbar and draw one", 5000)
            return
        self.restore_region(view.region_of(roi))

    def show(self, rr: RegionRestoration) -> None:
        """The region's restoration in the panels and its numbers (inside the region) in the table."""
        w = self.w
        r = rr.restoration
        w.result = ClickResult(r.stamp, r, None, int(r.meta.get("cosmic_rays", 0)))
        w.region_result = rr
        outside = ~rr.inside | r.stamp.padded
        w.panels.show_restoration(r, outside=outside if outside.any() else None)
        w.clicks.show_stamp_mask()
        s = rr.summary()

        def f(v: float, d: int = 4) -> str:
            return f"{v:.{d}g}" if math.isfinite(v) else "—"

        unit = w.image.meta.bunit if w.image is not None else ""
        rows = [("pixels inside", "px", [f"{s['pixels']:.0f}", ""]),
                ("flux (sum above LQ's background)", unit, [f"{f(s['flux_lq'])} ± {f(s['flux_lq_err'], 2)}",
                                                            f(s["flux_rs"])]),
                ("flux conservation Σ PSF⊗RS / Σ LQ", "", ["", f(s["conservation"], 4)]),
                ("+ PSF spill across the region's edge", "", ["", f(s["psf_spill"], 3)]),
                ("= Σ RS / Σ LQ", "", ["", f(s["flux_rs"] / s["flux_lq"], 4) if s["flux_lq"] > 0 else "—"]),
                ("background rms", unit, [f(s["noise_lq"], 3), f(s["noise_rs"], 3)]),
                ("residual rms / LQ noise", "", ["", f(s["resid_rms_over_noise"], 3)]),
                ("median uncertainty", unit, ["", f(s["sigma_median"], 3)])]
        w.table.show_rows(["LQ", "RS"], rows)
        verdict = r.meta.get("verdict")
        w.panels.show_verdict(verdict)  # judged over the region's pixels, like a click
        w.panels.info.setText(f"{rr.region.describe()} · " + w.panels.info.text())
        quality = quality_status(verdict)
        w.status_colour(verdict is None or verdict.ok, verdict is not None and verdict.level == "caution")
        w.statusBar().showMessage(f"restored {rr.region.describe()} in {r.meta['seconds']:.2f} s; "
                                  f"residual rms {s['resid_rms_over_noise']:.2f}× the noise{quality}", 15000)

    def import_regions(self, path: str | os.PathLike[str]) -> list[AnyRegion]:
        """Add the rectangles, ellipses, circles and polygons of a DS9 region file (others are listed as skipped)."""
        w = self.w
        regions, skipped = read_regions(path, w.image.wcs if w.image is not None else None)
        for r in regions:
            w.view.add_region(r)
        msg = f"{len(regions)} regions read from {Path(path).name}"
        if skipped:
            msg += f"; {len(skipped)} skipped ({skipped[0]}{', …' if len(skipped) > 1 else ''})"
        w.statusBar().showMessage(msg, 15000)
        return regions

    def export_regions(self, path: str | os.PathLike[str], *, sky: bool = False, overwrite: bool = False) -> Path:
        """Write the regions as a DS9 file (image coordinates, or fk5 with ``sky`` when the image has a WCS)."""
        w = self.w
        wcs = w.image.wcs if sky and w.image is not None else None
        out = write_regions(path, w.view.regions(), wcs=wcs, overwrite=overwrite)
        w.statusBar().showMessage(f"wrote {out}", 8000)
        return out

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.w, "Import DS9 regions", "", "DS9 regions (*.reg);;All (*)")
        if path:
            try:
                self.import_regions(path)
            except GalviewerError as exc:
                self.w.error_dialog("Could not read the regions", str(exc))

    def export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.w, "Export DS9 regions", "galviewer.reg", "DS9 regions (*.reg)")
        if path:
            try:
                self.export_regions(path, sky=self.w.image is not None and self.w.image.wcs is not None,
                                    overwrite=True)
            except GalviewerError as exc:
                self.w.error_dialog("Could not write the regions", str(exc))
