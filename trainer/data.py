"""LQ/GT training pairs made on the fly from GT shards (METHOD §3).

Each batch is a pure function of ``(seed, iteration)``: which stamps, which
flip/rotation, which PSF width and which noise.  Resuming after a kill therefore
reproduces the data stream exactly without saving any sampler state, and
data-parallel ranks take disjoint slices of the same global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from galviewer.core.degrade import correlated_noise
from galviewer.core.psf import gaussian_psf, pixelated_gaussian, sigma_to_fwhm
from galviewer.errors import ParameterError
from trainer.shards import ShardSet, split_indices
from trainer.simulate import GT_NOISE_RANGE, GT_PSF_FWHM, POINT_HALF_BOX

__all__ = ["DegradeConfig", "PairSampler", "gaussian_kernels", "minmax"]


@dataclass(frozen=True)
class DegradeConfig:
    """How LQ stamps are made from GT stamps.

    Attributes
    ----------
    fwhm_range : (float, float)
        PSF FWHM in pixels, drawn uniformly per sample.  Default: Gaussian σ 0.65–0.95 px
        around the paper's effective σ ≈ 0.8 px (ACS/WFC at 0.05″, FWHM ≈ 1.9 px).
    noise_range : (float, float)
        White-noise rms in units of the blurred stamp's max − min (≈ rms after min-max
        normalisation), drawn uniformly per sample; the paper's sample pairs have ≈ 0.05.
    correlated_fraction : float
        Fraction of samples whose noise has the correlation of drizzled ACS images
        (GalSim's COSMOS model, §6.3) instead of white noise.
    point_fraction : float
        Fraction of *training* samples whose GT stamp is replaced by a point source (the GT
        PSF, pixel-integrated, at a random position in the central 24×24 px, GT noise 0.2–1.5 %
        of its peak), made on the fly.  Stars cover a few pixels of a 64×64 stamp, so under an
        L1 loss they weigh little; this raises their share beyond the realistic set's 8 % (§6.2).
        Validation pairs are never replaced.
    psf_size : int
        Kernel side (7, as in the paper).
    augment : bool
        Random flips and 90° rotations.
    """

    fwhm_range: tuple[float, float] = (round(sigma_to_fwhm(0.65), 3), round(sigma_to_fwhm(0.95), 3))
    noise_range: tuple[float, float] = (0.01, 0.1)
    correlated_fraction: float = 0.0
    point_fraction: float = 0.0
    psf_size: int = 7
    augment: bool = True

    def __post_init__(self) -> None:
        lo, hi = self.fwhm_range
        if not (0 < lo <= hi):
            raise ParameterError("fwhm_range", f"must satisfy 0 < low <= high, got {self.fwhm_range}")
        lo, hi = self.noise_range
        if not (0 <= lo <= hi < 1):
            raise ParameterError("noise_range", f"must satisfy 0 <= low <= high < 1, got {self.noise_range}")
        if not 0 <= self.correlated_fraction <= 1:
            raise ParameterError("correlated_fraction", f"must be in [0, 1], got {self.correlated_fraction}")
        if not 0 <= self.point_fraction <= 1:
            raise ParameterError("point_fraction", f"must be in [0, 1], got {self.point_fraction}")
        if self.psf_size < 3 or self.psf_size % 2 == 0:
            raise ParameterError("psf_size", f"must be odd and >= 3, got {self.psf_size}")


def gaussian_kernels(fwhm: np.ndarray, size: int) -> torch.Tensor:
    """Pixel-integrated circular Gaussian kernels ``(B, 1, size, size)`` of unit sum (:func:`gaussian_psf`)."""
    k = np.stack([gaussian_psf(float(f), size) for f in np.atleast_1d(fwhm)])
    return torch.from_numpy(k[:, None].astype(np.float32))


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each ``(B, 1, H, W)`` sample to [0, 1] (METHOD §3); constant samples become 0."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / torch.clamp(hi - lo, min=1e-12)


def _dihedral(x: np.ndarray, k: int) -> np.ndarray:
    x = np.rot90(x, k % 4)
    return x[:, ::-1] if k >= 4 else x


class PairSampler:
    """Deterministic batches of (LQ, GT) pairs from a shard set.

    Parameters
    ----------
    shards : ShardSet
    split : {"train", "val", "test", "all"}
        Which indices to draw from (8:1:1 by index).
    degrade : DegradeConfig
    seed : int
    """

    def __init__(self, shards: ShardSet, split: str = "train", degrade: DegradeConfig | None = None,
                 seed: int = 0) -> None:
        self.shards = shards
        self.indices = split_indices(len(shards), split)
        if len(self.indices) == 0:
            raise ParameterError("data", f"{shards.path}: the {split} split is empty ({len(shards)} stamps)")
        self.degrade = degrade or DegradeConfig()
        self.seed = int(seed)

    def make(self, idx: np.ndarray, rng: np.random.Generator,
             inject: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Degrade the GT stamps ``idx`` with draws from ``rng``; returns LQ, GT ``(B, 1, H, W)`` and the draws.

        With ``inject``, a ``point_fraction`` of them is first replaced by point sources.
        """
        d = self.degrade
        b = len(idx)
        gt = self.shards.gt(idx).astype(np.float64)
        ks = rng.integers(0, 8, b) if d.augment else np.zeros(b, int)
        fwhm = rng.uniform(*d.fwhm_range, b)
        rms = rng.uniform(*d.noise_range, b)
        corr = rng.random(b) < d.correlated_fraction
        noise_seeds = rng.integers(0, 2**63 - 1, b)
        points = np.zeros(b, bool)
        if inject and d.point_fraction > 0:  # extra draws only when used: other streams stay as they were
            points = rng.random(b) < d.point_fraction
            where = rng.uniform(-POINT_HALF_BOX, POINT_HALF_BOX, (b, 2)) + (gt.shape[2] - 1) / 2.0
            gt_noise = rng.uniform(*GT_NOISE_RANGE, b)
            for i in np.flatnonzero(points):
                star = pixelated_gaussian(gt.shape[1:], *where[i], GT_PSF_FWHM)
                star /= star.max()
                gt[i] = star + np.random.default_rng(int(noise_seeds[i]) + 1).normal(0.0, gt_noise[i], star.shape)
        gt = np.stack([_dihedral(g, k) for g, k in zip(gt, ks, strict=True)])
        gt_t = torch.from_numpy(np.ascontiguousarray(gt, dtype=np.float32))[:, None]
        pad = d.psf_size // 2
        blurred = F.conv2d(F.pad(gt_t, (pad, pad, pad, pad), mode="reflect").transpose(0, 1),
                           gaussian_kernels(fwhm, d.psf_size), groups=b).transpose(0, 1)
        span = (blurred.amax(dim=(-2, -1)) - blurred.amin(dim=(-2, -1))).numpy()[:, 0]
        noise = np.empty((b, *blurred.shape[2:]), dtype=np.float32)
        for i in range(b):
            nrng = np.random.default_rng(int(noise_seeds[i]))
            sd = float(rms[i] * span[i])
            if corr[i]:
                noise[i] = correlated_noise(noise.shape[1:], sd, nrng)
            else:
                noise[i] = nrng.normal(0.0, sd, noise.shape[1:])
        lq = blurred + torch.from_numpy(noise)[:, None]
        return minmax(lq), minmax(gt_t), {"index": idx, "k": ks, "fwhm": fwhm, "noise_rms": rms, "correlated": corr,
                                          "point": points}

    def batch(
        self, iteration: int, batch_size: int, rank: int = 0, world: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``rank``-th of ``world`` slices of global batch number ``iteration``."""
        if batch_size % world:
            raise ParameterError("batch_size", f"{batch_size} is not divisible by the {world} data-parallel ranks")
        rng = np.random.default_rng([self.seed, int(iteration)])
        idx = rng.choice(self.indices, size=batch_size)
        lq, gt, _ = self.make(idx, rng, inject=True)
        per = batch_size // world
        return lq[rank * per:(rank + 1) * per], gt[rank * per:(rank + 1) * per]

    def fixed(self, count: int, seed: int = 12345) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """A fixed, seeded evaluation set: the first ``count`` indices of the split, one draw each."""
        idx = self.indices[: min(count, len(self.indices))]
        return self.make(idx, np.random.default_rng([seed, len(idx)]))
