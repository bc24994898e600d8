"""The window's toolbars, menus and status-bar widgets, and the preferences kept between runs (QSettings, as
DS9 keeps its preferences).  The restoration boxes start at the pipeline's defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QProgressBar, QPushButton, QSpinBox, QToolBar

from galviewer.core.nn.resources import available_models
from galviewer.core.restore.consistency import ANCHOR_SCALE
from galviewer.core.restore.pipeline import DEFAULTS
from galviewer.qt.image_view import COLORMAPS, LIMITS, STRETCHES

if TYPE_CHECKING:
    from galviewer.qt.main_window import MainWindow

__all__ = ["MODES", "build_menus", "build_toolbars", "restore_preferences", "save_preferences"]

MODES = ("click: restore stamp", "drag: rectangle", "drag: ellipse", "clicks: polygon (close on the 1st vertex)")
# preferences key of the context margin: "margin" held 0 while 0 was the default; a new key lets the default of 8 px
# reach everyone who never chose a margin (who set one chooses again once)
MARGIN_KEY = "context_margin"
_PREFS = (("stretch", "stretch_box"), ("limits", "limits_box"), ("colours", "cmap_box"))
_FLAGS = (("uncertainty", "tta_box"), ("anchor", "anchor_box"), ("consistency", "cons_box"),
          ("repair", "repair_box"), ("clean_crs", "cr_box"), ("masks", "dq_box"), ("grid", "grid_action"))


def _check(text: str, on: bool, tip: str) -> QCheckBox:
    box = QCheckBox(text)
    box.setChecked(on)
    box.setToolTip(tip)
    return box


def build_toolbars(w: MainWindow) -> None:
    """The display toolbar, the restoration toolbar (pipeline settings) and the progress bar with Cancel."""
    tb = QToolBar("display")
    tb.setObjectName("displayToolbar")  # saveState/restoreState need names
    w.addToolBar(tb)
    w.chip = QComboBox()
    w.chip.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
    w.chip.setToolTip("image extension (FLT/FLC: one per chip)")
    w.chip.activated.connect(lambda i: w.files.open_file(w.path, w.chip.currentText()) if w.path else None)
    w.stretch_box = QComboBox()
    w.stretch_box.addItems(STRETCHES)
    w.stretch_box.setCurrentText("linear")  # DS9's default for the field; the panels keep asinh
    w.stretch_box.setToolTip("stretch of the main image (the comparison panels use asinh)")
    w.stretch_box.currentTextChanged.connect(lambda k: w.view.set_display(stretch_kind=k))
    w.limits_box = QComboBox()
    w.limits_box.addItems(LIMITS)
    w.limits_box.currentTextChanged.connect(lambda t: w.view.set_display(limits=t))
    w.cmap_box = QComboBox()
    w.cmap_box.addItems(COLORMAPS)
    w.cmap_box.currentTextChanged.connect(w.set_cmap)
    w.size_box = QSpinBox()
    w.size_box.setRange(16, 512)
    w.size_box.setSingleStep(16)
    w.size_box.setValue(DEFAULTS.size)
    w.size_box.setSuffix(" px")
    w.size_box.setToolTip("stamp size (the model was trained on 64×64)")
    w.margin_box = QSpinBox()
    w.margin_box.setRange(0, 64)
    w.margin_box.setSingleStep(8)
    w.margin_box.setValue(DEFAULTS.context)
    w.margin_box.setSuffix(" px")
    w.margin_box.setToolTip("context margin: restore a cut-out this much larger on every side and show its central "
                            "stamp, so the network's own edges fall outside it (clicks, regions, batches; default "
                            f"{DEFAULTS.context} px: README, Real HST data)")
    w.tta_box = _check("uncertainty", DEFAULTS.uncertainty, "8 flips/rotations: mean and spread (slower)")
    w.cons_box = _check("consistency", DEFAULTS.consistency,
                        "fuse each restoration with the data so that the residual χ² is at most 1: the data decide "
                        "where the PSF passes signal, the network elsewhere")
    w.repair_box = _check("repair", DEFAULTS.repair,
                          "where the residual holds structure beyond the noise (an over-restored bright core, knots "
                          "smoothed away: circled on the residual), move the restoration towards the data there and "
                          "only there (off by default: it broadens stars restored as galaxies)")
    w.anchor_box = _check("anchor", DEFAULTS.anchor > 0, f"give each restoration back the data's scales above "
                          f"{ANCHOR_SCALE:g} px (flux, background, halos) where they differ beyond the noise")
    w.star_box = _check("point source", False,
                        "restore the source as a star: fit it with the instrument PSF, restore the rest with the "
                        "network and add the star back as the model's target PSF (clicks and batches). "
                        "Half-ticked (auto, the default): only where the source is unresolved (spread_model); "
                        "ticked: always; unticked: never")
    w.star_box.setTristate(True)
    w.star_box.setCheckState({True: Qt.CheckState.Checked, False: Qt.CheckState.Unchecked}.get(
        DEFAULTS.point_source, Qt.CheckState.PartiallyChecked))
    w.cr_box = _check("clean CRs", DEFAULTS.clean_cosmic_rays,
                      "L.A.Cosmic on FLT/FLC stamps before restoring (paper §5.1)")
    w.mode_box = QComboBox()
    w.mode_box.addItems(MODES)
    w.mode_box.setToolTip("left mouse: restore a 64×64 stamp at the click, or draw a region to restore")
    w.mode_box.currentIndexChanged.connect(lambda i: w.view.set_draw_mode((None, "rectangle", "ellipse",
                                                                           "polygon")[i]))
    w.dq_box = QCheckBox("masks")
    w.dq_box.setToolTip("red overlay: DQ-flagged pixels on the image; flagged and cosmic-ray pixels "
                        "(in-painted before restoring) on the LQ panel")
    w.dq_box.toggled.connect(w.files.toggle_mask)
    w.model_box = QComboBox()
    w.model_box.addItems([*available_models(), "Other checkpoint…"])
    w.model_box.activated.connect(w.models.choose)
    w.device_label = QLabel("")
    for label, box in (("ext", w.chip), ("mouse", w.mode_box), ("stretch", w.stretch_box),
                       ("limits", w.limits_box), ("colours", w.cmap_box)):
        tb.addWidget(QLabel(f" {label} "))
        tb.addWidget(box)
    tb.addSeparator()
    tb.addWidget(w.dq_box)
    # Restoration choices on a second toolbar: one bar overflowed (»-menu) below ~1,900 px.
    w.addToolBarBreak()
    tb2 = QToolBar("restoration")
    tb2.setObjectName("restorationToolbar")
    w.addToolBar(tb2)
    w.toolbars = (tb, tb2)
    tb2.addWidget(QLabel(" stamp "))
    tb2.addWidget(w.size_box)
    tb2.addWidget(QLabel(" margin "))
    tb2.addWidget(w.margin_box)
    for box in (w.tta_box, w.anchor_box, w.cons_box, w.repair_box, w.star_box, w.cr_box):
        tb2.addWidget(box)
    tb2.addSeparator()
    tb2.addWidget(QLabel(" model "))
    tb2.addWidget(w.model_box)
    tb2.addWidget(w.device_label)
    w.progress = QProgressBar()
    w.progress.setMaximumWidth(160)
    w.progress.setVisible(False)
    w.cancel_button = QPushButton("Cancel")
    w.cancel_button.setVisible(False)
    w.cancel_button.clicked.connect(w.cancel)
    w.statusBar().addPermanentWidget(w.progress)
    w.statusBar().addPermanentWidget(w.cancel_button)


def _action(w: MainWindow, menu, text: str, key, slot) -> QAction:
    a = QAction(text, w)
    if key is not None:
        a.setShortcut(key)
    a.triggered.connect(slot)
    menu.addAction(a)
    return a


def build_menus(w: MainWindow) -> None:
    """File, View, Regions, Batch and Help, each wired to its controller."""
    menu = w.menuBar().addMenu("&File")
    _action(w, menu, "&Open…", QKeySequence.StandardKey.Open, w.files.open_dialog)
    _action(w, menu, "Open &demo", None, w.files.open_demo)
    w.recent_menu = menu.addMenu("Open &recent")
    w.files.fill_recent()
    menu.addSeparator()
    _action(w, menu, "&Export stamp (FITS)…", QKeySequence.StandardKey.Save, w.export.stamp_dialog)
    _action(w, menu, "Export &figure (PNG/PDF/SVG)…", None, w.export.figure_dialog)
    menu.addSeparator()
    _action(w, menu, "&Quit", QKeySequence.StandardKey.Quit, w.close)
    view_menu = w.menuBar().addMenu("&View")
    _action(w, view_menu, "&Header…", None, w.files.show_header)
    view_menu.addAction(w.sources_dock.toggleViewAction())
    w.grid_action = _action(w, view_menu, "Coordinate &grid (RA/Dec)", QKeySequence("Ctrl+G"), w.files.toggle_grid)
    w.grid_action.setCheckable(True)
    view_menu.addSeparator()
    _action(w, view_menu, "Zoom to &fit", QKeySequence("Ctrl+0"), w.view.zoom_to_fit)
    _action(w, view_menu, "Zoom &1:1", QKeySequence("Ctrl+1"), lambda: w.view.zoom_actual())
    reg = w.menuBar().addMenu("&Regions")
    _action(w, reg, "&Restore selected region", QKeySequence("Ctrl+R"), w.regions.restore_selected)
    _action(w, reg, "&Delete selected region", QKeySequence.StandardKey.Delete, w.view.remove_region)
    _action(w, reg, "&Clear regions", None, w.view.clear_regions)
    reg.addSeparator()
    _action(w, reg, "&Import DS9 regions…", None, w.regions.import_dialog)
    _action(w, reg, "&Export DS9 regions…", None, w.regions.export_dialog)
    batch = w.menuBar().addMenu("&Batch")
    _action(w, batch, "&Detect sources", QKeySequence("Ctrl+D"),
            lambda: w.batch.detect_sources(w.sources_panel.nsigma.value()))
    _action(w, batch, "Restore &all sources", None, lambda: w.batch.restore_sources(list(w.sources_panel.sources)))
    _action(w, batch, "&Export batch…", None, w.batch.export_dialog)
    batch.addSeparator()
    _action(w, batch, "E&ngine (in-process, local cluster, scheduler)…", None, w.batch.engine.choose)
    help_menu = w.menuBar().addMenu("&Help")
    _action(w, help_menu, "&About galviewer and the model…", None, w.models.show_about)


def restore_preferences(w: MainWindow) -> None:
    """The display and restoration choices of the last run."""
    s = w.settings
    for key, name in _PREFS:
        box = getattr(w, name)
        value = s.value(f"prefs/{key}", None, str)
        if value and box.findText(value) >= 0:
            box.setCurrentText(value)
    for key, name in _FLAGS:
        value = s.value(f"prefs/{key}", None)
        if value is not None:
            getattr(w, name).setChecked(str(value).lower() in ("true", "1"))
    mode = s.value("prefs/mouse", None)
    if mode is not None and str(mode).isdigit() and int(mode) < w.mode_box.count():
        w.mode_box.setCurrentIndex(int(mode))
    for key, box in (("stamp", w.size_box), (MARGIN_KEY, w.margin_box)):
        value = s.value(f"prefs/{key}", None)
        if value is not None and str(value).isdigit():
            box.setValue(int(value))
    state = s.value("prefs/window_state", None)
    if state is not None:
        w.restoreState(state)


def save_preferences(w: MainWindow) -> None:
    """Keep the display and restoration choices for the next run."""
    s = w.settings
    for key, name in _PREFS:
        s.setValue(f"prefs/{key}", getattr(w, name).currentText())
    for key, name in _FLAGS:
        s.setValue(f"prefs/{key}", getattr(w, name).isChecked())
    s.setValue("prefs/mouse", w.mode_box.currentIndex())
    s.setValue("prefs/stamp", w.size_box.value())
    s.setValue(f"prefs/{MARGIN_KEY}", w.margin_box.value())
    s.setValue("prefs/window_state", w.saveState())
    s.sync()
