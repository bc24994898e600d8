"""Make the real-data regression set of ``tests/data/realdata/`` from the public files it was cut from.

    pip download --no-deps --no-binary=:all: petrofit==0.5.0 stwcs==1.7.7 -d SRC && (cd SRC && tar xzf ...)
    python benchmarks/realdata_cutouts.py SRC

Not run by the tests: the cut-outs are shipped (see ``tests/data/realdata/PROVENANCE.md``).  Each is a small
FITS file with the cut-out WCS (``astropy.nddata.Cutout2D``), the instrument keywords of its parent (INSTRUME,
DETECTOR, FILTER, BUNIT, photometric and drizzle keywords), and ORIGFILE / ORIGX / ORIGY giving where it was
cut (0-based pixel of the parent at cut-out pixel (0, 0)).  FLT cut-outs keep SCI, ERR and DQ.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "realdata"
PETRO = "petrofit-0.5.0/docs/data"
STIS = "stwcs-1.7.7/stwcs/tests/data/o4k19a010_flt.fits"
KEYS = ("TELESCOP", "INSTRUME", "DETECTOR", "FILTER", "BUNIT", "PHOTFLAM", "PHOTPLAM", "PHOTZPT", "PHOTMODE",
        "EXPTIME", "FILETYPE", "D001SCAL", "D001PIXF", "D001KERN", "NDRIZIM", "CCDGAIN", "ATODGAIN", "READNSE",
        "TARGNAME", "DATE-OBS")

# name, parent file, extension version (None: primary), centre x, y (0-based), side, what it is
CASES = [
    ("wfc3ir_star", f"{PETRO}/abell_2744_cd_galaxy_f105w.fits.gz", None, 300.1, 203.6, 96,
     "bright star with diffraction spikes, WFC3/IR F105W drizzled (0.06\"/px)"),
    ("wfc3ir_cd_neighbour", f"{PETRO}/abell_2744_cd_galaxy_f105w.fits.gz", None, 223.1, 267.8, 96,
     "bright galaxy on the halo of the cluster's cD galaxy"),
    ("wfc3ir_dwarf", f"{PETRO}/abell_2744_dwarf_galaxy_f105w.fits.gz", None, 138.5, 89.4, 96,
     "bright dwarf galaxy with neighbours"),
    ("wfc3ir_group", f"{PETRO}/abell_2744_group_of_galaxies_f105w.fits.gz", None, 49.5, 49.5, 96,
     "a blend: a compact group of galaxies"),
    ("wfc3ir_spiral", f"{PETRO}/abell_2744_spiral_galaxy_f105w.fits.gz", None, 74.5, 74.5, 128,
     "a spiral with star-forming knots"),
    ("wfc3ir_faint", f"{PETRO}/abell_2744_cd_galaxy_f105w.fits.gz", None, 268.0, 332.0, 64,
     "two faint galaxies (segment flux 0.6 e-/s each)"),
    ("stis_star", STIS, 1, 736.0, 331.1, 64, "bright star in a STIS CCD FLT (counts), with cosmic rays"),
]
# Larger fields for detection and photometry tests, written gzipped (not restoration cases).
FIELDS = [
    ("wfc3ir_cd_field", f"{PETRO}/abell_2744_cd_galaxy_f105w.fits.gz", None, 228.0, 188.0, 256,
     "the cD, its halo and the faint galaxies on it (detection)"),
]


def _keywords(h: fits.Header, into: fits.Header) -> None:
    for k in KEYS:
        if k in h:
            into[k] = (h[k], h.comments[k])


def cut(src: Path, name: str, rel: str, ver: int | None, x: float, y: float, side: int, what: str) -> Path:
    """Write one cut-out and return its path."""
    path = src / rel
    with fits.open(path) as hdul, warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        primary = hdul[0].header
        sci = hdul["SCI", ver] if ver is not None else hdul[0]
        wcs = WCS(sci.header, hdul)
        pos = (round(x) - side // 2 + (side - 1) / 2, round(y) - side // 2 + (side - 1) / 2)
        c = Cutout2D(np.asarray(sci.data, np.float32), pos, side, wcs=wcs, mode="strict")
        meta = fits.Header()
        _keywords(primary, meta)
        _keywords(sci.header, meta)
        meta["ORIGFILE"] = (Path(rel).name, "parent file")
        meta["ORIGEXT"] = ("PRIMARY" if ver is None else f"SCI,{ver}", "parent extension")
        meta["ORIGX"] = (int(c.origin_original[0]), "[pix] parent x of pixel 0, 0-based")
        meta["ORIGY"] = (int(c.origin_original[1]), "[pix] parent y of pixel 0, 0-based")
        meta["CASE"] = (name, what[:60])
        hdus: list = []
        if ver is None:
            h = meta.copy()
            h.update(c.wcs.to_header(relax=True))
            hdus.append(fits.PrimaryHDU(c.data, h))
        else:
            hdus.append(fits.PrimaryHDU(header=meta))
            for ext, dtype in (("SCI", np.float32), ("ERR", np.float32), ("DQ", np.int16)):
                part = np.asarray(hdul[ext, ver].data)[c.slices_original].astype(dtype)
                h = c.wcs.to_header(relax=True)
                if ext == "SCI":
                    _keywords(sci.header, h)
                hdus.append(fits.ImageHDU(part, h, name=ext, ver=1))
    out = OUT / (f"{name}.fits.gz" if any(f[0] == name for f in FIELDS) else f"{name}.fits")
    fits.HDUList(hdus).writeto(out, overwrite=True, output_verify="silentfix")
    return out


def main() -> None:
    """Cut every case from the parents under ``sys.argv[1]``."""
    src = Path(sys.argv[1])
    OUT.mkdir(parents=True, exist_ok=True)
    for case in CASES + FIELDS:
        p = cut(src, *case)
        print(f"{p.name}: {p.stat().st_size / 1024:.0f} kB")


if __name__ == "__main__":
    main()
