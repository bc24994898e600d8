"""Restoration speed of galviewer against a plain-PyTorch NCHW eager baseline of the same weights.

    python benchmarks/speed.py [--presets small galaxy] [--threads 1 2] [--out benchmarks/results/speed.md]

For each preset (the shipped weights for ``small`` when present, random weights otherwise — speed does
not depend on the values) and each thread count:

Timings of galviewer, the baseline and "ours NCHW" are interleaved repetition by repetition, so that
speed drifts of the (virtual) machine affect all three alike.

* one 64×64 stamp through ``Restorer.restore`` (normalisation, network, eq. 8–9 rescaling, residual),
  with and without the 8-way flip/rotation uncertainty: median, min, max over repeats;
* the baseline: the same architecture and weights laid out as the published Restormer code does it —
  NCHW memory format, the channel LayerNorm computed by reshaping to (B, H·W, C), ``Tensor.var`` over
  the last axis and reshaping back — run eagerly under ``torch.no_grad``, one forward per stamp and per
  flip (the reference script's way), timed the same way; outputs are compared (max |Δ|);
* "ours, NCHW": galviewer's own module run the baseline's way (NCHW, ``no_grad``, one forward per
  flip), to separate what the LayerNorm formulation gives from what channels_last, inference mode and
  batching the flips give;
* throughput of 64 stamps through ``Restorer.restore_many`` (batched);
* a 512×512 and (``small`` only) a 2048×2048 region, tiled under a 1 GB budget, each in a fresh
  subprocess so that its peak resident memory (``ru_maxrss``) is its own;
* when CUDA is available, one more row per preset on the GPU (peak = ``torch.cuda.max_memory_allocated``,
  2048² for both presets).

Ratios are measured in the same run on the same machine. Results are written as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _report import write_table  # benchmarks/ is sys.path[0] when a script is run

from galviewer.core.nn.restormer import Restormer, RestormerConfig
from galviewer.core.nn.weights import ModelMetadata
from galviewer.core.restore.engine import Restorer, dihedral


def _restorer(preset: str, device: str = "cpu") -> Restorer:
    if preset == "small":
        try:
            return Restorer.from_pretrained(device=device)
        except Exception:  # no shipped model: random weights of the same size
            pass
    torch.manual_seed(0)
    model = Restormer(RestormerConfig.from_preset(preset))
    return Restorer(model, ModelMetadata(name=f"{preset}-random", config=model.config), device)


class _ReferenceLayerNorm(torch.nn.Module):
    """The published layout of the channel LayerNorm: to (B, HW, C), normalise the last axis, back."""

    def __init__(self, body: torch.nn.Module) -> None:
        super().__init__()
        self.weight, self.bias = body.weight, body.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # b (h w) c
        sigma = t.var(-1, keepdim=True, unbiased=False)
        if self.bias is None:
            t = t / torch.sqrt(sigma + 1e-5) * self.weight
        else:
            t = (t - t.mean(-1, keepdim=True)) / torch.sqrt(sigma + 1e-5) * self.weight + self.bias
        return t.transpose(1, 2).reshape(b, c, h, w)


def _reference_model(model: Restormer) -> Restormer:
    """A copy of ``model`` (same weights, NCHW) whose LayerNorms use the reference layout."""
    from galviewer.core.nn.restormer import LayerNorm

    ref = Restormer(model.config)
    ref.load_state_dict({k: v.clone(memory_format=torch.contiguous_format) for k, v in model.state_dict().items()})
    for m in ref.modules():
        if isinstance(m, LayerNorm):
            m.body = _ReferenceLayerNorm(m.body)
    return ref.eval()


def _times(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Time several callables *interleaved* (a, b, c, a, b, c, …) so that drifts of a shared or virtual
    machine's speed hit all of them alike and their ratios stay fair."""
    for fn in fns.values():
        fn()  # warm-up
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[k].append(time.perf_counter() - t0)
    return out


def _baseline(model: torch.nn.Module, stamp: np.ndarray, tta: bool) -> np.ndarray:
    """The reference way: NCHW, no_grad, one forward per stamp and per flip."""
    lo, hi = stamp.min(), stamp.max()
    x = (stamp - lo) / (hi - lo)
    outs = []
    dev = next(model.parameters()).device
    for k in range(8 if tta else 1):
        v = np.ascontiguousarray(dihedral(x, k), dtype=np.float32)
        with torch.no_grad():
            y = model(torch.from_numpy(v)[None, None].to(dev))[0, 0].cpu().numpy()
        outs.append(dihedral(y, k, inverse=True))
    return np.mean(outs, axis=0)


def _region_child(preset: str, side: int, threads: int, device: str = "cpu") -> dict:
    torch.set_num_threads(threads)
    r = _restorer(preset, device)
    img = np.random.default_rng(1).normal(100, 5, (side, side)).astype(np.float32)
    t0 = time.perf_counter()
    r.restore(img, uncertainty=False)
    dt = time.perf_counter() - t0
    if device == "cuda":  # GPU memory, not the process's RSS
        return {"seconds": dt, "peak_mb": torch.cuda.max_memory_allocated() / 2**20}
    import resource

    return {"seconds": dt, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _region(preset: str, side: int, threads: int, device: str = "cpu") -> dict:
    code = (f"import json,sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import speed; "
            f"print(json.dumps(speed._region_child({preset!r}, {side}, {threads}, {device!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description="galviewer restoration speed")
    ap.add_argument("--presets", nargs="+", default=["small", "galaxy"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--no-regions", action="store_true", help="skip the 512² and 2048² regions")
    ap.add_argument("--out", default="benchmarks/results/speed.md")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    stamp = (rng.normal(0, 1, (64, 64)) + 50 * np.exp(-((np.mgrid[:64, :64] - 31.5) ** 2).sum(0) / 20)).astype(
        np.float32)
    rows = []
    settings = [("cpu", t) for t in args.threads] + ([("cuda", max(args.threads))] if torch.cuda.is_available() else [])
    for preset in args.presets:
        r_cpu = _restorer(preset)
        for device, threads in settings:
            r = r_cpu if device == "cpu" else _restorer(preset, device)
            base_model = _reference_model(r_cpu.model).to(device)
            ours_nchw = Restormer(r_cpu.model.config)
            ours_nchw.load_state_dict({k: v.clone(memory_format=torch.contiguous_format)
                                       for k, v in r_cpu.model.state_dict().items()})
            ours_nchw.eval().to(device)
            torch.set_num_threads(threads)
            reps = args.repeats if preset != "galaxy" or device == "cuda" else max(args.repeats // 3, 3)
            row = {"preset": preset, "threads": threads if device == "cpu" else torch.cuda.get_device_name()}
            for tta in (False, True):
                t = _times({"ours": lambda tta=tta, r=r: r.restore(stamp, uncertainty=tta),
                            "base": lambda tta=tta, m=base_model: _baseline(m, stamp, tta),
                            "nchw": lambda tta=tta, m=ours_nchw: _baseline(m, stamp, tta)}, reps)
                ours, base, nchw = t["ours"], t["base"], t["nchw"]
                got = r.restore(stamp, uncertainty=tta).normalized
                ref = _baseline(base_model, stamp, tta)
                key = "tta" if tta else "one"
                row[f"{key}_ms"] = 1e3 * statistics.median(ours)
                row[f"{key}_min_ms"] = 1e3 * min(ours)
                row[f"{key}_max_ms"] = 1e3 * max(ours)
                row[f"{key}_base_ms"] = 1e3 * statistics.median(base)
                row[f"{key}_ratio"] = statistics.median(base) / statistics.median(ours)
                row[f"{key}_nchw_ms"] = 1e3 * statistics.median(nchw)
                row[f"{key}_maxdiff"] = float(np.abs(got - ref).max())
            stamps = [stamp + rng.normal(0, 1, stamp.shape).astype(np.float32) for _ in range(64)]
            t0 = time.perf_counter()
            r.restore_many(stamps, uncertainty=False)
            row["batch64_per_s"] = 64 / (time.perf_counter() - t0)
            if not args.no_regions:
                row["r512"] = _region(preset, 512, threads, device)
                if preset == "small" or device == "cuda":
                    row["r2048"] = _region(preset, 2048, threads, device)
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = [f"# galviewer restoration speed ({platform.machine()}, {torch.get_num_threads()} max threads, "
             f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')})", "",
             "One 64×64 stamp, median (min–max) ms; baseline = same weights in the published layout, NCHW eager, "
             "one forward per flip; ours NCHW = galviewer's module run the baseline's way.", "",
             "| preset | threads (or GPU) | 1 pass | baseline | speed-up | ours NCHW | max abs Δ | 8-way uncertainty "
             "| baseline | speed-up | ours NCHW | max abs Δ | 64 stamps/s | 512² region | 2048² region |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in rows:
        def reg(k: str, w: dict = w) -> str:
            return f"{w[k]['seconds']:.1f} s, {w[k]['peak_mb']:.0f} MB" if k in w else "—"
        lines.append(
            f"| {w['preset']} | {w['threads']} | {w['one_ms']:.0f} ({w['one_min_ms']:.0f}–{w['one_max_ms']:.0f}) | "
            f"{w['one_base_ms']:.0f} | {w['one_ratio']:.2f}× | {w['one_nchw_ms']:.0f} | {w['one_maxdiff']:.1e} | "
            f"{w['tta_ms']:.0f} ({w['tta_min_ms']:.0f}–{w['tta_max_ms']:.0f}) | {w['tta_base_ms']:.0f} | "
            f"{w['tta_ratio']:.2f}× | {w['tta_nchw_ms']:.0f} | {w['tta_maxdiff']:.1e} | {w['batch64_per_s']:.0f} | "
            f"{reg('r512')} | "
            f"{reg('r2048')} |")
    lines += ["", "Reproduce: `python benchmarks/speed.py`."]
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
