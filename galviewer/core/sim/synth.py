"""Synthetic galaxies shared by the trainer's realistic set and the built-in demo field.

Bulge + exponential disk, star-forming knots (``galsim.RandomKnots``), logarithmic
spiral arms and off-centre clumps, in pixel units.  Everything random comes from a
numpy Generator, so a caller seeding it per object gets reproducible objects.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["galsim_seed", "realistic_galaxy"]


def galsim_seed(rng: np.random.Generator):
    """A GalSim deviate seeded from a numpy Generator."""
    import galsim

    return galsim.BaseDeviate(int(rng.integers(1, 2**31 - 1)))


def _spiral_arms(r_disk: float, flux: float, rng: np.random.Generator):
    import galsim

    n_arms = int(rng.choice([2, 2, 3]))
    pitch = math.radians(rng.uniform(12, 30))
    phase = rng.uniform(0, 2 * math.pi)
    blobs = []
    n_per = 24
    for arm in range(n_arms):
        for j in range(n_per):
            r = r_disk * (0.4 + 2.2 * j / n_per)
            phi = phase + 2 * math.pi * arm / n_arms + math.log(r / (0.4 * r_disk)) / math.tan(pitch)
            w = math.exp(-r / (1.5 * r_disk))
            blobs.append(galsim.Gaussian(sigma=max(0.35 * r_disk * (0.3 + j / n_per), 0.5), flux=w)
                         .shift(r * math.cos(phi), r * math.sin(phi)))
    arms = galsim.Sum(blobs)
    return arms.withFlux(flux)


def realistic_galaxy(rng: np.random.Generator, scale: float = 1.0):
    """A random bulge + disk (+ knots, arms, clump) galaxy; returns the GalSim object and its flux.

    Parameters
    ----------
    rng : numpy.random.Generator
    scale : float
        Multiplies the disk size (for companions).
    """
    import galsim

    r_disk = scale * float(np.exp(rng.uniform(np.log(2.0), np.log(10.0))))
    flux = float(np.exp(rng.uniform(np.log(300), np.log(20000))))
    bt = float(rng.beta(1.2, 2.5))  # bulge-to-total
    f_knots = float(rng.uniform(0.0, 0.35)) if rng.random() < 0.7 else 0.0
    f_arms = float(rng.uniform(0.1, 0.3)) if rng.random() < 0.35 else 0.0
    f_disk = max(1.0 - bt - f_knots - f_arms, 0.05)
    q = float(rng.uniform(0.2, 1.0))
    beta = float(rng.uniform(0, math.pi)) * galsim.radians
    parts = [galsim.Exponential(half_light_radius=r_disk, flux=f_disk * flux)]
    if f_knots > 0:
        parts.append(galsim.RandomKnots(int(rng.integers(10, 80)), half_light_radius=r_disk * rng.uniform(0.7, 1.3),
                                        flux=f_knots * flux, rng=galsim_seed(rng)))
    if f_arms > 0:
        parts.append(_spiral_arms(r_disk, f_arms * flux, rng))
    disk = galsim.Sum(parts).shear(q=q, beta=beta)
    components = [disk]
    if bt > 0.02:
        r_bulge = r_disk * float(rng.uniform(0.15, 0.6))
        n_b = float(np.clip(np.round(rng.uniform(2.0, 5.0) / 0.5) * 0.5, 2.0, 5.0))
        bulge = galsim.Sersic(n=n_b, half_light_radius=max(r_bulge, 0.5), flux=bt * flux)
        components.append(bulge.shear(q=float(rng.uniform(0.6, 1.0)), beta=beta))
    gal = galsim.Sum(components)
    if rng.random() < 0.3:  # lopsided: a displaced clump of star formation
        clump = galsim.Gaussian(sigma=float(rng.uniform(0.6, 2.0)), flux=float(rng.uniform(0.03, 0.15)) * flux)
        ang = rng.uniform(0, 2 * math.pi)
        rr = r_disk * rng.uniform(0.5, 1.5)
        gal = gal + clump.shift(rr * math.cos(ang), rr * math.sin(ang))
    return gal, flux
