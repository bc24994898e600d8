"""Builders of realistic test inputs: HST-structured FITS files, galaxies, tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from astropy.io import fits

from galviewer.core.nn.restormer import Restormer, RestormerConfig
from galviewer.core.nn.weights import ModelMetadata, save_checkpoint

CRVAL = (150.1163213, 2.2058927)  # COSMOS field centre


def sip_header(shape: tuple[int, int], scale_arcsec: float = 0.05, rot_deg: float = 23.0) -> fits.Header:
    """A celestial TAN-SIP WCS header like ACS/WFC's (CD matrix, 2nd/3rd-order SIP)."""
    ny, nx = shape
    s = scale_arcsec / 3600.0
    c, sn = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    h["CRPIX1"], h["CRPIX2"] = nx / 2 + 0.5, ny / 2 + 0.5
    h["CRVAL1"], h["CRVAL2"] = CRVAL
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -s * c, s * sn, s * sn, s * c
    h["A_ORDER"], h["B_ORDER"] = 3, 3
    for key, val in {"A_2_0": 8.6e-6, "A_1_1": -5.4e-6, "A_0_2": 2.2e-6, "A_3_0": 1.1e-10, "A_1_2": -3e-10,
                     "B_2_0": -4.3e-6, "B_1_1": 6.1e-6, "B_0_2": -7.9e-6, "B_2_1": 2.2e-10, "B_0_3": 4e-11}.items():
        h[key] = val
    return h


def tan_header(shape: tuple[int, int], scale_arcsec: float = 0.05) -> fits.Header:
    """A plain TAN WCS header (as in DRZ products)."""
    ny, nx = shape
    s = scale_arcsec / 3600.0
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRPIX1"], h["CRPIX2"] = nx / 2 + 0.5, ny / 2 + 0.5
    h["CRVAL1"], h["CRVAL2"] = CRVAL
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -s, 0.0, 0.0, s
    return h


def galaxy(shape: tuple[int, int], x: float, y: float, flux: float = 5000.0, r: float = 3.0, q: float = 0.6,
           theta: float = 0.5) -> np.ndarray:
    """An elliptical exponential profile (fast stand-in for a galaxy) of total flux ``flux``."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    dx, dy = xx - x, yy - y
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * dx + s * dy, (-s * dx + c * dy) / q
    img = np.exp(-np.hypot(u, v) / r)
    return flux * img / img.sum()


SOURCES = [(120.3, 80.7, 8000.0), (40.0, 150.0, 3000.0), (250.0, 30.0, 5000.0)]


def science(shape: tuple[int, int], rng: np.random.Generator, bkg: float = 40.0, rms: float = 6.0) -> np.ndarray:
    img = np.full(shape, bkg) + rng.normal(0, rms, shape)
    for x, y, f in SOURCES:
        img += galaxy(shape, x, y, f)
    return img.astype(np.float32)


def primary_header(instrument: str = "ACS", filetype: str = "SCI") -> fits.Header:
    h = fits.Header()
    h["TELESCOP"] = "HST"
    h["INSTRUME"] = instrument
    h["DETECTOR"] = "WFC" if instrument == "ACS" else "UVIS"
    h["ROOTNAME"] = "j8pu0ypaq"
    h["FILETYPE"] = filetype
    h["FILTER1"] = "F606W"
    h["FILTER2"] = "CLEAR2L"
    h["EXPTIME"] = 507.0
    h["NEXTEND"] = 6
    return h


def write_flt(path: Path, shape: tuple[int, int] = (200, 300), seed: int = 1, header_only_err: bool = False) -> Path:
    """An ACS/WFC FLT-structured file: primary + (SCI, ERR, DQ) × 2 chips, electrons, SIP WCS."""
    rng = np.random.default_rng(seed)
    hdus: list = [fits.PrimaryHDU(header=primary_header())]
    for chip in (1, 2):
        sci = science(shape, rng) * (1.0 if chip == 1 else 1.3)
        h = sip_header(shape, rot_deg=23.0 + chip)
        h["BUNIT"] = "ELECTRONS"
        h["PHOTFLAM"] = 7.7e-20
        h["PHOTZPT"] = -21.1
        h["PHOTPLAM"] = 5921.1
        sci_hdu = fits.ImageHDU(sci, header=h, name="SCI", ver=chip)
        err = np.sqrt(np.clip(sci, 0, None) + 6.0**2).astype(np.float32)
        if header_only_err:
            eh = fits.Header()
            eh["NPIX1"], eh["NPIX2"], eh["PIXVALUE"] = shape[1], shape[0], 6.0
            err_hdu = fits.ImageHDU(None, header=eh, name="ERR", ver=chip)
        else:
            err_hdu = fits.ImageHDU(err, header=h.copy(), name="ERR", ver=chip)
        dq = np.zeros(shape, np.int16)
        dq[10, 10:20] = 4  # bad detector pixels
        dq[100, 50] = 16  # hot pixel
        dq[101, 51] = 64  # warm pixel
        hdus += [sci_hdu, err_hdu, fits.ImageHDU(dq, header=h.copy(), name="DQ", ver=chip)]
    fits.HDUList(hdus).writeto(path)
    return path


def write_drz(path: Path, shape: tuple[int, int] = (200, 300), seed: int = 2) -> Path:
    """A DRZ-structured file: primary + SCI (e-/s) + WHT + CTX, TAN WCS."""
    rng = np.random.default_rng(seed)
    sci = science(shape, rng) / 507.0
    h = tan_header(shape)
    h["BUNIT"] = "ELECTRONS/S"
    h["PHOTFLAM"] = 7.7e-20
    h["PHOTZPT"] = -21.1
    wht = np.full(shape, 1014.0, np.float32)
    wht[:, :5] = 0.0
    sci[:, :5] = 0.0
    ctx = np.ones(shape, np.int32)
    fits.HDUList([
        fits.PrimaryHDU(header=primary_header(filetype="SCI")),
        fits.ImageHDU(sci.astype(np.float32), header=h, name="SCI", ver=1),
        fits.ImageHDU(wht, header=h.copy(), name="WHT", ver=1),
        fits.ImageHDU(ctx, header=h.copy(), name="CTX", ver=1),
    ]).writeto(path)
    return path


def write_plain(path: Path, data: np.ndarray, header: fits.Header | None = None) -> Path:
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


def tiny_model(seed: int = 0, preset: str = "tiny") -> Restormer:
    torch.manual_seed(seed)
    m = Restormer(RestormerConfig.from_preset(preset))
    # Randomise the LayerNorm weights and temperatures too, so round-trips test every tensor.
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith(("body.weight", "temperature")):
                p.uniform_(0.5, 1.5)
    return m.eval()


def write_tiny_checkpoint(path: Path, seed: int = 0, preset: str = "tiny") -> Path:
    meta = ModelMetadata(name=f"{preset}-random", training_data="random weights (tests)")
    return save_checkpoint(path, tiny_model(seed, preset), meta)


def framing_forward(batch: np.ndarray) -> np.ndarray:
    """A stand-in network that returns its input with a bright 4-px frame added along the edges (as the
    shipped model framed bright sources): a restoration that cannot explain its data."""
    out = np.array(batch, dtype=np.float32, copy=True)
    for sl in ((slice(None), slice(0, 4)), (slice(None), slice(-4, None))):
        out[(slice(None), *sl)] += 0.3
        out[(slice(None), sl[1], slice(None))] += 0.3
    return out


def write_two_chip_flt(path: Path, gap: int = 20) -> Path:
    """:func:`write_flt` with SCI,2 moved on the sky to sit ``gap`` px above SCI,1, as the chips of ACS/WFC."""
    write_flt(path)
    with fits.open(path, mode="update") as hdul:
        h = hdul["SCI", 2].header
        h["CRPIX2"] -= hdul["SCI", 1].data.shape[0] + gap
    return path
