"""The main window: open an HST image, click a galaxy, see LQ | RS | residual | uncertainty and the numbers."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from galviewer.core.fitsio import Image, list_images, open_image, write_stamp
from galviewer.core.measure.compare import Measurements, compare, compare_restoration
from galviewer.core.psf import gaussian_psf
from galviewer.core.resources import available_models, models_dir
from galviewer.core.restore import Restoration, Restorer
from galviewer.core.stamps import Stamp, cutout
from galviewer.errors import GalviewerError, RestoreCancelled
from galviewer.qt.image_view import COLORMAPS, LIMITS, STRETCHES, ImageView
from galviewer.qt.panels import ComparisonPanels, MeasurementPanel
from galviewer.qt.workers import JobRunner

__all__ = ["ClickResult", "MainWindow", "clean_cosmic_rays"]


@dataclass
class ClickResult:
    """What one click produces."""

    stamp: Stamp
    restoration: Restoration
    measurements: Measurements
    cosmic_rays: int


def clean_cosmic_rays(stamp: Stamp, readnoise: float = 4.5) -> tuple[Stamp, int]:
    """L.A.Cosmic (astroscrappy) on a stamp in electrons, as the paper did for FLT images (§5.1).

    Returns the cleaned stamp (cosmic-ray pixels replaced and added to ``bad``) and the count.
    """
    import astroscrappy

    mask, clean = astroscrappy.detect_cosmics(np.ascontiguousarray(stamp.lq, dtype=np.float32),
                                              inmask=stamp.bad, sigclip=4.5, objlim=5.0, gain=1.0,
                                              readnoise=readnoise, satlevel=np.inf)
    n = int(mask.sum())
    if n == 0:
        return stamp, 0
    return dataclasses.replace(stamp, lq=np.asarray(clean, dtype=stamp.lq.dtype), bad=stamp.bad | mask), n


def _science_exts(path: Path) -> list[str]:
    """The extensions to offer: the SCI chips when there are any (FLT/FLC/DRZ), else every 2-D image."""
    exts = [(n, v) for n, v, _ in list_images(path)]
    sci = [e for e in exts if e[0].upper() == "SCI"]
    return [f"{n},{v}" for n, v in (sci or exts)]


class MainWindow(QMainWindow):
    """galviewer's window. Every computation runs in :class:`JobRunner`; the window never blocks."""

    def __init__(self, restorer: Restorer | None = None, settings: QSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("galviewer")
        self.resize(1500, 950)
        self.setAcceptDrops(True)
        self.settings = settings or QSettings("galviewer", "galviewer")
        self.jobs = JobRunner(self)
        self.jobs.result.connect(self._on_result)
        self.jobs.error.connect(self._on_error)
        self.jobs.progress.connect(self._on_progress)
        self.jobs.busy.connect(self._on_busy)
        self.jobs.cancelled.connect(lambda ch: self.statusBar().showMessage(f"{ch}: cancelled", 3000))
        self.image: Image | None = None
        self.path: Path | None = None
        self.restorer = restorer
        self.result: ClickResult | None = None
        self.last_error = ""
        self._pending_click: tuple[float, float] | None = None
        self._build()
        if restorer is None:
            self.load_model(None)
        else:
            self._show_model()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.view = ImageView(title="")
        self.view.stretch_kind = "linear"
        self.view.clicked.connect(self.restore_at)
        self.view.hovered.connect(self._readout)
        self.panels = ComparisonPanels()
        self.table = MeasurementPanel()
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.panels, 3)
        rl.addWidget(self.table, 2)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.view)
        split.addWidget(right)
        split.setSizes([600, 900])
        self.setCentralWidget(split)

        tb = QToolBar("display")
        self.addToolBar(tb)
        self.chip = QComboBox()
        self.chip.setToolTip("image extension (FLT/FLC: one per chip)")
        self.chip.activated.connect(lambda i: self.open_file(self.path, self.chip.currentText()) if self.path else None)
        self.stretch_box = QComboBox()
        self.stretch_box.addItems(STRETCHES)
        self.stretch_box.setCurrentText("linear")  # DS9's default for the field; the panels keep asinh
        self.stretch_box.setToolTip("stretch of the main image (the comparison panels use asinh)")
        self.stretch_box.currentTextChanged.connect(lambda k: self.view.set_display(stretch_kind=k))
        self.limits_box = QComboBox()
        self.limits_box.addItems(LIMITS)
        self.limits_box.currentTextChanged.connect(lambda t: self.view.set_display(limits=t))
        self.cmap_box = QComboBox()
        self.cmap_box.addItems(COLORMAPS)
        self.cmap_box.currentTextChanged.connect(self._set_cmap)
        self.size_box = QSpinBox()
        self.size_box.setRange(16, 512)
        self.size_box.setSingleStep(16)
        self.size_box.setValue(64)
        self.size_box.setSuffix(" px")
        self.size_box.setToolTip("stamp size (the model was trained on 64×64)")
        self.tta_box = QCheckBox("uncertainty")
        self.tta_box.setChecked(True)
        self.tta_box.setToolTip("8 flips/rotations: mean and spread (slower)")
        self.cr_box = QCheckBox("clean CRs")
        self.cr_box.setChecked(True)
        self.cr_box.setToolTip("L.A.Cosmic on FLT/FLC stamps before restoring (paper §5.1)")
        self.dq_box = QCheckBox("DQ mask")
        self.dq_box.toggled.connect(self._toggle_mask)
        self.model_box = QComboBox()
        self.model_box.addItems([*available_models(), "Other checkpoint…"])
        self.model_box.activated.connect(self._choose_model)
        self.device_label = QLabel("")
        for label, w in (("ext", self.chip), ("stretch", self.stretch_box), ("limits", self.limits_box),
                         ("colours", self.cmap_box), ("stamp", self.size_box)):
            tb.addWidget(QLabel(f" {label} "))
            tb.addWidget(w)
        tb.addSeparator()
        for w in (self.tta_box, self.cr_box, self.dq_box):
            tb.addWidget(w)
        tb.addSeparator()
        tb.addWidget(QLabel(" model "))
        tb.addWidget(self.model_box)
        tb.addWidget(self.device_label)

        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(lambda: self.jobs.cancel("restore"))
        self.readout = QLabel("")
        self.statusBar().addPermanentWidget(self.readout)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)

        menu = self.menuBar().addMenu("&File")
        self._action(menu, "&Open…", QKeySequence.StandardKey.Open, self._open_dialog)
        self._action(menu, "Open &demo", None, self.open_demo)
        self.recent_menu = menu.addMenu("Open &recent")
        self._fill_recent()
        menu.addSeparator()
        self._action(menu, "&Export stamp (FITS)…", QKeySequence.StandardKey.Save, self._export_dialog)
        self._action(menu, "Export panels (&PNG)…", None, self._export_png_dialog)
        menu.addSeparator()
        self._action(menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        view_menu = self.menuBar().addMenu("&View")
        self._action(view_menu, "&Header…", None, self._show_header)

    def _action(self, menu, text: str, key, slot) -> QAction:
        a = QAction(text, self)
        if key is not None:
            a.setShortcut(key)
        a.triggered.connect(slot)
        menu.addAction(a)
        return a

    def _set_cmap(self, name: str) -> None:
        self.view.set_colormap(name)
        self.panels.set_colormap(name)

    # ------------------------------------------------------------------ files
    def open_file(self, path: str | os.PathLike[str] | None, ext: str | None = None) -> None:
        """Open a FITS image in the background (errors show a dialog; the window stays usable)."""
        if path is None:
            return
        p = Path(path)

        def job(progress, cancelled):
            exts = _science_exts(p)
            image = open_image(p, ext)
            data = np.asarray(image.data, dtype=np.float32)
            return p, exts, image, data

        self.statusBar().showMessage(f"opening {p.name}…")
        self.jobs.submit("load", job)

    def open_demo(self) -> None:
        """Open the built-in demo field (rendered into the user cache on first use)."""
        from galviewer.core.demo import ensure_demo

        def job(progress, cancelled):
            path = ensure_demo()
            return path, _science_exts(path), open_image(path, "SCI,1"), None

        self.statusBar().showMessage("preparing the demo field (first run renders it with GalSim)…")
        self.jobs.submit("load", job)

    def _loaded(self, value: tuple[Path, list[str], Image, np.ndarray | None]) -> None:
        path, exts, image, data = value
        if self.image is not None:
            self.image.close()
        self.image, self.path = image, path
        self.chip.clear()
        self.chip.addItems(exts)
        current = f"{image.meta.extname},{image.meta.extver}"
        if current in exts:
            self.chip.setCurrentText(current)
        self.view.set_data(data if data is not None else np.asarray(image.data, dtype=np.float32))
        self._toggle_mask(self.dq_box.isChecked())
        m = image.meta
        ny, nx = image.data.shape
        self.setWindowTitle(f"galviewer — {path.name} [{current}]")
        self.statusBar().showMessage(f"{path.name}: {m.kind} {m.instrument}/{m.detector} {m.filter}, "
                                     f"{m.exptime:g} s, {m.bunit or 'no BUNIT'}, {nx}×{ny} px — click a galaxy", 10000)
        self._remember(path)

    def _remember(self, path: Path) -> None:
        recent = [str(path), *[r for r in self.settings.value("recent", [], list) or [] if r != str(path)]][:8]
        self.settings.setValue("recent", recent)
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for r in self.settings.value("recent", [], list) or []:
            a = self.recent_menu.addAction(r)
            a.triggered.connect(lambda checked=False, r=r: self.open_file(r))

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open FITS image", "",
                                              "FITS (*.fits *.fit *.fts *.fits.gz);;All (*)")
        if path:
            self.open_file(path)

    def dragEnterEvent(self, ev) -> None:
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        urls = ev.mimeData().urls()
        if urls:
            self.open_file(urls[0].toLocalFile())

    def _toggle_mask(self, on: bool) -> None:
        self.view.set_mask(np.asarray(self.image.bad) if on and self.image is not None and self.image.bad is not None
                           else None)

    def _show_header(self) -> None:
        if self.image is None:
            return
        box = QMessageBox(self)
        box.setWindowTitle(f"Header of {self.path.name if self.path else ''}")
        box.setText(f"{self.image.meta.extname},{self.image.meta.extver}")
        box.setDetailedText(self.image.header.tostring(sep="\n"))
        box.show()

    # ------------------------------------------------------------------ model
    def load_model(self, path: str | None) -> None:
        """Load the default shipped model (or a checkpoint file) in the background."""
        def job(progress, cancelled):
            if path is None:
                return Restorer.from_pretrained()
            return Restorer.from_file(path)

        self.device_label.setText(" loading model…")
        self.jobs.submit("model", job)

    def _choose_model(self, index: int) -> None:
        text = self.model_box.itemText(index)
        if text.endswith("…"):
            path, _ = QFileDialog.getOpenFileName(self, "Model checkpoint", str(models_dir()),
                                                  "Checkpoints (*.safetensors *.pth *.pt)")
            if path:
                self.load_model(path)
        else:
            self.load_model(str(models_dir() / f"{text}.safetensors"))

    def _show_model(self) -> None:
        if self.restorer is not None:
            self.device_label.setText(f" {self.restorer.name} on {self.restorer.device.type.upper()} ")
            idx = self.model_box.findText(self.restorer.name)
            if idx >= 0:
                self.model_box.setCurrentIndex(idx)

    # ------------------------------------------------------------------ restore
    def restore_at(self, x: float, y: float) -> None:
        """Cut a stamp at (x, y), clean it, restore and measure it in the background; latest click wins."""
        if self.image is None:
            return
        if not (0 <= x < self.image.data.shape[1] and 0 <= y < self.image.data.shape[0]):
            return
        if self.restorer is None:
            self._pending_click = (x, y)
            self.statusBar().showMessage("waiting for the model to load…")
            return
        image, restorer, size = self.image, self.restorer, self.size_box.value()
        tta, clean = self.tta_box.isChecked(), self.cr_box.isChecked() and image.meta.kind == "FLT"

        def job(progress, cancelled):
            stamp = cutout(image, x, y, size)
            n_cr = 0
            if clean:
                stamp, n_cr = clean_cosmic_rays(stamp)
            if cancelled():
                raise RestoreCancelled("superseded")
            r = restorer.restore(stamp, uncertainty=tta, progress=progress, cancel=cancelled)
            if cancelled():
                raise RestoreCancelled("superseded")
            return ClickResult(stamp, r, compare_restoration(r), n_cr)

        self.view.set_markers(np.array([[x, y]]))
        self.panels.info.setText(f"restoring x={x:.1f} y={y:.1f}…")
        self.jobs.submit("restore", job)

    def measure_at(self, x: float, y: float) -> None:
        """imexam-style `r`/`a`: Sérsic fit, Kron/isophotal photometry and radial profile of LQ at (x, y)."""
        if self.image is None:
            return
        image, size = self.image, self.size_box.value()
        fwhm = self.restorer.metadata.psf_fwhm_pix if self.restorer is not None else 1.88

        def job(progress, cancelled):
            stamp = cutout(image, x, y, size)
            return stamp, compare(stamp.lq, None, gaussian_psf(fwhm, 7), err=stamp.err, mask=stamp.bad)

        self.statusBar().showMessage(f"measuring x={x:.1f} y={y:.1f}…")
        self.jobs.submit("measure", job)

    def _show_result(self, res: ClickResult) -> None:
        self.result = res
        self.panels.show_restoration(res.restoration)
        self.table.show_measurements(res.measurements)
        cx, cy = res.stamp.center
        ra, dec = self.image.pixel_to_world(cx, cy) if self.image is not None else (math.nan, math.nan)
        self.view.set_markers(np.array([[cx, cy]]))
        self.statusBar().showMessage(
            f"restored x={cx:.2f} y={cy:.2f} (RA {ra:.6f} Dec {dec:.6f}), {res.cosmic_rays} cosmic-ray pixels "
            f"cleaned, flux conservation {res.measurements.flux_conservation:.3f}, "
            f"residual χ² {res.measurements.residual_chi2:.2f}", 15000)

    # ------------------------------------------------------------------ export
    def export_stamp(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the current restoration as galviewer's FITS stamp (atomic; refuses to overwrite unless asked)."""
        if self.result is None:
            raise GalviewerError("nothing to export: restore a source first")
        out = write_stamp(path, self.result.restoration, overwrite=overwrite)
        self.statusBar().showMessage(f"wrote {out}", 8000)
        return out

    def _export_dialog(self) -> None:
        if self.result is None:
            self._error_dialog("Export", "Nothing to export: click a source first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export restored stamp", "stamp_rs.fits", "FITS (*.fits)")
        if path:  # the dialog has already asked before replacing an existing file
            try:
                self.export_stamp(path, overwrite=True)
            except GalviewerError as exc:
                self._error_dialog("Export failed", str(exc))

    def export_png(self, path: str | os.PathLike[str]) -> Path:
        """Save a picture of the comparison panels."""
        p = Path(path)
        if not self.panels.grab().save(str(p)):
            raise GalviewerError(f"{p}: could not write the PNG")
        return p

    def _export_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export panels", "panels.png", "PNG (*.png)")
        if path:
            try:
                self.export_png(path)
            except GalviewerError as exc:
                self._error_dialog("Export failed", str(exc))

    # ------------------------------------------------------------------ job plumbing
    def _on_result(self, channel: str, value: Any) -> None:
        if channel == "load":
            self._loaded(value)
        elif channel == "model":
            self.restorer = value
            self._show_model()
            if self._pending_click is not None:
                x, y = self._pending_click
                self._pending_click = None
                self.restore_at(x, y)
        elif channel == "restore":
            self._show_result(value)
        elif channel == "measure":
            stamp, m = value
            self.table.show_measurements(m)
            cx, cy = stamp.center
            p = m.phot
            kron = f"Kron flux {p.images['LQ'].kron_flux:.5g} ± {p.images['LQ'].kron_flux_err:.2g}" if p.ok \
                else p.reason
            self.statusBar().showMessage(f"LQ at x={cx:.2f} y={cy:.2f}: Sérsic n {m.fits['LQ'].n:.3g}, "
                                         f"R50 {m.fits['LQ'].r50:.3g} px, {kron}", 15000)

    def _on_error(self, channel: str, exc: object) -> None:
        titles = {"load": "Could not open the image", "model": "Could not load the model",
                  "restore": "Restoration failed"}
        if channel == "model":
            self.device_label.setText(" no model ")
        self._error_dialog(titles.get(channel, "Error"), str(exc))

    def _error_dialog(self, title: str, text: str) -> None:
        self.last_error = f"{title}: {text}"
        self.statusBar().showMessage(self.last_error, 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()  # non-modal: the app keeps running

    def _on_progress(self, channel: str, done: int, total: int) -> None:
        if channel == "restore":
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)

    def _on_busy(self, channel: str, busy: bool) -> None:
        if channel == "restore":
            self.progress.setVisible(busy)
            self.cancel_button.setVisible(busy)
            if busy:
                self.progress.setRange(0, 0)

    def _readout(self, x: float, y: float) -> None:
        v = self.view.value_at(x, y)
        if v is None or self.image is None:
            self.readout.setText("")
            return
        ra, dec = self.image.pixel_to_world(x, y)
        sky = f"  RA {ra:.6f}  Dec {dec:+.6f}" if math.isfinite(ra) else ""
        self.readout.setText(f"x {x:.1f}  y {y:.1f}  {v:.4g} {self.image.meta.bunit}{sky}")

    def keyPressEvent(self, ev) -> None:
        """imexam keys over the image: `t` cut out and restore, `r`/`a` radial profile and photometry of LQ."""
        actions = {Qt.Key.Key_T: self.restore_at, Qt.Key.Key_R: self.measure_at, Qt.Key.Key_A: self.measure_at}
        if ev.key() in actions and self.view.underMouse():
            pos = self.view.vb.mapSceneToView(self.view.mapToScene(self.view.mapFromGlobal(self.cursor().pos())))
            actions[ev.key()](float(pos.x()), float(pos.y()))
        else:
            super().keyPressEvent(ev)

    def closeEvent(self, ev) -> None:
        self.jobs.shutdown()
        if self.image is not None:
            self.image.close()
        super().closeEvent(ev)
