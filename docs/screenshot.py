"""Take the README screenshot: the demo field, one galaxy clicked and restored with the default model.

    QT_QPA_PLATFORM=offscreen python docs/screenshot.py [--model PATH] [--out docs/screenshot.png]

(or under Xvfb with a real window manager: ``xvfb-run python docs/screenshot.py``).
"""

from __future__ import annotations

import argparse
import sys

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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default="docs/screenshot.png")
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    from galviewer.core.restore import Restorer
    from galviewer.qt.main_window import MainWindow

    app = QApplication(sys.argv[:1])  # noqa: F841  (must exist while the window lives)
    restorer = Restorer.from_file(args.model) if args.model else Restorer.from_pretrained()
    win = MainWindow(restorer=restorer)
    win.resize(1600, 900)
    win.show()
    from PySide6.QtCore import QEventLoop, QTimer

    def wait_for(channel: str) -> None:
        # An event loop, not a processEvents() spin: on Python 3.11 millions of calls to a PySide6
        # function returning None underflow None's reference count and abort the interpreter.
        loop = QEventLoop()
        win.jobs.result.connect(lambda ch, v: loop.quit() if ch == channel else None)
        win.jobs.error.connect(lambda ch, exc: (print(exc), loop.quit()))
        loop.exec()

    win.open_demo()
    wait_for("load")
    x, y = _pick_galaxy(win.view.data)
    win.restore_at(x, y)
    wait_for("restore")
    settle = QEventLoop()
    QTimer.singleShot(500, settle.quit)
    settle.exec()
    win.grab().save(args.out)
    print(f"{args.out}: galaxy at x={x:.1f} y={y:.1f}")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
