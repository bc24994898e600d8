"""The batch panel: detected sources in a table, restore the selected ones or all, export."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from galviewer.core.measure.detect import Source
from galviewer.core.restore.batch import BatchResult

__all__ = ["SourcesPanel"]

COLUMNS = ("id", "x", "y", "S/N", "class", "n LQ", "n RS", "R50 LQ (px)", "R50 RS (px)", "flux cons.", "χ²", "status")
FLAG = " ⚑"  # after a value whose Sérsic fit is flagged (its tooltip says why)


def _fmt(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}g}" if isinstance(v, float) and math.isfinite(v) else ("" if isinstance(v, float) else str(v))


class _Item(QTableWidgetItem):
    """Sorts numerically when both cells hold numbers."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        try:
            return float(self.text().removesuffix(FLAG)) < float(other.text().removesuffix(FLAG))
        except ValueError:
            return self.text() < other.text()


class SourcesPanel(QWidget):
    """Detected sources and their batch results.

    Signals
    -------
    detect_requested(float)
        Detection threshold in σ.
    restore_requested(list)
        Source ids to restore (all listed sources for "Restore all").
    export_requested()
    source_activated(int)
        A row was clicked: that source id.
    """

    detect_requested = Signal(float)
    restore_requested = Signal(list)
    export_requested = Signal()
    source_activated = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        bar = QHBoxLayout()
        self.nsigma = QDoubleSpinBox()
        self.nsigma.setRange(1.0, 100.0)
        self.nsigma.setValue(3.0)
        self.nsigma.setSingleStep(0.5)
        self.nsigma.setSuffix(" σ")
        self.nsigma.setToolTip("detection threshold above the local background (photutils, 10 connected pixels)")
        self.detect_button = QPushButton("Detect")
        self.restore_selected_button = QPushButton("Restore selected")
        self.restore_all_button = QPushButton("Restore all")
        self.export_button = QPushButton("Export…")
        self.count = QLabel("no sources")
        for w in (QLabel("threshold"), self.nsigma, self.detect_button, self.restore_selected_button,
                  self.restore_all_button, self.export_button):
            bar.addWidget(w)
        bar.addWidget(self.count, 1)
        layout.addLayout(bar)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        layout.addWidget(self.table)
        self.sources: dict[int, Source] = {}
        self.results: dict[int, BatchResult] = {}
        self.detect_button.clicked.connect(lambda: self.detect_requested.emit(self.nsigma.value()))
        self.restore_selected_button.clicked.connect(lambda: self.restore_requested.emit(self.selected_ids()))
        self.restore_all_button.clicked.connect(lambda: self.restore_requested.emit(list(self.sources)))
        self.export_button.clicked.connect(self.export_requested)
        self.table.cellClicked.connect(self._clicked)
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.restore_selected_button.setEnabled(bool(self.sources))
        self.restore_all_button.setEnabled(bool(self.sources))
        self.export_button.setEnabled(any(r.restoration is not None for r in self.results.values()))

    def set_sources(self, sources: list[Source]) -> None:
        """List freshly detected sources (forgets earlier results)."""
        self.sources = {s.id: s for s in sources}
        self.results = {}
        self._refill()
        self.table.sortItems(3, Qt.SortOrder.DescendingOrder)  # brightest (highest S/N) first
        self.count.setText(f"{len(sources)} sources")

    def set_results(self, results: list[BatchResult]) -> None:
        """Add (or replace) batch results and show them."""
        for r in results:
            self.results[r.source.id] = r
        self._refill()
        ok = sum(r.restoration is not None for r in self.results.values())
        self.count.setText(f"{len(self.sources)} sources, {ok} restored")

    def _refill(self) -> None:
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.sources))
        for i, s in enumerate(self.sources.values()):
            res = self.results.get(s.id)
            row = res.row() if res is not None else None
            cells = [str(s.id), f"{s.x:.2f}", f"{s.y:.2f}", _fmt(s.snr, 4)]
            if row is None:
                cells += ["", "", "", "", "", "", "", ""]
            else:
                m = res.measurements
                cls = "" if m is None else ("star (point-source mode)" if row["restored_as_star"] else
                                            "point" if row["point_like"] else "extended")
                fit = {k: _fmt(row[k]) + (FLAG if row[f"sersic_flag_{k[-2:]}"] and _fmt(row[k]) else "")
                       for k in ("n_LQ", "n_RS", "r50_LQ", "r50_RS")}
                cells += [cls, fit["n_LQ"], fit["n_RS"], fit["r50_LQ"], fit["r50_RS"],
                          _fmt(row["flux_conservation"]), _fmt(row["residual_chi2"]), row["status"]]
            failed = row is not None and not row["quality_ok"]
            for j, text in enumerate(cells):
                item = _Item(text)
                item.setData(Qt.ItemDataRole.UserRole, s.id)
                if failed and COLUMNS[j] == "status":  # a restoration that does not explain its data, or an error
                    caution = res.verdict is not None and res.verdict.level == "caution"
                    item.setForeground(QBrush(QColor("#b9770e" if caution else "#c0392b")))
                    item.setToolTip(("caution: outside the model's training range, the data explained: "
                                     if caution else "quality checks failed (docs: Quality verdict): ") + text)
                if cells[4] == "point":
                    item.setToolTip("unresolved source: restored stars stay broader than the truth (README, Limits)")
                if text.endswith(FLAG):  # a flagged Sérsic fit: amber, never shown as a plain number
                    item.setForeground(QBrush(QColor("#b9770e")))
                    which = COLUMNS[j].split()[1]
                    item.setToolTip(f"{which} Sérsic fit flagged: {row['sersic_flags_' + which]}")
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
        self._update_buttons()

    def selected_ids(self) -> list[int]:
        """Ids of the selected rows (table order)."""
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [int(self.table.item(r, 0).data(Qt.ItemDataRole.UserRole)) for r in rows]

    def _clicked(self, row: int, col: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.source_activated.emit(int(item.data(Qt.ItemDataRole.UserRole)))
