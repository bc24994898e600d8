"""Files and display: open a FITS image (or the demo, a recent file, a dropped file) in the background, the chip
selector and mosaic, the RA/Dec grid, the DQ mask overlay, the header, the pixel read-out and the image's
right-click menu."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMenu

from galviewer.core.io.fits import Image, list_images, open_image, sexagesimal
from galviewer.core.io.mosaic import MOSAIC_EXT, Mosaic, mosaic_possible, open_mosaic
from galviewer.errors import GalviewerError
from galviewer.qt.dialogs import HeaderDialog

if TYPE_CHECKING:
    from galviewer.qt.main_window import MainWindow

__all__ = ["FilesController", "science_exts"]


def science_exts(path: Path) -> list[str]:
    """The extensions to offer: the SCI chips when there are any (FLT/FLC/DRZ), else every 2-D image."""
    exts = [(n, v) for n, v, _ in list_images(path)]
    sci = [e for e in exts if e[0].upper() == "SCI"]
    # chips side by side on the sky (ACS/WFC, WFC3/UVIS FLT/FLC): also offer them together, placed by their WCS
    return [f"{n},{v}" for n, v in (sci or exts)] + ([MOSAIC_EXT] if len(sci) >= 2 and mosaic_possible(path) else [])


GRID_SETTLE_MS = 150  # the grid is traced again this long after the last zoom or pan step


class FilesController:
    """Owns the ``load`` channel: what is open and how it is displayed."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window
        self.header_dialog: HeaderDialog | None = None
        # the RA/Dec grid follows zoom and pan: traced again for the part on show once the view settles
        self.regrid_timer = QTimer(window)
        self.regrid_timer.setSingleShot(True)
        self.regrid_timer.setInterval(GRID_SETTLE_MS)
        self.regrid_timer.timeout.connect(self.toggle_grid)
        window.view.vb.sigRangeChanged.connect(self._view_moved)

    def _view_moved(self, *_: object) -> None:
        action = getattr(self.w, "grid_action", None)  # the menus are built after the controllers
        if action is not None and action.isChecked() and self.w.image is not None:
            self.regrid_timer.start()

    def open_file(self, path: str | os.PathLike[str] | None, ext: str | None = None) -> None:
        """Open a FITS image in the background (errors show a dialog; the window stays usable)."""
        if path is None:
            return
        p = Path(path)

        def job(progress, cancelled):
            exts = science_exts(p)
            if ext == MOSAIC_EXT:
                mosaic = open_mosaic(p)
                return p, exts, mosaic, mosaic.data
            # a cube of planes (a WFPC2 waiver file's chips) opens at its first plane; the ext box offers the others
            image = open_image(p, exts[0] if ext is None and exts and exts[0].startswith("PLANE,") else ext)
            return p, exts, image, np.asarray(image.data, dtype=np.float32)

        self.w.statusBar().showMessage(f"opening {p.name}…")
        self.w.jobs.submit("load", job)

    def open_demo(self) -> None:
        """Open the built-in demo field (rendered into the user cache on first use)."""
        from galviewer.core.sim.demo import ensure_demo

        def job(progress, cancelled):
            path = ensure_demo()
            return path, science_exts(path), open_image(path, "SCI,1"), None

        self.w.statusBar().showMessage("preparing the demo field (first run renders it with GalSim)…")
        self.w.jobs.submit("load", job)

    def on_loaded(self, value: tuple[Path, list[str], Image, np.ndarray | None]) -> None:
        """Show a newly opened image; nothing of the previous file stays on show."""
        w = self.w
        path, exts, image, data = value
        if w.image is not None:
            w.image.close()
        w.image, w.path = image, path
        w.chip.clear()
        w.chip.addItems(exts)
        current = MOSAIC_EXT if isinstance(image, Mosaic) else f"{image.meta.extname},{image.meta.extver}"
        if current in exts:
            w.chip.setCurrentText(current)
        w.view.set_data(data if data is not None else np.asarray(image.data, dtype=np.float32))
        self.toggle_mask(w.dq_box.isChecked())
        self.toggle_grid()
        w.view.clear_regions()
        w.view.set_sources(None)
        w.view.set_markers(None)
        w.sources_panel.set_sources([])
        # nothing of the previous file stays on show (issue 12: stale panels, table and marker)
        for ch in ("restore", "compare", "measure", "batch", "detect"):
            w.jobs.cancel(ch)
        w.result, w.region_result = None, None
        w.panels.clear()
        w.panels.set_unit(image.meta.bunit or "counts (no BUNIT)")
        w.table.clear()
        w.readout.setText("")  # the previous file's x, y, value and unit
        w.statusBar().setStyleSheet("")
        m = image.meta
        ny, nx = image.data.shape
        w.setWindowTitle(f"galviewer — {path.name} [{current}]")
        notes = "" if not m.warnings else f" · {len(m.warnings)} reading note(s): hover here"
        w.statusBar().setToolTip("\n".join(m.warnings))
        w.statusBar().showMessage(f"{path.name}: {m.kind} {m.instrument}/{m.detector} {m.filter}, "
                                  f"{m.exptime:g} s, {m.bunit or 'no BUNIT'}, {nx}×{ny} px — click a galaxy"
                                  f"{notes}", 15000)
        self.remember(path)

    def remember(self, path: Path) -> None:
        s = self.w.settings
        recent = [str(path), *[r for r in s.value("recent", [], list) or [] if r != str(path)]][:8]
        s.setValue("recent", recent)
        self.fill_recent()

    def fill_recent(self) -> None:
        menu = self.w.recent_menu
        menu.clear()
        for r in self.w.settings.value("recent", [], list) or []:
            a = menu.addAction(r)
            a.triggered.connect(lambda checked=False, r=r: self.open_file(r))

    def open_dialog(self) -> None:
        start = str(self.w.path.parent) if self.w.path is not None else ""  # the open file's folder
        path, _ = QFileDialog.getOpenFileName(self.w, "Open FITS image", start,
                                              "FITS (*.fits *.fit *.fts *.fits.gz);;All (*)")
        if path:
            self.open_file(path)

    def context_menu(self, x: float, y: float) -> QMenu:
        """The image's right-click menu at (x, y): restore or measure there, centre, zoom, copy the position."""
        w = self.w
        menu = QMenu(w)
        inside = w.clicks.chip_at(x, y) is not None
        for text, slot in (("Restore here", lambda: w.clicks.restore_at(x, y)),
                           ("Measure LQ here (Sérsic, photometry)", lambda: w.clicks.measure_at(x, y))):
            menu.addAction(text, slot).setEnabled(inside)
        menu.addSeparator()
        menu.addAction("Centre here", lambda: w.view.centre_on(x, y))
        menu.addAction("Zoom to fit", w.view.zoom_to_fit)
        menu.addAction("Zoom 1:1 here", lambda: w.view.zoom_actual(x, y))
        menu.addSeparator()
        ra, dec = w.image.pixel_to_world(x, y) if w.image is not None else (math.nan, math.nan)
        where = f"{x:.2f} {y:.2f}" + (f"  {sexagesimal(ra, dec)}  {ra:.6f} {dec:+.6f}" if math.isfinite(ra) else "")
        menu.addAction("Copy position (0-based x y, RA Dec)", lambda: QGuiApplication.clipboard().setText(where))
        menu.addSeparator()
        menu.addAction(w.grid_action)
        return menu

    def toggle_grid(self, on: bool | None = None) -> None:
        """Show or hide the RA/Dec grid of the part of the image on show (traced through its full WCS; the spacing
        follows the zoom: traced again when the view settles after a zoom or pan)."""
        from galviewer.core.io.wcsgrid import wcs_grid

        w = self.w
        on = w.grid_action.isChecked() if on is None else bool(on)
        if not on or w.image is None:
            w.view.set_grid(None)
            return
        (vx0, vx1), (vy0, vy1) = w.view.vb.viewRange()
        try:
            if isinstance(w.image, Mosaic):  # each chip's own grid, placed on the canvas
                lines = []
                for chip, (ox, oy) in zip(w.image.chips, w.image.offsets, strict=True):
                    lines += [dataclasses.replace(g, x=g.x + ox, y=g.y + oy)
                              for g in wcs_grid(chip.wcs, chip.data.shape, box=(vx0 - ox, vx1 - ox, vy0 - oy,
                                                                                vy1 - oy))]
                w.view.set_grid(lines)
                return
            w.view.set_grid(wcs_grid(w.image.wcs, w.image.data.shape, box=(vx0, vx1, vy0, vy1)))
        except GalviewerError as exc:
            w.view.set_grid(None)
            w.statusBar().showMessage(f"coordinate grid: {exc}", 8000)

    def toggle_mask(self, on: bool) -> None:
        """The DQ-flagged pixels over the image, and the stamp's in-painted ones over the LQ panel."""
        w = self.w
        w.view.set_mask(np.asarray(w.image.bad) if on and w.image is not None and w.image.bad is not None else None)
        w.clicks.show_stamp_mask()

    def show_header(self) -> None:
        """View ▸ Header: every card of the image's (merged) header, monospaced and searchable."""
        w = self.w
        if w.image is None:
            return
        if self.header_dialog is None:
            self.header_dialog = HeaderDialog(w)
        name = w.path.name if w.path else ""
        which = "first chip of the mosaic, " if isinstance(w.image, Mosaic) else ""
        self.header_dialog.set_header(w.image.header, f"Header of {name} [{which}{w.image.meta.extname},"
                                                      f"{w.image.meta.extver}]")
        self.header_dialog.show()
        self.header_dialog.raise_()

    def readout(self, x: float, y: float) -> None:
        """x, y, the value in BUNIT and RA/Dec under the mouse (and the chip's pixel on a mosaic)."""
        w = self.w
        v = w.view.value_at(x, y)
        if v is None or w.image is None:
            w.readout.setText("")
            return
        ra, dec = w.image.pixel_to_world(x, y)
        sky = f"  {sexagesimal(ra, dec)}  ({ra:.6f}, {dec:+.6f})" if math.isfinite(ra) else ""
        chip = ""
        if isinstance(w.image, Mosaic):
            hit = w.image.locate(x, y)
            chip = "" if hit is None else f"  [{w.image.exts[hit[0]]} x {hit[2]:.1f} y {hit[3]:.1f}]"
        w.readout.setText(f"x {x:.1f}  y {y:.1f}  {v:.4g} {w.image.meta.bunit}{sky}{chip}")
