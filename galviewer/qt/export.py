"""Export: the restoration on show as galviewer's FITS stamp, or as a labelled figure (PNG, PDF, SVG)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog

from galviewer.core.io.write import write_stamp
from galviewer.errors import ExportError, GalviewerError, OutputExistsError

if TYPE_CHECKING:
    from collections.abc import Callable

    from galviewer.qt.main_window import MainWindow

__all__ = ["ExportController"]


class ExportController:
    """File ▸ Export stamp and Export figure (the figure is drawn on the ``export`` channel)."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window

    def default_name(self, suffix: str) -> str:
        """Where an export is offered: the open file's folder, named after it and the source's position
        (e.g. ``…/j8pu0ypaq_flt_x812_y530_rs.fits``)."""
        w = self.w
        if w.path is None or w.result is None:
            return f"restoration{suffix}"
        cx, cy = w.result.stamp.center
        return str(w.path.parent / f"{w.path.name.split('.')[0]}_x{cx:.0f}_y{cy:.0f}{suffix}")

    def export_stamp(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the current restoration as galviewer's FITS stamp (atomic; refuses to overwrite unless asked)."""
        if self.w.result is None:
            raise GalviewerError("nothing to export: restore a source first")
        out = write_stamp(path, self.w.result.restoration, overwrite=overwrite)
        self.w.statusBar().showMessage(f"wrote {out}", 8000)
        return out

    def _save_dialog(self, available: bool, title: str, suffix: str, filters: str,
                     export: Callable[..., object]) -> None:
        """Ask for a file name beside the open file and export there; nothing on show → say so."""
        if not available:
            self.w.error_dialog("Export", "Nothing to export: click a source first.")
            return
        path, _ = QFileDialog.getSaveFileName(self.w, title, self.default_name(suffix), filters)
        if path:  # the dialog has already asked before replacing an existing file
            try:
                export(path, overwrite=True)
            except GalviewerError as exc:
                self.w.error_dialog("Export failed", str(exc))

    def stamp_dialog(self) -> None:
        self._save_dialog(self.w.result is not None, "Export restored stamp", "_rs.fits", "FITS (*.fits)",
                          self.export_stamp)

    def export_figure(self, path: str | os.PathLike[str], overwrite: bool = False) -> None:
        """Write a labelled figure of the restoration on show (PNG, PDF or SVG) in the background.

        Panels with axes in stamp pixels and colour bars in the image's units, the file, extension, position,
        model and quality verdict in the title (:func:`galviewer.core.restore.figure.restoration_figure`); the result
        arrives on the ``export`` channel.
        """
        from galviewer.core.restore.figure import FIGURE_FORMATS, restoration_figure

        w = self.w
        shown = w.region_result.restoration if w.region_result is not None else (
            w.result.restoration if w.result is not None else None)
        if shown is None:
            raise GalviewerError("nothing to export: restore a source first")
        p = Path(path)
        if p.suffix.lower() not in FIGURE_FORMATS:
            raise ExportError(p, f"unknown figure format {p.suffix!r}: use {', '.join(FIGURE_FORMATS)}")
        if p.exists() and not overwrite:
            raise OutputExistsError(p, "file exists; choose another name or confirm the replacement")

        def job(progress, cancelled):
            return restoration_figure(p, shown, overwrite=overwrite)

        w.jobs.submit("export", job)
        w.statusBar().showMessage(f"writing {p.name}…")

    def figure_dialog(self) -> None:
        self._save_dialog(self.w.result is not None or self.w.region_result is not None, "Export figure", ".png",
                          "PNG (*.png);;PDF (*.pdf);;SVG (*.svg)", self.export_figure)
