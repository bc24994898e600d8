"""``galviewer restore``: one source (--xy) or a catalogue of sources, through the one pipeline."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from galviewer._atomic import safe_label
from galviewer.cli._common import (
    _check_size,
    _cr_note,
    _dq_bits,
    _pipeline,
    _quality_line,
    _reading_notes,
    _refuse_input_as_output,
)
from galviewer.core.io.catalogs import read_positions
from galviewer.core.io.stamps import check_context
from galviewer.errors import GalviewerError, ParameterError

__all__ = ["cmd_restore"]


def cmd_restore(args: argparse.Namespace) -> int:
    from galviewer.core.io.fits import open_image
    from galviewer.core.io.write import write_stamp
    from galviewer.core.restore.result import steps_text

    _check_size(args.size)
    check_context(args.context, "--context")
    out = Path(args.output)
    _refuse_input_as_output(out, args.file, args.catalog, args.model)
    with open_image(args.file, args.ext, dq_ignore_bits=_dq_bits(args)) as image:
        _reading_notes(image)
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
            result = _pipeline(args).run(image, x, y)
            stamp, measured, verdict = result.stamp, result.measurements, result.meta["verdict"]
            _cr_note(image, stamp, args)
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
        positions = read_positions(args.catalog, image, args.origin)
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
        pipeline = _pipeline(args)
        failures = 0
        rows = []
        for label, x, y, path in targets:
            row = {"label": label, "x_in": x, "y_in": y, "x": math.nan, "y": math.nan, "file": "",
                   "quality_ok": False, "chi2": math.nan, "flux_conservation": math.nan, "status": ""}
            try:
                result = pipeline.run(image, x, y)
                stamp, verdict = result.stamp, result.meta["verdict"]
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


