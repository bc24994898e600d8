"""The argument parser of ``galviewer`` (exposed for documentation and tests)."""

from __future__ import annotations

import argparse

from galviewer import __version__
from galviewer.cli._common import _add_clean_arg, _add_context_arg, _add_dq_arg, _add_model_args

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="galviewer",
        description="Restore HST galaxy images to JWST-like quality (Park et al. 2024) and inspect them. "
        "With no sub-command, opens the desktop viewer on FILE.",
    )
    parser.add_argument("--version", action="version", version=f"galviewer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    view = sub.add_parser("view", help="open the desktop viewer (default when no command is given)")
    view.add_argument("file", nargs="?", help="FITS image to open")

    r = sub.add_parser("restore", help="restore a source (or a catalogue of sources) and write FITS stamps",
                       description="Cut a stamp around a source, restore it, and write a FITS file: primary = "
                       "restored stamp in the input's units with the cut-out WCS; extensions LQ, SIGMA, RESID, "
                       "MASK; provenance in the header.  Never overwrites without --overwrite.")
    r.add_argument("file", help="FITS image (FLT/FLC, DRZ/DRC or plain)")
    where = r.add_mutually_exclusive_group(required=True)
    where.add_argument("--xy", nargs=2, type=float, metavar=("X", "Y"), help="source position in pixels")
    where.add_argument("--catalog", help="ECSV/FITS table (columns x,y or xcentroid,ycentroid — origin per "
                       "--origin —, SExtractor X_IMAGE,Y_IMAGE — always 1-based — or ra,dec in deg) or DS9 region "
                       "file (.reg) of sources; writes one stamp per source and a result catalogue into -o DIR")
    r.add_argument("--size", type=int, default=64, help="stamp side in pixels (default 64, as in the paper)")
    r.add_argument("--ext", default=None, help="image extension, e.g. SCI,1 or SCI,2 (default: SCI,1 or the "
                   "first image)")
    r.add_argument("--origin", type=int, choices=(0, 1), default=0,
                   help="coordinate origin of --xy and of x,y catalogue columns (default 0)")
    r.add_argument("--no-refine", action="store_true", help="do not move the centre to the source centroid")
    r.add_argument("-o", "--output", required=True, help="output FITS file (--xy) or folder (--catalog)")
    r.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_context_arg(r, "")
    r.add_argument("--figure", metavar="PATH", help="with --xy, also write a labelled figure (.png, .pdf or .svg): "
                   "LQ | RS | residual/σ | uncertainty with axes, colour bars, file, position, model and verdict")
    _add_clean_arg(r)
    _add_dq_arg(r)
    _add_model_args(r)

    m = sub.add_parser("measure", help="Sérsic fit and Kron/isophotal photometry of a source (LQ, and RS with "
                       "--restore)", description="Measure the source at X Y: PSF-convolved Sérsic fit and "
                       "Kron/isophotal photometry with apertures defined on the image (paper §4); with --restore "
                       "also the restored stamp through the same apertures, flux conservation and residual χ².")
    m.add_argument("file", help="FITS image")
    m.add_argument("--xy", nargs=2, type=float, metavar=("X", "Y"), required=True, help="source position in pixels")
    m.add_argument("--size", type=int, default=64, help="stamp side in pixels (default 64)")
    m.add_argument("--ext", default=None, help="image extension, e.g. SCI,2")
    m.add_argument("--origin", type=int, choices=(0, 1), default=0, help="pixel convention of X Y (0: numpy/"
                   "astropy, default; 1: DS9/IRAF)")
    m.add_argument("--no-refine", action="store_true", help="do not move the centre to the source centroid")
    m.add_argument("--psf-fwhm", type=float, default=None, help="FWHM (pixels) of a Gaussian PSF for LQ's Sérsic "
                   "fit (default: the instrument PSF from the header, as galviewer info shows it)")
    m.add_argument("--restore", action="store_true", help="restore the stamp and measure RS too")
    _add_context_arg(m, "with --restore, ")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    _add_clean_arg(m)
    _add_dq_arg(m)
    _add_model_args(m)

    d = sub.add_parser("detect", help="detect sources (photutils) and write an ECSV catalogue for restore --catalog",
                       description="Background2D (SExtractor estimator), 2-px Gaussian smoothing, detect_sources and "
                       "SourceCatalog, as the viewer's Batch ▸ Detect; brightest first.  Columns: id, x, y (0-based "
                       "pixels), ra, dec (deg, with a WCS), flux, flux_err, snr, area, a, b, theta.")
    d.add_argument("file", help="FITS image")
    d.add_argument("-o", "--output", required=True, help="output ECSV catalogue")
    d.add_argument("--ext", default=None, help="image extension, e.g. SCI,2")
    d.add_argument("--nsigma", type=float, default=3.0, help="threshold above the local background in σ (default 3)")
    d.add_argument("--npixels", type=int, default=10, help="connected pixels above the threshold (default 10)")
    d.add_argument("--no-deblend", dest="deblend", action="store_false",
                   help="do not split blends (deblending, SExtractor-style multi-threshold, is on by default)")
    d.add_argument("--deblend", dest="deblend", action="store_true", help=argparse.SUPPRESS)  # the former opt-in
    d.add_argument("--no-hot", dest="hot", action="store_false",
                   help="one detection pass with the 64-px background mesh only (by default a second, 'hot' pass "
                        "with a 16-px mesh finds the galaxies on a bright galaxy's halo)")
    d.add_argument("--max-sources", type=int, default=1000, help="keep the brightest N (default 1000)")
    d.add_argument("--overwrite", action="store_true", help="replace an existing catalogue")
    _add_dq_arg(d)

    from galviewer.cli.survey import add_survey_parser

    add_survey_parser(sub)

    i = sub.add_parser("info", help="print what galviewer reads from a FITS file")
    i.add_argument("file")
    i.add_argument("--ext", default=None)
    i.add_argument("--json", action="store_true", help="machine-readable output")
    _add_dq_arg(i)

    mo = sub.add_parser("models", help="list the shipped models")
    mo.add_argument("--card", metavar="NAME_OR_PATH", help="print the model card of a shipped model or checkpoint")
    return parser
