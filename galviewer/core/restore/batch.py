"""Batches: restore and measure many sources of one image (or of a chip mosaic) through the one pipeline,
and export their stamps and a catalogue.

Every source goes through :meth:`Pipeline.run_many <galviewer.core.restore.pipeline.Pipeline.run_many>`, so a
batch row is restored exactly as a click at its position (forward passes batched); detection is
:func:`galviewer.core.measure.detect.detect`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from galviewer.core.io.fits import Image
from galviewer.core.io.stamps import Stamp
from galviewer.core.io.write import write_stamp
from galviewer.core.measure.detect import Source
from galviewer.core.measure.sersic import FLAG_BITS
from galviewer.core.restore.result import Restoration
from galviewer.errors import OutputExistsError, ParameterError

__all__ = ["BETWEEN_CHIPS", "BatchResult", "by_chip", "describe_columns", "duplicates", "export_batch", "fits_unit",
           "restore_mosaic_sources", "restore_sources"]

Progress = Callable[[int, int], None]


@dataclass
class BatchResult:
    """One source of a batch: its stamp, restoration and measurements, or why it failed."""

    source: Source
    stamp: Stamp | None = None
    restoration: Any = None
    measurements: Any = None
    verdict: Any = None
    cosmic_rays: int = 0
    error: str = ""
    duplicate_of: int = 0

    def row(self) -> dict[str, Any]:
        """Catalogue row: position, detection and the headline measurements (NaN where missing)."""
        s = self.source
        status = self.error or (self.verdict.summary() if self.verdict is not None else "restored, not measured")
        if self.duplicate_of:
            status = duplicate_status(self.duplicate_of, status)
        out: dict[str, Any] = {"id": s.id, "x": s.x, "y": s.y, "det_flux": s.flux, "det_snr": s.snr,
                               "status": status, "duplicate_of": self.duplicate_of}
        out["x_stamp"], out["y_stamp"] = self.stamp.center if self.stamp is not None else (math.nan, math.nan)
        m = self.measurements
        nan = math.nan
        for name in ("LQ", "RS"):
            f = m.fits.get(name) if m is not None else None
            p = m.phot.images.get(name) if m is not None and m.phot.ok else None
            for attr in ("n", "r50", "e1", "e2", "total_flux"):
                key = "sersic_flux" if attr == "total_flux" else attr
                out[f"{key}_{name}"] = getattr(f, attr) if f is not None else nan
                out[f"{key}_err_{name}"] = getattr(f, f"{attr}_err") if f is not None else nan
            out[f"sersic_flag_{name}"] = f.flag_bits if f is not None else FLAG_BITS["failed"]
            out[f"sersic_flags_{name}"] = "; ".join(f.flags) if f is not None else "not fitted"
            for attr in ("kron_flux", "iso_flux"):
                out[f"{attr}_{name}"] = getattr(p, attr) if p is not None else nan
                out[f"{attr}_err_{name}"] = getattr(p, f"{attr}_err") if p is not None else nan
            mags = m.magnitudes(name) if m is not None else {}
            for key in ("kron", "iso", "sersic", "mu_r50"):
                col = "mu_r50" if key == "mu_r50" else f"{key}_mag"
                out[f"{col}_{name}"], out[f"{col}_err_{name}"] = mags.get(key, (nan, nan))
        out["point_like"] = bool(m is not None and m.point_like)
        decision = (self.restoration.meta.get("point_source_decision") or {}) if self.restoration is not None else {}
        out["restored_as_star"] = bool(decision.get("point", False))
        out["quality_ok"] = bool(self.verdict is not None and self.verdict.ok)
        out["quality_level"] = self.verdict.level if self.verdict is not None else ""
        out["flux_conservation"] = m.flux_conservation if m is not None else nan
        out["flux_conservation_err"] = m.flux_conservation_err if m is not None else nan
        out["psf_spill"] = m.psf_spill if m is not None else nan
        out["residual_chi2"] = m.residual_chi2 if m is not None else nan
        out["ab_zeropoint"] = m.ab_zeropoint if m is not None else nan
        return out


def restore_sources(
    pipeline: Any,
    image: Image | np.ndarray,
    sources: Sequence[Source],
    *,
    measure: bool = True,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[BatchResult]:
    """Cut out, clean, restore (batched) and measure every source with ``pipeline``; failures are kept, not raised.

    Parameters
    ----------
    pipeline : galviewer.core.restore.pipeline.Pipeline
        The restorer and settings (stamp size, context margin, flips…): the same as a click's.
    image : Image or 2-D array
    sources : sequence of Source
    measure : bool
        Run the pipeline's ``verdict`` step (the measurements of LQ and RS) on each restoration.
    progress : callable(done, total), optional
        One step per restored and per measured source.
    cancel : callable() -> bool, optional

    Raises
    ------
    RestoreCancelled
        When cancelled (results so far are discarded).
    """
    got = pipeline.run_many(image, [(s.x, s.y) for s in sources], judge=measure, progress=progress, cancel=cancel)
    results = []
    for s, r in zip(sources, got, strict=True):
        res = BatchResult(s)
        if isinstance(r, Restoration):
            res.stamp, res.restoration = r.stamp, r
            res.cosmic_rays = int(r.meta.get("cosmic_rays", 0))
            res.measurements, res.verdict = r.measurements, r.meta.get("verdict")
            res.error = r.meta.get("measure_error", "")
        else:
            res.error = str(r)
        results.append(res)
    centres = [r.stamp.center if r.stamp is not None else (math.nan, math.nan) for r in results]
    for i, k in duplicates([r.source.id for r in results], centres).items():
        results[i].duplicate_of = k
    return results


DUPLICATE_PIX = 0.5
"""Two sources whose stamps are centred within this many pixels (the windowed centroid of both detections landed
on the same light: a fragment of a galaxy, a detection split by noise) are one source."""


def duplicate_status(first: int, status: str) -> str:
    """A duplicate row's status: whose duplicate it is, then its own verdict."""
    return f"the same source as {first} once centred; {status}"


def duplicates(ids: Sequence[int], centres: Sequence[tuple[float, float]]) -> dict[int, int]:
    """Which sources are the same as an earlier one once centred: {index: id of the first one}.

    The first of each group (the list's order: brightest first for a detection) keeps its row as it is; the
    others say whose duplicate they are (batch rows, survey catalogues).
    """
    from scipy.spatial import cKDTree

    xy = np.asarray(centres, dtype=float).reshape(-1, 2)
    finite = np.flatnonzero(np.isfinite(xy).all(axis=1))
    near: dict[int, list[int]] = {}
    if len(finite) > 1:  # a tree, not all pairs: a survey's chip holds tens of thousands of sources
        for a, b in cKDTree(xy[finite]).query_pairs(DUPLICATE_PIX, output_type="ndarray"):
            i, j = sorted((int(finite[a]), int(finite[b])))
            if np.hypot(*(xy[j] - xy[i])) < DUPLICATE_PIX:  # query_pairs includes the radius; the rule does not
                near.setdefault(i, []).append(j)
    out: dict[int, int] = {}
    for i in sorted(near):
        if i in out:
            continue
        for j in near[i]:
            out.setdefault(j, int(ids[i]))
    return out


def export_batch(folder: str | os.PathLike[str], results: Sequence[BatchResult], *, stem: str = "source",
                 wcs: Any = None, overwrite: bool = False) -> list[Path]:
    """Write one FITS stamp per restored source and an ECSV catalogue of all of them.

    Files: ``{stem}_{id:05d}.fits`` and ``{stem}_catalog.ecsv`` (with RA/Dec when ``wcs`` is given).
    Nothing is written when any target exists and ``overwrite`` is False.

    Raises
    ------
    ParameterError
        For an empty batch or a folder that is a file.
    OutputExistsError
        When a target exists and ``overwrite`` is False (lists how many).
    """
    from astropy.table import Table

    from galviewer._atomic import atomic_write

    if not results:
        raise ParameterError("results", "there is nothing to export: restore some sources first")
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise ParameterError("folder", f"{out} is a file, not a folder")
    stamps = [(r, out / f"{stem}_{r.source.id:05d}.fits") for r in results if r.restoration is not None]
    catalog = out / f"{stem}_catalog.ecsv"
    targets = [p for _, p in stamps] + [catalog]
    clashes = [p for p in targets if p.exists()]
    if clashes and not overwrite:
        raise OutputExistsError(clashes[0], f"{len(clashes)} of the {len(targets)} output files exist already; "
                                "nothing was written")
    out.mkdir(parents=True, exist_ok=True)
    written = [write_stamp(p, r.restoration, overwrite=overwrite) for r, p in stamps]
    table = Table(rows=[r.row() for r in results])
    if wcs is not None and getattr(wcs, "has_celestial", False):
        ra, dec = wcs.all_pix2world(np.asarray(table["x"], float), np.asarray(table["y"], float), 0)
        table["ra"], table["dec"] = ra, dec
        table["ra"].unit = table["dec"].unit = "deg"
    bunits = {r.stamp.meta.bunit for r in results if r.stamp is not None and r.stamp.meta is not None}
    describe_columns(table, bunits.pop() if len(bunits) == 1 else "")
    table.meta["comments"] = ["galviewer batch: detection (photutils) + restoration + compare() measurements"]
    written.append(atomic_write(catalog, lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True),
                                overwrite=overwrite))
    return written


_DESCRIPTIONS = {
    **dict.fromkeys(("x", "y"), ("pix", "0-based pixel coordinate in the parent image")),
    **dict.fromkeys(("x_stamp", "y_stamp"), ("pix", "0-based parent pixel of the stamp centre")),
    "id": ("", "detection label"), "status": ("", "the verdict's summary, or why the source failed"),
    "ra": ("deg", "right ascension of (x, y) through the image's WCS"),
    "dec": ("deg", "declination of (x, y) through the image's WCS"),
    "det_snr": ("", "detection segment flux / its error"),
    "point_like": ("", "LQ Sérsic fit unresolved (R50 < 0.75 px)"),
    "duplicate_of": ("", "id of the source this one is the same as once centred (0: none)"),
    "restored_as_star": ("", "restored in point-source mode"),
    "quality_ok": ("", "every verdict check passed"), "quality_level": ("", "verdict: ok, caution or fail"),
    "n": ("", "Sérsic index (PSF-convolved fit, neighbours masked)"),
    "r50": ("pix", "Sérsic half-light radius, circularised"),
    "e1": ("", "ellipticity (1 − q)/(1 + q) · cos 2θ"), "e2": ("", "ellipticity (1 − q)/(1 + q) · sin 2θ"),
    "sersic_flag": ("", "Sérsic fit flag bits: " + ", ".join(f"{b} {k}" for k, b in FLAG_BITS.items()) + "; 0 ok"),
    "sersic_flags": ("", "the Sérsic fit's flags in words (empty: ok)"),
    "kron_mag": ("mag(AB)", "Kron AB magnitude"), "iso_mag": ("mag(AB)", "isophotal AB magnitude"),
    "sersic_mag": ("mag(AB)", "Sérsic total AB magnitude"),
    "mu_r50": ("mag(AB) / arcsec2", "Sérsic surface brightness at R50"),
    "ab_zeropoint": ("mag(AB)", "AB zero point used (PHOTFLAM/PHOTPLAM or the header's MAGZERO-like keyword)"),
    "flux_conservation": ("", "Kron(PSF⊗RS) / Kron(LQ), LQ's ellipse and background"),
    "psf_spill": ("", "Kron(RS)/Kron(LQ) − flux_conservation: light the PSF carries across the ellipse"),
    "residual_chi2": ("", "mean ((LQ − PSF⊗RS)/σ)² per pixel"),
    # the survey's columns (galviewer.survey)
    "file": ("", "input file name"), "ext": ("", "the input's extension (chip) the source lies on"),
    "bunit": ("", "the unit of the row's image (BUNIT): its fluxes' unit"),
    "label": ("", "the source's label (the catalogue's id, or the detection label)"),
    "quality_failures": ("", "the verdict's failed checks (empty: none)"),
    "model": ("", "the model that restored the stamp"), "model_sha256": ("", "sha256 of the model file"),
    "chunk": ("", "chunk file holding the stamp"), "plane": ("", "plane of the chunk's cubes (-1: not restored)"),
    **dict.fromkeys(("origin_x", "origin_y"), ("pix", "parent pixel of the stamp's pixel (0, 0)")),
    **dict.fromkeys(("crpix1", "crpix2"), ("pix", "CRPIX of the stamp's own WCS (the chunk's WCS otherwise)")),
}


def fits_unit(bunit: str) -> Any:
    """An astropy unit for an HST BUNIT (``ELECTRONS/S`` → electron / s, ``COUNTS`` → ct, ``e-/s``), None when it
    cannot be read (never a wrong one: ``S`` in ``ELECTRONS/S`` is seconds, not siemens)."""
    import re

    from astropy import units as u

    text = bunit.strip()
    words = {"ELECTRONS": "electron", "ELECTRON": "electron", "E-": "electron", "COUNTS": "ct", "COUNT": "ct",
             "DN": "adu", "S": "s", "SEC": "s", "SECOND": "s", "SECONDS": "s", "ERGS": "erg"}
    if "ERG" in text.upper():  # a flux density: A is the ångström (STIS, FOS), not the ampere
        words["A"] = "Angstrom"
    text = re.sub(r"[A-Za-z]+-?", lambda m: words.get(m.group(0).upper(), m.group(0)), text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        unit = u.Unit(text, format="fits", parse_strict="silent") if text else None
        if isinstance(unit, u.UnrecognizedUnit):
            unit = u.Unit(text, parse_strict="silent")
    return None if unit is None or isinstance(unit, u.UnrecognizedUnit) else unit


def describe_columns(table: Any, bunit: str | None) -> None:
    """Units and descriptions on every column of a batch catalogue (fluxes in the image's BUNIT; None: the
    images differ, each row's unit is in its ``bunit`` column)."""

    flux_unit = None
    if bunit:
        flux_unit = fits_unit(bunit)
    for name in table.colnames:
        stem = name.removesuffix("_LQ").removesuffix("_RS")
        err = "_err" in stem
        stem = stem.replace("_err", "")
        if stem.endswith("flux") or stem == "det_flux":
            what = {"kron_flux": "Kron flux", "iso_flux": "isophotal flux", "sersic_flux": "Sérsic total flux",
                    "det_flux": "detection segment flux"}.get(stem, "flux")
            unit, text = flux_unit, f"{what} in the image's unit (BUNIT {bunit!r})" if bunit else \
                f"{what} in the unit of the row's image (column bunit)" if bunit is None else \
                f"{what} in the image's unit (no BUNIT)"
        elif stem in _DESCRIPTIONS:
            unit, text = _DESCRIPTIONS[stem]
        else:
            continue
        if unit:
            table[name].unit = unit
        table[name].description = ("1-σ error of: " if err else "") + text + (
            f" ({name[-2:]})" if name.endswith(("_LQ", "_RS")) else "")


BETWEEN_CHIPS = "between the chips: no data to restore"


def by_chip(mosaic: Any, sources: Sequence[Any]) -> tuple[dict[int, list[tuple[int, Any]]], list[int]]:
    """The sources of a mosaic's canvas grouped by the chip that holds them, each moved to that chip's pixels:
    ``({chip: [(index in sources, source on the chip), …]}, [indices of the sources between the chips])``."""
    groups: dict[int, list[tuple[int, Any]]] = {}
    between = []
    for i, s in enumerate(sources):
        hit = mosaic.locate(s.x, s.y)
        if hit is None:
            between.append(i)
        else:
            groups.setdefault(hit[0], []).append((i, dataclasses.replace(s, x=hit[2], y=hit[3])))
    return groups, between


def restore_mosaic_sources(pipeline: Any, mosaic: Any, sources: Sequence[Any], **kwargs: Any) -> list[Any]:
    """:func:`restore_sources` for sources listed on the canvas of a :class:`~galviewer.core.io.mosaic.Mosaic`:
    each is cut from its own chip (its WCS, ERR and DQ); the results keep the canvas sources, in the order given.

    A source in a gap between chips is kept as a failure that says so.
    """
    progress = kwargs.pop("progress", None)
    groups, between = by_chip(mosaic, sources)
    out: list[Any] = [None] * len(sources)
    for i in between:
        out[i] = BatchResult(sources[i], error=BETWEEN_CHIPS)
    done_before = 0
    total = len(sources)
    for k, items in sorted(groups.items()):
        def tick(done: int, n: int, base: int = done_before) -> None:
            if progress is not None:
                progress(base * 2 + done, total * 2)

        results = restore_sources(pipeline, mosaic.chips[k], [s for _, s in items], progress=tick, **kwargs)
        for (i, _), res in zip(items, results, strict=True):
            res.source = sources[i]
            out[i] = res
        done_before += len(items)
    return out
