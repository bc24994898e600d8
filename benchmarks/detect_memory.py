"""Peak memory of ``detect`` (photutils detection, as ``galviewer detect`` runs it) against the image's size.

    python benchmarks/detect_memory.py [--sides 2048 4096 8192] [--deblend]

For each side N, a synthetic N×N float32 field (unit-rms noise on a sky of 10, about 2,000 Gaussian sources
per 8192², seeded) is written to a FITS file; a fresh subprocess opens it with ``open_image`` (memory-mapped),
touches every pixel once (so the file's pages are resident before the measurement, as the image itself),
then runs ``detect``.  The table gives the growth of the peak resident memory (``ru_maxrss``) during
``detect`` in MB and as a multiple of the float32 image, the sources found and kept, and the time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _report import write_table  # benchmarks/ is sys.path[0] when a script is run


def make_field(path: Path, side: int, seed: int = 0) -> None:
    """Write the seeded synthetic field of side ``side`` to ``path``."""
    import numpy as np
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    img = rng.standard_normal((side, side), dtype=np.float32)
    img += np.float32(10.0)
    yy, xx = np.mgrid[-10:11, -10:11]
    for _ in range(int(2000 * (side / 8192) ** 2)):
        x, y = rng.integers(12, side - 12, 2)
        s, f = rng.uniform(1.0, 3.0), rng.uniform(30.0, 3000.0)
        img[y - 10: y + 11, x - 10: x + 11] += (f * np.exp(-(xx**2 + yy**2) / (2 * s * s)) / (2 * np.pi * s * s)
                                                ).astype(np.float32)
    fits.PrimaryHDU(img).writeto(path)


def _child(path: str, deblend: bool) -> dict:
    import resource
    import time

    import numpy as np

    from galviewer.core.io.fits import open_image
    from galviewer.core.measure.detect import detect

    with open_image(path) as image:
        float(np.sum(image.data, dtype=np.float64))  # the image's pages are resident from here on
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        found = detect(image, deblend=deblend)
        seconds = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"growth_mb": (after - before) / 1024, "image_mb": image.data.nbytes / 2**20,
                "kept": len(found), "found": found.found, "seconds": seconds}


def main() -> None:
    """Run the measurements and write ``benchmarks/results/detect_memory.md``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sides", type=int, nargs="+", default=[2048, 4096, 8192])
    ap.add_argument("--deblend", action="store_true")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], args.deblend)))
        return
    lines = ["| image | deblend | peak growth (MB) | × image | found | kept | time (s) |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sides:
            path = Path(tmp) / f"field{side}.fits"
            make_field(path, side)
            cmd = [sys.executable, __file__, "--child", str(path), "x"] + (["--deblend"] if args.deblend else [])
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            lines.append(f"| {side}² float32 ({r['image_mb']:.0f} MB) | {'yes' if args.deblend else 'no'} | "
                         f"{r['growth_mb']:.0f} | {r['growth_mb'] / r['image_mb']:.2f} | {r['found']} | {r['kept']} | "
                         f"{r['seconds']:.1f} |")
            path.unlink()
    write_table(Path(__file__).parent / "results" / f"detect_memory{'_deblend' if args.deblend else ''}.md", lines)


if __name__ == "__main__":
    main()
