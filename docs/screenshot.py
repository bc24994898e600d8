"""Take the README screenshots: the demo field, or a real HST file, one galaxy clicked and restored.

    xvfb-run -s "-screen 0 1920x1200x24" python docs/screenshot.py [--model PATH] [--out docs/screenshot.png]
    xvfb-run -s "-screen 0 1920x1200x24" python docs/screenshot.py --file tests/data/realdata/wfc3ir_cd_neighbour.fits \
        --xy X Y --grid --out docs/screenshot_real.png

(a real X11 window under Xvfb; ``QT_QPA_PLATFORM=offscreen`` also works).  With the demo it detects sources,
restores ten galaxies in the batch table and clicks one galaxy; with ``--file`` it opens that file (``--grid``:
with the RA/Dec grid) and clicks at ``--xy``.  Preferences come from a fresh settings file, not the user's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _pick_galaxy(data: np.ndarray) -> tuple[float, float]:
    """A large, bright, unsaturated extended source away from the edges."""
    from photutils.segmentation import SourceCatalog, detect_sources

    from galviewer.core.measure.background import background

    b = background(data)
    seg = detect_sources(data - b.level, 3 * b.rms, n_pixels=30)
    cat = SourceCatalog(data - b.level, seg)
    ok = (cat.max_value < 2e4) & (cat.x_centroid > 60) & (cat.x_centroid < data.shape[1] - 60) \
        & (cat.y_centroid > 60) & (cat.y_centroid < data.shape[0] - 60)
    i = int(np.argmax(np.where(ok, cat.area.value, -1)))
    return float(cat.x_centroid[i]), float(cat.y_centroid[i])


def _click_and_grab(win, x: float, y: float, out: str) -> None:
    """Restore at (x, y), wait until the measurements are in and the panels have settled, save, close."""
    from PySide6.QtCore import QEventLoop, QTimer

    win.jobs.run_and_wait("compare", lambda: win.clicks.restore_at(x, y))
    settle = QEventLoop()
    QTimer.singleShot(500, settle.quit)
    settle.exec()
    win.grab().save(out)
    win.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default="docs/screenshot.png")
    ap.add_argument("--batch", type=int, default=10, help="galaxies restored in the batch table")
    ap.add_argument("--file", help="a FITS file instead of the demo field")
    ap.add_argument("--xy", type=float, nargs=2, help="where to click (with --file)")
    ap.add_argument("--grid", action="store_true", help="show the RA/Dec grid")
    ap.add_argument("--size", type=int, nargs=2, default=(1600, 1000), help="window size")
    ap.add_argument("--point-source", action="store_true", help="tick 'point source' before the click (with --file)")
    ap.add_argument("--margin", type=int, default=None, help="context margin in px before the click (with --file; "
                    "default: the app's)")
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    from galviewer.core.restore.engine import Restorer
    from galviewer.qt.main_window import MainWindow

    app = QApplication(sys.argv[:1])  # noqa: F841  (must exist while the window lives)
    import tempfile

    from PySide6.QtCore import QSettings

    restorer = Restorer.from_file(args.model) if args.model else Restorer.from_pretrained()
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(restorer=restorer, settings=settings)
    win.resize(*args.size)
    win.show()
    if args.file:
        win.jobs.run_and_wait("load", lambda: win.open_file(args.file))
        if args.grid:
            win.grid_action.setChecked(True)
            win.files.toggle_grid(True)
        if args.point_source:
            win.star_box.setChecked(True)
        if args.margin is not None:
            win.margin_box.setValue(args.margin)
        x, y = args.xy if args.xy else (win.view.data.shape[1] / 2, win.view.data.shape[0] / 2)
        _click_and_grab(win, x, y, args.out)
        print(f"{args.out}: {args.file} clicked at x={x:.1f} y={y:.1f}")
        return 0
    win.jobs.run_and_wait("load", win.open_demo)
    win.jobs.run_and_wait("detect", lambda: win.batch.detect_sources(5.0))
    galaxies = [s.id for s in win.sources_panel.sources.values() if s.a > 2.0][: args.batch]
    win.tta_box.setChecked(False)
    win.jobs.run_and_wait("batch", lambda: win.batch.restore_sources(galaxies))
    win.tta_box.setChecked(True)
    from PySide6.QtCore import Qt

    from galviewer.qt.sources import COLUMNS

    win.sources_panel.table.sortItems(COLUMNS.index("flux cons."), Qt.SortOrder.DescendingOrder)  # restored first
    x, y = _pick_galaxy(win.view.data)
    _click_and_grab(win, x, y, args.out)
    print(f"{args.out}: galaxy at x={x:.1f} y={y:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
