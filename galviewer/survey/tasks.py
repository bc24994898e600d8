"""What a survey's workers run: plan an input (its chips and their sources) and restore one chunk of sources.

Plain functions of plain arguments (paths, numbers, lists), so that any Dask worker — a LocalCluster's process
or a node of an existing cluster with galviewer installed — can run them.  A chunk is restored exactly as the
in-process batch restores it (:func:`galviewer.core.restore.batch.restore_sources`: the one pipeline, each
stamp's 8 flips in one forward batch), with the model loaded once per worker process
(:meth:`Pipeline.shared <galviewer.core.restore.pipeline.Pipeline.shared>`).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["chip_label", "load_model", "plan_input", "restore_chunk", "run_chunk", "source_row", "survey_row"]

SOURCE_FIELDS = ("id", "x", "y", "flux", "flux_err", "area", "a", "b", "theta_deg")
"""A source in a plan: these :class:`~galviewer.core.measure.detect.Source` fields, then its label."""


def chip_label(ext: str) -> str:
    """``"SCI,2"`` → ``"SCI2"``: the chip's part of a chunk file's name."""
    name, _, ver = ext.partition(",")
    return f"{name}{ver}"


def _set_threads(threads: int) -> None:
    """Torch's intra-op threads of this worker (so that workers × threads does not exceed the cores)."""
    import torch

    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def load_model(model: str | None = None, device: str = "cpu") -> str:
    """Load a model into this worker's cache (what a chunk's first task would do); returns its sha256.
    ``client.run(load_model)`` takes the loading out of a timed run."""
    from galviewer.core.restore.pipeline import Pipeline

    return str(Pipeline.shared(model, device=device).restorer.model_sha256)


def plan_input(path: str, catalog: str | None, settings: dict[str, Any]) -> dict[str, Any]:
    """The chips of one input file and the sources of each: the catalogue's, or detected.

    Parameters
    ----------
    path : str
        A FITS image: FLT/FLC (every SCI extension is a chip), a WFPC2 waiver file (every plane of its cube is a
        chip), DRZ/DRC or plain (its first image).
    catalog : str or None
        ECSV/FITS/CSV table or DS9 region file (:func:`~galviewer.core.io.catalogs.read_positions`); RA/Dec rows
        go to the chip whose footprint holds them; x/y rows refer to the first chip.  None: detection
        (photutils, tiled on large images; no cap on the number of sources).
    settings : dict
        ``dq_ignore``, ``origin`` and the detection settings ``nsigma``, ``npixels``, ``deblend``, ``hot``.

    Returns
    -------
    dict
        ``{"chips": [{"ext": "SCI,1", "shape": [ny, nx], "sources": [[id, x, y, flux, …, label], …]}, …]}``.

        ``{"error": "..."}`` instead when the file or catalogue cannot be read (a bad input is a result, not a
        task failure: the scheduler does not retry it and the worker does not log a traceback).
    """
    from galviewer.errors import GalviewerError

    try:
        return _plan(path, catalog, settings)
    except GalviewerError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _plan(path: str, catalog: str | None, settings: dict[str, Any]) -> dict[str, Any]:
    from galviewer.core.io.catalogs import read_positions
    from galviewer.core.io.fits import open_image
    from galviewer.core.io.hdus import list_images
    from galviewer.core.measure.detect import detect

    listed = list_images(path)
    # FLT/FLC chips, or a WFPC2 waiver file's chips (planes of a cube), or the one image of a DRZ/plain file
    exts = [f"{n},{v}" for n, v, _ in listed if n == "SCI"] or [f"{n},{v}" for n, v, _ in listed if n == "PLANE"]
    chips, sky = [], False
    for k, ext in enumerate(exts or [None]):
        with open_image(path, ext, dq_ignore_bits=settings.get("dq_ignore", 0)) as image:
            ext = ext or f"{image.meta.extname or 'PRIMARY'},{image.meta.extver or 1}"
            ny, nx = image.shape
            if catalog is None:
                found = detect(image, nsigma=settings.get("nsigma", 3.0), npixels=settings.get("npixels", 10),
                               deblend=settings.get("deblend", True), hot=settings.get("hot", True),
                               max_sources=10**9)
                sources = [source_row(s) for s in found]
            else:
                # RA/Dec rows go through each chip's WCS and are kept on its footprint; x/y rows are the first chip's
                rows = read_positions(catalog, image, settings.get("origin", 0)) if k == 0 or sky else []
                sky = sky or getattr(rows, "sky", False)
                nan = math.nan
                sources = [[i + 1, x, y, nan, nan, nan, nan, nan, nan, label] for i, (label, x, y) in enumerate(rows)
                           if not sky or (-0.5 <= x < nx - 0.5 and -0.5 <= y < ny - 0.5)]
        chips.append({"ext": ext, "shape": [ny, nx], "sources": sources})
    return {"chips": chips}


def source_row(source: Any, label: str | None = None) -> list[Any]:
    """A source as a plan row: its :data:`SOURCE_FIELDS`, then its label (its id when none is given)."""
    return [getattr(source, f) for f in SOURCE_FIELDS] + [str(source.id) if label is None else label]


def _sources(spec: dict[str, Any]) -> tuple[list[Any], list[str]]:
    from galviewer.core.measure.detect import Source

    out, labels = [], []
    for s in spec["sources"]:
        out.append(Source(int(s[0]), *(float(v) for v in s[1:9])))
        labels.append(str(s[9]))
    return out, labels


def restore_chunk(spec: dict[str, Any]) -> list[Any]:
    """Restore and measure one chunk's sources: :class:`~galviewer.core.restore.batch.BatchResult` objects
    (what the viewer's batch shows).

    ``spec``: ``path``, ``ext``, ``sources`` (plan rows), ``model``, ``pipeline`` (PipelineConfig settings),
    ``dq_ignore``, ``threads``.
    """
    from galviewer.core.io.fits import open_image

    with open_image(spec["path"], spec["ext"], dq_ignore_bits=spec.get("dq_ignore", 0)) as image:
        return _restore(spec, image)


def _restore(spec: dict[str, Any], image: Any) -> list[Any]:
    from galviewer.core.restore.batch import restore_sources
    from galviewer.core.restore.pipeline import Pipeline

    _set_threads(int(spec.get("threads", 0)))
    pipe = Pipeline.shared(spec.get("model"), device=spec.get("device", "cpu"), **spec.get("pipeline", {}))
    return restore_sources(pipe, image, _sources(spec)[0])


def survey_row(result: Any, label: str, file: str, ext: str, wcs: Any, bunit: str = "") -> dict[str, Any]:
    """A catalogue row of the survey: the batch's row (:meth:`BatchResult.row`) with the file, chip, label,
    RA/Dec, the image's unit, the verdict's failures and the model and its sha256."""
    row = {"file": file, "ext": ext, "label": label, "bunit": bunit}
    batch = result.row()
    ra = dec = math.nan
    if wcs is not None and getattr(wcs, "has_celestial", False):
        r, d = wcs.all_pix2world([[batch["x"], batch["y"]]], 0)[0]
        ra, dec = float(r), float(d)
    row.update({k: batch[k] for k in ("id", "x", "y")}, ra=ra, dec=dec)
    row.update({k: v for k, v in batch.items() if k not in ("id", "x", "y")})
    verdict = result.verdict
    row["quality_failures"] = "; ".join(verdict.failures) if verdict is not None else ""
    meta = result.restoration.meta if result.restoration is not None else {}
    row["model"] = str(meta.get("model", ""))
    row["model_sha256"] = str(meta.get("model_sha256", ""))
    return row


def run_chunk(spec: dict[str, Any]) -> dict[str, Any]:
    """Restore one chunk and write its chunk file (:mod:`galviewer.survey.chunks`) atomically.

    ``spec`` as :func:`restore_chunk`'s, plus ``out`` (the chunk file's path).  Returns a summary:
    ``{"out", "sources", "restored", "seconds", "pid"}`` (the stamps stay on the worker's disk, not in memory).
    """
    from astropy.io import fits

    from galviewer import __version__
    from galviewer.core.io.fits import open_image
    from galviewer.survey.chunks import ascii_text, write_chunk

    t0 = time.perf_counter()
    _, labels = _sources(spec)
    with open_image(spec["path"], spec["ext"], dq_ignore_bits=spec.get("dq_ignore", 0)) as image:
        results = _restore(spec, image)
        wcs, bunit = image.wcs, image.meta.bunit
        rows = [survey_row(r, lab, Path(spec["path"]).name, spec["ext"], wcs, bunit)
                for r, lab in zip(results, labels, strict=True)]
        header = fits.Header()
        if wcs is not None:
            import warnings

            from astropy.wcs import FITSFixedWarning

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                header.update(wcs.to_header(relax=True))
    header["GV_VERS"] = (__version__, "galviewer version")
    header["SURVFILE"] = ascii_text(Path(spec["path"]).name)
    header["SURVEXT"] = (spec["ext"], "the chip of the input file")
    restored = next((r.restoration for r in results if r.restoration is not None), None)
    if restored is not None:
        header["MODEL"] = ascii_text(str(restored.meta.get("model", "")))
        header["MODELSHA"] = str(restored.meta.get("model_sha256", ""))
        for k, step in enumerate(restored.meta.get("pipeline", []), start=1):
            header[f"STEP{k}"] = ascii_text(str(step))
    header.add_comment("stamp k's WCS: this WCS with CRPIX1/2 of the STAMPS row whose PLANE is k")
    write_chunk(spec["out"], rows, [r.restoration for r in results], header, bunit=bunit)
    return {"out": str(spec["out"]), "sources": len(rows), "seconds": time.perf_counter() - t0,
            "restored": sum(r.restoration is not None for r in results), "pid": os.getpid()}
