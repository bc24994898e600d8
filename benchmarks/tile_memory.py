"""Calibrate and check the restorer's memory model: activation bytes per pixel, and a 4096² region's peak.

    python benchmarks/tile_memory.py [--presets tiny small]

Part 1 — for each preset, forward passes of one N×N image (N = 128, 256, 384) in a fresh subprocess;
the growth of peak resident memory (``ru_maxrss``) over the process's state just before the pass,
divided by N²·dim, gives the activation bytes per pixel per unit of ``dim``.  ``Restorer`` plans tiles
with ``_BYTES_PER_PIXEL_PER_DIM``; the table shows how that compares with what was measured.

Part 2 — ``Restorer.restore`` on a 4096×4096 region (``small`` preset, no uncertainty) under several
memory budgets, each in a fresh subprocess: peak growth over the state before the call, against the
budget plus the input-sized float32 arrays the restorer keeps (see ``Restorer``'s docstring).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _report import write_table  # benchmarks/ is sys.path[0] when a script is run


def _child_forward(preset: str, side: int) -> dict:
    import resource

    import torch

    from galviewer.core.nn.restormer import Restormer, RestormerConfig

    torch.set_num_threads(1)
    model = Restormer(RestormerConfig.from_preset(preset)).eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 1, side, side).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(torch.rand(1, 1, 16, 16).contiguous(memory_format=torch.channels_last))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.inference_mode():
        model(x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"grow_mb": (peak - before) / 1024, "dim": model.config.dim}


def _child_region(side: int, budget: float) -> dict:
    import resource

    import numpy as np
    import torch

    from galviewer.core.restore.engine import Restorer

    torch.set_num_threads(2)
    r = Restorer.from_pretrained(device="cpu", memory_budget_mb=budget)
    img = np.random.default_rng(1).normal(100, 5, (side, side)).astype(np.float32)
    r.restore(img[:64, :64], uncertainty=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = r.restore(img, uncertainty=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"grow_mb": (peak - before) / 1024, "input_mb": img.nbytes / 2**20, "shape": list(out.data.shape)}


def _run(code: str) -> dict:
    full = f"import json,sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import tile_memory as t; " + code
    out = subprocess.run([sys.executable, "-c", full], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"])
    ap.add_argument("--budgets", nargs="+", type=float, default=[128.0, 512.0])
    ap.add_argument("--out", default="benchmarks/results/tile_memory.md")
    args = ap.parse_args()
    from galviewer.core.restore import engine as restore

    lines = ["# Activation memory of one forward pass (peak RSS growth, 1 thread)", "",
             "| preset | side | growth | bytes / pixel / dim |", "|---|---|---|---|"]
    for preset in args.presets:
        for side in (128, 256, 384):
            r = _run(f"print(json.dumps(t._child_forward({preset!r}, {side})))")
            per = r["grow_mb"] * 2**20 / (side * side * r["dim"])
            lines.append(f"| {preset} | {side} | {r['grow_mb']:.0f} MB | {per:.0f} |")
    lines += ["", f"The restorer plans with {restore._BYTES_PER_PIXEL_PER_DIM} bytes / pixel / dim.", "",
              "# 4096×4096 region, small preset, no uncertainty (peak RSS growth during `restore`)", "",
              "| budget | growth | growth − budget | in input-sized float32 arrays |", "|---|---|---|---|"]
    for budget in args.budgets:
        r = _run(f"print(json.dumps(t._child_region(4096, {budget})))")
        extra = r["grow_mb"] - budget
        lines.append(f"| {budget:.0f} MB | {r['grow_mb']:.0f} MB | {extra:.0f} MB | {extra / r['input_mb']:.1f} |")
    lines += ["", "Reproduce: `python benchmarks/tile_memory.py`."]
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
