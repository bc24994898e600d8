"""``galviewer`` command line: open the viewer, or restore headlessly.

Pixel coordinates on the command line are 0-based (x = column, y = row), the
convention of numpy, astropy and photutils; pass ``--origin 1`` to give them
as DS9/IRAF 1-based image coordinates.  Region files (DS9) are converted by
``regions``, which handles their 1-based convention itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from galviewer import __version__
from galviewer.core.io.stamps import DEFAULT_CONTEXT, check_context
from galviewer.core.restore.consistency import DEFAULT_ANCHOR
from galviewer.errors import GalviewerError, ParameterError

__all__ = ["build_parser", "main", "safe_label", "to_json"]


def _jsonable(value: Any) -> Any:
    """Plain JSON values: NaN and infinities become null, numpy scalars and arrays Python values."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def to_json(value: Any) -> str:
    """Strict JSON text (RFC 8259: no NaN or Infinity tokens) of a result."""
    return json.dumps(_jsonable(value), indent=1, allow_nan=False)


def safe_label(label: str, max_len: int = 64) -> str:
    """Reduce a catalogue label to a safe file-name part: letters, digits, ``-``, ``_``, ``.`` and ``+``;
    no path separator, no leading dot, at most ``max_len`` characters (``_`` when nothing is left)."""
    import re

    text = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(label)).strip("._")
    return text[:max_len] or "_"


def _add_clean_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clean-crs", action="store_true",
                   help="clean cosmic rays (L.A.Cosmic, as the viewer's 'clean CRs') from stamps of FLT/FLC images "
                        "before restoring or measuring; cleaned pixels are in-painted and marked in MASK")


def _cleaned(stamp: Any, image: Any, args: argparse.Namespace) -> Any:
    """The stamp with its cosmic rays cleaned when --clean-crs asks and the image is a single exposure."""
    if not getattr(args, "clean_crs", False):
        return stamp
    from galviewer.core.io.cosmics import clean_cosmic_rays, cleanable

    if not cleanable(image):
        print(f"galviewer: note: {image.meta.kind} image: no cosmic-ray cleaning (single exposures FLT/FLC only)",
              file=sys.stderr)
        return stamp

    stamp, n = clean_cosmic_rays(stamp)
    print(f"galviewer: note: {n} cosmic-ray pixels cleaned", file=sys.stderr)
    return stamp


def _add_dq_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dq-ignore", type=int, default=0, metavar="BITS",
                   help="DQ flag bits that do not make a pixel bad (sum of bits, e.g. 96 = 64 warm + 32 CTE tail; "
                        "default 0: every flagged pixel is in-painted)")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="checkpoint file (.safetensors or .pth) or name of a shipped model (default: the shipped "
                        "default model)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    p.add_argument("--no-uncertainty", action="store_true",
                   help="skip the 8 flip/rotation restorations (8x faster, no SIGMA extension)")
    p.add_argument("--consistency", action="store_true",
                   help="fuse the restoration with the data (closed-form, Fourier) so that the residual chi2 "
                        "is at most 1: the data decide where the PSF passes signal, the network elsewhere")
    p.add_argument("--anchor", type=float, default=DEFAULT_ANCHOR, metavar="SIGMA",
                   help="give the restoration back the data's scales above SIGMA px (large-scale anchoring: "
                        "flux, background, halos; README, Real HST data); 0 turns it off "
                        f"(default: {DEFAULT_ANCHOR:g})")
    p.add_argument("--point-source", action="store_true",
                   help="the source is a star: fit it with the instrument PSF, restore the rest with the network "
                        "and add the star back as the model's target PSF (PSF photometry; for bright stars, which "
                        "no network restores)")


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
    d.add_argument("--max-sources", type=int, default=1000, help="keep the brightest N (default 1000)")
    d.add_argument("--overwrite", action="store_true", help="replace an existing catalogue")
    _add_dq_arg(d)

    i = sub.add_parser("info", help="print what galviewer reads from a FITS file")
    i.add_argument("file")
    i.add_argument("--ext", default=None)
    i.add_argument("--json", action="store_true", help="machine-readable output")
    _add_dq_arg(i)

    mo = sub.add_parser("models", help="list the shipped models")
    mo.add_argument("--card", metavar="NAME_OR_PATH", help="print the model card of a shipped model or checkpoint")
    return parser


def _restorer(args: argparse.Namespace) -> Any:
    from galviewer.core.restore.engine import Restorer

    kwargs = {"uncertainty": not args.no_uncertainty, "consistency": args.consistency,
              "anchor": args.anchor, "point_source": args.point_source}
    if args.model is not None and (Path(args.model).suffix in (".safetensors", ".pth", ".pt")
                                   or Path(args.model).exists()):
        return Restorer.from_file(args.model, args.device, **kwargs)
    return Restorer.from_pretrained(args.model, args.device, **kwargs)


def _catalog_positions(path: str, image: Any, origin: int) -> list[tuple[str, float, float]]:
    from galviewer.errors import ImageLoadError

    p = Path(path)
    if not p.is_file():
        raise ImageLoadError(p, "catalogue file not found")
    if p.suffix.lower() == ".reg":
        from regions import PixCoord, Regions

        try:
            regs = Regions.read(str(p), format="ds9")
        except Exception as exc:
            raise ImageLoadError(p, f"not a readable DS9 region file: {exc}") from exc
        out = []
        for k, reg in enumerate(regs, start=1):
            if not hasattr(reg, "to_pixel") and not hasattr(reg, "center"):
                continue
            if not hasattr(reg, "center") or not isinstance(reg.center, PixCoord):
                if image.wcs is None:
                    raise ImageLoadError(p, "sky regions need an image with a celestial WCS")
                reg = reg.to_pixel(image.wcs)
            if not hasattr(reg, "center"):
                continue
            label = str(reg.meta.get("text", k)) if hasattr(reg, "meta") else str(k)
            out.append((label, float(reg.center.x), float(reg.center.y)))
        if not out:
            raise ImageLoadError(p, "no region with a centre in the file")
        return out
    from astropy.table import Table

    try:
        table = Table.read(str(p))
    except Exception as exc:
        raise ImageLoadError(p, f"not a readable ECSV/FITS table: {exc}") from exc
    import numpy as np

    cols = {c.lower(): c for c in table.colnames}
    ids = [str(i) for i in table[cols["id"]]] if "id" in cols else [str(k) for k in range(1, len(table) + 1)]

    def numeric(name: str) -> np.ndarray:
        try:
            return np.asarray(np.ma.filled(table[cols[name]], np.nan), dtype=float).reshape(len(table))
        except (TypeError, ValueError):
            raise ImageLoadError(p, f"column {cols[name]!r} is not numeric (dtype {table[cols[name]].dtype}, first "
                                 f"value {table[cols[name]][0]!r})") from None

    for xname, yname in (("x", "y"), ("xcentroid", "ycentroid"), ("x_image", "y_image")):
        if xname in cols and yname in cols:
            off = 1.0 if xname == "x_image" else float(origin)  # SExtractor's X_IMAGE/Y_IMAGE are 1-based
            return [(i, float(x) - off, float(y) - off)
                    for i, x, y in zip(ids, numeric(xname), numeric(yname), strict=True)]
    if "ra" in cols and "dec" in cols:
        if image.wcs is None:
            raise ImageLoadError(p, "ra/dec columns need an image with a celestial WCS")
        with np.errstate(invalid="ignore"):
            try:
                xs, ys = image.wcs.all_world2pix(numeric("ra"), numeric("dec"), 0, quiet=True)
            except Exception as exc:
                raise ImageLoadError(p, f"the image's WCS cannot place these RA/Dec: {exc}") from None
        return [(i, float(x), float(y)) for i, x, y in zip(ids, xs, ys, strict=True)]
    raise ImageLoadError(p, f"no position columns: need x,y or xcentroid,ycentroid or ra,dec; have {table.colnames}")


def _refuse_input_as_output(out: Path, *inputs: str | None) -> None:
    """No output path may be an input path (a FITS image, a catalogue, a checkpoint)."""
    target = out.resolve()
    for given in inputs:
        if given is None:
            continue
        src = Path(given)
        if src.resolve() == target or (src.exists() and out.exists() and src.samefile(out)):
            raise ParameterError("--output", f"{out} is also an input file; choose another output path")


def _dq_bits(args: argparse.Namespace) -> int:
    if not 0 <= args.dq_ignore < 2**31:
        raise ParameterError("--dq-ignore", f"must be a non-negative sum of DQ bits, got {args.dq_ignore}")
    return int(args.dq_ignore)


def _check_size(size: int) -> None:
    if not 8 <= size <= MAX_CLI_STAMP:
        raise ParameterError("--size", f"must be between 8 and {MAX_CLI_STAMP} pixels, got {size} (restore larger "
                             "areas as regions in the viewer)")


MAX_CLI_STAMP = 1024


def _unique_targets(positions: list[tuple[str, float, float]], outdir: Path, stem: str
                    ) -> tuple[list[tuple[str, float, float, Path]], list[str]]:
    """One distinct, safe file per catalogue row: labels reduced by :func:`safe_label`, repeats numbered."""
    seen: dict[str, int] = {}
    targets, notes = [], []
    for label, x, y in positions:
        # integer ids are zero-padded to 5 digits, as the viewer's batch export names its stamps
        name = f"{int(label):05d}" if label.isdigit() and len(label) <= 5 else safe_label(label)
        if name != label and not label.isdigit():
            notes.append(f"label {label[:80]!r} written as {name!r}")
        base, n = name, seen.get(name.lower(), 0)
        while name.lower() in seen:
            n += 1
            name = f"{base}_{n + 1}"
        seen[base.lower()] = n
        seen[name.lower()] = 0
        if name != base:
            notes.append(f"duplicate label {base!r} written as {name!r}")
        path = outdir / f"{safe_label(stem)}_{name}.fits"
        if path.resolve().parent != outdir.resolve():  # pragma: no cover - safe_label forbids separators
            raise ParameterError("--catalog", f"label {label!r} would write outside {outdir}")
        targets.append((label, x, y, path))
    return targets, notes


def _quality_line(verdict: Any) -> str:
    return f"quality {verdict.summary()}" if verdict.ok else f"QUALITY FAILS: {verdict.summary()}"


def _add_context_arg(p: argparse.ArgumentParser, when: str) -> None:
    """``--context M``: the margin restored around the stamp and cropped."""
    p.add_argument("--context", type=int, default=DEFAULT_CONTEXT, metavar="M",
                   help=f"{when}restore a cut-out M px larger on every side and keep the central --size (the "
                        "network's own edges stay out of the stamp; README, Real HST data; default "
                        f"{DEFAULT_CONTEXT}, 0 for none)")


def _cmd_restore(args: argparse.Namespace) -> int:
    from galviewer.core.io.fits import open_image, write_stamp
    from galviewer.core.io.stamps import cutout
    from galviewer.core.restore.engine import crop_restoration, steps_text
    from galviewer.core.restore.verdict import judge

    _check_size(args.size)
    check_context(args.context, "--context")
    out = Path(args.output)
    _refuse_input_as_output(out, args.file, args.catalog, args.model)
    with open_image(args.file, args.ext, dq_ignore_bits=_dq_bits(args)) as image:
        if args.xy is not None:
            x, y = args.xy[0] - args.origin, args.xy[1] - args.origin
            if out.exists() and not args.overwrite:
                raise ParameterError("--output", f"{out} exists; pass --overwrite to replace it")
            figure = Path(args.figure) if args.figure else None
            if figure is not None:
                from galviewer.core.restore.figure import FIGURE_FORMATS

                _refuse_input_as_output(figure, args.file, args.catalog, args.model)
                if figure.suffix.lower() not in FIGURE_FORMATS:
                    raise ParameterError("--figure", f"{figure}: use a {', '.join(FIGURE_FORMATS)} file name")
                if figure.exists() and not args.overwrite:
                    raise ParameterError("--figure", f"{figure} exists; pass --overwrite to replace it")
            stamp = _cleaned(cutout(image, x, y, args.size, context=args.context, refine=not args.no_refine), image,
                             args)
            restorer = _restorer(args)
            result = crop_restoration(restorer.restore(stamp), args.context)
            stamp = result.stamp
            measured, verdict = judge(result)
            write_stamp(out, result, overwrite=args.overwrite)
            steps = steps_text(result.meta)
            fused = f", {steps}" if steps else ""
            print(f"{out}: restored source at x={stamp.center[0]:.2f} y={stamp.center[1]:.2f} "
                  f"({result.meta['seconds'] * 1e3:.0f} ms, model {result.meta['model']}, "
                  f"scale {result.scale:.4g}, offset {result.offset:.4g}{fused})")
            print(f"{out}: {_quality_line(verdict)}")
            if measured.point_like and not result.meta.get("point_source"):
                print(f"galviewer: note: the source is unresolved (LQ R50 {measured.fits['LQ'].r50:.2f} px): the "
                      "network broadens stars; --point-source restores a star as the model's target PSF",
                      file=sys.stderr)
            if figure is not None:
                from galviewer.core.restore.figure import restoration_figure

                print(f"{restoration_figure(figure, result, verdict=verdict, overwrite=args.overwrite)}: figure")
            return 0
        if args.figure:
            raise ParameterError("--figure", "is for one source (--xy); a catalogue run writes FITS stamps only")
        positions = _catalog_positions(args.catalog, image, args.origin)
        outdir = out
        if outdir.exists() and not outdir.is_dir():
            raise ParameterError("--output", f"{outdir} is a file; --catalog writes into a folder")
        outdir.mkdir(parents=True, exist_ok=True)
        stem = Path(args.file).name.split(".")[0]
        targets, notes = _unique_targets(positions, outdir, stem)
        for note in notes:
            print(f"galviewer: note: {note}", file=sys.stderr)
        summary = outdir / f"{safe_label(stem)}_restored.ecsv"
        clashes = [str(p) for p in [*(t[3] for t in targets), summary] if p.exists()]
        if clashes and not args.overwrite:
            raise ParameterError("--output", f"{len(clashes)} output files exist (e.g. {clashes[0]}); "
                                 "pass --overwrite to replace them")
        restorer = _restorer(args)
        failures = 0
        rows = []
        for label, x, y, path in targets:
            row = {"label": label, "x_in": x, "y_in": y, "x": math.nan, "y": math.nan, "file": "",
                   "quality_ok": False, "chi2": math.nan, "flux_conservation": math.nan, "status": ""}
            try:
                stamp = _cleaned(cutout(image, x, y, args.size, context=args.context, refine=not args.no_refine),
                                 image, args)
                result = crop_restoration(restorer.restore(stamp), args.context)
                stamp = result.stamp
                verdict = judge(result)[1]
                write_stamp(path, result, overwrite=args.overwrite)
                row.update(x=stamp.center[0], y=stamp.center[1], file=path.name, quality_ok=verdict.ok,
                           chi2=verdict.checks["chi2"].value, flux_conservation=verdict.checks["flux"].value,
                           status=verdict.summary())
                print(f"{path}: source {label} at x={stamp.center[0]:.2f} y={stamp.center[1]:.2f}; "
                      f"{_quality_line(verdict)}")
            except GalviewerError as exc:
                failures += 1
                row["status"] = f"skipped: {exc}"
                print(f"galviewer: source {label} skipped: {exc}", file=sys.stderr)
            rows.append(row)
        _write_summary(summary, rows, args)
        print(f"{len(targets) - failures} of {len(targets)} sources restored into {outdir}; catalogue {summary}")
        return 0 if failures == 0 else 1


def _write_summary(path: Path, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """The result catalogue of ``restore --catalog``: one row per input source, restored or not, and why."""
    from astropy.table import Table

    from galviewer._atomic import atomic_write

    table = Table(rows=rows, names=list(rows[0]))
    for c in ("x_in", "y_in", "x", "y"):
        table[c].unit = "pix"
    table["x"].description = "refined centre, 0-based pixel of the parent image"
    table["status"].description = "quality verdict (galviewer.core.restore.verdict) or why the source was skipped"
    table.meta["comments"] = [f"galviewer restore {Path(args.file).name} --catalog {Path(args.catalog).name}: "
                              f"model {args.model or 'default'}; x, y 0-based"]
    atomic_write(path, lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True), overwrite=args.overwrite)


def _cmd_measure(args: argparse.Namespace) -> int:
    from galviewer.core.io.fits import open_image
    from galviewer.core.io.stamps import cutout
    from galviewer.core.measure.compare import compare, compare_restoration
    from galviewer.core.psf.gaussian import gaussian_psf
    from galviewer.core.psf.instrument import instrument_psf
    from galviewer.core.restore.verdict import judge

    _check_size(args.size)
    check_context(args.context, "--context")
    if args.psf_fwhm is not None and not args.psf_fwhm > 0:
        raise ParameterError("--psf-fwhm", f"must be a positive number of pixels, got {args.psf_fwhm}")
    with open_image(args.file, args.ext, dq_ignore_bits=_dq_bits(args)) as image:
        x, y = args.xy[0] - args.origin, args.xy[1] - args.origin
        margin = args.context if args.restore else 0
        stamp = _cleaned(cutout(image, x, y, args.size, context=margin, refine=not args.no_refine), image, args)
        inst = instrument_psf(image.meta, image.header)
    # LQ is fitted with the same PSF with and without --restore: the instrument's, or --psf-fwhm's Gaussian.
    if args.psf_fwhm is not None:
        lq_psf, psf_text = gaussian_psf(args.psf_fwhm, 7), f"Gaussian FWHM {args.psf_fwhm:g} px (--psf-fwhm)"
    else:
        lq_psf, psf_text = inst.fitting_kernel(args.size), inst.describe()
    if args.restore:
        from galviewer.core.restore.engine import crop_restoration

        result = crop_restoration(_restorer(args).restore(stamp), margin)
        stamp = result.stamp
        m, verdict = judge(result, compare_restoration(result, lq_psf=lq_psf))
    else:
        verdict = None
        m = compare(stamp.lq, None, lq_psf, err=stamp.err, mask=stamp.bad).with_units(stamp.meta)
    if args.json:
        d = m.to_dict()
        d["stamp"] = {"file": str(args.file), "x_center": stamp.center[0], "y_center": stamp.center[1],
                      "origin": stamp.origin, "size": args.size, "lq_psf": psf_text}
        if verdict is not None:
            d["quality"] = {"ok": verdict.ok, "failures": verdict.failures, "checks": verdict.to_dict()}
        print(to_json(d))
    else:
        print(f"{args.file}: source at x={stamp.center[0]:.2f} y={stamp.center[1]:.2f} (0-based), "
              f"{args.size}×{args.size} stamp; LQ PSF: {psf_text}")
        print(m.as_text())
        if verdict is not None:
            print(_quality_line(verdict))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import dataclasses
    import math

    from galviewer.core.io.fits import open_image
    from galviewer.core.psf.instrument import instrument_psf

    with open_image(args.file, args.ext, dq_ignore_bits=_dq_bits(args)) as image:
        meta = dataclasses.asdict(image.meta)
        meta = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in meta.items()}
        info = {
            "file": str(image.path),
            "shape": list(image.shape),
            "images": [f"{n},{v} {list(s)}" for n, v, s in image.images()],
            "has_err": image.err is not None,
            "psf": instrument_psf(image.meta, image.header).describe(),
            "bad_pixels": int(image.bad.sum()),
            "wcs": image.wcs is not None,
            **meta,
        }
        if image.wcs is not None:
            ny, nx = image.shape
            info["center_radec"] = list(image.pixel_to_world((nx - 1) / 2, (ny - 1) / 2))
    if args.json:
        print(to_json(info))
    else:
        for k, v in info.items():
            print(f"{k:>14}: {v}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from galviewer.core.nn.resources import available_models, default_model_name, models_dir

    if args.card:
        from galviewer.core.nn.weights import load_checkpoint

        path = Path(args.card) if Path(args.card).exists() else models_dir() / f"{args.card}.safetensors"
        _, meta = load_checkpoint(path)
        print(meta.card())
        return 0
    names = available_models()
    if not names:
        print(f"no models shipped in {models_dir()}")
    default = default_model_name()
    for n in names:
        print(f"{n}{'  (default)' if n == default else ''}")
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    import numpy as np
    from astropy.table import Table

    from galviewer._atomic import atomic_write
    from galviewer.core.io.fits import open_image
    from galviewer.core.restore.batch import detect

    _refuse_input_as_output(Path(args.output), args.file)
    with open_image(args.file, args.ext, dq_ignore_bits=_dq_bits(args)) as image:
        sources = detect(image, nsigma=args.nsigma, npixels=args.npixels, deblend=args.deblend,
                         max_sources=args.max_sources)
        if not sources:
            print(f"{args.file}: no source above {args.nsigma:g}σ", file=sys.stderr)
            return 1
        if sources.found > len(sources):
            print(f"galviewer: note: {sources.found} sources found; the {len(sources)} brightest are kept "
                  "(--max-sources)", file=sys.stderr)
        names = ("id", "x", "y", "flux", "flux_err", "area", "a", "b", "theta_deg")
        table = Table(rows=[[getattr(s, k) for k in names] for s in sources], names=names)
        table["snr"] = [s.snr for s in sources]
        if image.wcs is not None and image.wcs.has_celestial:
            ra, dec = image.wcs.all_pix2world(np.asarray(table["x"]), np.asarray(table["y"]), 0)
            table["ra"], table["dec"] = ra, dec
            table["ra"].unit = table["dec"].unit = "deg"
        for c in ("x", "y", "a", "b"):
            table[c].unit = "pix"
        table.meta["comments"] = [f"galviewer detect {Path(args.file).name} [{image.meta.extname},"
                                  f"{image.meta.extver}]: {args.nsigma:g} sigma, {args.npixels} px; x, y 0-based"]
    out = atomic_write(args.output, lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True),
                       overwrite=args.overwrite)
    print(f"{out}: {len(table)} sources")
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    try:
        from galviewer.qt.app import run_app  # type: ignore[import-not-found]
    except ImportError:
        print("galviewer: the desktop viewer is not available in this version; use the sub-commands "
              "(galviewer --help)", file=sys.stderr)
        return 2
    return int(run_app(args.file))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``galviewer`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = {"view", "restore", "measure", "detect", "info", "models"}
    if not argv or (argv[0] not in commands and not argv[0].startswith("-")):
        argv = ["view", *argv]
    args = parser.parse_args(argv)
    handlers = {"view": _cmd_view, "restore": _cmd_restore, "measure": _cmd_measure, "detect": _cmd_detect,
                "info": _cmd_info, "models": _cmd_models}
    try:
        if args.command == "view":
            return handlers[args.command](args)
        with _astropy_log_to_stderr():
            return handlers[args.command](args)
    except GalviewerError as exc:
        print(f"galviewer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("galviewer: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _astropy_log_to_stderr() -> Iterator[None]:
    """Keep standard output for results (JSON stays JSON): astropy's logger, which prints INFO lines such
    as its SIP notice to stdout, is redirected to stderr for the duration of a command."""
    from astropy import log

    saved = list(log.handlers)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("galviewer: astropy %(levelname)s: %(message)s"))
    for h in saved:
        log.removeHandler(h)
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        for h in saved:
            log.addHandler(h)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
