"""What the sub-commands share: argument groups, the pipeline built from them, JSON output and path checks."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from galviewer.core.io.stamps import DEFAULT_CONTEXT
from galviewer.core.restore.consistency import DEFAULT_ANCHOR
from galviewer.errors import ParameterError

MAX_CLI_STAMP = 1024


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


def _add_clean_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-clean-crs", dest="clean_crs", action="store_false",
                   help="do not clean cosmic rays (L.A.Cosmic, on by default for stamps of FLT/FLC images as in the "
                        "viewer; cleaned pixels are in-painted and marked in MASK)")
    p.add_argument("--clean-crs", dest="clean_crs", action="store_true", help=argparse.SUPPRESS)  # the former opt-in


def pipeline_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~galviewer.core.restore.pipeline.PipelineConfig` settings the options ask for (every default
    is the pipeline's own): the restoration options where the command has them."""
    settings = {"size": args.size, "refine": not args.no_refine, "clean_cosmic_rays": args.clean_crs,
                "context": args.context}
    if hasattr(args, "no_uncertainty"):
        settings.update(uncertainty=not args.no_uncertainty, consistency=args.consistency, anchor=args.anchor,
                        point_source=args.point_source, repair=args.repair)
    return settings


def _pipeline(args: argparse.Namespace, *, context: int | None = None, restorer: bool = True) -> Any:
    """The restoration pipeline the options ask for (every default is the pipeline's own); without ``restorer``
    no model is loaded (a pipeline that only cuts stamps, for measuring LQ alone)."""
    from galviewer.core.restore.pipeline import Pipeline, PipelineConfig

    settings = pipeline_settings(args)
    if context is not None:
        settings["context"] = context
    if not restorer:
        return Pipeline(None, PipelineConfig(**settings))
    return Pipeline.default(args.model, device=args.device, **settings)


def _cr_note(image: Any, stamp: Any, args: argparse.Namespace) -> None:
    """Say on stderr what the cosmic-ray cleaning did (or why it did not run)."""
    from galviewer.core.io.cosmics import cleanable

    if not args.clean_crs:
        return
    if not cleanable(image):
        print(f"galviewer: note: {image.meta.kind} image: no cosmic-ray cleaning (single exposures FLT/FLC only)",
              file=sys.stderr)
    else:
        print(f"galviewer: note: {int(stamp.extra.get('cosmic_rays', 0))} cosmic-ray pixels cleaned", file=sys.stderr)


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
    p.add_argument("--repair", action="store_true",
                   help="where the residual holds structure beyond the noise (an over-restored bright core, knots "
                        "smoothed away: the verdict's 'structure'), move the restoration towards the data there and "
                        "only there (off by default: it broadens stars restored as galaxies)")
    p.add_argument("--anchor", type=float, default=DEFAULT_ANCHOR, metavar="SIGMA",
                   help="give the restoration back the data's scales above SIGMA px (large-scale anchoring: "
                        "flux, background, halos; README, Real HST data); 0 turns it off "
                        f"(default: {DEFAULT_ANCHOR:g})")
    p.add_argument("--point-source", dest="point_source", action="store_const", const=True, default="auto",
                   help="the source is a star: fit it with the instrument PSF, restore the rest with the network "
                        "and add the star back as the model's target PSF (PSF photometry; for bright stars, which "
                        "no network restores). By default this is decided per source: an unresolved source "
                        "(spread_model) is restored so")
    p.add_argument("--no-point-source", dest="point_source", action="store_const", const=False,
                   help="never restore the source as a star, even where it is unresolved")


def _add_context_arg(p: argparse.ArgumentParser, when: str) -> None:
    """``--context M``: the margin restored around the stamp and cropped."""
    p.add_argument("--context", type=int, default=DEFAULT_CONTEXT, metavar="M",
                   help=f"{when}restore a cut-out M px larger on every side and keep the central --size (the "
                        "network's own edges stay out of the stamp; README, Real HST data; default "
                        f"{DEFAULT_CONTEXT}, 0 for none)")


def _reading_notes(image: Any) -> None:
    """What the reader noticed about the file (absurd pixels marked bad, an ERR of the wrong shape…), on stderr."""
    for note in getattr(image.meta, "warnings", ()):
        print(f"galviewer: note: {image.path.name}: {note}", file=sys.stderr)


def _resolved(path: Path, name: str) -> Path:
    """``path.resolve()``, a symbolic-link loop named as the parameter's error instead of a traceback."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11: RuntimeError("Symlink loop ..."); 3.13: OSError
        raise ParameterError(name, f"{path} is a symbolic link that loops back on itself ({exc})") from None


def _refuse_input_as_output(out: Path, *inputs: str | None) -> None:
    """No output path may be an input path (a FITS image, a catalogue, a checkpoint)."""
    target = _resolved(out, "--output")
    for given in inputs:
        if given is None:
            continue
        src = Path(given)
        if _resolved(src, "file") == target or (src.exists() and out.exists() and src.samefile(out)):
            raise ParameterError("--output", f"{out} is also an input file; choose another output path")


def _dq_bits(args: argparse.Namespace) -> int:
    if not 0 <= args.dq_ignore < 2**31:
        raise ParameterError("--dq-ignore", f"must be a non-negative sum of DQ bits, got {args.dq_ignore}")
    return int(args.dq_ignore)


def _check_size(size: int) -> None:
    if not 8 <= size <= MAX_CLI_STAMP:
        raise ParameterError("--size", f"must be between 8 and {MAX_CLI_STAMP} pixels, got {size} (restore larger "
                             "areas as regions in the viewer)")


def _quality_line(verdict: Any) -> str:
    if verdict.ok:
        return f"quality {verdict.summary()}"
    if verdict.level == "caution":
        return f"quality: CAUTION (the data are explained): {verdict.summary()}"
    return f"QUALITY FAILS: {verdict.summary()}"


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


