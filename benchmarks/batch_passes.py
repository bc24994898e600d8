"""What a batch pays for being bit-identical to a click (issue 21): each stamp's own forward passes.

    python benchmarks/batch_passes.py [--sources 24] [--repeats 3]

A batch row must equal a click at the same position to the last bit, and a forward pass's arithmetic depends on
how many images it holds (oneDNN's blocking follows the batch size), so the pipeline gives each stamp passes of
its own — its 8 flips together — instead of packing several stamps into one pass.  This measures, in one run on
the same detected sources of the demo field (64-px stamps, 8-px margin), the restoration time per source of

* *own passes*: :meth:`Pipeline.run_many <galviewer.core.restore.pipeline.Pipeline.run_many>` without the
  verdict (what a batch does now);
* *shared passes*: the same cut-outs through ``Restorer.restore_many`` (stamps packed into passes, as batches did
  before), then cropped;

with the 8 flips (the default) and with one pass.  Medians of ``--repeats`` runs, alternated.  Writes
``benchmarks/results/batch_passes.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from _report import write_table  # benchmarks/ is sys.path[0] when a script is run


def main() -> None:
    """Time both ways and tabulate the ratio."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "batch_passes.md"))
    args = ap.parse_args()
    from galviewer import open_image
    from galviewer.core.measure.detect import detect
    from galviewer.core.restore.pipeline import Pipeline
    from galviewer.core.restore.result import crop_restoration
    from galviewer.core.sim.demo import ensure_demo

    base = Pipeline.default(device="cpu")
    lines = [f"`{base.restorer.name}` on the demo field, {args.sources} detected sources, 64-px stamps with the "
             f"8-px margin, {torch.get_num_threads()} threads; ms per source, medians of {args.repeats} runs.", "",
             "| flips | own passes (bit-identical to a click) | shared passes (before) | own / shared |",
             "|---|---|---|---|"]
    with open_image(ensure_demo(), "SCI,1") as image:
        sources = [s for s in detect(image, nsigma=5.0)][: args.sources]
        for tta in (True, False):
            pipe = base.with_config(uncertainty=tta)
            stamps = [pipe.cut(image, s.x, s.y) for s in sources]
            own, shared = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                pipe.restore_stamps(stamps, image=image)
                own.append((time.perf_counter() - t0) / len(stamps))
                t0 = time.perf_counter()
                got = pipe.restorer.restore_many(stamps, uncertainty=tta, anchor=pipe.config.anchor)
                [crop_restoration(r, pipe.config.context) for r in got]
                shared.append((time.perf_counter() - t0) / len(stamps))
            a, b = statistics.median(own), statistics.median(shared)
            lines.append(f"| {8 if tta else 1} | {a * 1e3:.1f} | {b * 1e3:.1f} | {a / b:.2f} |")
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
