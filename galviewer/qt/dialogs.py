"""Dialogs of the viewer that are more than a message box."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QDialog, QLabel, QLineEdit, QPlainTextEdit, QVBoxLayout, QWidget

__all__ = ["HeaderDialog"]


class HeaderDialog(QDialog):
    """A FITS header as DS9's *File ▸ Header* shows it: every card, monospaced, with a search field.

    The search keeps the cards whose text contains it (case-insensitive); the label counts them.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.resize(760, 640)
        layout = QVBoxLayout(self)
        self.search = QLineEdit()
        self.search.setPlaceholderText("search keywords, values and comments (e.g. PHOTFLAM, CRVAL, DRIZ)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._filter)
        self.count = QLabel("")
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout.addWidget(self.search)
        layout.addWidget(self.count)
        layout.addWidget(self.text, 1)
        self.cards: list[str] = []

    def set_header(self, header: Any, title: str) -> None:
        """Show ``header`` (an ``astropy.io.fits.Header``), one 80-character card a line."""
        self.setWindowTitle(title)
        self.cards = [str(card) for card in header.cards]
        self._filter(self.search.text())

    def _filter(self, query: str) -> None:
        q = query.strip().lower()
        shown = [c for c in self.cards if q in c.lower()] if q else self.cards
        self.text.setPlainText("\n".join(shown))
        self.count.setText(f"{len(shown)} of {len(self.cards)} cards" + (f" matching “{query}”" if q else ""))
