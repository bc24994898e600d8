"""Batch ▸ Restore all on a 2-worker LocalCluster, driven from the Qt loop through qasync: the same rows as the
in-process batch, progress and Cancel in the window, a bad engine refused by name."""

import math

import numpy as np
import pytest
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from galviewer.core.restore.batch import restore_sources
from galviewer.errors import ParameterError
from galviewer.qt.engine import ENGINE_KEY, check_engine, event_loop
from tests.helpers import SOURCES, write_flt
from tests.qt.windows import new_window

pytest.importorskip("qasync")
pytestmark = pytest.mark.slow


@pytest.fixture
def window(qtbot, tiny_ckpt, tmp_path):
    win = new_window(qtbot, tiny_ckpt, tmp_path)
    engine = win.batch.engine  # a Python object: pytest-qt may have deleted the window by teardown
    yield win
    event_loop().run_until_complete(engine.close())
    if shiboken6.isValid(win):
        win.close()
    QApplication.processEvents()


def _detect(qtbot, win, path):
    with qtbot.waitSignal(win.jobs.result, timeout=20000, check_params_cb=lambda ch, v: ch == "load"):
        win.open_file(path)
    with qtbot.waitSignal(win.jobs.result, timeout=30000, check_params_cb=lambda ch, v: ch == "detect"):
        qtbot.mouseClick(win.sources_panel.detect_button, Qt.MouseButton.LeftButton)


def test_restore_all_on_a_local_cluster_equals_the_in_process_batch(qtbot, window, tmp_path):
    import torch

    _detect(qtbot, window, write_flt(tmp_path / "j8pu0ypaq_flt.fits"))
    panel = window.sources_panel
    assert panel.table.rowCount() == len(SOURCES)
    window.tta_box.setChecked(False)
    window.batch.engine.set("local")
    assert window.settings.value(ENGINE_KEY) == "local"
    loop = event_loop()
    qtbot.mouseClick(panel.restore_all_button, Qt.MouseButton.LeftButton)
    task = window.batch.engine.task
    assert task is not None and window.progress.isVisible() and window.cancel_button.isVisible()
    results = loop.run_until_complete(task)
    assert not window.progress.isVisible() and not window.cancel_button.isVisible()
    assert window.progress.value() == window.progress.maximum() == 1  # 3 sources: one chunk of up to 4
    assert "restored 3 of 3 sources" in window.statusBar().currentMessage()
    # the rows the panel shows are the cluster's, equal to the in-process batch's with the same settings
    pipe = window.clicks.pipeline()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker
    try:
        local = restore_sources(pipe, window.image, [r.source for r in results])
    finally:
        torch.set_num_threads(threads)
    cols = [panel.table.horizontalHeaderItem(j).text() for j in range(panel.table.columnCount())]
    for i in range(panel.table.rowCount()):
        sid = panel.table.item(i, 0).data(Qt.ItemDataRole.UserRole)
        shown = panel.results[sid]
        mine = next(r for r in local if r.source.id == sid)
        assert np.array_equal(shown.restoration.data, mine.restoration.data)
        assert shown.row()["kron_flux_RS"] == mine.row()["kron_flux_RS"]
        assert panel.table.item(i, cols.index("status")).text() == mine.verdict.summary()
        assert math.isfinite(shown.measurements.flux_conservation)
    # a row opens its restoration in the panels, as after an in-process batch
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton,
                     pos=panel.table.visualItemRect(panel.table.item(0, 0)).center())
    assert window.panels.views["RS"].data.shape == (64, 64)
    # Cancel stops the batch: nothing is replaced, the window says so
    before = dict(panel.results)
    qtbot.mouseClick(panel.restore_all_button, Qt.MouseButton.LeftButton)
    second = window.batch.engine.task
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    with pytest.raises(BaseException):  # noqa: B017 - asyncio.CancelledError
        loop.run_until_complete(second)
    assert second.cancelled() and window.statusBar().currentMessage() == "batch cancelled"
    assert panel.results == before and not window.progress.isVisible()


def test_the_engine_preference_refuses_what_is_not_an_engine(window):
    with pytest.raises(ParameterError, match="batch engine"):
        window.batch.engine.set("my laptop")
    assert check_engine(" tcp://10.0.0.5:8786 ") == "tcp://10.0.0.5:8786"
    window.settings.setValue(ENGINE_KEY, "garbage")
    assert window.batch.engine.name == "in-process"  # a damaged preference falls back to the default


def test_an_unreachable_scheduler_is_reported_and_the_window_survives(qtbot, window, tmp_path):
    _detect(qtbot, window, write_flt(tmp_path / "j8pu0ypaq_flt.fits"))
    window.tta_box.setChecked(False)
    window.batch.engine.set("tcp://127.0.0.1:9")  # nothing listens on the discard port
    qtbot.mouseClick(window.sources_panel.restore_all_button, Qt.MouseButton.LeftButton)
    task = window.batch.engine.task
    with pytest.raises(ParameterError, match="cannot reach"):
        event_loop().run_until_complete(task)
    assert "cannot reach" in window.last_error and not window.progress.isVisible()
