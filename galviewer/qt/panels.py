"""LQ | RS | residual | uncertainty panels with linked zoom and one shared stretch, and the measurement table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QBrush, QColor, QGuiApplication
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from galviewer.core.measure.background import background
from galviewer.core.measure.compare import Measurements
from galviewer.core.restore.calibration import sigma_title
from galviewer.core.restore.result import Restoration, steps_text
from galviewer.qt.image_view import ImageView, compute_limits

__all__ = ["ComparisonPanels", "MeasurementPanel"]

PANELS = ("LQ", "RS", "residual", "uncertainty")
RESIDUAL_CMAP = "CET-D1"  # pyqtgraph's colorcet diverging blue–white–red
MAX_CELL = 36  # characters of a table cell on screen


class ComparisonPanels(QWidget):
    """Four linked views of one restoration.

    LQ and RS share display limits (from LQ, so brightness is comparable); the residual
    LQ − PSF⊗RS is shown in units of the stamp's noise (ERR, else the background rms), linear from −5σ to +5σ on
    a diverging colour map that the colour-map choice leaves alone, with a circle on each residual structure the
    verdict names (:func:`~galviewer.core.restore.verdict.residual_structure`); the uncertainty map
    from 0 to its 99.5th percentile.  "Blink" alternates the RS panel between RS and LQ.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.grid = QGridLayout()
        self.grid.setSpacing(2)
        titles = {"LQ": "LQ (input)", "RS": "RS (restored)", "residual": "residual / σ (LQ − PSF⊗RS)",
                  "uncertainty": "uncertainty (8-way spread)"}
        units = {"residual": "σ"}
        # Axes in stamp pixels (0-based) and a colour bar in the image's units beside every panel.
        self.views = {name: ImageView(title=titles[name], axes=True, colorbar=True, unit=units.get(name, ""))
                      for name in PANELS}
        # The residual in units of the noise, linear and symmetric on a diverging map (blue −, red +), whatever
        # colour map the other panels use.
        self.views["residual"].set_display(stretch_kind="linear")
        self.views["residual"].set_colormap(RESIDUAL_CMAP)
        for v in self.views.values():
            v.setMinimumSize(170, 170)
        first = self.views["LQ"].vb
        for name in PANELS[1:]:
            self.views[name].vb.setXLink(first)
            self.views[name].vb.setYLink(first)
        self.columns = 0
        self._arrange(2)
        # One persistent timer (QTimer.singleShot with a Python callable drops a reference to None on every call
        # in PySide6 6.12: hundreds of resizes crashed the interpreter with "deallocating None").
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(0)
        self._fit_timer.timeout.connect(self.fit)
        layout.addLayout(self.grid, 1)
        bar = QHBoxLayout()
        self.info = QLabel("Click a source to restore it.")
        # Wrapped, never wider than the panels: a long verdict used to set the window's minimum width.
        self.info.setWordWrap(True)
        self.info.setMinimumWidth(100)
        self.blink_button = QPushButton("Blink LQ/RS")
        self.blink_button.setCheckable(True)
        self.blink_button.toggled.connect(self._blink)
        bar.addWidget(self.info, 1)
        bar.addWidget(self.blink_button)
        layout.addLayout(bar)
        self._timer = QTimer(self)
        self._timer.setInterval(600)
        self._timer.timeout.connect(self._blink_step)
        self._blink_state = False
        self.restoration: Restoration | None = None
        self.outside: np.ndarray | None = None

    def _arrange(self, columns: int) -> None:
        """Lay the four panels out in ``columns`` columns (4: one row; 2: a 2×2 grid)."""
        if columns == self.columns:
            return
        for v in self.views.values():
            self.grid.removeWidget(v)
        for i, name in enumerate(PANELS):
            self.grid.addWidget(self.views[name], i // columns, i % columns)
        for c in range(4):
            self.grid.setColumnStretch(c, 1 if c < columns else 0)
        for r in range(4):
            self.grid.setRowStretch(r, 1 if r < 4 // columns else 0)
        self.columns = columns

    def resizeEvent(self, ev) -> None:
        """Keep the stamps as large and as square as the space allows: one row of four when the area is wide
        (the panels are then square), a 2×2 grid otherwise."""
        w, h = ev.size().width(), max(ev.size().height() - 30, 1)  # the header line below
        side4 = min(w / 4 - 110, h - 45)  # ~110 px of axis and colour bar beside each, 45 of title and axis
        side2 = min(w / 2 - 110, h / 2 - 45)
        self._arrange(4 if side4 >= side2 else 2)
        super().resizeEvent(ev)
        if self.restoration is not None:
            self._fit_timer.start()

    def fit(self) -> None:
        """Show the whole stamp in every (linked) panel."""
        if self.restoration is not None:
            self.views["LQ"].vb.autoRange(padding=0)

    def set_unit(self, unit: str) -> None:
        """The units of LQ, RS and the uncertainty (BUNIT) on their colour bars; the residual stays in σ."""
        for name in ("LQ", "RS", "uncertainty"):
            self.views[name].colorbar.set_unit(unit)

    def clear(self) -> None:
        """Forget the restoration on show (a new file was opened): empty panels, header back to its prompt."""
        self.blink_button.setChecked(False)
        self.restoration, self.outside = None, None
        for v in self.views.values():
            v.set_data(None)
            v.set_mask(None)  # the previous stamp's DQ/cosmic-ray overlay goes with it
        self.info.setText("Click a source to restore it.")
        self.info.setStyleSheet("")
        self.info.setToolTip("")
        self.views["residual"].set_markers(None)

    def show_restoration(self, r: Restoration, outside: np.ndarray | None = None) -> None:
        """Fill the panels with ``r``; pixels where ``outside`` is True (e.g. beyond an ellipse) are blanked."""
        self.restoration = r
        self.outside = outside

        def cut(a: np.ndarray) -> np.ndarray:
            return a if outside is None else np.where(outside, np.nan, a)

        levels = compute_limits(cut(r.lq), "99.5%")
        noise = background(r.lq, mask=outside).rms or float(np.nanstd(r.residual)) or 1.0
        self.views["LQ"].set_data(cut(r.lq), levels)
        self._fit_timer.start()  # once the layout has settled
        self.views["RS"].set_data(cut(r.data), levels)
        sigma = r.stamp.err if r.stamp is not None and r.stamp.err is not None else noise
        self.views["residual"].set_data(cut(r.residual / sigma), (-5.0, 5.0))
        self.views["residual"].set_markers(None)  # the verdict's structure circles follow with the verdict
        self.views["uncertainty"].title_label.setText(sigma_title(r.meta))  # never a stale name
        if r.sigma is not None:
            hi = float(np.nanpercentile(cut(r.sigma), 99.5)) or 1.0
            self.views["uncertainty"].set_data(cut(r.sigma), (0.0, hi))
        else:
            self.views["uncertainty"].set_data(np.zeros_like(r.data), (0.0, 1.0))
        m = r.meta
        steps = steps_text(m)
        fused = f" · {steps}" if steps else ""
        self.info.setText(f"model {m.get('model')} · {m.get('seconds', 0) * 1e3:.0f} ms on {m.get('device')} · "
                          f"RS = {r.scale:.4g}·out {'+' if r.offset >= 0 else '−'} {abs(r.offset):.4g} "
                          f"({m.get('rescale')})"
                          + ("" if r.sigma is not None else " · no uncertainty (TTA off)") + fused)
        self.info.setStyleSheet("")

    def show_verdict(self, verdict: Any) -> None:
        """Append the quality verdict to the header: green when every check passes, amber when only the training
        range is left (a caution), red naming what fails."""
        text = self.info.text().split(" · quality")[0]
        found = getattr(verdict, "structure", None)
        # circles on the residual where the structure check found RS not explaining the data
        self.views["residual"].set_markers(np.array([(x, y) for x, y, _, _ in found.regions])
                                           if found is not None and found.regions else None)
        if verdict is None:
            self.info.setText(text)
            self.info.setStyleSheet("")
            self.info.setToolTip("")
            return
        self.info.setToolTip("\n".join(f"{'ok  ' if c.ok else 'FAIL'}  {c.text}" for c in verdict.checks.values()))
        if verdict.ok:
            self.info.setText(f"{text} · quality ok ({', '.join(c.text for c in verdict.checks.values())})")
            self.info.setStyleSheet("QLabel { color: #1e8449; }")
        elif verdict.level == "caution":  # explains its data; the input lies outside what the model was trained on
            self.info.setText(f"{text} · quality: caution, {'; '.join(verdict.failures)} (the data are explained)")
            self.info.setStyleSheet("QLabel { color: #b9770e; font-weight: bold; }")
        else:
            self.info.setText(f"{text} · quality FAILS: {'; '.join(verdict.failures)}")
            self.info.setStyleSheet("QLabel { color: #c0392b; font-weight: bold; }")

    def set_colormap(self, name: str) -> None:
        """One colour map for every panel but the residual, which stays diverging."""
        for key, v in self.views.items():
            if key != "residual":
                v.set_colormap(name)

    def _blink(self, on: bool) -> None:
        if on:
            self._timer.start()
        else:
            self._timer.stop()
            if self.restoration is not None:
                self.views["RS"].set_data(self._masked(self.restoration.data), self.views["LQ"].levels,
                                          autorange=False)

    def _masked(self, a: np.ndarray) -> np.ndarray:
        return a if self.outside is None else np.where(self.outside, np.nan, a)

    def _blink_step(self) -> None:
        if self.restoration is None:
            return
        self._blink_state = not self._blink_state
        data = self.restoration.lq if self._blink_state else self.restoration.data
        self.views["RS"].set_data(self._masked(data), self.views["LQ"].levels, autorange=False)


class MeasurementPanel(QWidget):
    """The ``compare()`` table for LQ and RS, a radial-profile plot, and Copy."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["quantity", "unit", "LQ", "RS"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        # compact rows (the text's height and a little): ~30 rows of fits, flags, fluxes and magnitudes
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        # a short title (the long one was cut at the panel's width); what is plotted is said on the axis
        self.profile = pg.PlotWidget(title="radial profile")
        self.profile.setLogMode(False, True)
        self.profile.addLegend(offset=(-10, 10))  # top right, clear of the profiles that fall from the top left
        self.profile.setLabel("bottom", "radius", units="px")
        self.profile.setLabel("left", "mean − background")
        self.profile.setMinimumHeight(160)
        self.copy_button = QPushButton("Copy table")
        self.copy_button.clicked.connect(self.copy)
        row = QHBoxLayout()
        row.addWidget(self.table, 2)
        row.addWidget(self.profile, 1)
        layout.addLayout(row)
        layout.addWidget(self.copy_button)
        self.measurements: Measurements | None = None
        self.text = ""

    def show_rows(self, names: list[str], rows: list[tuple[str, str, list[str]]]) -> None:
        """Fill the table with ``(quantity, unit, cells)`` rows for the images ``names``; clears the plot."""
        self.measurements = None
        self._fill(names, rows)
        self.profile.clear()

    def _fill(self, names: list[str], rows: list[tuple[str, str, list[str]]]) -> None:
        self.table.setColumnCount(2 + len(names))
        self.table.setHorizontalHeaderLabels(["quantity", "unit", *names])
        # labels sized to their text, the value columns share what is left: RS (and GT) stay in view
        header = self.table.horizontalHeader()
        for j in range(2 + len(names)):
            header.setSectionResizeMode(j, QHeaderView.ResizeMode.ResizeToContents if j < 2
                                        else QHeaderView.ResizeMode.Stretch)
        self.table.setRowCount(len(rows))
        for i, (q, unit, cells) in enumerate(rows):
            for j, text in enumerate([q, unit, *cells]):
                # a long cell (a flagged fit's reason) would widen its column and push RS out of view:
                # it is shortened on screen and kept whole in the tooltip and in Copy
                shown = text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
                item = QTableWidgetItem(shown)
                if shown != text:
                    item.setToolTip(text)
                if text.startswith("FLAGGED"):  # a failed or bounded Sérsic fit is never shown as ok
                    item.setForeground(QBrush(QColor("#b9770e")))
                    item.setToolTip(text)
                self.table.setItem(i, j, item)
        lines = ["\t".join(["quantity", "unit", *names])]
        lines += ["\t".join([q, unit, *cells]) for q, unit, cells in rows]
        self.text = "\n".join(lines)

    def show_measurements(self, m: Measurements) -> None:
        """Fill the table and the profile plot."""
        self._fill(m.names, m.rows())
        self.measurements = m
        self.text = m.as_text()
        self.profile.clear()
        if m.phot.ok:
            colours = {"LQ": "#e4572e", "RS": "#4c9be8", "GT": "#76b041"}
            for name, p in m.phot.images.items():
                good = p.profile > 0
                self.profile.plot(p.radii[good], p.profile[good], pen=pg.mkPen(colours.get(name, "w"), width=2),
                                  symbol="o", symbolSize=4, name=name)

    def clear(self) -> None:
        """Empty the table and the profile plot."""
        self.measurements, self.text = None, ""
        self.table.setRowCount(0)
        self.profile.clear()

    def copy(self) -> None:
        """Put the table on the clipboard as plain text."""
        if self.text:
            QGuiApplication.clipboard().setText(self.text)
