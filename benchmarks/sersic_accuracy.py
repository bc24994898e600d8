"""Accuracy and speed of galviewer's Sérsic fit against GalSim truth, on a fixed seeded grid.

    python benchmarks/sersic_accuracy.py [--out benchmarks/results/sersic_accuracy.md]

Grid: n ∈ {1, 2.5, 4} × R50 ∈ {3, 6, 10} px × q ∈ {0.4, 0.7, 1.0}, position angle drawn per case, GalSim
rendering convolved with the ACS-like Gaussian PSF (FWHM 1.88 px), fitted with the pixel-integrated kernel.
Noiseless and at S/N = 50 (flux inside 2·R50; 4 noise realisations per case). Reports relative bias and
scatter of n and R50, bias and scatter of e1/e2, pull std, and the median wall time per 64×64 fit.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time

import galsim
import numpy as np
from _report import write_table  # benchmarks/ is sys.path[0] when a script is run

from galviewer.core.measure import fit_sersic
from galviewer.core.psf.gaussian import gaussian_psf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/results/sersic_accuracy.md")
    ap.add_argument("--realisations", type=int, default=4)
    args = ap.parse_args()
    psf = galsim.Gaussian(fwhm=1.88)
    kernel = gaussian_psf(1.88, 7)
    kernel15 = gaussian_psf(1.88, 15)  # the side the app and `measure` use (InstrumentPSF.fitting_kernel)
    rng = np.random.default_rng(7)
    rows: dict[str, list] = {"noiseless": [], "noiseless, 15-px kernel": [], "S/N 50": []}
    times = []
    for n, r50, q in itertools.product((1.0, 2.5, 4.0), (3.0, 6.0, 10.0), (0.4, 0.7, 1.0)):
        beta = rng.uniform(0, 180)
        gal = galsim.Sersic(n=n, half_light_radius=r50, flux=1000.0).shear(q=q, beta=beta * galsim.degrees)
        img = galsim.Convolve(gal, psf).drawImage(nx=64, ny=64, scale=1.0).array.astype(float)
        e = (1 - q) / (1 + q)
        truth = np.array([n, r50, e * np.cos(2 * np.radians(beta)), e * np.sin(2 * np.radians(beta))])
        yy, xx = np.mgrid[:64, :64]
        inside = np.hypot(xx - 31.5, yy - 31.5) < 2 * r50
        sigma = img[inside].sum() / 50 / np.sqrt(inside.sum())
        for label, k in (("noiseless", 1), ("noiseless, 15-px kernel", 1), ("S/N 50", args.realisations)):
            for _ in range(k):
                noiseless = label.startswith("noiseless")
                data = img if noiseless else img + rng.normal(0, sigma, img.shape)
                t0 = time.perf_counter()
                f = fit_sersic(data, kernel15 if "15-px" in label else kernel, err=None if noiseless else sigma)
                times.append(time.perf_counter() - t0)
                est = np.array([f.n, f.r50, f.e1, f.e2])
                err = np.array([f.n_err, f.r50_err, f.e1_err, f.e2_err])
                rows[label].append((truth, est, err, f.ok))
    lines = [f"# Sérsic fit accuracy ({platform.processor() or platform.machine()}, "
             f"{time.strftime('%Y-%m-%d')})", "",
             "| set | fits | flagged | n bias | n scatter | max \\|Δn\\|/n | R50 bias | R50 scatter "
             "| max \\|ΔR50\\|/R50 | e1 bias / scatter | e2 bias / scatter | pull std n, R50, e1, e2 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, rr in rows.items():
        t = np.array([r[0] for r in rr])
        e = np.array([r[1] for r in rr])
        s = np.array([r[2] for r in rr])
        ok = np.array([r[3] for r in rr])
        rel = (e[:, :2] - t[:, :2]) / t[:, :2]
        d = e[:, 2:] - t[:, 2:]
        pulls = ((e - t) / s).std(axis=0) if not label.startswith("noiseless") else [np.nan] * 4
        lines.append(f"| {label} | {len(rr)} | {(~ok).sum()} | {rel[:, 0].mean():+.2%} | {rel[:, 0].std():.2%} | "
                     f"{np.abs(rel[:, 0]).max():.2%} | "
                     f"{rel[:, 1].mean():+.2%} | {rel[:, 1].std():.2%} | {np.abs(rel[:, 1]).max():.2%} | "
                     f"{d[:, 0].mean():+.4f} / {d[:, 0].std():.4f} | "
                     f"{d[:, 1].mean():+.4f} / {d[:, 1].std():.4f} | "
                     + ", ".join(f"{p:.2f}" for p in pulls) + " |")
    lines += ["", f"Median time per 64×64 fit: {np.median(times) * 1e3:.0f} ms "
              f"(min {np.min(times) * 1e3:.0f}, max {np.max(times) * 1e3:.0f}); "
              "reproduce: `python benchmarks/sersic_accuracy.py`."]
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
