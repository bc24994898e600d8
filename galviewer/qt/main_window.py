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
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from galviewer.core.io.cosmics import clean_cosmic_rays, cleanable
from galviewer.core.io.fits import Image, list_images, open_image, sexagesimal
from galviewer.core.io.mosaic import (
    MOSAIC_EXT,
    Mosaic,
    detect_mosaic,
    mosaic_possible,
    open_mosaic,
    restore_mosaic_sources,
)
from galviewer.core.io.regions import AnyRegion, RegionRestoration, read_regions, restore_region, write_regions
from galviewer.core.io.stamps import DEFAULT_CONTEXT, Stamp, cutout
from galviewer.core.io.write import write_stamp
from galviewer.core.measure.compare import Measurements, compare
from galviewer.core.nn.resources import available_models, models_dir
from galviewer.core.psf.instrument import instrument_psf
from galviewer.core.restore.batch import detect, export_batch, restore_sources
from galviewer.core.restore.consistency import ANCHOR_SCALE, DEFAULT_ANCHOR
from galviewer.core.restore.engine import Restoration, Restorer, crop_restoration
from galviewer.core.restore.verdict import judge
from galviewer.errors import ExportError, GalviewerError, OutputExistsError, RestoreCancelled
from galviewer.qt.dialogs import HeaderDialog
from galviewer.qt.image_view import COLORMAPS, LIMITS, STRETCHES, ImageView
from galviewer.qt.panels import ComparisonPanels, MeasurementPanel
from galviewer.qt.sources import SourcesPanel
from galviewer.qt.workers import JobRunner

__all__ = ["ClickResult", "MainWindow"]

# preferences key of the context margin: "margin" held 0 while 0 was the default; a new key lets the default of 8 px
# reach everyone who never chose a margin (who set one chooses again once)
_MARGIN_KEY = "context_margin"
MODES = ("click: restore stamp", "drag: rectangle", "drag: ellipse", "clicks: polygon (close on the 1st vertex)")


@dataclass
class ClickResult:
    """What one click produces."""

    stamp: Stamp
    restoration: Restoration
    measurements: Measurements | None  # filled by the "compare" job after the panels show; None for a region
    cosmic_rays: int


# Short names of the verdict's checks for the status line.
CHECK_NAMES = {"chi2": "χ²", "flux": "flux", "rms": "RS/LQ rms", "border": "border", "new_sources": "new sources",
               "centre": "no source at the centre", "range": "outside training"}


def _science_exts(path: Path) -> list[str]:
    """The extensions to offer: the SCI chips when there are any (FLT/FLC/DRZ), else every 2-D image."""
    exts = [(n, v) for n, v, _ in list_images(path)]
    sci = [e for e in exts if e[0].upper() == "SCI"]
    # chips side by side on the sky (ACS/WFC, WFC3/UVIS FLT/FLC): also offer them together, placed by their WCS
    return [f"{n},{v}" for n, v in (sci or exts)] + ([MOSAIC_EXT] if len(sci) >= 2 and mosaic_possible(path) else [])


class MainWindow(QMainWindow):
    """galviewer's window. Every computation runs in :class:`JobRunner`; the window never blocks."""

    def __init__(self, restorer: Restorer | None = None, settings: QSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("galviewer")
        screen = QGuiApplication.primaryScreen()
        room = screen.availableGeometry() if screen is not None else None
        # 1500×950 where the screen allows, else 90 % of it: the window never opens larger than the screen
        self.resize(min(1500, int(0.9 * room.width())) if room else 1500,
                    min(950, int(0.9 * room.height())) if room else 950)
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
        self.region_result: RegionRestoration | None = None
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
        self.view.menu_requested.connect(lambda x, y, pos: self.context_menu(x, y).popup(pos))
        self.view.region_drawn.connect(self.restore_region)
        self.view.region_edited.connect(self.restore_region)
        self.panels = ComparisonPanels()
        self.table = MeasurementPanel()
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.panels, 3)
        rl.addWidget(self.table, 2)
        # The pixel read-out lives under the image (as DS9's info panel), not in the status bar, where it
        # clipped the messages.
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.setSpacing(1)
        ll.addWidget(self.view, 1)
        self.readout = QLabel("")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout.setMinimumWidth(50)
        self.readout.setWordWrap(True)  # RA/Dec and, on a mosaic, the chip and its pixel: may need two lines
        ll.addWidget(self.readout)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([600, 900])
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        self.setCentralWidget(split)
        self.sources_panel = SourcesPanel()
        self.sources_panel.detect_requested.connect(self.detect_sources)
        self.sources_panel.restore_requested.connect(self.restore_sources)
        self.sources_panel.export_requested.connect(self._export_batch_dialog)
        self.sources_panel.source_activated.connect(self._show_source)
        self.sources_dock = QDockWidget("Sources (batch)", self)
        self.sources_dock.setObjectName("sourcesDock")
        self.sources_dock.setWidget(self.sources_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.sources_dock)
        self.sources_dock.hide()

        tb = QToolBar("display")
        tb.setObjectName("displayToolbar")  # saveState/restoreState need names
        self.addToolBar(tb)
        self.chip = QComboBox()
        self.chip.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
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
        self.margin_box = QSpinBox()
        self.margin_box.setRange(0, 64)
        self.margin_box.setSingleStep(8)
        self.margin_box.setValue(DEFAULT_CONTEXT)
        self.margin_box.setSuffix(" px")
        self.margin_box.setToolTip("context margin: restore a cut-out this much larger on every side and show its "
                                   "central stamp, so the network's own edges fall outside it (clicks, regions, "
                                   f"batches; default {DEFAULT_CONTEXT} px: README, Real HST data)")
        self.tta_box = QCheckBox("uncertainty")
        self.tta_box.setChecked(True)
        self.tta_box.setToolTip("8 flips/rotations: mean and spread (slower)")
        self.cons_box = QCheckBox("consistency")
        self.cons_box.setToolTip("fuse each restoration with the data so that the residual χ² is at most 1: "
                                 "the data decide where the PSF passes signal, the network elsewhere")
        self.anchor_box = QCheckBox("anchor")
        self.anchor_box.setChecked(DEFAULT_ANCHOR > 0)
        self.anchor_box.setToolTip(f"give each restoration back the data's scales above {ANCHOR_SCALE:g} px "
                                   "(flux, background, halos) where they differ beyond the noise")
        self.star_box = QCheckBox("point source")
        self.star_box.setToolTip("the clicked source is a star: fit it with the instrument PSF, restore the rest "
                                 "with the network and add the star back as the model's target PSF (clicks only)")
        self.cr_box = QCheckBox("clean CRs")
        self.cr_box.setChecked(True)
        self.cr_box.setToolTip("L.A.Cosmic on FLT/FLC stamps before restoring (paper §5.1)")
        self.mode_box = QComboBox()
        self.mode_box.addItems(MODES)
        self.mode_box.setToolTip("left mouse: restore a 64×64 stamp at the click, or draw a region to restore")
        self.mode_box.currentIndexChanged.connect(
            lambda i: self.view.set_draw_mode((None, "rectangle", "ellipse", "polygon")[i]))
        self.dq_box = QCheckBox("masks")
        self.dq_box.setToolTip("red overlay: DQ-flagged pixels on the image; flagged and cosmic-ray pixels "
                               "(in-painted before restoring) on the LQ panel")
        self.dq_box.toggled.connect(self._toggle_mask)
        self.model_box = QComboBox()
        self.model_box.addItems([*available_models(), "Other checkpoint…"])
        self.model_box.activated.connect(self._choose_model)
        self.device_label = QLabel("")
        for label, w in (("ext", self.chip), ("mouse", self.mode_box), ("stretch", self.stretch_box),
                         ("limits", self.limits_box), ("colours", self.cmap_box)):
            tb.addWidget(QLabel(f" {label} "))
            tb.addWidget(w)
        tb.addSeparator()
        tb.addWidget(self.dq_box)
        # Restoration choices on a second toolbar: one bar overflowed (»-menu) below ~1,900 px.
        self.addToolBarBreak()
        tb2 = QToolBar("restoration")
        tb2.setObjectName("restorationToolbar")
        self.addToolBar(tb2)
        self.toolbars = (tb, tb2)
        tb2.addWidget(QLabel(" stamp "))
        tb2.addWidget(self.size_box)
        tb2.addWidget(QLabel(" margin "))
        tb2.addWidget(self.margin_box)
        for w in (self.tta_box, self.anchor_box, self.cons_box, self.star_box, self.cr_box):
            tb2.addWidget(w)
        tb2.addSeparator()
        tb2.addWidget(QLabel(" model "))
        tb2.addWidget(self.model_box)
        tb2.addWidget(self.device_label)

        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)

        menu = self.menuBar().addMenu("&File")
        self._action(menu, "&Open…", QKeySequence.StandardKey.Open, self._open_dialog)
        self._action(menu, "Open &demo", None, self.open_demo)
        self.recent_menu = menu.addMenu("Open &recent")
        self._fill_recent()
        menu.addSeparator()
        self._action(menu, "&Export stamp (FITS)…", QKeySequence.StandardKey.Save, self._export_dialog)
        self._action(menu, "Export &figure (PNG/PDF/SVG)…", None, self._export_figure_dialog)
        menu.addSeparator()
        self._action(menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        view_menu = self.menuBar().addMenu("&View")
        self._action(view_menu, "&Header…", None, self._show_header)
        view_menu.addAction(self.sources_dock.toggleViewAction())
        self.grid_action = self._action(view_menu, "Coordinate &grid (RA/Dec)", QKeySequence("Ctrl+G"),
                                        self._toggle_grid)
        self.grid_action.setCheckable(True)
        view_menu.addSeparator()
        self._action(view_menu, "Zoom to &fit", QKeySequence("Ctrl+0"), self.view.zoom_to_fit)
        self._action(view_menu, "Zoom &1:1", QKeySequence("Ctrl+1"), lambda: self.view.zoom_actual())
        reg = self.menuBar().addMenu("&Regions")
        self._action(reg, "&Restore selected region", QKeySequence("Ctrl+R"), self.restore_selected_region)
        self._action(reg, "&Delete selected region", QKeySequence.StandardKey.Delete, self.view.remove_region)
        self._action(reg, "&Clear regions", None, self.view.clear_regions)
        reg.addSeparator()
        self._action(reg, "&Import DS9 regions…", None, self._import_regions_dialog)
        self._action(reg, "&Export DS9 regions…", None, self._export_regions_dialog)
        batch = self.menuBar().addMenu("&Batch")
        self._action(batch, "&Detect sources", QKeySequence("Ctrl+D"),
                     lambda: self.detect_sources(self.sources_panel.nsigma.value()))
        self._action(batch, "Restore &all sources", None,
                     lambda: self.restore_sources(list(self.sources_panel.sources)))
        self._action(batch, "&Export batch…", None, self._export_batch_dialog)
        self.about: QDialog | None = None
        self.header_dialog: HeaderDialog | None = None
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&About galviewer and the model…", None, self.show_about)
        self._restore_preferences()

    # Display and restoration choices kept between runs (QSettings), as DS9 keeps its preferences.
    _PREFS = (("stretch", "stretch_box"), ("limits", "limits_box"), ("colours", "cmap_box"))
    _FLAGS = (("uncertainty", "tta_box"), ("anchor", "anchor_box"), ("consistency", "cons_box"),
              ("clean_crs", "cr_box"), ("masks", "dq_box"), ("grid", "grid_action"))

    def _restore_preferences(self) -> None:
        s = self.settings
        for key, name in self._PREFS:
            box = getattr(self, name)
            value = s.value(f"prefs/{key}", None, str)
            if value and box.findText(value) >= 0:
                box.setCurrentText(value)
        for key, name in self._FLAGS:
            value = s.value(f"prefs/{key}", None)
            if value is not None:
                getattr(self, name).setChecked(str(value).lower() in ("true", "1"))
        mode = s.value("prefs/mouse", None)
        if mode is not None and str(mode).isdigit() and int(mode) < self.mode_box.count():
            self.mode_box.setCurrentIndex(int(mode))
        for key, box in (("stamp", self.size_box), (_MARGIN_KEY, self.margin_box)):
            value = s.value(f"prefs/{key}", None)
            if value is not None and str(value).isdigit():
                box.setValue(int(value))
        state = s.value("prefs/window_state", None)
        if state is not None:
            self.restoreState(state)

    def _save_preferences(self) -> None:
        s = self.settings
        for key, name in self._PREFS:
            s.setValue(f"prefs/{key}", getattr(self, name).currentText())
        for key, name in self._FLAGS:
            s.setValue(f"prefs/{key}", getattr(self, name).isChecked())
        s.setValue("prefs/mouse", self.mode_box.currentIndex())
        s.setValue("prefs/stamp", self.size_box.value())
        s.setValue(f"prefs/{_MARGIN_KEY}", self.margin_box.value())
        s.setValue("prefs/window_state", self.saveState())
        s.sync()

    def show_about(self) -> None:
        """Help ▸ About: galviewer's version and the model card of the loaded model (a non-modal window)."""
        from galviewer import __version__

        card = self.restorer.metadata.card() if self.restorer is not None else "No model loaded yet."
        if self.about is None:
            self.about = QDialog(self)
            self.about.setWindowTitle("About galviewer")
            self.about.resize(820, 420)
            lay = QVBoxLayout(self.about)
            self.about_text = QPlainTextEdit()
            self.about_text.setReadOnly(True)
            lay.addWidget(self.about_text)
        self.about_text.setPlainText(f"galviewer {__version__} — restoration of HST galaxy images (Park et al. 2024), "
                                     f"with residuals, uncertainty and a quality verdict beside every result.\n\n"
                                     f"{card}")
        self.about.show()
        self.about.raise_()

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
            if ext == MOSAIC_EXT:
                mosaic = open_mosaic(p)
                return p, exts, mosaic, mosaic.data
            image = open_image(p, ext)
            data = np.asarray(image.data, dtype=np.float32)
            return p, exts, image, data

        self.statusBar().showMessage(f"opening {p.name}…")
        self.jobs.submit("load", job)

    def open_demo(self) -> None:
        """Open the built-in demo field (rendered into the user cache on first use)."""
        from galviewer.core.sim.demo import ensure_demo

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
        current = MOSAIC_EXT if isinstance(image, Mosaic) else f"{image.meta.extname},{image.meta.extver}"
        if current in exts:
            self.chip.setCurrentText(current)
        self.view.set_data(data if data is not None else np.asarray(image.data, dtype=np.float32))
        self._toggle_mask(self.dq_box.isChecked())
        self._toggle_grid()
        self.view.clear_regions()
        self.view.set_sources(None)
        self.view.set_markers(None)
        self.sources_panel.set_sources([])
        # nothing of the previous file stays on show (issue 12: stale panels, table and marker)
        for ch in ("restore", "compare", "measure", "batch", "detect"):
            self.jobs.cancel(ch)
        self.result, self.region_result = None, None
        self.panels.clear()
        self.panels.set_unit(image.meta.bunit or "counts (no BUNIT)")
        self.table.clear()
        self.statusBar().setStyleSheet("")
        m = image.meta
        ny, nx = image.data.shape
        self.setWindowTitle(f"galviewer — {path.name} [{current}]")
        notes = "" if not m.warnings else f" · {len(m.warnings)} reading note(s): hover here"
        self.statusBar().setToolTip("\n".join(m.warnings))
        self.statusBar().showMessage(f"{path.name}: {m.kind} {m.instrument}/{m.detector} {m.filter}, "
                                     f"{m.exptime:g} s, {m.bunit or 'no BUNIT'}, {nx}×{ny} px — click a galaxy"
                                     f"{notes}", 15000)
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

    def context_menu(self, x: float, y: float) -> QMenu:
        """The image's right-click menu at (x, y): restore or measure there, centre, zoom, copy the position."""
        menu = QMenu(self)
        inside = self._chip_at(x, y) is not None
        for text, slot in (("Restore here", lambda: self.restore_at(x, y)),
                           ("Measure LQ here (Sérsic, photometry)", lambda: self.measure_at(x, y))):
            menu.addAction(text, slot).setEnabled(inside)
        menu.addSeparator()
        menu.addAction("Centre here", lambda: self.view.centre_on(x, y))
        menu.addAction("Zoom to fit", self.view.zoom_to_fit)
        menu.addAction("Zoom 1:1 here", lambda: self.view.zoom_actual(x, y))
        menu.addSeparator()
        ra, dec = self.image.pixel_to_world(x, y) if self.image is not None else (math.nan, math.nan)
        where = f"{x:.2f} {y:.2f}" + (f"  {sexagesimal(ra, dec)}  {ra:.6f} {dec:+.6f}" if math.isfinite(ra) else "")
        menu.addAction("Copy position (0-based x y, RA Dec)", lambda: QGuiApplication.clipboard().setText(where))
        menu.addSeparator()
        menu.addAction(self.grid_action)
        return menu

    def _toggle_grid(self, on: bool | None = None) -> None:
        """Show or hide the RA/Dec grid of the image on show (traced through its full WCS)."""
        from galviewer.core.io.wcsgrid import wcs_grid

        on = self.grid_action.isChecked() if on is None else bool(on)
        if not on or self.image is None:
            self.view.set_grid(None)
            return
        try:
            if isinstance(self.image, Mosaic):  # each chip's own grid, placed on the canvas
                lines = []
                for chip, (ox, oy) in zip(self.image.chips, self.image.offsets, strict=True):
                    lines += [dataclasses.replace(g, x=g.x + ox, y=g.y + oy)
                              for g in wcs_grid(chip.wcs, chip.data.shape)]
                self.view.set_grid(lines)
                return
            self.view.set_grid(wcs_grid(self.image.wcs, self.image.data.shape))
        except GalviewerError as exc:
            self.view.set_grid(None)
            self.statusBar().showMessage(f"coordinate grid: {exc}", 8000)

    def _toggle_mask(self, on: bool) -> None:
        self.view.set_mask(np.asarray(self.image.bad) if on and self.image is not None and self.image.bad is not None
                           else None)
        self._show_stamp_mask()

    def _show_stamp_mask(self) -> None:
        """The in-painted pixels (DQ-flagged and cosmic rays) of the stamp on show, over the LQ panel."""
        st = self.result.stamp if self.result is not None else None
        show = self.dq_box.isChecked() and st is not None and bool(st.bad.any())
        self.panels.views["LQ"].set_mask(st.bad if show else None)

    def _show_header(self) -> None:
        """View ▸ Header: every card of the image's (merged) header, monospaced and searchable."""
        if self.image is None:
            return
        if self.header_dialog is None:
            self.header_dialog = HeaderDialog(self)
        name = self.path.name if self.path else ""
        which = "first chip of the mosaic, " if isinstance(self.image, Mosaic) else ""
        self.header_dialog.set_header(self.image.header, f"Header of {name} [{which}{self.image.meta.extname},"
                                                         f"{self.image.meta.extver}]")
        self.header_dialog.show()
        self.header_dialog.raise_()

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
    def _anchor(self) -> float:
        """σ (px) of the large-scale anchoring the toolbar asks for (0: off)."""
        return ANCHOR_SCALE if self.anchor_box.isChecked() else 0.0

    def _cr_cleaner(self, image: Image) -> Any:
        """L.A.Cosmic for stamps of FLT/FLC images when "clean CRs" is on, else None (drizzled data are clean)."""
        return clean_cosmic_rays if self.cr_box.isChecked() and cleanable(image) else None

    def restore_at(self, x: float, y: float) -> None:
        """Cut a stamp at (x, y), clean it, restore and measure it in the background; latest click wins."""
        target = self._chip_at(x, y)
        if target is None:
            return
        if self.restorer is None:
            self._pending_click = (x, y)
            self.statusBar().showMessage("waiting for the model to load…")
            return
        image, cx, cy = target
        restorer, size, margin = self.restorer, self.size_box.value(), self.margin_box.value()
        tta, clean, cons = self.tta_box.isChecked(), self._cr_cleaner(image), self.cons_box.isChecked()
        anchor, star = self._anchor(), self.star_box.isChecked()

        def job(progress, cancelled):
            stamp = cutout(image, cx, cy, size, context=margin)
            n_cr = 0
            if clean is not None:
                stamp, n_cr = clean(stamp)
            if cancelled():
                raise RestoreCancelled("superseded")
            r = restorer.restore(stamp, uncertainty=tta, progress=progress, cancel=cancelled, consistency=cons,
                                 anchor=anchor, point_source=star)
            r = crop_restoration(r, margin)  # (no margin: r itself)
            stamp = r.stamp
            if cancelled():
                raise RestoreCancelled("superseded")
            return ClickResult(stamp, r, None, n_cr)

        self.view.set_markers(np.array([[x, y]]))
        self.panels.info.setText(f"restoring x={x:.1f} y={y:.1f}…")
        self.jobs.submit("restore", job)

    def _chip_at(self, x: float, y: float) -> tuple[Image, float, float] | None:
        """The image to cut from and the position in its pixels: the chip under (x, y) for a mosaic (None in a
        gap between chips, said in the status bar), else the open image itself (None outside it)."""
        if self.image is None:
            return None
        if isinstance(self.image, Mosaic):
            hit = self.image.locate(x, y)
            if hit is None:
                self.statusBar().showMessage(f"x={x:.1f} y={y:.1f} falls between the chips", 5000)
                return None
            return hit[1], hit[2], hit[3]
        if not (0 <= x < self.image.data.shape[1] and 0 <= y < self.image.data.shape[0]):
            return None
        return self.image, x, y

    def _to_view(self, stamp: Any, x: float, y: float) -> tuple[float, float]:
        """Where a position in the pixels of ``stamp``'s image is on show (the canvas of a mosaic)."""
        if isinstance(self.image, Mosaic) and stamp is not None and stamp.ext in self.image.exts:
            return self.image.to_canvas(stamp.ext, x, y)
        return x, y

    def _world(self, stamp: Any, x: float, y: float) -> tuple[float, float]:
        """RA, Dec (deg) of a position in ``stamp``'s image (through its chip's WCS for a mosaic)."""
        if self.image is None:
            return math.nan, math.nan
        return self.image.pixel_to_world(*self._to_view(stamp, x, y))

    def restore_region(self, region: AnyRegion) -> None:
        """Restore a region as one piece (tiled), in the background with progress and Cancel; latest wins."""
        if self.image is None:
            return
        if isinstance(self.image, Mosaic):
            self.statusBar().showMessage("regions are restored on one chip: choose SCI,1 or SCI,2 in 'ext' "
                                         "(a region could straddle the gap between chips)", 8000)
            return
        if self.restorer is None:
            self.statusBar().showMessage("the model is still loading; try again in a moment", 5000)
            return
        image, restorer, tta = self.image, self.restorer, self.tta_box.isChecked()
        clean, cons, anchor = self._cr_cleaner(image), self.cons_box.isChecked(), self._anchor()
        margin = self.margin_box.value()

        def job(progress, cancelled):
            return restore_region(restorer, image, region, uncertainty=tta, clean=clean, progress=progress,
                                  cancel=cancelled, consistency=cons, anchor=anchor, context=margin)

        self.panels.info.setText(f"restoring {region.describe()}…")
        self.jobs.submit("restore", job)

    def restore_selected_region(self) -> None:
        """Restore the selected region (or the last one drawn)."""
        roi = self.view.selected_roi or (self.view.rois[-1] if self.view.rois else None)
        if roi is None:
            self.statusBar().showMessage("no region: choose a drag mode in the toolbar and draw one", 5000)
            return
        self.restore_region(self.view.region_of(roi))

    def import_regions(self, path: str | os.PathLike[str]) -> list[AnyRegion]:
        """Add the rectangles, ellipses, circles and polygons of a DS9 region file (others are listed as skipped)."""
        regions, skipped = read_regions(path, self.image.wcs if self.image is not None else None)
        for r in regions:
            self.view.add_region(r)
        msg = f"{len(regions)} regions read from {Path(path).name}"
        if skipped:
            msg += f"; {len(skipped)} skipped ({skipped[0]}{', …' if len(skipped) > 1 else ''})"
        self.statusBar().showMessage(msg, 15000)
        return regions

    def export_regions(self, path: str | os.PathLike[str], *, sky: bool = False, overwrite: bool = False) -> Path:
        """Write the regions as a DS9 file (image coordinates, or fk5 with ``sky`` when the image has a WCS)."""
        wcs = self.image.wcs if sky and self.image is not None else None
        out = write_regions(path, self.view.regions(), wcs=wcs, overwrite=overwrite)
        self.statusBar().showMessage(f"wrote {out}", 8000)
        return out

    def _import_regions_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import DS9 regions", "", "DS9 regions (*.reg);;All (*)")
        if path:
            try:
                self.import_regions(path)
            except GalviewerError as exc:
                self._error_dialog("Could not read the regions", str(exc))

    def _export_regions_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export DS9 regions", "galviewer.reg", "DS9 regions (*.reg)")
        if path:
            try:
                self.export_regions(path, sky=self.image is not None and self.image.wcs is not None, overwrite=True)
            except GalviewerError as exc:
                self._error_dialog("Could not write the regions", str(exc))

    # ------------------------------------------------------------------ batch
    def detect_sources(self, nsigma: float = 3.0) -> None:
        """Detect sources (photutils) on the open image in the background and list them."""
        if self.image is None:
            return
        image = self.image
        self.sources_panel.nsigma.setValue(nsigma)

        def job(progress, cancelled):
            if isinstance(image, Mosaic):
                return detect_mosaic(image, nsigma=nsigma)
            return detect(image, nsigma=nsigma)

        self.sources_dock.show()
        self.statusBar().showMessage(f"detecting sources above {nsigma:g}σ…")
        self.jobs.submit("detect", job)

    def restore_sources(self, ids: list[int]) -> None:
        """Restore and measure the listed sources in the background (batched), with progress and Cancel."""
        if self.image is None or not ids:
            return
        if self.restorer is None:
            self.statusBar().showMessage("the model is still loading; try again in a moment", 5000)
            return
        sources = [self.sources_panel.sources[i] for i in ids if i in self.sources_panel.sources]
        image, restorer, size, tta = self.image, self.restorer, self.size_box.value(), self.tta_box.isChecked()
        clean, cons, anchor = self._cr_cleaner(image), self.cons_box.isChecked(), self._anchor()
        margin = self.margin_box.value()

        def job(progress, cancelled):
            if isinstance(image, Mosaic):
                return restore_mosaic_sources(restorer, image, sources, size=size, context=margin, uncertainty=tta,
                                              clean=clean, progress=progress,
                                              cancel=cancelled, consistency=cons, anchor=anchor)
            return restore_sources(restorer, image, sources, size=size, context=margin, uncertainty=tta,
                                   clean=clean, progress=progress, cancel=cancelled, consistency=cons, anchor=anchor)

        self.statusBar().showMessage(f"restoring {len(sources)} sources…")
        self.jobs.submit("batch", job)

    def export_batch(self, folder: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
        """Write every restored source of the batch (FITS stamps) and the catalogue (ECSV) into ``folder``."""
        results = [r for r in self.sources_panel.results.values() if r.restoration is not None]
        stem = self.path.name.split(".")[0] if self.path is not None else "source"
        out = export_batch(folder, results, stem=stem, wcs=self.image.wcs if self.image is not None else None,
                           overwrite=overwrite)
        self.statusBar().showMessage(f"wrote {len(out) - 1} stamps and {out[-1].name} into {folder}", 10000)
        return out

    def _export_batch_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the batch into a folder")
        if not folder:
            return
        try:
            self.export_batch(folder)
        except OutputExistsError as exc:
            answer = QMessageBox.question(self, "Replace files?", f"{exc}\n\nReplace them?")
            if answer == QMessageBox.StandardButton.Yes:
                try:
                    self.export_batch(folder, overwrite=True)
                except GalviewerError as exc2:
                    self._error_dialog("Export failed", str(exc2))
        except GalviewerError as exc:
            self._error_dialog("Export failed", str(exc))

    def _show_source(self, sid: int) -> None:
        src = self.sources_panel.sources.get(sid)
        if src is None:
            return
        self.view.set_markers(np.array([[src.x, src.y]]))
        half = max(self.size_box.value(), 32)
        self.view.vb.setRange(xRange=(src.x - 2 * half, src.x + 2 * half), yRange=(src.y - 2 * half, src.y + 2 * half))
        res = self.sources_panel.results.get(sid)
        if res is not None and res.restoration is not None:
            self.result = ClickResult(res.stamp, res.restoration, res.measurements, res.cosmic_rays)
            self.region_result = None
            self.panels.show_restoration(res.restoration)
            if res.measurements is not None:
                self.table.show_measurements(res.measurements)

    def cancel(self) -> None:
        """Cancel the running restoration(s): click, region or batch."""
        for ch in ("restore", "batch", "detect"):
            self.jobs.cancel(ch)

    def measure_at(self, x: float, y: float) -> None:
        """imexam-style `r`/`a`: Sérsic fit, Kron/isophotal photometry and radial profile of LQ at (x, y)."""
        target = self._chip_at(x, y)
        if target is None:
            return
        image, cx, cy = target
        size = self.size_box.value()
        psf = instrument_psf(image.meta, image.header).fitting_kernel(size)  # as compare_restoration fits LQ

        def job(progress, cancelled):
            stamp = cutout(image, cx, cy, size)
            return stamp, compare(stamp.lq, None, psf, err=stamp.err, mask=stamp.bad).with_units(stamp.meta)

        self.statusBar().showMessage(f"measuring x={x:.1f} y={y:.1f}…")
        self.jobs.submit("measure", job)

    def _show_region(self, rr: RegionRestoration) -> None:
        r = rr.restoration
        self.result = ClickResult(r.stamp, r, None, 0)
        self.region_result = rr
        self.panels.show_restoration(r, outside=None if rr.inside.all() else ~rr.inside)
        self._show_stamp_mask()
        s = rr.summary()

        def f(v: float, d: int = 4) -> str:
            return f"{v:.{d}g}" if math.isfinite(v) else "—"

        unit = self.image.meta.bunit if self.image is not None else ""
        rows = [("pixels inside", "px", [f"{s['pixels']:.0f}", ""]),
                ("flux (bkg-subtracted sum)", unit, [f(s["flux_lq"]), f(s["flux_rs"])]),
                ("flux conservation Σ PSF⊗RS / Σ LQ", "", ["", f(s["conservation"], 3)]),
                ("background rms", unit, [f(s["noise_lq"], 3), f(s["noise_rs"], 3)]),
                ("residual rms / LQ noise", "", ["", f(s["resid_rms_over_noise"], 3)]),
                ("median uncertainty", unit, ["", f(s["sigma_median"], 3)])]
        self.table.show_rows(["LQ", "RS"], rows)
        self.panels.info.setText(f"{rr.region.describe()} · " + self.panels.info.text())
        self.statusBar().showMessage(f"restored {rr.region.describe()} in {r.meta['seconds']:.2f} s; "
                                     f"residual rms {s['resid_rms_over_noise']:.2f}× the noise", 15000)

    def _show_result(self, res: ClickResult) -> None:
        """Show the restoration at once; the measurements follow from their own job (latest wins)."""
        self.result = res
        self.region_result = None
        self.panels.show_restoration(res.restoration)
        self._show_stamp_mask()
        cx, cy = res.stamp.center
        self.view.set_markers(np.array([self._to_view(res.stamp, cx, cy)]))
        r = res.restoration

        def job(progress, cancelled):
            return r, judge(r)[0]

        self.table.show_rows(["LQ", "RS"], [("measuring…", "", ["", ""])])
        self.jobs.submit("compare", job)
        self.statusBar().showMessage(f"restored x={cx:.2f} y={cy:.2f} in {r.meta['seconds'] * 1e3:.0f} ms, "
                                     f"{res.cosmic_rays} cosmic-ray pixels cleaned; measuring…", 15000)

    def _show_measurements(self, r: Restoration, m: Measurements) -> None:
        if self.result is None or self.result.restoration is not r:
            return  # a newer restoration is on show
        self.result.measurements = m
        self.table.show_measurements(m)
        cx, cy = self.result.stamp.center
        ra, dec = self._world(self.result.stamp, cx, cy)
        point = ("" if not m.point_like else
                 " — a star, restored in point-source mode (the target PSF at its fitted flux)"
                 if r.meta.get("point_source") else
                 " — unresolved source: the network broadens stars; tick 'point source' to restore it as a star")
        verdict = r.meta.get("verdict")
        self.panels.show_verdict(verdict)
        # The status line names what fails in a few words (it must fit the bar); the numbers are in the panel
        # header and in the status bar's tooltip.
        quality = "" if verdict is None else (" · quality ok" if verdict.ok else
                                              " · QUALITY FAILS: " + ", ".join(
                                                  CHECK_NAMES.get(k, k) for k, c in verdict.checks.items()
                                                  if not c.ok) + " (details: panel header)")
        self._status_colour(verdict is None or verdict.ok)
        full = (f"restored x={cx:.2f} y={cy:.2f} (RA {ra:.6f} Dec {dec:.6f}), {self.result.cosmic_rays} cosmic-ray "
                f"pixels cleaned, flux conservation {m.flux_conservation:.3f}, residual χ² {m.residual_chi2:.2f}"
                + ("" if verdict is None or verdict.ok else f" · QUALITY FAILS: {'; '.join(verdict.failures)}")
                + point)
        point_hint = "" if not point else (" · point-source mode" if r.meta.get("point_source") else
                                           " · unresolved: try 'point source'")
        self.statusBar().setToolTip(full)
        self.statusBar().showMessage(
            f"restored x={cx:.2f} y={cy:.2f} · flux cons. {m.flux_conservation:.3f} · χ² {m.residual_chi2:.3g}"
            f"{quality}{point_hint}", 30000)

    def _status_colour(self, ok: bool) -> None:
        """The status bar's text red while it reports a restoration that fails its quality checks."""
        self.statusBar().setStyleSheet("" if ok else "QStatusBar { color: #c0392b; font-weight: bold; }")

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

    def export_figure(self, path: str | os.PathLike[str], overwrite: bool = False) -> None:
        """Write a labelled figure of the restoration on show (PNG, PDF or SVG) in the background.

        Panels with axes in stamp pixels and colour bars in the image's units, the file, extension, position,
        model and quality verdict in the title (:func:`galviewer.core.restore.figure.restoration_figure`); the result
        arrives on the ``export`` channel.
        """
        from galviewer.core.restore.figure import FIGURE_FORMATS, restoration_figure

        shown = self.region_result.restoration if self.region_result is not None else (
            self.result.restoration if self.result is not None else None)
        if shown is None:
            raise GalviewerError("nothing to export: restore a source first")
        p = Path(path)
        if p.suffix.lower() not in FIGURE_FORMATS:
            raise ExportError(p, f"unknown figure format {p.suffix!r}: use {', '.join(FIGURE_FORMATS)}")
        if p.exists() and not overwrite:
            raise OutputExistsError(p, "file exists; choose another name or confirm the replacement")

        def job(progress, cancelled):
            return restoration_figure(p, shown, overwrite=overwrite)

        self.jobs.submit("export", job)
        self.statusBar().showMessage(f"writing {p.name}…")

    def _export_figure_dialog(self) -> None:
        if self.result is None and self.region_result is None:
            self._error_dialog("Export", "Nothing to export: click a source first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export figure", "restoration.png",
                                              "PNG (*.png);;PDF (*.pdf);;SVG (*.svg)")
        if path:  # the dialog has already asked before replacing an existing file
            try:
                self.export_figure(path, overwrite=True)
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
            if isinstance(value, RegionRestoration):
                self._show_region(value)
            else:
                self._show_result(value)
        elif channel == "compare":
            self._show_measurements(*value)
        elif channel == "export":
            self.statusBar().showMessage(f"wrote {value}", 8000)
        elif channel == "detect":
            self.sources_panel.set_sources(value)
            self.view.set_sources(np.array([[s.x, s.y] for s in value]) if value else None)
            found = getattr(value, "found", len(value))
            kept = f"{len(value)} sources detected" if found == len(value) else \
                f"{found} sources detected, the {len(value)} brightest kept"
            self.statusBar().showMessage(f"{kept} — select rows and Restore, or Restore all", 10000)
        elif channel == "batch":
            self.sources_panel.set_results(value)
            bad = [r for r in value if r.error]
            points = sum(1 for r in value if r.measurements is not None and r.measurements.point_like)
            self.statusBar().showMessage(
                f"restored {len(value) - len(bad)} of {len(value)} sources"
                + (f"; {len(bad)} failed (see the status column)" if bad else "")
                + (f"; {points} unresolved (class 'point': the network broadens stars — click one with 'point "
                   "source' ticked)" if points else ""), 15000)
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
                  "restore": "Restoration failed",
                  "compare": "Measurement failed", "detect": "Detection failed", "batch": "Batch restoration failed"}
        if channel == "model":
            self.device_label.setText(" no model ")
        if channel == "restore":  # the header said "restoring …": say that it did not
            self.panels.info.setText(f"restoration failed: {exc}")
            self.panels.info.setStyleSheet("QLabel { color: #c0392b; font-weight: bold; }")
        self._error_dialog(titles.get(channel, "Error"), str(exc))

    def _error_dialog(self, title: str, text: str) -> None:
        self.last_error = f"{title}: {text}"
        self.statusBar().showMessage(self.last_error, 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()  # non-modal: the app keeps running

    def _on_progress(self, channel: str, done: int, total: int) -> None:
        if channel in ("restore", "batch"):
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)

    def _on_busy(self, channel: str, busy: bool) -> None:
        if channel in ("restore", "batch", "detect"):
            running = any(self.jobs.is_busy(ch) for ch in ("restore", "batch", "detect")) or busy
            self.progress.setVisible(running)
            self.cancel_button.setVisible(running)
            if busy:
                self.progress.setRange(0, 0)

    def _readout(self, x: float, y: float) -> None:
        v = self.view.value_at(x, y)
        if v is None or self.image is None:
            self.readout.setText("")
            return
        ra, dec = self.image.pixel_to_world(x, y)
        sky = f"  {sexagesimal(ra, dec)}  ({ra:.6f}, {dec:+.6f})" if math.isfinite(ra) else ""
        chip = ""
        if isinstance(self.image, Mosaic):
            hit = self.image.locate(x, y)
            chip = "" if hit is None else f"  [{self.image.exts[hit[0]]} x {hit[2]:.1f} y {hit[3]:.1f}]"
        self.readout.setText(f"x {x:.1f}  y {y:.1f}  {v:.4g} {self.image.meta.bunit}{sky}{chip}")

    def keyPressEvent(self, ev) -> None:
        """imexam keys over the image: `t` cut out and restore, `r`/`a` radial profile and photometry of LQ."""
        actions = {Qt.Key.Key_T: self.restore_at, Qt.Key.Key_R: self.measure_at, Qt.Key.Key_A: self.measure_at}
        if ev.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.view.vb.vertices:
            self.view.vb.finish_polygon()
        elif ev.key() in actions and self.view.underMouse():
            pos = self.view.vb.mapSceneToView(self.view.mapToScene(self.view.mapFromGlobal(self.cursor().pos())))
            actions[ev.key()](float(pos.x()), float(pos.y()))
        else:
            super().keyPressEvent(ev)

    def closeEvent(self, ev) -> None:
        self._save_preferences()
        self.jobs.shutdown()
        if self.image is not None:
            self.image.close()
        super().closeEvent(ev)
