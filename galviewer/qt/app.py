"""``galviewer [FILE]``: start the desktop application."""

from __future__ import annotations

import sys

__all__ = ["run_app"]


def run_app(path: str | None = None) -> int:
    """Open the main window on ``path`` (or the built-in demo) and run the event loop; returns the exit code."""
    from PySide6.QtWidgets import QApplication

    from galviewer.qt.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("galviewer")
    app.setOrganizationName("galviewer")
    win = MainWindow()
    if path:
        win.open_file(path)
    else:
        win.open_demo()
    win.show()
    return int(app.exec())
