"""Ground-truth galaxy stamps rendered with GalSim (METHOD §3.2–3.3).

Two sets, both 64×64, in pixel units of the LQ image (ACS/WFC, 0.05″):

* ``sersic`` — the paper's pre-training set: one elliptical Sérsic galaxy per
  stamp, its (axis ratio, n, flux, R50, noise) drawn from a 5-D prior.  The
  default prior is a multivariate normal in transformed coordinates shipped in
  ``resources/priors/sersic_default.json`` (its provenance is written there);
  ``--prior-from CATALOG`` builds a :class:`scipy.stats.gaussian_kde` over
  measured galaxies instead and resamples it, keeping their correlations.
* ``realistic`` — the stand-in for the paper's JWST fine-tuning set (no JWST
  mosaic can be downloaded here): bulge + disk, star-forming knots
  (``galsim.RandomKnots``), logarithmic spiral arms, lopsided asymmetry, close
  companions and blends, a fraction of point sources and of blank stamps.

Every GT is convolved with a small Gaussian GT PSF (FWHM 1.3 px: NIRCam F200W,
0.066″, at 0.05″/px) and carries a little white noise so that, as in §3.3, its
rms after min-max normalisation stays below 0.02.  Each stamp depends only on
(seed, index), never on the number of worker processes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from galviewer.core.nn.resources import resource_path
from galviewer.core.sim.synth import realistic_galaxy
from galviewer.errors import ParameterError
from trainer.shards import PARAM_NAMES, ShardWriter

PRIOR_COLUMNS = PARAM_NAMES

__all__ = [
    "GT_NOISE_RANGE",
    "GT_PSF_FWHM",
    "KINDS",
    "POINT_HALF_BOX",
    "STAMP",
    "GaussianPrior",
    "KDEPrior",
    "load_prior",
    "render_realistic",
    "render_sersic_gt",
    "simulate",
]

STAMP = 64
GT_PSF_FWHM = 1.3
N_GRID = 0.05  # Sérsic n is quantised to this step so GalSim's per-n tables are reused.
N_RANGE = (0.5, 6.0)
R50_RANGE = (1.2, 14.0)
Q_RANGE = (0.15, 1.0)
GT_RMS_MAX = 0.02
GT_NOISE_RANGE = (0.002, 0.015)  # GT rms after min-max, below §3.3's 0.02 cut
POINT_HALF_BOX = 12.0  # point sources lie within ±12 px of the centre: the central 24×24 px (§6.2)
KINDS = ("sersic", "realistic")


def _logit(x: np.ndarray) -> np.ndarray:
    return np.log(x / (1.0 - x))


def _to_space(samples: np.ndarray) -> np.ndarray:
    """Physical (q, n, flux, r50, noise) → unbounded coordinates (logit q, log n, log flux, log r50, log noise)."""
    q = np.clip(samples[:, 0], 0.02, 0.999)
    return np.column_stack([_logit(q), *(np.log(samples[:, i]) for i in range(1, 5))])


def _from_space(z: np.ndarray) -> np.ndarray:
    q = 1.0 / (1.0 + np.exp(-z[:, 0]))
    return np.column_stack([q, *(np.exp(z[:, i]) for i in range(1, 5))])


def _clip_physical(p: np.ndarray) -> np.ndarray:
    p = p.copy()
    p[:, 0] = np.clip(p[:, 0], *Q_RANGE)
    p[:, 1] = np.clip(np.round(p[:, 1] / N_GRID) * N_GRID, *N_RANGE)
    p[:, 3] = np.clip(p[:, 3], *R50_RANGE)
    return p


@dataclass(frozen=True)
class GaussianPrior:
    """Multivariate normal over (logit q, ln n, ln flux, ln R50, ln noise)."""

    mean: np.ndarray
    cov: np.ndarray
    source: str

    def sample(self, rng: np.random.Generator, size: int = 1) -> np.ndarray:
        """Draw ``size`` rows of physical (q, n, flux, r50, noise), clipped to the renderable ranges."""
        z = rng.multivariate_normal(self.mean, self.cov, size=size)
        return _clip_physical(_from_space(z))


@dataclass(frozen=True)
class KDEPrior:
    """Gaussian KDE over measured galaxies (paper §3.2), in the same transformed coordinates."""

    data: np.ndarray  # (5, N) transformed
    source: str

    def sample(self, rng: np.random.Generator, size: int = 1) -> np.ndarray:
        """Resample the KDE (keeps the correlations of the catalogue)."""
        from scipy.stats import gaussian_kde

        kde = gaussian_kde(self.data)
        z = kde.resample(size, seed=rng).T
        return _clip_physical(_from_space(z))


def load_prior(catalog: str | os.PathLike[str] | None = None) -> GaussianPrior | KDEPrior:
    """The default prior, or a KDE built from a catalogue of measured galaxies.

    Parameters
    ----------
    catalog : path-like, optional
        A table readable by :func:`astropy.table.Table.read` (ECSV, FITS, CSV)
        with columns ``q, n, flux, r50, noise`` — e.g. ``harvest``'s
        ``catalog.ecsv``.  Rows with non-finite or non-positive values are dropped.
    """
    if catalog is None:
        path = resource_path("priors", "sersic_default.json")
        d = json.loads(path.read_text())
        return GaussianPrior(np.asarray(d["mean"], float), np.asarray(d["cov"], float), f"default ({path.name})")
    from astropy.table import Table

    path = Path(catalog)
    if not path.is_file():
        raise ParameterError("prior_from", f"{path}: no such file")
    try:
        table = Table.read(path)
    except Exception as exc:  # astropy raises many types for unreadable tables
        raise ParameterError("prior_from", f"{path}: not a readable table ({exc})") from exc
    missing = [c for c in PRIOR_COLUMNS if c not in table.colnames]
    if missing:
        raise ParameterError("prior_from", f"{path}: missing columns {missing} (needs {list(PRIOR_COLUMNS)})")
    phys = np.column_stack([np.asarray(table[c], dtype=float) for c in PRIOR_COLUMNS])
    good = np.isfinite(phys).all(axis=1) & (phys > 0).all(axis=1) & (phys[:, 0] < 1.0)
    phys = phys[good]
    if len(phys) < 10:
        raise ParameterError("prior_from", f"{path}: only {len(phys)} usable galaxies; a 5-D KDE needs at least 10")
    return KDEPrior(_to_space(phys).T, f"gaussian_kde of {len(phys)} galaxies in {path.name}")


# --------------------------------------------------------------------------------------------- rendering


def _draw(obj, rng: np.random.Generator, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    import galsim

    psf = galsim.Gaussian(fwhm=GT_PSF_FWHM)
    img = galsim.Convolve(obj, psf).drawImage(nx=STAMP, ny=STAMP, scale=1.0, offset=offset)
    return img.array.astype(np.float64)


def _finish(img: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    return (img + rng.normal(0.0, noise, img.shape)).astype(np.float32)


def _gt_rms_ok(img: np.ndarray, noise: float) -> bool:
    span = float(img.max() - img.min())
    return span > 0 and noise / span < GT_RMS_MAX


def render_sersic_gt(params: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """One Sérsic GT stamp from physical ``(q, n, flux, r50, noise)``; random angle and sub-pixel offset."""
    import galsim

    q, n, flux, r50, noise = (float(v) for v in params)
    gal = galsim.Sersic(n=n, half_light_radius=r50, flux=flux)
    gal = gal.shear(q=q, beta=float(rng.uniform(0, math.pi)) * galsim.radians)
    off = tuple(rng.uniform(-0.5, 0.5, 2))
    return _finish(_draw(gal, rng, off), noise, rng)


def render_realistic(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One realistic GT stamp and its parameters (q, n, flux, r50, noise; NaN where not defined).

    Mixture: 88 % galaxies (25 % of them with a companion or blend), 8 % point
    sources (random position in the central 24×24 px, as in §6.2), 4 % blank
    noise-only stamps, so the model learns not to invent sources.
    """
    import galsim

    u = rng.random()
    off = tuple(rng.uniform(-0.5, 0.5, 2))
    if u < 0.04:
        noise = float(rng.uniform(0.5, 2.0))
        return rng.normal(0.0, noise, (STAMP, STAMP)).astype(np.float32), np.array([np.nan] * 4 + [noise])
    if u < 0.12:
        flux = float(np.exp(rng.uniform(np.log(500), np.log(50000))))
        pos = tuple(rng.uniform(-POINT_HALF_BOX, POINT_HALF_BOX, 2))
        img = _draw(galsim.DeltaFunction(flux=flux), rng, pos)
        noise = _noise_for(img, rng)
        return _finish(img, noise, rng), np.array([1.0, np.nan, flux, 0.0, noise])
    gal, flux = realistic_galaxy(rng)
    if rng.random() < 0.25:
        comp, _ = realistic_galaxy(rng, scale=float(rng.uniform(0.3, 0.8)))
        comp = comp.withFlux(flux * float(rng.uniform(0.05, 0.6)))
        ang = rng.uniform(0, 2 * math.pi)
        sep = rng.uniform(6, 24)
        gal = gal + comp.shift(sep * math.cos(ang), sep * math.sin(ang))
    img = _draw(gal, rng, off)
    noise = _noise_for(img, rng)
    return _finish(img, noise, rng), np.array([np.nan, np.nan, flux, np.nan, noise])


def _noise_for(img: np.ndarray, rng: np.random.Generator) -> float:
    """GT noise: rms after min-max uniform in ``GT_NOISE_RANGE`` (below §3.3's 0.02 cut)."""
    span = float(img.max() - img.min())
    return float(rng.uniform(*GT_NOISE_RANGE)) * span


def _render_one(kind: str, seed: int, index: int, prior) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, index])
    if kind == "realistic":
        return render_realistic(rng)
    for _ in range(100):
        params = prior.sample(rng, 1)[0]
        img = render_sersic_gt(params, rng)
        if _gt_rms_ok(img, params[4]):
            return img, params
    raise ParameterError("prior", f"could not draw a stamp with GT rms < {GT_RMS_MAX} after 100 tries "
                         "(the prior's noise is too high for its fluxes)")


def _render_chunk(args: tuple[str, int, list[int], object]) -> tuple[np.ndarray, np.ndarray]:
    kind, seed, indices, prior = args
    imgs, params = zip(*(_render_one(kind, seed, i, prior) for i in indices), strict=True)
    return np.stack(imgs), np.stack(params)


def simulate(
    kind: str,
    count: int,
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    workers: int = 1,
    shard_size: int = 4096,
    prior_from: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render ``count`` GT stamps of ``kind`` into a shard folder.

    Parameters
    ----------
    kind : {"sersic", "realistic"}
    count : int
        Number of stamps.
    out : path-like
        Folder to create (refused if it exists and is not empty, unless ``overwrite``).
    seed : int
        Stamp ``i`` depends only on ``(seed, i)``.
    workers : int
        Processes to render with.
    shard_size : int
        Stamps per ``.npy`` shard.
    prior_from : path-like, optional
        Catalogue for the KDE prior (``sersic`` only).
    overwrite : bool
        Replace an existing shard folder.
    progress : callable, optional
        Called as ``progress(done, total)``.

    Returns
    -------
    pathlib.Path
        The shard folder.
    """
    if kind not in KINDS:
        raise ParameterError("kind", f"must be one of {KINDS}, got {kind!r}")
    if not (isinstance(count, int) and count > 0):
        raise ParameterError("count", f"must be a positive integer, got {count!r}")
    if workers < 1:
        raise ParameterError("workers", f"must be >= 1, got {workers}")
    if prior_from is not None and kind != "sersic":
        raise ParameterError("prior_from", "only the sersic set is drawn from a prior")
    prior = load_prior(prior_from) if kind == "sersic" else None
    info = {"kind": kind, "seed": seed, "stamp": STAMP, "gt_psf_fwhm_pix": GT_PSF_FWHM,
            "prior": getattr(prior, "source", None), "n_grid": N_GRID}
    writer = ShardWriter(out, info=info, shard_size=shard_size, overwrite=overwrite)
    chunk = 64
    jobs = [(kind, seed, list(range(s, min(s + chunk, count))), prior) for s in range(0, count, chunk)]
    done = 0
    try:
        if workers == 1:
            results = map(_render_chunk, jobs)
            for imgs, params in results:
                writer.add(imgs, params)
                done += len(imgs)
                if progress:
                    progress(done, count)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for imgs, params in pool.map(_render_chunk, jobs):
                    writer.add(imgs, params)
                    done += len(imgs)
                    if progress:
                        progress(done, count)
    except BaseException:
        writer.abort()
        raise
    return writer.close()

