"""The LQ-vs-RS comparison table shown in the app, printed by ``galviewer measure`` and written to exports."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from galviewer.core.measure.background import background, usable_pixels
from galviewer.core.measure.photometry import Photometry, photometry
from galviewer.core.measure.sersic import POINT_R50_PIX, SersicFit, fit_sersic
from galviewer.core.psf.degrade import convolve
from galviewer.errors import ParameterError

__all__ = ["FIT_CENTRE_TOLERANCE", "POINT_R50_PIX", "Measurements", "compare"]

_SERSIC_ROWS = [
    ("Sérsic n", "", "n"),
    ("R50", "px", "r50"),
    ("e1", "", "e1"),
    ("e2", "", "e2"),
    ("I(R50)", "counts/px", "i50"),
    ("x0 (stamp)", "px", "x0"),
    ("y0 (stamp)", "px", "y0"),
]


def _magnitude(flux: float, err: float, zeropoint: float) -> tuple[float, float]:
    """AB magnitude and its error from a flux and its 1-σ error (NaN for a non-positive flux)."""
    if not (math.isfinite(flux) and flux > 0 and math.isfinite(zeropoint)):
        return math.nan, math.nan
    return zeropoint - 2.5 * math.log10(flux), 2.5 / math.log(10) * err / flux if math.isfinite(err) else math.nan


def _pm(v: float, e: float, digits: int = 4) -> str:
    if not math.isfinite(v):
        return "—"
    if not math.isfinite(e):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}g} ± {e:.2g}"


FIT_CENTRE_TOLERANCE = 3.0
"""A Sérsic fit's centre may lie this far (px; or a quarter of the Kron semi-major axis, if larger) from the
source's LQ centroid; farther, the fit is flagged *off target* (it cannot move beyond twice that)."""


@dataclass
class Measurements:
    """Sérsic fits and photometry of LQ and RS (and GT when given), plus how well RS explains LQ.

    Attributes
    ----------
    fits : dict of str to SersicFit
        ``"LQ"``, ``"RS"`` (and ``"GT"``).  LQ is fitted with the LQ PSF, RS/GT with ``rs_psf``.
    phot : Photometry
        Kron/isophotal photometry with apertures defined on LQ.
    flux_conservation : float
        Kron flux of PSF⊗RS over LQ's: LQ's Kron ellipse and background, photutils' sum (1 = conserved).
    flux_conservation_err : float
        Its 1-σ error (LQ's Kron flux error; PSF⊗RS is smooth).
    psf_spill : float
        (Kron flux of RS − of PSF⊗RS) / LQ's: the light the PSF carries across the ellipse's edge, so that
        Kron(RS) / Kron(LQ) = ``flux_conservation`` + ``psf_spill`` exactly.
    residual_chi2 : float
        Mean of ((LQ − PSF ⊗ RS) / σ)² over usable pixels (≈ 1 when RS explains LQ to the noise).
    residual_rms : float
        rms of LQ − PSF ⊗ RS (input units).
    noise_rms : float
        The σ used (median of the error map).
    """

    fits: dict[str, SersicFit]
    phot: Photometry
    flux_conservation: float
    residual_chi2: float
    residual_rms: float
    noise_rms: float
    bunit: str = ""
    pixel_scale: float = math.nan
    ab_zeropoint: float = math.nan
    flux_conservation_err: float = math.nan
    psf_spill: float = math.nan
    zeropoint_source: str = ""

    def with_units(self, meta: Any) -> Measurements:
        """The same numbers labelled with an image's units (:class:`~galviewer.core.io.fits.ImageMeta`): BUNIT,
        arcsec per pixel, and the AB zero point — from PHOTFLAM/PHOTPLAM (HST's, per second: counts or electrons
        are divided by EXPTIME) or else from the header's own zero point keyword (``meta.magzero_key``, taken as
        AB) —, so the table shows R50 in arcsec, AB magnitudes and surface brightness, and says where the zero
        point came from."""
        if meta is None:
            return self
        unit = str(getattr(meta, "bunit", "") or "").strip()
        flam, plam = float(getattr(meta, "photflam", math.nan)), float(getattr(meta, "photplam", math.nan))
        zp, source = math.nan, ""
        if flam > 0 and plam > 0:
            zp = -2.5 * math.log10(flam) - 5.0 * math.log10(plam) - 2.408
            source = "PHOTFLAM/PHOTPLAM"
            if "/S" not in unit.upper().replace(" ", ""):
                exptime = float(getattr(meta, "exptime", math.nan))
                zp, source = (zp + 2.5 * math.log10(exptime), source + " and EXPTIME") if exptime > 0 \
                    else (math.nan, "")
        if not math.isfinite(zp) and math.isfinite(float(getattr(meta, "magzero", math.nan))):
            zp, source = float(meta.magzero), f"header {meta.magzero_key}"
        return dataclasses.replace(self, bunit=unit, pixel_scale=float(getattr(meta, "pixel_scale", math.nan)),
                                   ab_zeropoint=zp, zeropoint_source=source)

    def magnitudes(self, name: str) -> dict[str, tuple[float, float]]:
        """AB magnitudes ± errors of one image: ``kron``, ``iso``, ``sersic`` (total) and ``mu_r50`` (Sérsic
        surface brightness at R50, mag/arcsec²); NaN without a zero point, a positive flux or a pixel scale."""
        zp = self.ab_zeropoint
        nan = (math.nan, math.nan)
        out = {"kron": nan, "iso": nan, "sersic": nan, "mu_r50": nan}
        if not math.isfinite(zp):
            return out
        p = self.phot.images.get(name) if self.phot.ok else None
        if p is not None:
            out["kron"] = _magnitude(p.kron_flux, p.kron_flux_err, zp)
            out["iso"] = _magnitude(p.iso_flux, p.iso_flux_err, zp)
        f = self.fits.get(name)
        if f is not None:
            out["sersic"] = _magnitude(f.total_flux, f.total_flux_err, zp)
            if math.isfinite(self.pixel_scale) and self.pixel_scale > 0:
                out["mu_r50"] = _magnitude(f.i50 / self.pixel_scale**2, f.i50_err / self.pixel_scale**2, zp)
        return out

    @property
    def names(self) -> list[str]:
        """Image names in table order."""
        return list(self.fits)

    @property
    def point_like(self) -> bool:
        """True when the LQ Sérsic fit is unresolved (R50 < POINT_R50_PIX): a star or compact source.

        The network is not trained to sharpen point sources (README, Limits); callers flag them.
        """
        f = self.fits.get("LQ")  # a fit pinned at its smallest R50 is flagged not-ok, yet it is the most point-like
        return f is not None and math.isfinite(f.r50) and f.r50 < POINT_R50_PIX

    def rows(self) -> list[tuple[str, str, list[str]]]:
        """Table rows: (quantity, unit, one formatted cell per image)."""
        rows: list[tuple[str, str, list[str]]] = []
        for label, unit, attr in _SERSIC_ROWS:
            if attr == "i50" and self.bunit:
                unit = f"{self.bunit} per px"
            rows.append((label, unit, [_pm(getattr(f, attr), getattr(f, f"{attr}_err")) for f in self.fits.values()]))
        rows.append(("Sérsic χ²ᵣ", "", [_pm(f.chi2_red, math.nan, 3) for f in self.fits.values()]))
        rows.append(("Sérsic fit", "", ["ok" if f.ok else "FLAGGED: " + "; ".join(f.flags or (f.reason,))
                                        for f in self.fits.values()]))
        unit = self.bunit or "counts (no BUNIT)"
        rows.append(("Sérsic total flux", unit, [_pm(f.total_flux, f.total_flux_err, 5) for f in self.fits.values()]))
        p = self.phot
        for label, attr in (("Kron flux", "kron_flux"), ("isophotal flux", "iso_flux")):
            rows.append((label, unit, [
                _pm(getattr(p.images[k], attr), getattr(p.images[k], f"{attr}_err"), 5) if p.ok and k in p.images
                else "—" for k in self.fits]))
        if math.isfinite(self.ab_zeropoint):
            mags = {k: self.magnitudes(k) for k in self.fits}
            for label, key, u in (("Kron magnitude", "kron", "AB mag"), ("isophotal magnitude", "iso", "AB mag"),
                                  ("Sérsic magnitude", "sersic", "AB mag"), ("μ at R50 (Sérsic)", "mu_r50",
                                                                             "AB mag/arcsec²")):
                rows.append((label, u, [_pm(*mags[k][key], 5) for k in self.fits]))
            rows.append(("AB zero point", "AB mag", [f"{self.ab_zeropoint:.4f} ({self.zeropoint_source})",
                                                     *[""] * (len(self.fits) - 1)]))
        rows.append(("FWHM (profile)", "px", [
            _pm(p.images[k].fwhm, math.nan, 3) if p.ok and k in p.images else "—" for k in self.fits]))
        rows.append(("R50 (growth curve)", "px", [
            _pm(p.images[k].r50_cog, math.nan, 3) if p.ok and k in p.images else "—" for k in self.fits]))
        if math.isfinite(self.pixel_scale):
            rows.append(("R50 (Sérsic)", "arcsec", [_pm(f.r50 * self.pixel_scale, f.r50_err * self.pixel_scale, 3)
                                                     for f in self.fits.values()]))
        if "RS" not in self.fits:
            return rows
        extra = [""] * (len(self.fits) - 1)
        rows.append(("flux conservation Kron(PSF⊗RS) / Kron(LQ)", "",
                     [_pm(self.flux_conservation, self.flux_conservation_err, 4), *extra]))
        rows.append(("+ PSF spill across the Kron ellipse", "", [_pm(self.psf_spill, math.nan, 3), *extra]))
        ratio = (p.images["RS"].kron_flux / p.images["LQ"].kron_flux if p.ok and "RS" in p.images
                 and p.images["LQ"].kron_flux > 0 else math.nan)
        rows.append(("= Kron(RS) / Kron(LQ)", "", [_pm(ratio, math.nan, 4), *extra]))
        rows.append(("residual χ² (LQ − PSF⊗RS)", "", [_pm(self.residual_chi2, math.nan, 3), *extra]))
        rows.append(("residual rms / noise rms", "", [_pm(self.residual_rms / self.noise_rms, math.nan, 3)
                                                     if self.noise_rms > 0 else "—", *extra]))
        return rows

    def as_text(self) -> str:
        """The table as aligned plain text (what "Copy" puts on the clipboard)."""
        head = ["quantity", "unit", *self.names]
        body = [[q, u, *cells] for q, u, cells in self.rows()]
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *body]]
        if not self.phot.ok:
            lines.append(f"photometry: {self.phot.reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable numbers (NaN → None)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float | np.floating):
                return float(v) if math.isfinite(v) else None
            return v

        out: dict[str, Any] = {}
        for name, f in self.fits.items():
            d = {k: clean(getattr(f, k)) for k in f.__dataclass_fields__}
            p = self.phot.images.get(name) if self.phot.ok else None
            if p is not None:
                d.update(kron_flux=clean(p.kron_flux), kron_flux_err=clean(p.kron_flux_err),
                         iso_flux=clean(p.iso_flux), iso_flux_err=clean(p.iso_flux_err), fwhm=clean(p.fwhm),
                         r50_cog=clean(p.r50_cog), background_level=clean(p.background))
            d["flags"] = list(f.flags)
            d["magnitudes_ab"] = {k: {"mag": clean(v), "err": clean(e)} for k, (v, e) in self.magnitudes(name).items()}
            out[name] = d
        out["photometry_ok"] = self.phot.ok
        out["photometry_reason"] = self.phot.reason
        if self.phot.ok:
            out["kron_ellipse"] = {"x": self.phot.x, "y": self.phot.y, "a": self.phot.kron_a, "b": self.phot.kron_b,
                                   "theta_rad": self.phot.theta}
            out["segment_area"] = self.phot.segment_area
        out.update(flux_conservation=clean(self.flux_conservation),
                   flux_conservation_err=clean(self.flux_conservation_err), psf_spill=clean(self.psf_spill),
                   residual_chi2=clean(self.residual_chi2),
                   residual_rms=clean(self.residual_rms), noise_rms=clean(self.noise_rms),
                   units={"flux": self.bunit or None, "pixel_scale_arcsec": clean(self.pixel_scale),
                          "ab_zeropoint": clean(self.ab_zeropoint),
                          "ab_zeropoint_source": self.zeropoint_source or None,
                          "r50": "pix", "x0": "pix", "y0": "pix", "i50": f"{self.bunit or 'counts'} per pix",
                          "mu_r50": "AB mag / arcsec2", "magnitudes": "AB mag"})
        return out


def compare(
    lq: np.ndarray,
    rs: np.ndarray | None,
    psf: np.ndarray,
    *,
    err: np.ndarray | float | None = None,
    mask: np.ndarray | None = None,
    rs_psf: np.ndarray | None = None,
    rs_err: np.ndarray | float | None = None,
    gt: np.ndarray | None = None,
    lq_psf: np.ndarray | None = None,
) -> Measurements:
    """Measure LQ and RS the same way (METHOD §4) and check that RS explains LQ.

    Parameters
    ----------
    lq : array_like
        LQ stamp (input units).
    rs : array_like or None
        Restored stamp in the same units (``Restoration.data``); None measures LQ alone.
    psf : array_like
        Pixel-integrated LQ PSF kernel (``Restoration.psf``).
    err : array_like or float, optional
        1-σ noise of LQ; default its background rms.
    mask : array_like of bool, optional
        Bad pixels (True).
    rs_psf : array_like, optional
        PSF of the restored image (the model's GT PSF) used in RS's Sérsic fit;
        None fits RS without PSF, which slightly overestimates R50 for the smallest sources.
    rs_err : array_like or float, optional
        1-σ uncertainty of RS per pixel for its Sérsic fit (default: RS's background
        rms).  Restored pixels are correlated, so either choice understates the
        parameter errors of RS; :func:`compare_restoration` adds the 8-way spread.
    gt : array_like, optional
        A ground truth, measured like RS (evaluation).
    lq_psf : array_like, optional
        PSF for LQ's Sérsic fit (e.g. the instrument's); default ``psf``.

    Returns
    -------
    Measurements

    Raises
    ------
    ParameterError
        For images of different shapes or PSF kernels that are not odd-sided.
    """
    a = np.asarray(lq, dtype=np.float64)
    if a.ndim != 2 or min(a.shape) < 8:
        raise ParameterError("lq", f"must be a 2-D stamp of at least 8×8 pixels, got shape {a.shape}")
    b = np.asarray(rs if rs is not None else np.zeros_like(a), dtype=np.float64)
    if b.shape != a.shape:
        raise ParameterError("rs", f"shape {b.shape} differs from the LQ stamp's {a.shape}")
    k = np.asarray(psf, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ParameterError("psf", f"must be a 2-D kernel with odd sides, got shape {k.shape}")
    if min(a.shape) < max(k.shape):
        raise ParameterError("psf", f"kernel {k.shape} is larger than the stamp {a.shape}")
    others = {"RS": b} if rs is not None else {}
    if gt is not None:
        g = np.asarray(gt, dtype=np.float64)
        if g.shape != a.shape:
            raise ParameterError("gt", f"shape {g.shape} differs from the LQ stamp's {a.shape}")
        others["GT"] = g
    blurred = convolve(np.where(np.isfinite(b), b, 0.0), k) if rs is not None else None
    phot = photometry(a, others, err=err, mask=mask, kron_only={"PSF⊗RS": blurred} if rs is not None else None)
    good = usable_pixels(a, mask) & np.isfinite(b)
    # The target only: its neighbours' (grown) segments are masked, the way GALFIT and imfit users fit one
    # galaxy of a group, and the centre is held near the source photometry found (else flagged off target).
    fit_mask = ~good if not phot.ok or phot.neighbours is None else ~good | phot.neighbours
    if phot.ok:
        target, tol = (phot.x, phot.y), max(FIT_CENTRE_TOLERANCE, 0.25 * phot.kron_a)
    else:
        target, tol = ((a.shape[1] - 1) / 2.0, (a.shape[0] - 1) / 2.0), FIT_CENTRE_TOLERANCE
    sky = "plane" if phot.ok and phot.sky_plane else "constant"  # on a halo: GALFIT's sky with gradients
    fits = {"LQ": fit_sersic(a, k if lq_psf is None else np.asarray(lq_psf, dtype=np.float64), err=err,
                             mask=fit_mask, x0=target, centre_tolerance=tol, sky=sky)}
    for name, img in others.items():
        fits[name] = fit_sersic(img, rs_psf, err=rs_err if name == "RS" else None, mask=fit_mask, x0=target,
                                centre_tolerance=tol, sky=sky)
    sigma = np.broadcast_to(np.asarray(err, dtype=np.float64), a.shape) if err is not None \
        else np.full(a.shape, background(a, mask=~good).rms)
    use = good & np.isfinite(sigma) & (sigma > 0)
    chi2 = rms = conservation = conservation_err = spill = math.nan
    if blurred is not None:
        resid = a - blurred
        chi2 = float(np.mean((resid[use] / sigma[use]) ** 2)) if use.any() else math.nan
        rms = float(np.std(resid[good])) if good.any() else math.nan
        if phot.ok and "RS" in phot.images:
            # One definition: the Kron flux photutils gives, through LQ's Kron ellipse, above LQ's background,
            # neighbours corrected by mirroring (SExtractor's MASK_TYPE CORRECT), for LQ, RS and PSF⊗RS alike.
            # The restoration must reproduce the data's flux above the data's sky, so a sky offset of RS counts.
            # Kron(RS)/Kron(LQ) = conservation + spill, the spill being the light the PSF carries across the
            # ellipse's edge (RS is sharper than LQ), so the table's three numbers agree by construction.
            lq_k = phot.images["LQ"].kron_flux
            conv_k = phot.kron_only["PSF⊗RS"][0]
            if lq_k > 0:
                conservation = conv_k / lq_k
                # PSF⊗RS is smooth: the noise of the ratio is that of LQ's Kron flux
                conservation_err = conservation * phot.images["LQ"].kron_flux_err / lq_k
                spill = (phot.images["RS"].kron_flux - conv_k) / lq_k
    noise = float(np.median(sigma[use])) if use.any() else math.nan
    return Measurements(fits=fits, phot=phot, flux_conservation=conservation, residual_chi2=chi2,
                        residual_rms=rms, noise_rms=noise, flux_conservation_err=conservation_err, psf_spill=spill)
