"""Restorations of the real HST regression set (``tests/data/realdata/``) judged without ground truth.

    python benchmarks/realdata.py [--model NAME_OR_PATH] [--no-uncertainty]

For every cut-out (a bright WFC3/IR star with spikes, a STIS star, a galaxy on the cD's halo, a dwarf with
neighbours, a compact group, a spiral, faint galaxies) the stamp on the detected source nearest to the
cut-out's centre — where a user would click — (64 px, the spiral 128)
is restored by the model alone, then with the large-scale anchoring (the default, ``--anchor``), then with the
anchoring and the data-consistency step (``--consistency``) — the stars also in point-source mode
(``--point-source``) — and judged by
:func:`galviewer.core.restore.verdict.assess`: residual χ², flux conservation in the Kron ellipse, background rms
RS/LQ, border/interior residual ratio, sources in RS absent from LQ.  Writes ``benchmarks/results/realdata.md``
and the montage ``docs/realdata_montage.png`` (per case: LQ | RS | residual/σ | σ of the network alone, then RS
and residual/σ anchored, then residual/σ with the consistency step too; LQ and RS share one asinh stretch,
residuals span ±5σ).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from _report import write_table  # benchmarks/ is sys.path[0] when a script is run

from galviewer.core.io.stamps import DEFAULT_CONTEXT
from galviewer.core.restore.consistency import ANCHOR_SCALE

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "realdata"
SIZES = {"wfc3ir_spiral": 128}
# (key, label, anchored, consistency step)
STEPS = (("net", "network", False, False), ("anchor", "+ anchoring", True, False),
         ("cons", "+ anchoring + consistency", True, True))
# for the stars: point-source mode (the star PSF-fitted, the rest restored, the star added as the target PSF)
STAR_STEP = (("star", "point source + anchoring", True, False),)


def cases() -> list[Path]:
    """The shipped real cut-outs (the PSF file excluded)."""
    return sorted(p for p in DATA.glob("*.fits"))


def target(image: Any) -> tuple[float, float]:
    """Where a user would click: the detected source (deblended) nearest to the cut-out's centre."""
    from galviewer.core.measure.detect import detect

    ny, nx = image.shape
    cx, cy = (nx - 1) / 2, (ny - 1) / 2
    found = detect(image)
    if not found:
        return cx, cy
    best = min(found, key=lambda s: (s.x - cx) ** 2 + (s.y - cy) ** 2)
    return best.x, best.y


def run(model: str | None, uncertainty: bool, context: int = DEFAULT_CONTEXT) -> list[dict]:
    """Restore and judge every case: the network alone, anchored, anchored and fused (:data:`STEPS`)."""
    from galviewer import open_image
    from galviewer.core.restore.pipeline import Pipeline

    base = Pipeline.default(model, device="cpu", context=context, uncertainty=uncertainty)  # the app's pipeline
    out = []
    for path in cases():
        row = {"case": path.stem, "model": base.restorer.name}
        with open_image(path) as im:
            x, y = target(im)
            for mode, _, anchor, cons in STEPS + (STAR_STEP if path.stem.endswith("star") else ()):
                pipe = base.with_config(size=SIZES.get(path.stem, 64), consistency=cons, point_source=mode == "star",
                                        anchor=ANCHOR_SCALE if anchor else 0.0)
                r = pipe.run(im, x, y)
                row[mode] = (r, r.meta["verdict"])
        out.append(row)
    return out


def _montage(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from galviewer.core.measure.background import background

    cols = ["LQ", "RS network", "residual / σ", "σ (8 flips)", "RS anchored", "residual / σ (anchored)",
            "residual / σ (+ consistency)"]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.1 * len(cols), 2.15 * len(rows)))
    for i, row in enumerate(rows):
        r, v = row["net"]
        ra, va = row["anchor"]
        rc, vc = row["cons"]
        lq = r.lq
        bkg = background(lq)
        sig = r.stamp.err if r.stamp is not None and r.stamp.err is not None else bkg.rms
        top = np.percentile(lq, 99.8) - bkg.level

        def stretch(img, lvl=bkg.level, top=top, rms=bkg.rms):
            return np.arcsinh((img - lvl) / (3 * rms)) / np.arcsinh(top / (3 * rms))

        panels = [(stretch(lq), "gray", (-0.05, 1)), (stretch(r.data), "gray", (-0.05, 1)),
                  (r.residual / sig, "RdBu_r", (-5, 5)),
                  ((r.sigma if r.sigma is not None else np.zeros_like(lq)), "magma", None),
                  (stretch(ra.data), "gray", (-0.05, 1)), (ra.residual / sig, "RdBu_r", (-5, 5)),
                  (rc.residual / sig, "RdBu_r", (-5, 5))]
        for j, (img, cmap, lim) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img, origin="lower", cmap=cmap, vmin=None if lim is None else lim[0],
                      vmax=None if lim is None else lim[1], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=8)
        axes[i, 0].set_ylabel(row["case"], fontsize=8)
        for j, w in ((1, v), (4, va), (6, vc)):
            failed = [k for k, c in w.checks.items() if not c.ok]
            text = ("ok" if w.ok else "FAIL " + ", ".join(failed)) + f"; χ² {w.checks['chi2'].value:.3g}"
            colour = "green" if w.ok else ("darkorange" if failed == ["range"] else "red")
            axes[i, j].set_xlabel(text, fontsize=6, color=colour)
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)


def main() -> None:
    """Run the real-data set and write the table and the montage."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--no-uncertainty", action="store_true")
    ap.add_argument("--context", type=int, default=DEFAULT_CONTEXT,
                    help=f"restore with this margin (px) and crop (default {DEFAULT_CONTEXT}, the app's)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "realdata.md"), help="table (Markdown)")
    ap.add_argument("--montage", default=str(ROOT / "docs" / "realdata_montage.png"), help="montage (PNG)")
    args = ap.parse_args()
    rows = run(args.model, not args.no_uncertainty, args.context)
    lines = [f"Model `{rows[0]['model']}`" + (f", context margin {args.context} px" if args.context else "")
             + "; limits: χ² ≤ 3, |flux − 1| ≤ 0.05, RS/LQ rms ≤ 1, border ≤ 1.5, "
             "0 new sources.", "",
             "| case | step | χ² | flux cons. | RS/LQ rms | border/interior | new sources | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for mode, label, _, _ in STEPS + STAR_STEP:
            if mode not in row:
                continue
            _, v = row[mode]
            c = v.checks
            lines.append(f"| {row['case']} | {label} | {c['chi2'].value:.3g} | {c['flux'].value:.3f} | "
                         f"{c['rms'].value:.3g} | {c['border'].value:.3g} | {int(c['new_sources'].value)} | "
                         f"{'ok' if v.ok else 'FAIL: ' + ', '.join(k for k, x in c.items() if not x.ok)} |")
    write_table(args.out, lines)
    png = Path(args.montage)
    _montage(rows, png)
    print(png)


if __name__ == "__main__":
    main()
