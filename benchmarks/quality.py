"""One quality table: every shipped model's evaluation summary beside Richardson–Lucy and Wiener.

    python benchmarks/quality.py [--out benchmarks/results/quality.md]

The numbers come from each model's ``galviewer-train evaluate`` report (``docs/models/<name>/metrics.json``,
fixed seeded test set; its header says how to regenerate it), so this script never re-trains or re-evaluates;
it adds the time per 64×64 stamp measured now on this machine: the model through ``Restorer.restore`` (one
pass, and with the 8-way uncertainty), and the classical baselines through the same ``trainer.evaluate.baseline``
call the evaluation used, with their tuned parameter.  Scatter factors are LQ scatter / RS scatter against
the ground truth (> 1: the restoration is closer to the truth than the input; the paper reports 4.4× for
isophotal flux, 3.6× for Sérsic n and 4.7× for R50).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from _report import write_table  # benchmarks/ is sys.path[0] when a script is run

ROOT = Path(__file__).resolve().parents[1]


def _ms(fn, repeats: int = 15) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/results/quality.md")
    args = ap.parse_args()
    import torch

    from galviewer.core.nn.resources import available_models
    from galviewer.core.psf.gaussian import gaussian_psf
    from galviewer.core.restore.engine import Restorer
    from trainer.evaluate import baseline

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    stamp = (np.exp(-((xx - 31.5) ** 2 + (yy - 31.5) ** 2) / 30.0) + rng.normal(0, 0.05, (64, 64))).astype(np.float32)
    lines = [f"# Restoration quality and cost ({torch.get_num_threads()} threads)", "",
             "| method | test set | LQ rms | PSNR (dB) | SSIM | scatter factor iso flux | n | R50 | ms / stamp |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in available_models():
        metrics = ROOT / "docs" / "models" / name / "metrics.json"
        if not metrics.is_file():
            lines.append(f"| {name} | no evaluation report at {metrics.relative_to(ROOT)} | | | | | | | |")
            continue
        m = json.loads(metrics.read_text())
        cfg = m["config"]
        r = Restorer.from_pretrained(name, device="cpu")
        one = _ms(lambda r=r: r.restore(stamp, uncertainty=False))
        tta = _ms(lambda r=r: r.restore(stamp, uncertainty=True))
        factors = [m["photometry"]["iso"]["reduction"], m["morphology"]["n"]["reduction"],
                   m["morphology"]["r50"]["reduction"]]
        where = f"{m['test_stamps']} {m['data_kind']} (seed {cfg['seed']})"
        t1 = m["table1"]
        lines.append(f"| {name} | {where} | {cfg['noise_rms']} | {t1['RS']['psnr']:.2f} | {t1['RS']['ssim']:.3f} | "
                     + " | ".join(f"{f:.2f}×" for f in factors) + f" | {one:.0f} ({tta:.0f} with uncertainty) |")
        psf = gaussian_psf(cfg["fwhm"], 7)
        norm = (stamp - stamp.min()) / (stamp.max() - stamp.min())
        for kind, label in (("rl", "Richardson–Lucy"), ("wiener", "Wiener")):
            param = m["baseline_params"][kind]
            key = "RL" if kind == "rl" else "Wiener"
            ms = _ms(lambda kind=kind, param=param, norm=norm, psf=psf: baseline(kind, norm, psf, param))
            unit = "iterations" if kind == "rl" else "balance"
            lines.append(f"| {label} ({unit} {param:g}, tuned for {name}'s test) | same | {cfg['noise_rms']} | "
                         f"{t1[key]['psnr']:.2f} | {t1[key]['ssim']:.3f} | — | — | — | {ms:.1f} |")
        lines.append(f"| LQ (no restoration) | same | {cfg['noise_rms']} | {t1['LQ']['psnr']:.2f} | "
                     f"{t1['LQ']['ssim']:.3f} | 1× | 1× | 1× | — |")
    lines += ["", "Scatter factors only exist for the network (the classical outputs are not fitted); a factor "
              "below 1× means the restoration scatters *more* than the input.", "",
              "Reproduce: `python benchmarks/quality.py` (numbers from `docs/models/<name>/metrics.json`, "
              "made by `galviewer-train evaluate`)."]
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
