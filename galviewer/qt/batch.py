"""Batch and sources: detect the sources of the image, restore and measure them through the pipeline (in the
window's worker threads, or on Dask: :mod:`galviewer.qt.engine`; progress and Cancel), show a row's restoration,
export stamps and a catalogue."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtWidgets import QFileDialog, QMessageBox

from galviewer.core.io.mosaic import Mosaic
from galviewer.core.measure.detect import detect, detect_mosaic
from galviewer.core.restore.batch import export_batch, restore_mosaic_sources, restore_sources
from galviewer.errors import GalviewerError, OutputExistsError
from galviewer.qt.clicks import ClickResult

if TYPE_CHECKING:
    from galviewer.qt.main_window import MainWindow

__all__ = ["BatchController"]


class BatchController:
    """Owns the ``detect`` and ``batch`` channels and the Sources dock's actions."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window
        panel = window.sources_panel
        panel.detect_requested.connect(self.detect_sources)
        panel.restore_requested.connect(self.restore_sources)
        panel.export_requested.connect(self.export_dialog)
        panel.source_activated.connect(self.show_source)
        from galviewer.qt.engine import ClusterEngine

        self.engine = ClusterEngine(window)

    def detect_sources(self, nsigma: float = 3.0) -> None:
        """Detect sources (photutils) on the open image in the background and list them."""
        w = self.w
        if w.image is None:
            return
        image = w.image
        w.sources_panel.nsigma.setValue(nsigma)

        def job(progress, cancelled):
            if isinstance(image, Mosaic):
                return detect_mosaic(image, nsigma=nsigma)
            return detect(image, nsigma=nsigma)

        w.sources_dock.show()
        w.statusBar().showMessage(f"detecting sources above {nsigma:g}σ…")
        w.jobs.submit("detect", job)

    def on_detected(self, value: Any) -> None:
        w = self.w
        w.sources_panel.set_sources(value)
        w.view.set_sources(np.array([[s.x, s.y] for s in value]) if value else None)
        found = getattr(value, "found", len(value))
        kept = f"{len(value)} sources detected" if found == len(value) else \
            f"{found} sources detected, the {len(value)} brightest kept"
        w.statusBar().showMessage(f"{kept} — select rows and Restore, or Restore all", 10000)

    def restore_sources(self, ids: list[int]) -> None:
        """Restore and measure the listed sources in the background (batched), with progress and Cancel."""
        w = self.w
        if w.image is None or not ids:
            return
        pipe = w.clicks.pipeline()
        if pipe is None:
            w.statusBar().showMessage("the model is still loading; try again in a moment", 5000)
            return
        sources = [w.sources_panel.sources[i] for i in ids if i in w.sources_panel.sources]
        image = w.image
        if self.engine.name != "in-process":  # on Dask (Batch ▸ Engine…), through qasync
            try:
                self.engine.restore(image, sources, pipe)
            except GalviewerError as exc:
                w.error_dialog("Batch on the cluster", str(exc))
            return

        def job(progress, cancelled):
            run = restore_mosaic_sources if isinstance(image, Mosaic) else restore_sources
            return run(pipe, image, sources, progress=progress, cancel=cancelled)

        w.statusBar().showMessage(f"restoring {len(sources)} sources…")
        w.jobs.submit("batch", job)

    def on_restored(self, value: list[Any]) -> None:
        w = self.w
        w.sources_panel.set_results(value)
        bad = [r for r in value if r.error]
        points = sum(1 for r in value if r.measurements is not None and r.measurements.point_like)
        w.statusBar().showMessage(
            f"restored {len(value) - len(bad)} of {len(value)} sources"
            + (f"; {len(bad)} failed (see the status column)" if bad else "")
            + (f"; {points} unresolved (class 'point': the network broadens stars — click one with 'point "
               "source' ticked)" if points else ""), 15000)

    def show_source(self, sid: int) -> None:
        """Centre the image on a row's source and show its restoration, numbers and verdict."""
        w = self.w
        src = w.sources_panel.sources.get(sid)
        if src is None:
            return
        w.view.set_markers(np.array([[src.x, src.y]]))
        half = max(w.size_box.value(), 32)
        w.view.vb.setRange(xRange=(src.x - 2 * half, src.x + 2 * half), yRange=(src.y - 2 * half, src.y + 2 * half))
        res = w.sources_panel.results.get(sid)
        if res is not None and res.restoration is not None:
            w.clicks.show(ClickResult(res.stamp, res.restoration, res.measurements, res.cosmic_rays))

    def export_batch(self, folder: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
        """Write every restored source of the batch (FITS stamps) and the catalogue (ECSV) into ``folder``."""
        w = self.w
        results = [r for r in w.sources_panel.results.values() if r.restoration is not None]
        stem = w.path.name.split(".")[0] if w.path is not None else "source"
        out = export_batch(folder, results, stem=stem, wcs=w.image.wcs if w.image is not None else None,
                           overwrite=overwrite)
        w.statusBar().showMessage(f"wrote {len(out) - 1} stamps and {out[-1].name} into {folder}", 10000)
        return out

    def export_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.w, "Export the batch into a folder")
        if not folder:
            return
        try:
            self.export_batch(folder)
        except OutputExistsError as exc:
            answer = QMessageBox.question(self.w, "Replace files?", f"{exc}\n\nReplace them?")
            if answer == QMessageBox.StandardButton.Yes:
                try:
                    self.export_batch(folder, overwrite=True)
                except GalviewerError as exc2:
                    self.w.error_dialog("Export failed", str(exc2))
        except GalviewerError as exc:
            self.w.error_dialog("Export failed", str(exc))
