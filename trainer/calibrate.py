"""Calibrate a checkpoint's uncertainty: factors from the flip spread to a 1σ, and the coverage they reach.

``galviewer-train calibrate MODEL --data SHARDS [--real HARVESTED] -o REPORT [--save OUT.safetensors]``

1. Pairs: the ground truths of the shard folder's validation split (index mod 10 == 1) degraded as the
   evaluation does (the model's Gaussian PSF, white noise of rms ``noise × (max − min)`` of the blurred stamp) at
   each of the noise levels ``NOISES`` (σ_GT: each ground truth's own noise, the shard's fifth parameter); the
   test split (index mod 10 == 0) the same way for the held-out check.
2. Each LQ restored by the app's pipeline (context 0: a simulated stamp has no surroundings; the 8 flips for the
   spread), with the checkpoint's own calibration switched off so that the raw spread is what is fitted.
3. The factor of each bin of restored S/N ``t`` (:data:`galviewer.core.restore.calibration.SNR_EDGES`): the 68th
   percentile of ``√max(|RS − GT|² − σ_GT², 0) / spread`` over the bin's pixels of the validation pairs; a bin
   with fewer than ``MIN_PIXELS`` pixels takes its nearest populated neighbour's factor.
4. Coverage — the fraction of pixels with ``|RS − GT| ≤ √(σ² + σ_GT²)`` — on the test pairs and, with ``--real``,
   on real-morphology pairs (harvested stamps, rotated by 0/90/180/270°, degraded in the same way; σ_GT the
   harvested stamp's own background rms), per restored-S/N bin, per ground-truth S/N bin and per noise level,
   for the raw spread and the calibrated σ side by side.

Writes ``coverage.md`` and ``coverage.json`` into the report folder and, with ``--save``, the checkpoint with its
calibration in the metadata (``extra["sigma_calibration"]``; the tensors and their sha256 are unchanged).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from galviewer.core.io.stamps import stamp_from_array
from galviewer.core.psf.degrade import add_noise, degrade
from galviewer.core.restore.calibration import (
    COVERAGE_TARGET,
    SNR_EDGES,
    SigmaCalibration,
    bin_labels,
    coverage_by_bin,
    restored_snr,
)
from galviewer.errors import ParameterError
from trainer.shards import ShardSet, split_indices

__all__ = ["NOISES", "calibrate", "fit_factors"]

#: LQ noise rms (after min-max of the blurred stamp) of the calibration and test pairs: the trained range
NOISES = (0.01, 0.03, 0.05, 0.1, 0.15)
#: ground-truth S/N bins of the report (sky, faint outskirts, bodies, cores)
GT_EDGES = (1.0, 5.0, 20.0)
#: fewest pixels a bin's factor is fitted from
MIN_PIXELS = 200


@dataclasses.dataclass
class _Pixels:
    """Per-pixel arrays of a set of pairs (flattened and concatenated)."""

    err: list[np.ndarray] = dataclasses.field(default_factory=list)
    spread: list[np.ndarray] = dataclasses.field(default_factory=list)
    sigma_gt: list[np.ndarray] = dataclasses.field(default_factory=list)
    t: list[np.ndarray] = dataclasses.field(default_factory=list)
    gt_snr: list[np.ndarray] = dataclasses.field(default_factory=list)
    noise: list[np.ndarray] = dataclasses.field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: np.concatenate(getattr(self, f.name)) if getattr(self, f.name) else np.zeros(0)
                for f in dataclasses.fields(self)}


def _pairs(gts: Sequence[np.ndarray], sigma_gt: Sequence[float], seed: int, fwhm: float
           ) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
    """(GT, LQ, σ_GT, noise level) for every ground truth at every level of :data:`NOISES`."""
    out = []
    for j, (gt, sg) in enumerate(zip(gts, sigma_gt, strict=True)):
        blurred = degrade(gt, fwhm=fwhm).lq  # the noise is set by the blurred stamp's range, added below
        for noise in NOISES:
            rng = np.random.default_rng([seed, j, round(noise * 1e4)])
            out.append((gt, add_noise(blurred, noise * float(np.ptp(blurred)), rng), sg, noise))
    return out


def _restore(pipe: Any, pairs: list[tuple[np.ndarray, np.ndarray, float, float]],
             echo: Callable[[str], None], what: str) -> _Pixels:
    px = _Pixels()
    for i, (gt, lq, sg, noise) in enumerate(pairs):
        r = pipe.restore_stamps([stamp_from_array(lq)])[0]
        if r.sigma is None:
            raise ParameterError("model", "the pipeline gave no spread: calibration needs the 8 flips")
        st = r.stamp
        rms = st.background_rms if math.isfinite(st.background_rms) and st.background_rms > 0 else math.nan
        px.err.append(np.abs(r.data.astype(np.float64) - gt).ravel())
        px.spread.append(np.maximum(r.sigma.astype(np.float64), 1e-30).ravel())
        px.sigma_gt.append(np.full(gt.size, sg))
        px.t.append(restored_snr(r.data, st.background_level, rms).ravel())
        px.gt_snr.append(((gt - st.background_level) / rms).ravel())
        px.noise.append(np.full(gt.size, noise))
        if (i + 1) % 50 == 0 or i + 1 == len(pairs):
            echo(f"{what}: {i + 1}/{len(pairs)} restored")
    return px


def fit_factors(err: np.ndarray, spread: np.ndarray, sigma_gt: np.ndarray, t: np.ndarray,
                edges: Sequence[float] = SNR_EDGES, target: float = COVERAGE_TARGET,
                min_pixels: int = MIN_PIXELS) -> tuple[float, ...]:
    """The factor per restored-S/N bin that makes ``k · spread`` cover ``target`` of the pixels.

    Parameters
    ----------
    err, spread, sigma_gt, t : numpy.ndarray
        ``|RS − GT|``, the flip spread, the ground truth's own noise and the restored S/N, per pixel.
    edges : sequence of float
        Inner bin edges of ``t``.
    target : float
        Coverage to reach (0.68).
    min_pixels : int
        A bin with fewer pixels takes its nearest populated neighbour's factor.

    Returns
    -------
    tuple of float
        ``len(edges) + 1`` factors.
    """
    z = np.sqrt(np.maximum(err ** 2 - sigma_gt ** 2, 0.0)) / spread
    b = np.searchsorted(np.asarray(edges, dtype=float), t, side="right")
    k = [float(np.quantile(z[b == i], target)) if np.count_nonzero(b == i) >= min_pixels else math.nan
         for i in range(len(edges) + 1)]
    filled = [i for i, v in enumerate(k) if math.isfinite(v) and v > 0]
    if not filled:
        raise ParameterError("data", f"no restored-S/N bin holds {min_pixels} pixels: too few calibration pairs")
    return tuple(k[i] if i in filled else k[min(filled, key=lambda j: abs(j - i))] for i in range(len(k)))


def _coverage(px: dict[str, np.ndarray], cal: SigmaCalibration) -> dict[str, Any]:
    bound_raw = np.hypot(px["spread"], px["sigma_gt"])
    bound_cal = np.hypot(cal.factors(px["t"]) * px["spread"], px["sigma_gt"])
    out: dict[str, Any] = {}
    for name, bound in (("spread", bound_raw), ("calibrated", bound_cal)):
        noise = {f"{n:g}": float(np.mean(px["err"][px["noise"] == n] <= bound[px["noise"] == n]))
                 for n in NOISES if np.any(px["noise"] == n)}
        out[name] = {"by_restored_snr": coverage_by_bin(px["err"], bound, px["t"], SNR_EDGES),
                     "by_gt_snr": coverage_by_bin(px["err"], bound, px["gt_snr"], GT_EDGES),
                     "by_noise": noise}
    return out


def calibrate(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    real: str | os.PathLike[str] | None = None,
    save: str | os.PathLike[str] | None = None,
    count: int = 40,
    real_count: int = 64,
    seed: int = 2024,
    fwhm: float | None = None,
    device: str = "auto",
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fit a checkpoint's σ calibration and measure its coverage (see the module's docstring).

    Parameters
    ----------
    model : path-like
        Checkpoint.
    data : path-like
        Simulated shard folder (validation split: fit; test split: held-out coverage).
    out : path-like
        Report folder (``coverage.md``, ``coverage.json``); refused if it holds a report, unless ``overwrite``.
    real : path-like, optional
        Harvested shard folder (``galviewer-train harvest``) for the real-morphology coverage.
    save : path-like, optional
        Write the calibrated checkpoint there (refused if it exists, unless ``overwrite``).
    count, real_count : int
        Ground truths from each split / from ``real`` (each degraded at every level of :data:`NOISES`).
    seed : int
        Seed of the degradations.
    fwhm : float, optional
        LQ PSF FWHM in pixels (default: the model's).
    device : str
    overwrite : bool
    echo : callable
        Progress messages.

    Returns
    -------
    dict
        Everything written to ``coverage.json``.
    """
    from galviewer.core.nn.weights import load_model, save_checkpoint
    from galviewer.core.restore.engine import Restorer
    from galviewer.core.restore.pipeline import DEFAULTS, Pipeline

    outdir = Path(out)
    if (outdir / "coverage.md").exists() and not overwrite:
        raise ParameterError("out", f"{outdir} already holds a coverage report; choose another folder or --overwrite")
    if save is not None and Path(save).exists() and not overwrite:
        raise ParameterError("save", f"{save} exists; choose another file or --overwrite")
    if count < 1 or real_count < 1:
        raise ParameterError("count", f"must be >= 1, got {min(count, real_count)}")
    restorer = Restorer.from_file(model, device)
    restorer.sigma_calibration = None  # fit the raw spread
    fwhm = float(restorer.metadata.psf_fwhm_pix if fwhm is None else fwhm)
    pipe = Pipeline(restorer, DEFAULTS.replace(context=0, uncertainty=True))
    shards = ShardSet(data)
    val, test = split_indices(len(shards), "val")[:count], split_indices(len(shards), "test")[:count]
    if len(val) == 0 or len(test) == 0:
        raise ParameterError("data", f"{shards.path}: too few stamps for a validation and a test split")

    def gts(s: ShardSet, idx: np.ndarray) -> list[np.ndarray]:
        return [g.astype(np.float64) for g in s.gt(idx)]

    def noise_of(s: ShardSet, idx: np.ndarray) -> list[float]:  # σ_GT: each ground truth's own noise (column 5)
        return [float(p[4]) if math.isfinite(float(p[4])) and p[4] > 0 else 0.0 for p in s.params(idx)]

    fit_px = _restore(pipe, _pairs(gts(shards, val), noise_of(shards, val), seed + 1, fwhm), echo,
                      "calibration pairs").arrays()
    k = fit_factors(fit_px["err"], fit_px["spread"], fit_px["sigma_gt"], fit_px["t"])
    echo("factors per restored-S/N bin: " + ", ".join(f"{v:.2f}" for v in k))
    res: dict[str, Any] = {"model": str(model), "data": str(shards.path), "seed": seed, "fwhm": fwhm,
                           "noises": list(NOISES), "edges": list(SNR_EDGES), "k": list(k),
                           "fit_pairs": len(val) * len(NOISES), "test_pairs": len(test) * len(NOISES)}
    cal = SigmaCalibration(edges=SNR_EDGES, k=k, fitted_on=f"{shards.path.name}: {len(val)} validation stamps × "
                           f"noise {', '.join(f'{n:g}' for n in NOISES)}, PSF FWHM {fwhm:g} px, seed {seed + 1}")
    test_px = _restore(pipe, _pairs(gts(shards, test), noise_of(shards, test), seed, fwhm), echo, "test pairs"
                       ).arrays()
    res["test"] = _coverage(test_px, cal)
    if real is not None:
        rs = ShardSet(real)
        idx = np.arange(min(len(rs), real_count))
        rot = [np.rot90(g, j % 4).copy() for j, g in enumerate(gts(rs, idx))]
        real_px = _restore(pipe, _pairs(rot, noise_of(rs, idx), seed + 2, fwhm), echo, "real-morphology pairs"
                           ).arrays()
        res["real"] = _coverage(real_px, cal)
        res["real_data"] = str(rs.path)
        res["real_pairs"] = len(idx) * len(NOISES)
    summary = {part: {"all": res[part]["calibrated"]["by_restored_snr"]["all"]["coverage"],
                      "by_gt_snr": {b: v["coverage"] for b, v in res[part]["calibrated"]["by_gt_snr"].items()}}
               for part in ("test", "real") if part in res}
    cal = dataclasses.replace(cal, coverage=summary)
    res["calibration"] = cal.to_dict()
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "coverage.json").write_text(json.dumps(res, indent=1, default=float))
    (outdir / "coverage.md").write_text(report_markdown(res))
    if save is not None:
        net, meta = load_model(model, "cpu")
        meta = dataclasses.replace(meta, extra={**meta.extra, "sigma_calibration": cal.to_dict()}, weights_sha256="")
        save_checkpoint(save, net, meta, overwrite=overwrite)
        echo(f"{save}: calibrated checkpoint written")
    return res


def report_markdown(res: dict[str, Any]) -> str:
    """``coverage.md``: the factors and the coverage tables."""
    lines = [f"# σ calibration of `{Path(res['model']).name}`", "",
             f"Fitted on {res['fit_pairs']} pairs from `{res['data']}` (validation split), held-out coverage on "
             f"{res['test_pairs']} test pairs; LQ PSF FWHM {res['fwhm']:g} px, noise levels "
             f"{', '.join(f'{n:g}' for n in res['noises'])}, seed {res['seed']}. Coverage: the fraction of pixels with "
             "|RS − GT| ≤ √(σ² + σ_GT²); a 1σ covers 68 %.", "",
             "| restored S/N bin | " + " | ".join(bin_labels(res["edges"])) + " |",
             "|---|" + "---|" * (len(res["k"])), "| factor k | " + " | ".join(f"{v:.2f}" for v in res["k"]) + " |", ""]
    for part, title in (("test", "simulated test pairs"), ("real", "real-morphology pairs")):
        if part not in res:
            continue
        c = res[part]
        lines += [f"## Coverage on the {title}" + (f" (`{res['real_data']}`, {res['real_pairs']} pairs)"
                                                  if part == "real" else ""), ""]
        for key, label in (("by_restored_snr", "restored S/N"), ("by_gt_snr", "ground-truth S/N"),
                           ("by_noise", "LQ noise")):
            bins = list(c["calibrated"][key])
            lines += [f"| {label} | " + " | ".join(bins) + " |", "|---|" + "---|" * len(bins)]
            for kind in ("spread", "calibrated"):
                vals = c[kind][key]
                cells = [f"{100 * (v['coverage'] if isinstance(v, dict) else v):.0f} %" for v in
                         (vals.get(b, {"coverage": math.nan}) for b in bins)]
                lines.append(f"| {'flip spread' if kind == 'spread' else 'calibrated σ'} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"

