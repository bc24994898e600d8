"""The Qt binding itself: PySide6 6.12.0 lost a reference to None on every void call and aborted the app."""

import gc
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel


def test_void_qt_calls_and_slots_keep_none_alive(qtbot):
    label = QLabel("x")
    qtbot.addWidget(label)
    timer = QTimer()
    timer.setSingleShot(True)
    timer.setInterval(0)
    timer.timeout.connect(lambda: None)
    gc.collect()
    before = sys.getrefcount(None)
    for _ in range(300):
        label.update()
        timer.start()
        qtbot.wait(0)
    gc.collect()
    # a broken binding loses 300-600 references here (and aborts after a few thousand)
    assert sys.getrefcount(None) - before > -50
