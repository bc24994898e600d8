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

from galviewer.core.psf.degrade import correlated_noise
from galviewer.core.psf.gaussian import gaussian_psf, pixelated_gaussian, sigma_to_fwhm
from galviewer.core.psf.instrument import psf_at_fwhm, training_psfs
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
    log_noise_fraction : float
        Fraction of samples whose noise rms is drawn log-uniformly from ``noise_floor`` to the top of
        ``noise_range`` instead (bright sources: real stars reach rms 5e-4 of their peak after min-max).
    noise_floor : float
        Bottom of the log-uniform noise draw.
    real_psf_fraction : float
        Fraction of samples blurred by a shipped HST PSF (TinyTim ACS/WFC3 models and the empirical HFF
        WFC3/IR one: rings, spikes, wings; :func:`~galviewer.core.psf.instrument.psf_at_fwhm`), resampled
        so that its core FWHM is uniform in ``real_psf_fwhm``, in a random one of 8 orientations, instead
        of a Gaussian.
    real_psf_fwhm : (float, float)
        Core FWHM range (pixels) of the real PSFs.
    real_psf_size : int
        Side of the real kernels (odd; 21 keeps the first ring and the spikes' inner parts).
    background_fraction : float
        Fraction of samples given a structured background in GT (so in LQ too, and kept by the target):
        half a plane gradient (0–25 % of the source's span across the stamp), half the exponential halo
        of a neighbour centred 36–90 px away (2–40 % of the span at the stamp centre, at most 1.5× the
        span anywhere).
    neighbour_fraction : float
        Fraction of samples given a second galaxy (another training stamp, 2–120 % of the first's span,
        offset 6–44 px): blends near the centre, sources cut by the stamp's edge farther out.
    """

    fwhm_range: tuple[float, float] = (round(sigma_to_fwhm(0.65), 3), round(sigma_to_fwhm(0.95), 3))
    noise_range: tuple[float, float] = (0.01, 0.1)
    correlated_fraction: float = 0.0
    point_fraction: float = 0.0
    psf_size: int = 7
    augment: bool = True
    log_noise_fraction: float = 0.0
    noise_floor: float = 5e-4
    real_psf_fraction: float = 0.0
    real_psf_fwhm: tuple[float, float] = (1.6, 3.0)
    real_psf_size: int = 21
    background_fraction: float = 0.0
    neighbour_fraction: float = 0.0

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
        for name in ("log_noise_fraction", "real_psf_fraction", "background_fraction", "neighbour_fraction"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 <= v <= 1):
                raise ParameterError(name, f"must be in [0, 1], got {v!r}")
        if self.log_noise_fraction > 0 and not (isinstance(self.noise_floor, int | float)
                                               and 0 < self.noise_floor <= self.noise_range[1]):
            raise ParameterError("noise_floor", f"must be in (0, {self.noise_range[1]}] (the top of noise_range), "
                                 f"got {self.noise_floor!r}")
        lo, hi = self.real_psf_fwhm
        if not (0.8 <= lo <= hi <= 8):
            raise ParameterError("real_psf_fwhm", f"must satisfy 0.8 <= low <= high <= 8 px, got {self.real_psf_fwhm}")
        if self.real_psf_size < self.psf_size or self.real_psf_size % 2 == 0 or self.real_psf_size > 31:
            raise ParameterError("real_psf_size", f"must be odd, >= psf_size ({self.psf_size}) and <= 31, got "
                                 f"{self.real_psf_size}")

    @property
    def structured(self) -> bool:
        """Whether any of the real-data options (issue 11) is on; off, the data stream is that of release 0.2."""
        return any(v > 0 for v in (self.log_noise_fraction, self.real_psf_fraction, self.background_fraction,
                                   self.neighbour_fraction))


def gaussian_kernels(fwhm: np.ndarray, size: int) -> torch.Tensor:
    """Pixel-integrated circular Gaussian kernels ``(B, 1, size, size)`` of unit sum (:func:`gaussian_psf`)."""
    k = np.stack([gaussian_psf(float(f), size) for f in np.atleast_1d(fwhm)])
    return torch.from_numpy(k[:, None].astype(np.float32))


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each ``(B, 1, H, W)`` sample to [0, 1] (METHOD §3); constant samples become 0."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / torch.clamp(hi - lo, min=1e-12)


def _taper(n: int, width: int) -> np.ndarray:
    """1 inside, a sin² ramp over ``width`` pixels at both ends."""
    w = np.ones(n)
    ramp = np.sin(0.5 * np.pi * (np.arange(width) + 0.5) / width) ** 2
    w[:width] = ramp
    w[-width:] = ramp[::-1]
    return w


def _paste(dst: np.ndarray, src: np.ndarray, dy: int, dx: int) -> None:
    """Add ``src`` shifted by (dy, dx) pixels into ``dst`` of the same shape; what falls outside is lost."""
    ny, nx = dst.shape
    if abs(dy) >= ny or abs(dx) >= nx:
        return
    dst[max(dy, 0): ny + min(dy, 0), max(dx, 0): nx + min(dx, 0)] += \
        src[max(-dy, 0): ny - max(dy, 0), max(-dx, 0): nx - max(dx, 0)]


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
        kernels = gaussian_kernels(fwhm, d.psf_size)
        info: dict = {}
        if d.structured:  # one more draw from rng, only then: the release-0.2 streams are unchanged
            srng = np.random.default_rng(rng.integers(0, 2**63 - 1))
            gt, rms, kernels, info = self._structure(gt, rms, kernels, srng)
        gt = np.stack([_dihedral(g, k) for g, k in zip(gt, ks, strict=True)])
        gt_t = torch.from_numpy(np.ascontiguousarray(gt, dtype=np.float32))[:, None]
        pad = kernels.shape[-1] // 2
        blurred = F.conv2d(F.pad(gt_t, (pad, pad, pad, pad), mode="reflect").transpose(0, 1),
                           kernels, groups=b).transpose(0, 1)
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
                                          "point": points, **info}

    def _structure(self, gt: np.ndarray, rms: np.ndarray, kernels: torch.Tensor,
                   srng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, torch.Tensor, dict]:
        """The real-data options of :class:`DegradeConfig`: log-uniform noise, real PSFs, structured
        backgrounds and neighbours.  Every draw is made for every sample, so the stream's shape never depends
        on which options fire."""
        d = self.degrade
        b, ny, nx = gt.shape
        span = gt.max(axis=(1, 2)) - gt.min(axis=(1, 2))
        # Noise: bright sources are far below the paper's 0.01 after min-max.
        lognoise = srng.random(b) < d.log_noise_fraction
        top = max(d.noise_range[1], 1e-12)
        logdraw = np.exp(srng.uniform(np.log(min(d.noise_floor, top)), np.log(top), b))
        rms = np.where(lognoise, logdraw, rms)
        # Structured backgrounds: a gradient or a neighbour's halo, in GT (the target keeps them).
        bg = srng.random(b) < d.background_fraction
        halo = srng.random(b) < 0.5
        theta = srng.uniform(0, 2 * np.pi, b)
        grad = srng.uniform(0.0, 0.25, b)
        dist = srng.uniform(36.0, 90.0, b)
        scale_len = srng.uniform(10.0, 40.0, b)
        halo_amp = srng.uniform(0.02, 0.4, b)
        yy, xx = np.mgrid[:ny, :nx].astype(np.float64)
        xx -= (nx - 1) / 2.0
        yy -= (ny - 1) / 2.0
        for i in np.flatnonzero(bg):
            c, s_ = np.cos(theta[i]), np.sin(theta[i])
            if halo[i]:
                r = np.hypot(xx - dist[i] * c, yy - dist[i] * s_)
                h = halo_amp[i] * span[i] * np.exp(-(r - dist[i]) / scale_len[i])
                gt[i] += h * min(1.0, 1.5 * span[i] / max(float(h.max()), 1e-30))  # at most 1.5× the source
            else:
                gt[i] += grad[i] * span[i] * (c * xx + s_ * yy) / max(nx, ny)
        # Neighbours: blends near the centre, edge-cut sources farther out.
        nb = srng.random(b) < d.neighbour_fraction
        other = srng.choice(self.indices, size=b)
        other_k = srng.integers(0, 8, b)
        radius = srng.uniform(6.0, 44.0, b)
        angle = srng.uniform(0, 2 * np.pi, b)
        ratio = np.exp(srng.uniform(np.log(0.02), np.log(1.2), b))
        if nb.any():
            taper = _taper(ny, 6)[:, None] * _taper(nx, 6)[None, :]
            stamps = self.shards.gt(other[nb]).astype(np.float64)
            for i, o in zip(np.flatnonzero(nb), stamps, strict=True):
                o = _dihedral(o, int(other_k[i])) - np.median(o)
                o = o * (ratio[i] * span[i] / max(float(o.max() - o.min()), 1e-30)) * taper
                _paste(gt[i], o, round(radius[i] * np.sin(angle[i])), round(radius[i] * np.cos(angle[i])))
        # PSFs: shipped HST shapes beside the Gaussians, all in one kernel size.
        real = srng.random(b) < d.real_psf_fraction
        names = training_psfs()
        which = srng.integers(0, len(names), b)
        real_fwhm = srng.uniform(*d.real_psf_fwhm, b)
        orient = srng.integers(0, 8, b)
        psf_name = np.array(["gaussian"] * b, dtype=object)
        if d.real_psf_fraction > 0:
            size, g = d.real_psf_size, d.psf_size
            k = np.zeros((b, 1, size, size), np.float32)
            o = (size - g) // 2
            k[:, :, o:o + g, o:o + g] = kernels.numpy()
            for i in np.flatnonzero(real):
                psf_name[i] = names[which[i]]
                kern = psf_at_fwhm(names[which[i]], round(float(real_fwhm[i]) / 0.05) * 0.05, size)
                k[i, 0] = _dihedral(kern, int(orient[i]))
            kernels = torch.from_numpy(k)
        return gt, rms, kernels, {"background": np.where(bg, np.where(halo, "halo", "gradient"), ""),
                                  "neighbour": nb, "psf": psf_name,
                                  "real_psf_fwhm": np.where(real, real_fwhm, np.nan)}

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
