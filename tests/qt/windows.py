"""The main window the viewer tests drive: the tiny test model, preferences in the test's own folder."""

from PySide6.QtCore import QSettings

from galviewer.core.restore.engine import Restorer
from galviewer.qt.main_window import MainWindow


def new_window(qtbot, tiny_ckpt, tmp_path) -> MainWindow:
    """A shown MainWindow with the tiny checkpoint and an INI file of preferences in ``tmp_path``."""
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(restorer=Restorer.from_file(tiny_ckpt, "cpu"), settings=settings)
    qtbot.addWidget(win)
    win.show()
    return win
