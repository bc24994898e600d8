"""``galviewer measure``, ``detect``, ``info``, ``models`` and ``view``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from galviewer.cli._common import (
    _check_size,
    _cr_note,
    _dq_bits,
    _pipeline,
    _quality_line,
    _reading_notes,
    _refuse_input_as_output,
    to_json,
)
from galviewer.core.io.stamps import check_context
from galviewer.errors import ParameterError

__all__ = ["cmd_detect", "cmd_info", "cmd_measure", "cmd_models", "cmd_view"]


def cmd_measure(args: argparse.Namespace) -> int:
    from galviewer.core.io.fits import open_image
    from galviewer.core.measure.compare import compare
    from galviewer.core.psf.gaussian import gaussian_psf
    from galviewer.core.psf.instrument import instrument_psf
    from galviewer.core.restore.verdict import compare_restoration

    _check_size(args.size)
    check_context(args.context, "--context")
    if args.psf_fwhm is not None and not args.psf_fwhm > 0:
        raise ParameterError("--psf-fwhm", f"must be a positive number of pixels, got {args.psf_fwhm}")
    with open_image(args.file, args.ext, dq_ignore_bits=_dq_bits(args)) as image:
        _reading_notes(image)
        x, y = args.xy[0] - args.origin, args.xy[1] - args.origin
        inst = instrument_psf(image.meta, image.header)
        # LQ is fitted with the same PSF with and without --restore: the instrument's, or --psf-fwhm's Gaussian.
        if args.psf_fwhm is not None:
            lq_psf, psf_text = gaussian_psf(args.psf_fwhm, 7), f"Gaussian FWHM {args.psf_fwhm:g} px (--psf-fwhm)"
        else:
            lq_psf, psf_text = inst.fitting_kernel(args.size), inst.describe()
        if args.restore:
            pipeline = _pipeline(args)
            result = pipeline.run(image, x, y, judge=False)
            stamp = result.stamp
            m, verdict = pipeline.judge(result, compare_restoration(result, lq_psf=lq_psf))
        else:  # the stamp a restoration would be measured on, without its margin
            stamp = _pipeline(args, context=0, restorer=False).cut(image, x, y)
            verdict = None
            m = compare(stamp.lq, None, lq_psf, err=stamp.err, mask=stamp.bad).with_units(stamp.meta)
        _cr_note(image, stamp, args)
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


def cmd_info(args: argparse.Namespace) -> int:
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


def cmd_models(args: argparse.Namespace) -> int:
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


def cmd_detect(args: argparse.Namespace) -> int:
    import numpy as np
    from astropy.table import Table

    from galviewer._atomic import atomic_write
    from galviewer.core.io.fits import open_image
    from galviewer.core.measure.detect import detect

    _refuse_input_as_output(Path(args.output), args.file)
    with open_image(args.file, args.ext, dq_ignore_bits=_dq_bits(args)) as image:
        _reading_notes(image)
        sources = detect(image, nsigma=args.nsigma, npixels=args.npixels, deblend=args.deblend,
                         max_sources=args.max_sources, hot=args.hot)
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


def cmd_view(args: argparse.Namespace) -> int:
    try:
        from galviewer.qt.app import run_app  # type: ignore[import-not-found]
    except ImportError:
        print("galviewer: the desktop viewer is not available in this version; use the sub-commands "
              "(galviewer --help)", file=sys.stderr)
        return 2
    return int(run_app(args.file))


