import math

import numpy as np
import pytest
from astropy.io import fits
from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from galviewer.core.restore import Restorer
from galviewer.errors import OutputExistsError
from galviewer.qt.main_window import MainWindow
from tests.helpers import SOURCES, write_flt


@pytest.fixture
def window(qtbot, tiny_ckpt, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(restorer=Restorer.from_file(tiny_ckpt, "cpu"), settings=settings)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
    QApplication.processEvents()
    leaked = [w for w in QApplication.topLevelWidgets() if w.isVisible() and w is not win]
    for w in leaked:
        w.close()
    assert not leaked, f"windows left open: {leaked}"


def _open(qtbot, win, path, ext=None):
    with qtbot.waitSignal(win.jobs.result, timeout=20000, check_params_cb=lambda ch, v: ch == "load"):
        win.open_file(path, ext)


def _click(qtbot, win, x, y):
    vb = win.view.vb
    scene = vb.mapViewToScene(QPointF(x, y))
    pos = win.view.mapFromScene(scene)
    with qtbot.waitSignal(win.jobs.result, timeout=60000, check_params_cb=lambda ch, v: ch == "restore"):
        qtbot.mouseClick(win.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_click_a_source_fills_the_panels_and_the_table(qtbot, window, tmp_path):
    flt = write_flt(tmp_path / "j8pu0ypaq_flt.fits")
    _open(qtbot, window, flt)
    assert [window.chip.itemText(i) for i in range(window.chip.count())] == ["SCI,1", "SCI,2"]
    assert window.view.data.shape == (200, 300)
    x, y, _ = SOURCES[0]
    _click(qtbot, window, x + 0.7, y - 0.4)
    res = window.result
    assert res is not None and abs(res.stamp.center[0] - x) < 1.0 and abs(res.stamp.center[1] - y) < 1.0
    for name in ("LQ", "RS", "residual", "uncertainty"):
        assert window.panels.views[name].data.shape == (64, 64)
    assert np.allclose(window.panels.views["residual"].data, res.restoration.residual)
    table = window.table.table
    labels = [table.item(i, 0).text() for i in range(table.rowCount())]
    assert "Sérsic n" in labels and "Kron flux" in labels
    n_lq = table.item(labels.index("Sérsic n"), 2).text()
    assert math.isfinite(float(n_lq.split("±")[0]))
    assert math.isfinite(res.measurements.flux_conservation)
    # export round trip; never overwrites without being asked
    out = window.export_stamp(tmp_path / "stamp.fits")
    with fits.open(out) as hdul:
        assert hdul["RS"].data.shape == (64, 64) and hdul[0].header["SRCFILE"] == flt.name
    with pytest.raises(OutputExistsError):
        window.export_stamp(tmp_path / "stamp.fits")
    png = window.export_png(tmp_path / "panels.png")
    assert png.stat().st_size > 2000


def test_a_new_click_supersedes_the_running_one(qtbot, window, tmp_path):
    flt = write_flt(tmp_path / "j8pu0ypaq_flt.fits")
    _open(qtbot, window, flt)
    (x1, y1, _), (x2, y2, _) = SOURCES[0], SOURCES[2]
    window.restore_at(x1, y1)
    _click(qtbot, window, x2, y2)
    window.jobs.wait()
    qtbot.wait(100)
    assert abs(window.result.stamp.center[0] - x2) < 1.5  # the latest click's answer is what is shown


def test_load_error_shows_a_dialog_and_the_app_stays_usable(qtbot, window, tmp_path):
    bad = tmp_path / "broken_flt.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    with qtbot.waitSignal(window.jobs.error, timeout=20000):
        window.open_file(bad)
    assert "broken_flt.fits" in window.last_error
    dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert dialogs and "broken_flt.fits" in dialogs[0].text()
    for d in dialogs:
        d.close()
    _open(qtbot, window, write_flt(tmp_path / "ok_flt.fits"))
    assert window.view.data is not None


def test_measure_key_fills_the_table_with_lq_only(qtbot, window, tmp_path):
    _open(qtbot, window, write_flt(tmp_path / "j8pu0ypaq_flt.fits"))
    x, y, _ = SOURCES[0]
    with qtbot.waitSignal(window.jobs.result, timeout=30000, check_params_cb=lambda ch, v: ch == "measure"):
        window.measure_at(x, y)
    table = window.table.table
    assert table.columnCount() == 3  # quantity, unit, LQ
    labels = [table.item(i, 0).text() for i in range(table.rowCount())]
    kron = table.item(labels.index("Kron flux"), 2).text()
    assert float(kron.split("±")[0]) > 0
    assert "Kron flux" in window.statusBar().currentMessage()
