"""The PSF of an input image, from its header: instrument, detector, filter, pixel scale and drizzle keywords.

Where a TinyTim PSF is shipped for the instrument, detector and filter (``resources/psfs``, from drizzlepac
3.11.0's ``pars/psfs``: ACS/WFC F435W F606W F775W F814W F850LP, WFC3/UVIS F606W F814W, WFC3/IR F105W F125W
F140W F160W, each at its detector's native scale), it is resampled to the image's pixel scale (flux
conserved, cropped around its peak).  Otherwise the PSF is a Gaussian whose FWHM is the diffraction core
of the 2.4 m mirror at the filter's pivot wavelength (1.03 λ/D) added in quadrature to the detector's native
pixel.  Drizzled images (DRZ/DRC, or D001SCAL/NDRIZIM keywords) are flagged: their noise is correlated.

:func:`instrument_psf` says which it used, so every table and file can state it.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from galviewer.core.nn.resources import resource_path
from galviewer.core.psf.gaussian import ACS_WFC_FWHM_ARCSEC, ACS_WFC_PIXEL_SCALE, gaussian_psf
from galviewer.errors import ParameterError

__all__ = ["NATIVE_SCALE", "InstrumentPSF", "fine_fwhm", "fwhm_of", "instrument_psf", "psf_at_fwhm", "shipped_psfs",
           "training_psfs"]

# Native detector pixel scales (arcsec), instrument handbooks.
NATIVE_SCALE = {("ACS", "WFC"): 0.05, ("ACS", "HRC"): 0.025, ("WFC3", "UVIS"): 0.04, ("WFC3", "IR"): 0.13,
                ("STIS", "CCD"): 0.0508, ("WFPC2", ""): 0.0996}
_MIRROR_M = 2.4
# Pivot wavelength (nm) of unfiltered modes: STIS CCD 50CCD/Clear (STIS Instrument Handbook).
_UNFILTERED = {("STIS", "CCD"): 585.0}


@dataclass(frozen=True)
class InstrumentPSF:
    """A PSF kernel at an image's pixel scale and where it came from.

    Attributes
    ----------
    kernel : numpy.ndarray
        Odd-sided, unit-sum kernel at ``pixel_scale``.
    fwhm_pix : float
        FWHM of the kernel's core in pixels (half-maximum area).
    pixel_scale : float
        Arcsec per pixel of the image.
    source : str
        What the kernel is (shipped TinyTim file and resampling, or the Gaussian and why).
    drizzled : bool
        The image is a drizzled product (correlated noise).
    """

    kernel: np.ndarray
    fwhm_pix: float
    pixel_scale: float
    source: str
    drizzled: bool

    def __post_init__(self) -> None:
        self.kernel.setflags(write=False)  # shared by every caller (cached)

    def describe(self, ascii: bool = False) -> str:
        """One line for tables, ``galviewer info`` and (``ascii=True``) FITS headers."""
        text = (f"{self.source}; FWHM {self.fwhm_pix:.2f} px = {self.fwhm_pix * self.pixel_scale:.3f}″"
                + ("; drizzled (correlated noise)" if self.drizzled else ""))
        if ascii:
            text = text.replace("″", " arcsec").replace("⊕", "(+)").encode("ascii", "replace").decode()
        return text

    def fitting_kernel(self, stamp_side: int, size: int = 15) -> np.ndarray:
        """The kernel cropped to at most ``size`` (odd) and to the stamp, renormalised, for Sérsic fits."""
        n = min(size, self.kernel.shape[0], stamp_side if stamp_side % 2 else stamp_side - 1)
        c, h = self.kernel.shape[0] // 2, n // 2
        k = self.kernel[c - h: c + h + 1, c - h: c + h + 1]
        return k / k.sum()


def fwhm_of(kernel: np.ndarray) -> float:
    """FWHM (pixels) of a kernel's core, from the area above half its maximum: 2·sqrt(area/π)."""
    k = np.asarray(kernel, dtype=np.float64)
    return float(2.0 * math.sqrt(np.count_nonzero(k >= 0.5 * k.max()) / math.pi))


def fine_fwhm(kernel: np.ndarray, oversample: int = 8) -> float:
    """FWHM (pixels) of a kernel's core measured on a cubic-spline ``oversample``-fold resampling: free of the
    pixel quantisation of :func:`fwhm_of` (whose areas of 1, 2, 3… pixels give 1.13, 1.60, 1.95… px)."""
    from scipy import ndimage

    k = np.asarray(kernel, dtype=np.float64)
    c = np.unravel_index(int(np.argmax(k)), k.shape)
    h = 4
    core = np.pad(k, h)[c[0]: c[0] + 2 * h + 1, c[1]: c[1] + 2 * h + 1]
    return fwhm_of(ndimage.zoom(core, oversample, order=3, grid_mode=True, mode="grid-constant")) / oversample


def shipped_psfs() -> list[str]:
    """Names (``acs_wfc_f814w``, ...) of the shipped TinyTim PSFs."""
    return sorted(p.name.split(".")[0] for p in resource_path("psfs").glob("*.fits.gz"))


@functools.lru_cache(maxsize=32)
def _tinytim(name: str) -> tuple[np.ndarray, float]:
    from astropy.io import fits

    with fits.open(resource_path("psfs", f"{name}.fits.gz")) as h:
        return np.asarray(h[0].data, dtype=np.float64), float(h[0].header["PIXSCALE"])


# Empirical PSFs of drizzled mosaics, preferred over TinyTim at their own pixel scale (±5 %): the
# WFC3/IR F105W PSF of the Hubble Frontier Fields Abell 2744 mosaic at 0.06″/px that petrofit 0.5.0 ships
# (BSD-3); its core FWHM (0.17″) is narrower than the native-scale TinyTim model resampled to 0.06″ (0.23″).
EMPIRICAL = {("wfc3_ir_f105w", 0.06): "wfc3_ir_f105w_0.06"}


@functools.lru_cache(maxsize=8)
def _empirical(name: str) -> np.ndarray:
    from astropy.io import fits

    with fits.open(resource_path("psfs", "empirical", f"{name}.fits.gz")) as h:
        k = np.clip(np.asarray(h[0].data, dtype=np.float64), 0.0, None)
    return k / k.sum()


def _resample(psf: np.ndarray, native: float, scale: float, size: int) -> np.ndarray:
    """Resample a PSF from ``native`` to ``scale`` arcsec/px (cubic spline of the surface brightness, flux
    renormalised), cropped to ``size`` around the peak."""
    from scipy import ndimage

    zoom = native / scale
    out = ndimage.zoom(psf, zoom, order=3, mode="grid-constant", grid_mode=True) if abs(zoom - 1) > 1e-3 else psf
    out = np.clip(out, 0.0, None)
    py, px = np.unravel_index(int(np.argmax(out)), out.shape)
    half = size // 2
    padded = np.pad(out, half)
    crop = padded[py: py + size, px: px + size]
    return crop / crop.sum()


def training_psfs() -> list[str]:
    """Names of every shipped PSF shape: the TinyTim models and the empirical ones (``empirical/...``)."""
    return shipped_psfs() + sorted(f"empirical/{f}" for f in EMPIRICAL.values())


@functools.lru_cache(maxsize=512)
def _psf_at_fwhm(name: str, fwhm_pix: float, size: int) -> np.ndarray:
    if name.startswith("empirical/"):
        psf, native = _empirical(name.split("/", 1)[1]), next(at for (_, at), f in EMPIRICAL.items()
                                                             if f == name.split("/", 1)[1])
    else:
        psf, native = _tinytim(name)
    scale = fine_fwhm(psf) * native / fwhm_pix  # the core FWHM in arcsec over the target in pixels
    for _ in range(2):  # resampling broadens the core a little: two secant steps on the scale
        scale *= fine_fwhm(_resample(psf, native, scale, size)) / fwhm_pix
    kernel = _resample(psf, native, scale, size)
    kernel.setflags(write=False)
    return kernel


def psf_at_fwhm(name: str, fwhm_pix: float, size: int = 21) -> np.ndarray:
    """A shipped PSF shape resampled to the pixel scale at which its core has the given FWHM.

    The trainer degrades GT stamps with these (real rings, spikes and wings beside Gaussians), and the
    viewer's residual uses the same kernels for images whose PSF is shipped.

    Parameters
    ----------
    name : str
        One of :func:`training_psfs`.
    fwhm_pix : float
        Target core FWHM in pixels as measured by :func:`fine_fwhm`.
    size : int
        Odd side of the kernel.

    Returns
    -------
    numpy.ndarray
        Read-only, unit-sum kernel.

    Raises
    ------
    ParameterError
        For an unknown name, a FWHM outside 0.8–8 px or an even size.
    """
    if name not in training_psfs():
        raise ParameterError("psf", f"{name!r} is not a shipped PSF (known: {', '.join(training_psfs())})")
    if not (math.isfinite(fwhm_pix) and 0.8 <= fwhm_pix <= 8.0):
        raise ParameterError("fwhm_pix", f"must be within 0.8–8 px, got {fwhm_pix}")
    if not (isinstance(size, int) and size >= 3 and size % 2 == 1):
        raise ParameterError("size", f"must be an odd integer >= 3, got {size!r}")
    return _psf_at_fwhm(name, round(float(fwhm_pix), 3), size)


def _pivot_nm(instrument: str, detector: str, filt: str) -> float | None:
    """Pivot wavelength (nm) read from an HST filter name: F814W → 814 nm; WFC3/IR F160W → 1600 nm."""
    m = re.match(r"F(\d{3,4})", filt.upper())
    if not m:
        return _UNFILTERED.get((instrument, detector)) if filt.upper() in ("CLEAR", "50CCD", "") else None
    value = float(m.group(1))
    return value * 10.0 if instrument == "WFC3" and detector == "IR" else value


def instrument_psf(meta: Any, header: Any = None, *, size: int = 25) -> InstrumentPSF:
    """The PSF of an image described by its :class:`~galviewer.core.io.fits.ImageMeta`.

    Parameters
    ----------
    meta : ImageMeta
        Instrument, detector, filter, kind (FLT/DRZ/plain) and pixel scale of the image.
    header : astropy.io.fits.Header, optional
        Its header, for the drizzle keywords (``D001SCAL``, ``NDRIZIM``).
    size : int
        Odd side of the kernel.

    Returns
    -------
    InstrumentPSF

    Raises
    ------
    ParameterError
        For an even or non-positive size.
    """
    if not (isinstance(size, int) and size >= 3 and size % 2 == 1):
        raise ParameterError("size", f"must be an odd integer >= 3, got {size!r}")
    inst = str(getattr(meta, "instrument", "") or "").upper().strip()
    det = str(getattr(meta, "detector", "") or "").upper().strip()
    filt = str(getattr(meta, "filter", "") or "").upper().split(";")[0].strip()
    scale = float(getattr(meta, "pixel_scale", math.nan))
    drizzled = getattr(meta, "kind", "") == "DRZ" or (
        header is not None and any(k in header for k in ("D001SCAL", "NDRIZIM")))
    native = NATIVE_SCALE.get((inst, det), NATIVE_SCALE.get((inst, ""), math.nan))
    assumed = not (math.isfinite(scale) and scale > 0)
    if assumed:
        scale = native if math.isfinite(native) else ACS_WFC_PIXEL_SCALE
    return _instrument_psf(inst, det, filt, scale, assumed, bool(drizzled), size)


@functools.lru_cache(maxsize=64)
def _instrument_psf(inst: str, det: str, filt: str, scale: float, assumed: bool, drizzled: bool,
                    size: int) -> InstrumentPSF:
    """:func:`instrument_psf` for plain keys, cached: the CLI, the fits, the verdict and the FITS writer ask for
    the same image's PSF several times per restoration, and a resampling costs milliseconds."""
    native = NATIVE_SCALE.get((inst, det), NATIVE_SCALE.get((inst, ""), math.nan))
    where = f" (no celestial WCS: {scale:g}″/px assumed)" if assumed else ""
    name = f"{inst}_{det}_{filt}".lower()
    for (key, at), file in EMPIRICAL.items():
        if key == name and abs(scale / at - 1) <= 0.05:
            kernel = _resample(_empirical(file), at, scale, size)
            source = f"empirical {name} PSF of the HFF drizzled mosaic at {at:g}″/px (petrofit 0.5.0){where}"
            return InstrumentPSF(kernel, fwhm_of(kernel), scale, source, drizzled)
    if inst and det and filt and name in shipped_psfs():
        psf, psf_scale = _tinytim(name)
        kernel = _resample(psf, psf_scale, scale, size)
        source = f"TinyTim {name} ({psf_scale:g}″/px, drizzlepac 3.11.0) resampled to {scale:.4g}″/px{where}"
        return InstrumentPSF(kernel, fwhm_of(kernel), scale, source, drizzled)
    pivot = _pivot_nm(inst, det, filt) if inst else None
    if pivot is not None and math.isfinite(native):
        diffraction = 1.03 * pivot * 1e-9 / _MIRROR_M * 206264.806
        fwhm_arcsec = math.hypot(diffraction, native)
        why = (f"Gaussian: diffraction core of {inst}/{det} {filt} ({diffraction:.3f}″) ⊕ its {native:g}″ pixel"
               f"{where}")
    else:
        fwhm_arcsec = ACS_WFC_FWHM_ARCSEC
        said = "/".join(x for x in (inst, det, filt) if x)
        said = f"no PSF known for {said}" if said else "no INSTRUME/DETECTOR/FILTER keywords"
        why = f"Gaussian: ACS/WFC's {ACS_WFC_FWHM_ARCSEC}″ assumed ({said}){where}"
    fwhm = fwhm_arcsec / scale
    return InstrumentPSF(gaussian_psf(fwhm, size), fwhm, scale, why, drizzled)
