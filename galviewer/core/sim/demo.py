"""The built-in demo: a deterministic, HST ACS/WFC-like FLT exposure rendered with GalSim.

Two 1024×1024 chips (``SCI``, ``ERR``, ``DQ`` per chip, electrons, 507 s in F606W, 0.05″/px
TAN WCS near the COSMOS field), each with ~70 galaxies of the trainer's realistic kind
(bulge + disk, knots, spiral arms, companions), ~15 stars, sky + Poisson + read noise,
cosmic rays, a bad column, hot pixels and saturated star cores flagged in DQ as ACS does
(4 bad detector pixel, 16 hot pixel, 256 saturation, 8192 cosmic ray).  The PSF is the
Gaussian (FWHM 1.88 px) that galviewer's models assume — a real ACS PSF has wider wings.

The file is written once into the user cache (``$XDG_CACHE_HOME/galviewer`` or
``~/.cache/galviewer``) and reused; it is never shipped, nothing is downloaded.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from galviewer._atomic import atomic_write
from galviewer.core.sim.synth import realistic_galaxy

__all__ = ["DEMO_NAME", "demo_path", "ensure_demo", "make_demo"]

DEMO_NAME = "galviewer_demo_flt.fits"
_VERSION = 1
SHAPE = (1024, 1024)
SKY = 60.0  # e-/px in 507 s of F606W
READ_NOISE = 4.5
GAIN_SATURATION = 80000.0
PSF_FWHM = 1.88
CRVAL = (150.1163213, 2.2058927)


def cache_dir() -> Path:
    """The user cache folder of galviewer."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "galviewer"


def demo_path() -> Path:
    """Where the demo file lives (it may not exist yet)."""
    return cache_dir() / f"v{_VERSION}_{DEMO_NAME}"


def _wcs_header(chip: int):
    from astropy.io import fits

    ny, nx = SHAPE
    s = 0.05 / 3600.0
    rot = math.radians(23.0)
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRPIX1"], h["CRPIX2"] = nx / 2 + 0.5, ny / 2 + 0.5 + (0 if chip == 2 else -ny - 50)
    h["CRVAL1"], h["CRVAL2"] = CRVAL
    h["CD1_1"], h["CD1_2"] = -s * math.cos(rot), s * math.sin(rot)
    h["CD2_1"], h["CD2_2"] = s * math.sin(rot), s * math.cos(rot)
    h["BUNIT"] = "ELECTRONS"
    h["PHOTFLAM"] = 7.7e-20
    h["PHOTZPT"] = -21.1
    h["PHOTPLAM"] = 5921.1
    return h


def _render_chip(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    import galsim

    ny, nx = SHAPE
    image = galsim.ImageD(nx, ny, scale=1.0)
    psf = galsim.Gaussian(fwhm=PSF_FWHM)
    truth = []
    for _ in range(70):
        gal, flux = realistic_galaxy(rng)
        gal = gal.withFlux(flux * 3.0)
        x, y = rng.uniform(40, nx - 40), rng.uniform(40, ny - 40)
        stamp = galsim.Convolve(gal, psf).drawImage(nx=128, ny=128, scale=1.0,
                                                    center=galsim.PositionD(x + 1, y + 1))
        b = stamp.bounds & image.bounds
        if b.isDefined():
            image[b] += stamp[b]
        truth.append(("galaxy", x, y, flux * 3.0))
    for _ in range(15):
        flux = float(np.exp(rng.uniform(np.log(3e3), np.log(2e6))))
        x, y = rng.uniform(20, nx - 20), rng.uniform(20, ny - 20)
        stamp = psf.withFlux(flux).drawImage(nx=48, ny=48, scale=1.0, center=galsim.PositionD(x + 1, y + 1))
        b = stamp.bounds & image.bounds
        image[b] += stamp[b]
        truth.append(("star", x, y, flux))
    signal = image.array + SKY
    sci = rng.poisson(np.clip(signal, 0, None)).astype(np.float64) + rng.normal(0, READ_NOISE, signal.shape)
    dq = np.zeros(SHAPE, np.int16)
    sat = sci > GAIN_SATURATION
    sci[sat] = GAIN_SATURATION
    dq[sat] |= 256
    col = int(rng.integers(100, nx - 100))
    sci[:, col] = rng.normal(SKY * 0.2, 30, ny)
    dq[:, col] |= 4
    hot = rng.integers(0, ny, (60, 2))
    sci[hot[:, 0], hot[:, 1]] += rng.uniform(500, 5000, 60)
    dq[hot[:, 0], hot[:, 1]] |= 16
    for _ in range(250):  # cosmic rays: short straight tracks
        y0, x0 = rng.uniform(0, ny), rng.uniform(0, nx)
        length, ang = rng.uniform(1, 6), rng.uniform(0, math.pi)
        for t in np.linspace(0, length, max(int(length * 2), 1)):
            yy, xx = int(y0 + t * math.sin(ang)), int(x0 + t * math.cos(ang))
            if 0 <= yy < ny and 0 <= xx < nx:
                sci[yy, xx] += rng.uniform(300, 3000)
    err = np.sqrt(np.clip(signal, 0, None) + READ_NOISE**2)
    return sci.astype(np.float32), err.astype(np.float32), dq, truth


def make_demo(path: str | os.PathLike[str], seed: int = 2024, overwrite: bool = False) -> Path:
    """Render the demo FLT file (deterministic for a given ``seed``; ~10 s)."""
    from astropy.io import fits

    primary = fits.Header()
    for key, val in (("TELESCOP", "HST"), ("INSTRUME", "ACS"), ("DETECTOR", "WFC"), ("ROOTNAME", "gvdemo001"),
                     ("FILETYPE", "SCI"), ("FILTER1", "F606W"), ("FILTER2", "CLEAR2L"), ("EXPTIME", 507.0),
                     ("NEXTEND", 6), ("ORIGIN", "galviewer demo (GalSim)"),
                     ("COMMENT", "Synthetic ACS/WFC-like exposure made by galviewer.core.sim.demo; Gaussian PSF "
                                 "FWHM 1.88 px, not a real observation.")):
        primary[key] = val
    hdus: list = [fits.PrimaryHDU(header=primary)]
    for chip in (1, 2):
        rng = np.random.default_rng([seed, chip])
        sci, err, dq, _ = _render_chip(rng)
        h = _wcs_header(chip)
        hdus += [fits.ImageHDU(sci, header=h, name="SCI", ver=chip),
                 fits.ImageHDU(err, header=h, name="ERR", ver=chip),
                 fits.ImageHDU(dq, header=h, name="DQ", ver=chip)]
    return atomic_write(path, lambda tmp: fits.HDUList(hdus).writeto(tmp), overwrite=overwrite)


def ensure_demo() -> Path:
    """The demo file, rendering it into the cache on first use."""
    path = demo_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        make_demo(path)
    return path
