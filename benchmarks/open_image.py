"""Time to open and show a 4096×4096 float32 image in the viewer (issue 5: target < 2 s on this machine).

    QT_QPA_PLATFORM=offscreen python benchmarks/open_image.py [--size 4096] [--repeats 3]

Measures, in one process: ``open_image`` (memory-mapped FITS read + WCS), reading the pixels, and
``ImageView.set_data`` (zscale limits, stretch, upload to pyqtgraph) followed by one paint.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import write_table  # benchmarks/ is sys.path[0] when a script is run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/open_image.md")
    args = ap.parse_args()
    from astropy.io import fits
    from PySide6.QtWidgets import QApplication

    from galviewer.core.io.fits import open_image
    from galviewer.qt.image_view import ImageView

    app = QApplication.instance() or QApplication([])
    n = args.size
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.fits"
        data = np.random.default_rng(0).normal(100, 5, (n, n)).astype(np.float32)
        fits.PrimaryHDU(data).writeto(path)
        view = ImageView()
        view.resize(900, 900)
        view.show()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            image = open_image(path)
            t1 = time.perf_counter()
            pixels = np.asarray(image.data, dtype=np.float32)
            t2 = time.perf_counter()
            view.set_data(pixels)
            view.repaint()
            app.processEvents()
            t3 = time.perf_counter()
            rows.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0))
            image.close()
    med = [statistics.median(c) for c in zip(*rows, strict=True)]
    lines = [f"# Open and show a {n}×{n} float32 image (median of {args.repeats})", "",
             "| open_image | read pixels | zscale + stretch + display | total |", "|---|---|---|---|",
             "| " + " | ".join(f"{v:.2f} s" for v in med) + " |", "",
             "Reproduce: `QT_QPA_PLATFORM=offscreen python benchmarks/open_image.py`."]
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
