"""The restored stamp as a FITS file: RS in the input's units with the cut-out's WCS, LQ, SIGMA, RESID and MASK
extensions, and the provenance (model, pipeline steps, verdict) in the header; written atomically."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from galviewer.errors import ExportError


def _provenance_header(restoration: Any) -> fits.Header:
    from galviewer import __version__

    st = restoration.stamp
    m = restoration.meta
    h = fits.Header()
    h["GV_VERS"] = (__version__, "galviewer version")
    # Variable-length strings carry no comment, so long values never truncate (CONTINUE cards).
    h["MODEL"] = str(m.get("model", ""))
    h["MODELSHA"] = str(m.get("model_sha256", ""))
    h["RESCALE"] = (str(m.get("rescale", "")), "method mapping RS to input units")
    h["RS_SCALE"] = (float(restoration.scale), "RS_phys = RS_SCALE * RS_norm + RS_OFFS")
    h["RS_OFFS"] = (float(restoration.offset), "offset of that mapping, input units")
    if m.get("context"):
        h["CONTEXT"] = (int(m["context"]), "[pix] restored with this margin, then cropped")
    h["TTA"] = (bool(m.get("uncertainty", False)), "SIGMA from 8 flips/rotations")
    h["PSFFWHM"] = (float(m.get("psf_fwhm_pix", float("nan"))), "[pix] LQ Gaussian PSF FWHM")
    if m.get("residual_psf"):
        h["PSFRES"] = str(m["residual_psf"]).encode("ascii", "replace").decode()  # RESIDUAL = LQ - PSFRES * RS
    verdict = m.get("verdict")
    if verdict is not None:
        h["QUALITY"] = ("ok" if verdict.ok else "FAIL", "quality verdict without ground truth (README)")
        h["QLEVEL"] = (verdict.level, "ok, caution (outside training) or fail")
        if not verdict.ok:
            h["QFAILS"] = "; ".join(f"{c.name}={c.value:.4g}" for c in verdict.checks.values() if not c.ok)
        for key, name, comment in (("Q_CHI2", "chi2", "residual chi2/pix, limit 3"),
                                   ("Q_FLUX", "flux", "flux conservation in Kron ellipse, 1+-0.05"),
                                   ("Q_RMSRAT", "rms", "background rms RS/LQ, limit 1"),
                                   ("Q_BORDER", "border", "residual rms frame/interior, limit 1.5"),
                                   ("Q_NEWSRC", "new_sources", "sources in RS absent from LQ, limit 0"),
                                   ("Q_SRCS", "sources", "worst source flux error / allowed, limit 1"),
                                   ("Q_STRUCT", "structure", "matched-filter residual, worst sigma, lim 5")):
            check = verdict.checks.get(name)
            if check is not None and math.isfinite(check.value):
                h[key] = (check.value, comment)
    _measurement_cards(h, getattr(restoration, "measurements", None))
    decision = m.get("point_source_decision") or {}
    if decision:
        h["PTSMODE"] = (str(decision.get("mode", "")), "point-source mode: auto, on or off")
        if "spread_model" in decision:
            h["SPREAD"] = (float(decision["spread_model"]), "spread_model (0: unresolved), auto decision")
            h["SPREADER"] = (float(decision["spread_error"]), "its 1-sigma error")
    star = m.get("point_source")
    h["PTSRC"] = (star is not None, "point-source mode: star PSF-fitted, target PSF")
    if star is not None:
        h["PTSFLUX"] = (float(star["flux"]), "PSF-fitted flux of the star, input units")
        h["PTSX"] = (float(star["x"]), "its x in the stamp (0-based)")
        h["PTSY"] = (float(star["y"]), "its y in the stamp (0-based)")
    anchored = m.get("anchor")
    h["ANCHOR"] = (float(anchored["scale"]) if anchored else 0.0,
                   "px, large-scale anchoring sigma; 0: none")
    for k, step in enumerate(m.get("pipeline") or (), start=1):  # the pipeline's steps, in order
        h[f"STEP{k}"] = str(step).encode("ascii", "replace").decode()
    norm = m.get("normalisation")
    if norm:
        h["NORMTOP"] = (float(norm["top"]), "top of the min-max range, input units")
        h["NORM2ND"] = (bool(norm["second_pass"]), "bright margin source: second full-range pass")
    if "cosmic_rays" in m:
        h["NCRPIX"] = (int(m["cosmic_rays"]), "cosmic-ray pixels cleaned (L.A.Cosmic)")
    fixed = m.get("repair")
    if fixed is not None:
        h["REPAIRED"] = (int(fixed["regions"]) if fixed["iterations"] else 0,
                         "residual structures repaired locally")
    cons = m.get("consistency")
    h["CONSIST"] = (cons is not None, "RS fused with the data (data consistency)")
    if cons is not None:
        mu = float(cons["mu"])
        h["CONS_MU"] = (mu if math.isfinite(mu) else -1.0, "lambda*sigma^2 of the fusion; -1: RS kept")
        h["CHI2_NET"] = (float(cons["chi2_network"]), "residual chi2/pix of the network RS")
        h["CHI2_RS"] = (float(cons["chi2"]), "residual chi2/pix after the fusion")
    if st is not None:
        if st.source:
            h["SRCFILE"] = os.path.basename(st.source)
            h["SRCPATH"] = str(st.source)  # long paths use CONTINUE cards
            h["SRCEXT"] = (st.ext, "source extension")
        h["XCENTER"] = (float(st.center[0]), "[pix] source x in parent, 0-based")
        h["YCENTER"] = (float(st.center[1]), "[pix] source y in parent, 0-based")
        h["XORIGIN"] = (int(st.origin[0]), "[pix] parent x of stamp pixel 0, 0-based")
        h["YORIGIN"] = (int(st.origin[1]), "[pix] parent y of stamp pixel 0, 0-based")
        h["NBADPIX"] = (int(st.bad.sum()), "in-painted bad pixels")
        h["NPADPIX"] = (int(st.padded.sum()), "pixels outside the parent image")
        if st.wcs is not None:
            cx, cy = st.center_in_stamp
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    ra, dec = (float(v) for v in st.wcs.all_pix2world(cx, cy, 0))
            except Exception:
                ra = dec = float("nan")
            if np.isfinite(ra) and np.isfinite(dec):
                h["RA_CEN"] = (ra, "[deg] RA of the source centre")
                h["DEC_CEN"] = (dec, "[deg] Dec of the source centre")
            else:
                h["COMMENT"] = "The WCS gives no finite sky position for the source centre: RA_CEN/DEC_CEN omitted."
        if st.meta is not None:
            from galviewer.core.psf.instrument import instrument_psf

            h["PSFINST"] = instrument_psf(st.meta).describe(ascii=True)  # the PSF LQ's Sersic fit uses
            for key, value in (("INSTRUME", st.meta.instrument), ("DETECTOR", st.meta.detector),
                               ("FILTER", st.meta.filter)):
                if value:
                    h[key] = value
            if np.isfinite(st.meta.exptime):
                h["EXPTIME"] = st.meta.exptime
            for key, value in (("PHOTFLAM", st.meta.photflam), ("PHOTZPT", st.meta.photzpt),
                               ("PHOTPLAM", st.meta.photplam)):
                if np.isfinite(value):
                    h[key] = value
    return h


def _measurement_cards(h: fits.Header, measured: Any) -> None:
    """The Sérsic fits (with their flags), Kron fluxes and AB magnitudes of LQ and RS, when measured."""
    if measured is None:
        return
    from galviewer.core.measure.sersic import FLAG_BITS

    bits = ", ".join(f"{b} {k}" for k, b in FLAG_BITS.items())
    for tag, name in (("L", "LQ"), ("R", "RS")):
        f = measured.fits.get(name)
        if f is None:
            continue
        h[f"SERFL_{tag}"] = (int(f.flag_bits), f"{name} Sersic fit flags, 0 ok")
        if f.flags:
            h[f"SERWHY{tag}"] = "; ".join(f.flags).encode("ascii", "replace").decode()
        for key, value, comment in ((f"SERN_{tag}", f.n, f"{name} Sersic index"),
                                    (f"SERR50{tag}", f.r50, f"[pix] {name} Sersic R50"),
                                    (f"SERFX_{tag}", f.total_flux, f"{name} Sersic total flux, BUNIT")):
            if math.isfinite(value):
                h[key] = (float(value), comment)
        p = measured.phot.images.get(name) if measured.phot.ok else None
        if p is not None and math.isfinite(p.kron_flux):
            h[f"KRONF_{tag}"] = (float(p.kron_flux), f"{name} Kron flux, BUNIT")
            h[f"KRONE_{tag}"] = (float(p.kron_flux_err), f"{name} its 1-sigma error")
        mag, err = measured.magnitudes(name)["kron"]
        if math.isfinite(mag):
            h[f"KRONM_{tag}"] = (float(mag), f"{name} Kron AB magnitude")
            h[f"KRONME{tag}"] = (float(err) if math.isfinite(err) else -1.0, f"{name} its error")
    h["COMMENT"] = f"SERFL_L/R bits: {bits}"
    if math.isfinite(measured.ab_zeropoint):
        h["ABZP"] = (float(measured.ab_zeropoint), "AB zero point of BUNIT")
        h["ABZPFROM"] = str(measured.zeropoint_source)


def write_stamp(path: str | os.PathLike[str], restoration: Any, *, overwrite: bool = False) -> Path:
    """Write a restoration as a FITS stamp, atomically and without clobbering.

    Layout: primary HDU = restored image in the input's units with the stamp's
    WCS and provenance keywords; extensions ``LQ`` (the input), ``SIGMA``
    (uncertainty, when computed), ``RESID`` (LQ − PSF⊗RS) and ``MASK``
    (1 = in-painted bad pixel, 2 = outside the parent image).

    Parameters
    ----------
    path : path-like
        Destination.
    restoration : Restoration
        From :meth:`galviewer.Restorer.restore`.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OutputExistsError
        The file exists and ``overwrite`` is False.
    ExportError
        The file cannot be written.
    """
    from galviewer._atomic import atomic_write

    st = restoration.stamp
    for name in ("data", "lq", "residual", "sigma"):
        arr = getattr(restoration, name)
        if arr is not None and not np.isfinite(arr).all():
            raise ExportError(path, f"the {name} image holds NaN or infinite pixels; nothing was written")
    wcs_header = fits.Header()
    if st is not None and st.wcs is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyWarning)
                wcs_header = st.wcs.to_header(relax=True)
        except Exception as exc:
            raise ExportError(path, f"the stamp's WCS cannot be written: {type(exc).__name__}: {exc}") from exc
    bunit = st.meta.bunit if st is not None and st.meta is not None else ""
    primary = fits.PrimaryHDU(np.asarray(restoration.data, dtype=np.float32))
    primary.header.update(wcs_header)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        primary.header.update(_provenance_header(restoration))
    if bunit:
        primary.header["BUNIT"] = bunit
    primary.header["EXTNAME"] = "RS"
    hdus: list[Any] = [primary]

    def image(name: str, arr: np.ndarray, comment: str) -> fits.ImageHDU:
        hdu = fits.ImageHDU(np.asarray(arr), name=name)
        hdu.header.update(wcs_header)
        if bunit and name != "MASK":
            hdu.header["BUNIT"] = bunit
        hdu.header.add_comment(comment)
        return hdu

    hdus.append(image("LQ", np.asarray(restoration.lq, dtype=np.float32), "input stamp (padded/in-painted)"))
    if restoration.sigma is not None:
        # core.restore.calibration.SIGMA_CALIBRATED (the I/O layer does not import the restoration layer)
        calibrated = restoration.meta.get("sigma_kind") == "calibrated 1σ"
        hdus.append(image("SIGMA", restoration.sigma, "1-sigma: calibrated spread of the 8 flip/rotation "
                          "restorations" if calibrated else "spread of the 8 flips (not calibrated, not 1-sigma)"))
        hdus[-1].header["SIGKIND"] = ("1SIGMA" if calibrated else "SPREAD", "1SIGMA: calibrated; SPREAD: raw flips")
    hdus.append(image("RESID", restoration.residual, "LQ - PSF (x) RS"))
    if st is not None:
        mask = st.bad.astype(np.uint8) | (st.padded.astype(np.uint8) << 1)
        hdus.append(image("MASK", mask, "1 = in-painted bad pixel, 2 = outside the parent image"))
    hdul = fits.HDUList(hdus)
    return atomic_write(
        path, lambda tmp: hdul.writeto(tmp, output_verify="exception", overwrite=True), overwrite=overwrite
    )
