"""The Python API before and after the one pipeline (issue 21), on the real HST regression set.

    python benchmarks/python_path.py

*Before*: the plain calls a user made — ``cutout(image, x, y, 64)`` then ``Restorer.restore(stamp,
uncertainty=False)`` with 0.5.0's defaults (no point-source decision) — which restored a stamp differently
from a click (no context margin, one pass, no cosmic-ray cleaning).  *After*: ``galviewer.restore_at(image, x,
y)``, the documented call, which runs the pipeline of a click.  Both are judged by the same verdict
(:func:`galviewer.core.restore.verdict.judge`); the position is where a user would click (``realdata.target``).
Writes ``benchmarks/results/python_path.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _report import write_table  # benchmarks/ is sys.path[0] when a script is run
from realdata import SIZES, cases, target


def main() -> None:
    """Restore every real cut-out both ways and tabulate the verdicts."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "python_path.md"))
    args = ap.parse_args()
    from galviewer import cutout, open_image
    from galviewer.core.restore.pipeline import Pipeline
    from galviewer.core.restore.verdict import judge

    pipe = Pipeline.default(device="cpu")
    lines = ["Model `" + pipe.restorer.name + "`; limits: χ² ≤ 3, |flux − 1| ≤ 0.05, RS/LQ rms ≤ 1, border ≤ 1.5, "
             "0 new sources.", "",
             "| case | path | χ² | flux cons. | RS/LQ rms | border/interior | new sources | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for path in cases():
        size = SIZES.get(path.stem, 64)
        with open_image(path) as im:
            x, y = target(im)
            before = pipe.restorer.restore(cutout(im, x, y, size), uncertainty=False, point_source=False)  # 0.5.0
            judge(before)
            after = pipe.with_config(size=size).run(im, x, y)  # what galviewer.restore_at(im, x, y, size) runs
        for label, r in (("before: cutout + Restorer.restore", before), ("after: galviewer.restore_at", after)):
            v = r.meta["verdict"]
            c = v.checks
            lines.append(f"| {path.stem} | {label} | {c['chi2'].value:.3g} | {c['flux'].value:.3f} | "
                         f"{c['rms'].value:.3g} | {c['border'].value:.3g} | {int(c['new_sources'].value)} | "
                         f"{'ok' if v.ok else 'FAIL: ' + ', '.join(k for k, x in c.items() if not x.ok)} |")
    write_table(args.out, lines)
    print(args.out)


if __name__ == "__main__":
    main()
