"""``galviewer [FILE]``: start the desktop application."""

from __future__ import annotations

import sys

__all__ = ["run_app"]


def run_app(path: str | None = None) -> int:
    """Open the main window on ``path`` (or the built-in demo) and run the event loop; returns the exit code."""
    import asyncio

    from PySide6.QtWidgets import QApplication

    from galviewer.qt.engine import event_loop
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
    # The Qt event loop runs as qasync's asyncio loop, so that the batch's Dask client (asyncio) lives on it too.
    loop = event_loop()
    quit_requested = asyncio.Event()
    app.aboutToQuit.connect(quit_requested.set)
    with loop:
        loop.run_until_complete(quit_requested.wait())
        if win.batch.engine.closing is not None:
            loop.run_until_complete(win.batch.engine.closing)
    return 0
