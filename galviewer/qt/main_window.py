"""The main window: open an HST image, click a galaxy, see LQ | RS | residual | uncertainty and the numbers.

The window only assembles.  Each concern lives in a controller of its own, which owns its job channels:

* :class:`~galviewer.qt.files.FilesController` (``files``) — opening files, display, grid, masks, read-out;
* :class:`~galviewer.qt.clicks.ClickController` (``clicks``) — clicks, the panels, measurements, verdict;
* :class:`~galviewer.qt.regions.RegionController` (``regions``) — regions and DS9 files;
* :class:`~galviewer.qt.batch.BatchController` (``batch``) — detection, batch restoration, the Sources dock;
* :class:`~galviewer.qt.export.ExportController` (``export``) — FITS stamps and figures;
* :class:`~galviewer.qt.models.ModelController` (``models``) — the model and its card.

Every restoration runs the one pipeline (:mod:`galviewer.core.restore.pipeline`) with the settings of the
restoration toolbar, in the one job runner (:class:`~galviewer.qt.workers.JobRunner`): the window never blocks
and the latest request wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QSplitter, QVBoxLayout, QWidget

from galviewer.core.io.fits import Image
from galviewer.core.restore.engine import Restorer
from galviewer.core.restore.regions import RegionRestoration
from galviewer.qt.batch import BatchController
from galviewer.qt.clicks import ClickController, ClickResult
from galviewer.qt.export import ExportController
from galviewer.qt.files import FilesController
from galviewer.qt.image_view import ImageView
from galviewer.qt.models import ModelController
from galviewer.qt.panels import ComparisonPanels, MeasurementPanel
from galviewer.qt.regions import RegionController
from galviewer.qt.sources import SourcesPanel
from galviewer.qt.toolbars import build_menus, build_toolbars, restore_preferences, save_preferences
from galviewer.qt.workers import JobRunner

__all__ = ["ClickResult", "MainWindow"]

_TITLES = {"load": "Could not open the image", "model": "Could not load the model", "restore": "Restoration failed",
           "compare": "Measurement failed", "detect": "Detection failed", "batch": "Batch restoration failed"}


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
        # what is open and on show (the controllers read and set these)
        self.image: Image | None = None
        self.path: Path | None = None
        self.restorer = restorer
        self.result: ClickResult | None = None
        self.region_result: RegionRestoration | None = None
        self.last_error = ""
        self.pending_click: tuple[float, float] | None = None
        self.jobs = JobRunner(self)
        self._build()
        self.jobs.result.connect(self._on_result)
        self.jobs.error.connect(self._on_error)
        self.jobs.progress.connect(self._on_progress)
        self.jobs.busy.connect(self._on_busy)
        self.jobs.cancelled.connect(lambda ch: self.statusBar().showMessage(f"{ch}: cancelled", 3000))
        if restorer is None:
            self.models.load_model(None)
        else:
            self.models.show_model()

    # ------------------------------------------------------------------ assembly
    def _build(self) -> None:
        self.view = ImageView(title="")
        self.view.stretch_kind = "linear"
        self.panels = ComparisonPanels()
        self.table = MeasurementPanel()
        self.sources_panel = SourcesPanel()
        self.sources_dock = QDockWidget("Sources (batch)", self)
        self.sources_dock.setObjectName("sourcesDock")
        self.sources_dock.setWidget(self.sources_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.sources_dock)
        self.sources_dock.hide()
        self.files = FilesController(self)
        self.clicks = ClickController(self)
        self.regions = RegionController(self)
        self.batch = BatchController(self)
        self.export = ExportController(self)
        self.models = ModelController(self)
        self.view.clicked.connect(self.clicks.restore_at)
        self.view.hovered.connect(self.files.readout)
        self.view.menu_requested.connect(lambda x, y, pos: self.files.context_menu(x, y).popup(pos))
        self.view.region_drawn.connect(self.regions.restore_region)
        self.view.region_edited.connect(self.regions.restore_region)
        # the panels over the measurement table, the boundary draggable: the table holds ~30 rows (fits, flags,
        # fluxes, magnitudes), more than a fixed share of the height shows
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.panels)
        right.addWidget(self.table)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        right.setChildrenCollapsible(False)
        self.right_split = right
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
        build_toolbars(self)
        build_menus(self)
        restore_preferences(self)
        # channel -> the controller's handler of its results
        self._handlers = {"load": self.files.on_loaded, "model": self.models.on_loaded,
                          "restore": self._on_restored, "compare": self.clicks.on_measured,
                          "measure": self.clicks.on_lq_measured, "detect": self.batch.on_detected,
                          "batch": self.batch.on_restored,
                          "export": lambda value: self.statusBar().showMessage(f"wrote {value}", 8000)}

    # ------------------------------------------------------------------ shortcuts used by menus and tests
    def open_file(self, path: Any, ext: str | None = None) -> None:
        """Open a FITS image in the background (see :meth:`FilesController.open_file`)."""
        self.files.open_file(path, ext)

    def open_demo(self) -> None:
        """Open the built-in demo field."""
        self.files.open_demo()

    def set_cmap(self, name: str) -> None:
        """One colour map for the image and the panels."""
        self.view.set_colormap(name)
        self.panels.set_colormap(name)

    def cancel(self) -> None:
        """Cancel the running restoration(s): click, region or batch."""
        for ch in ("restore", "batch", "detect"):
            self.jobs.cancel(ch)
        self.batch.engine.cancel()

    def status_colour(self, ok: bool, caution: bool = False) -> None:
        """The status bar's text red while it reports a restoration that fails its quality checks, amber for a
        caution (outside the training range, the data explained)."""
        colour = "" if ok else "QStatusBar { color: #b9770e; font-weight: bold; }" if caution else \
            "QStatusBar { color: #c0392b; font-weight: bold; }"
        self.statusBar().setStyleSheet(colour)

    def error_dialog(self, title: str, text: str) -> None:
        """A non-modal warning (the app keeps running); the text also goes to the status bar."""
        self.last_error = f"{title}: {text}"
        self.statusBar().showMessage(self.last_error, 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()

    # ------------------------------------------------------------------ job plumbing
    def _on_restored(self, value: Any) -> None:
        if isinstance(value, RegionRestoration):
            self.regions.show(value)
        else:
            self.clicks.on_restored(value)

    def _on_result(self, channel: str, value: Any) -> None:
        if channel not in ("compare", "model"):  # a new message is not a failure unless it says so (issue 22)
            self.statusBar().setStyleSheet("")
        handler = self._handlers.get(channel)
        if handler is not None:
            handler(value)

    def _on_error(self, channel: str, exc: object) -> None:
        if channel == "model":
            self.device_label.setText(" no model ")
        if channel == "restore":  # the header said "restoring …": say that it did not
            self.panels.info.setText(f"restoration failed: {exc}")
            self.panels.info.setStyleSheet("QLabel { color: #c0392b; font-weight: bold; }")
        self.error_dialog(_TITLES.get(channel, "Error"), str(exc))

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

    # ------------------------------------------------------------------ window events
    def dragEnterEvent(self, ev) -> None:
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        urls = ev.mimeData().urls()
        if urls:
            self.files.open_file(urls[0].toLocalFile())

    def keyPressEvent(self, ev) -> None:
        """imexam keys over the image: `t` cut out and restore, `r`/`a` radial profile and photometry of LQ."""
        actions = {Qt.Key.Key_T: self.clicks.restore_at, Qt.Key.Key_R: self.clicks.measure_at,
                   Qt.Key.Key_A: self.clicks.measure_at}
        if ev.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.view.vb.vertices:
            self.view.vb.finish_polygon()
        elif ev.key() in actions and self.view.underMouse():
            pos = self.view.vb.mapSceneToView(self.view.mapToScene(self.view.mapFromGlobal(self.cursor().pos())))
            actions[ev.key()](float(pos.x()), float(pos.y()))
        else:
            super().keyPressEvent(ev)

    def closeEvent(self, ev) -> None:
        save_preferences(self)
        self.jobs.shutdown()
        self.batch.engine.shutdown()
        if self.image is not None:
            self.image.close()
        super().closeEvent(ev)
