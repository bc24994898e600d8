"""Cosmic-ray cleaning of single-exposure (FLT/FLC) stamps with L.A.Cosmic (astroscrappy), as the paper
did (§5.1), with parameters chosen so that stars survive.

Measured on the real STIS CCD FLT pair ``o4k19a010_flt.fits`` (stwcs 1.7.7; a 256×256 region around the
star at (736, 331) of SCI,1, cosmic rays taken as the pixels of SCI,1 above SCI,2 by more than 6σ of their
ERR: 114 pixels; star pixels: bright in both exposures, 102 pixels):

==========================  ========  ======  =====================  ==============
sigclip / objlim            detected  missed  flagged, not in truth  on star pixels
==========================  ========  ======  =====================  ==============
4.5 / 5 (the viewer's old)  111       3       768                    85
6 / 20 (default now)        110       4       155                    1
8 / 20                      109       5       107                    1
==========================  ========  ======  =====================  ==============

The old setting erased stellar cores (the STIS PSF is undersampled, so a star looks as sharp as a cosmic
ray to the Laplacian test); ``objlim`` 20 keeps them and loses one cosmic-ray pixel in 100.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from galviewer.core.io.stamps import Stamp

__all__ = ["CR_OBJLIM", "CR_SIGCLIP", "clean_cosmic_rays", "cleanable", "cosmic_ray_mask"]

CR_SIGCLIP = 6.0
CR_OBJLIM = 20.0


def cleanable(image: Any) -> bool:
    """Whether cosmic-ray cleaning applies to an image: single exposures (FLT/FLC) only — drizzled images have
    their cosmic rays rejected already, and plain images say nothing of how they were made."""
    return getattr(getattr(image, "meta", None), "kind", "") == "FLT"


def clean_cosmic_rays(stamp: Stamp, readnoise: float | None = None) -> tuple[Stamp, int]:
    """L.A.Cosmic on a stamp of a single exposure in electrons (or counts at gain 1).

    Parameters
    ----------
    stamp : Stamp
    readnoise : float, optional
        Read noise in the stamp's units; default the header's READNSE when the stamp's image gave one, else 4.5.

    Returns
    -------
    (Stamp, int)
        The cleaned stamp (cosmic-ray pixels replaced by astroscrappy and added to ``bad``, so they show with
        *masks* and count as in-painted) and the number of pixels cleaned.
    """
    if readnoise is None:
        readnoise = float(stamp.extra.get("readnoise", math.nan))
    mask, clean = _lacosmic(stamp.lq, stamp.bad, readnoise)
    n = int(mask.sum())
    if n == 0:
        return stamp, 0
    return dataclasses.replace(stamp, lq=np.asarray(clean, dtype=stamp.lq.dtype), bad=stamp.bad | mask), n


def cosmic_ray_mask(image: Any, readnoise: float | None = None) -> np.ndarray:
    """The cosmic-ray pixels of a whole single-exposure image (L.A.Cosmic with the stamps' star-safe settings),
    for detection (:func:`~galviewer.core.measure.detect.detect` leaves them out of the segments).

    Parameters
    ----------
    image : Image
        An image for which :func:`cleanable` holds (FLT/FLC); others get an empty mask.
    readnoise : float, optional
        As :func:`clean_cosmic_rays` (default: the header's READNSE, else 4.5).

    Returns
    -------
    numpy.ndarray of bool
        The image's shape; True on cosmic-ray pixels (the image's own bad pixels are not included).
    """
    data = np.asarray(image.data)
    if not cleanable(image):
        return np.zeros(data.shape, bool)
    if readnoise is None:
        from galviewer.core.io.fits import header_readnoise

        readnoise = header_readnoise(image.header)
    bad = np.asarray(image.bad, dtype=bool) | ~np.isfinite(data)
    work = np.where(bad, np.float32(np.nanmedian(data[~bad])) if (~bad).any() else np.float32(0), data)
    mask, _ = _lacosmic(work, bad, readnoise)
    return np.asarray(mask, bool) & ~bad


def _lacosmic(data: np.ndarray, bad: np.ndarray, readnoise: float) -> tuple[np.ndarray, np.ndarray]:
    """astroscrappy with the star-safe settings (module docstring); a read noise that is not a positive number
    is taken as 4.5.  Returns (cosmic-ray mask, cleaned data)."""
    import astroscrappy

    if not (math.isfinite(readnoise) and readnoise > 0):
        readnoise = 4.5
    return astroscrappy.detect_cosmics(np.ascontiguousarray(data, dtype=np.float32), inmask=bad,
                                       sigclip=CR_SIGCLIP, objlim=CR_OBJLIM, gain=1.0, readnoise=readnoise,
                                       satlevel=np.inf)
