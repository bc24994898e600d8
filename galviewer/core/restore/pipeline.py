"""The one restoration pipeline: how a source or a region is restored, with one set of defaults, for every path.

A click in the viewer, a region, a batch row, a chip of a mosaic, ``galviewer restore --xy/--catalog``,
``galviewer measure --restore``, the trainer's evaluation in app units and :func:`galviewer.restore_at` all run
:class:`Pipeline`; none strings the steps together itself.  The steps, in order (:data:`STEPS`):

1. ``cutout`` — the stamp, centred on the source's windowed centroid, cut ``context`` px larger on every side
   (pixels off the image padded with matching noise, DQ-flagged pixels in-painted);
2. ``clean`` — cosmic rays cleaned with L.A.Cosmic on single exposures (FLT/FLC);
3. ``point_source`` — in point-source mode the star at the centre is fitted with the instrument PSF and the
   network is given what it leaves, its core filled with sky;
4. ``normalise`` — min-max to [0, 1], as the model was trained, the top of the range the stamp's own (a brighter
   source in the margin is clipped and restored in a second, full-range pass around itself);
5. ``network`` — the Restormer, on the 8 flips/rotations (their mean is RS, their spread SIGMA);
6. ``units`` — back to the input's units: eq. 8–9 (stamps), least squares (regions), or the inverse min-max;
7. ``anchor`` — the data's scales above σ given back (:func:`~galviewer.core.restore.consistency.anchor`);
8. ``star`` — in point-source mode the star added back at the model's target PSF;
9. ``consistency`` — optional fusion with the data so that the residual χ² is at most 1;
10. ``repair`` — optional: where the residual still holds structure beyond the noise (an over-restored bright
    core, knots smoothed away), RS moved towards the data there and only there
    (:func:`~galviewer.core.restore.consistency.repair`);
11. ``residual`` — LQ − PSF⊗RS, on the cut-out with its margin;
12. ``crop`` — back to the stamp shown (the network's own edges stay in the margin);
13. ``verdict`` — the measurements of LQ and RS and the quality checks (:mod:`~galviewer.core.restore.verdict`).

The steps that ran and their parameters are recorded in ``Restoration.meta["pipeline"]`` and in the FITS
header (``STEPn`` cards).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from galviewer.core.io.stamps import DEFAULT_CONTEXT, Stamp, check_context, cutout
from galviewer.core.restore.consistency import DEFAULT_ANCHOR
from galviewer.core.restore.cutouts import (
    EDGE_BAND,
    Cancel,
    Progress,
    RescaleMethod,
    _cancelled,
    check_anchor,
    check_point_source,
    restore_cutouts,
)
from galviewer.core.restore.result import Restoration, crop_restoration
from galviewer.errors import GalviewerError, ParameterError, RestoreCancelled

if TYPE_CHECKING:
    from galviewer.core.restore.engine import Restorer

__all__ = ["DEFAULTS", "STEPS", "Pipeline", "PipelineConfig", "check_anchor", "restore_at", "restore_cutouts"]

STEPS = ("cutout", "clean", "point_source", "normalise", "network", "units", "anchor", "star", "consistency",
         "repair", "residual", "crop", "verdict")
@dataclass(frozen=True)
class PipelineConfig:
    """How a source is restored: every default of every path, in one place.

    Parameters
    ----------
    size : int
        Side of the stamp shown and measured (8–1024 px; 64 as in the paper).
    context : int
        Context margin (0–256 px) restored around the stamp and cropped.
    refine : bool
        Centre the stamp on the source's windowed centroid.
    clean_cosmic_rays : bool
        L.A.Cosmic on stamps of single exposures (FLT/FLC; drizzled images are clean already).
    point_source : bool or "auto"
        Restore the source at the centre as a star (fitted with the instrument PSF, restored as the target PSF):
        ``"auto"`` (the default) where it is unresolved (:func:`~galviewer.core.measure.spread.spread_model`),
        True always (a stamp without a star is refused), False never.
    uncertainty : bool
        Run the 8 flips/rotations: RS is their mean, SIGMA their spread (one pass when False).
    rescale : {"auto", "paper", "lstsq", "minmax"}
        Back to the input's units (``auto``: eq. 8–9 for stamps up to 128 px, least squares beyond).
    anchor : float
        σ (px) of the large-scale anchoring; 0 turns it off.
    consistency : bool
        Fuse RS with the data so that the residual χ² is at most 1.
    repair : bool
        Where the residual holds structure beyond the noise (the verdict's ``structure`` check: an over-restored
        bright core, knots smoothed away), move RS towards the data there and only there
        (:func:`~galviewer.core.restore.consistency.repair`).  Off by default: it brings galaxies nearer the
        truth but broadens stars restored as galaxies (docs, *Local repair*).

    Raises
    ------
    ParameterError
        Naming the field that is out of range.
    """

    size: int = 64
    context: int = DEFAULT_CONTEXT
    refine: bool = True
    clean_cosmic_rays: bool = True
    point_source: bool | str = "auto"
    uncertainty: bool = True
    rescale: RescaleMethod = "auto"
    anchor: float = DEFAULT_ANCHOR
    consistency: bool = False
    repair: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int | np.integer) and 8 <= self.size <= 1024):
            raise ParameterError("size", f"must be 8–1024 px, got {self.size!r}")
        check_context(self.context)
        if self.rescale not in ("auto", "paper", "lstsq", "minmax"):
            raise ParameterError("rescale", f"must be auto, paper, lstsq or minmax, got {self.rescale!r}")
        object.__setattr__(self, "anchor", check_anchor(self.anchor))
        object.__setattr__(self, "point_source", check_point_source(self.point_source))
        for name in ("refine", "clean_cosmic_rays", "uncertainty", "consistency", "repair"):
            object.__setattr__(self, name, bool(getattr(self, name)))

    def replace(self, **changes: Any) -> PipelineConfig:
        """A copy with some settings changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ParameterError(sorted(unknown)[0], f"is not a pipeline setting; settings: "
                                 f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)


DEFAULTS = PipelineConfig()


class Pipeline:
    """A restorer and the settings every path restores with.

    Parameters
    ----------
    restorer : Restorer or None
        The model, its device and memory budget (None for a pipeline that only cuts stamps: :meth:`cut`).
    config : PipelineConfig
        The settings (default :data:`DEFAULTS`).

    Examples
    --------
    >>> pipe = Pipeline(Restorer.from_pretrained())                     # doctest: +SKIP
    >>> r = pipe.run(galviewer.open_image("j8pu0ypaq_flt.fits"), 812.4, 530.1)   # doctest: +SKIP
    >>> r.meta["verdict"].ok, r.meta["pipeline"][0]                      # doctest: +SKIP
    """

    def __init__(self, restorer: Restorer | None, config: PipelineConfig = DEFAULTS) -> None:
        if not isinstance(config, PipelineConfig):
            raise ParameterError("config", f"must be a PipelineConfig, got {type(config).__name__}")
        self.restorer = restorer
        self.config = config

    @classmethod
    def default(cls, model: str | None = None, *, device: str = "auto", **settings: Any) -> Pipeline:
        """The pipeline with a shipped model (``model`` a name or a checkpoint path; None: the default one)."""
        config = DEFAULTS.replace(**settings)
        return cls(_load_restorer(model, device), config)

    @classmethod
    def shared(cls, model: str | None = None, *, device: str = "auto", **settings: Any) -> Pipeline:
        """As :meth:`default`, but the restorer is loaded once per process, model, device and checkpoint version
        (the one :func:`restore_at` uses): a survey worker loads its model once for all its chunks."""
        config = DEFAULTS.replace(**settings)
        return cls(_shared_restorer(model, device, _checkpoint_stamp(model)), config)

    def with_config(self, **changes: Any) -> Pipeline:
        """The same restorer with some settings changed."""
        return Pipeline(self.restorer, self.config.replace(**changes))

    # ------------------------------------------------------------------ steps
    def steps(self, *, image: Any = None, region: bool = False) -> list[str]:
        """The steps this pipeline runs on ``image`` and their parameters: one line per name of :data:`STEPS`,
        in order, each starting with that name (recorded in ``meta["pipeline"]`` and as ``STEPn`` in FITS)."""
        c = self.config
        clean = ("L.A.Cosmic" if c.clean_cosmic_rays and _cleanable(image) else
                 "off" if not c.clean_cosmic_rays else "not a single exposure")
        units = "lstsq over the region" if region else c.rescale
        star = False if region else c.point_source
        return [
            f"cutout size={c.size} context={c.context} refine={c.refine and not region}",
            f"clean cosmic rays: {clean}",
            {True: "point_source on: fit with the instrument PSF", False: "point_source off",
             "auto": "point_source auto: fitted, kept where spread_model says unresolved"}[star],
            f"normalise min-max, top from {EDGE_BAND} px inside the stamp" if c.context else "normalise min-max",
            f"network flips={8 if c.uncertainty else 1}",
            f"units {units}",
            f"anchor sigma={c.anchor:g}" if c.anchor > 0 else "anchor off",
            "star off" if star is False else "star added at the model's target PSF where fitted",
            "consistency on" if c.consistency else "consistency off",
            "repair on: Landweber steps where the residual holds structure" if c.repair else "repair off",
            f"residual through {self.restorer.psf_source if self.restorer is not None else 'the model kernel'}",
            f"crop {c.context} px",
            "verdict",
        ]

    def cut(self, image: Any, x: float, y: float) -> Stamp:
        """Steps ``cutout`` and ``clean``: the stamp with its margin, cleaned (pixels in ``extra["cosmic_rays"]``).

        Raises
        ------
        ParameterError
            For a position that leaves too little of the stamp on the image.
        """
        st = cutout(image, x, y, self.config.size, context=self.config.context, refine=self.config.refine)
        return self.clean(image, st)

    def clean(self, image: Any, stamp: Stamp) -> Stamp:
        """Step ``clean``: cosmic rays of single exposures (FLT/FLC) replaced and flagged."""
        n = 0
        if self.config.clean_cosmic_rays and _cleanable(image):
            from galviewer.core.io.cosmics import clean_cosmic_rays

            stamp, n = clean_cosmic_rays(stamp)
        stamp.extra["cosmic_rays"] = n
        return stamp

    def restore_stamps(self, stamps: Sequence[Stamp], *, rescale: RescaleMethod | None = None,
                       progress: Progress | None = None, cancel: Cancel = None, image: Any = None,
                       region: bool = False) -> list[Restoration]:
        """Steps ``point_source`` to ``crop`` on stamps cut by :meth:`cut` (their margin is the config's)."""
        c = self.config
        # Each stamp gets forward passes of its own (its 8 flips together), never shared with another stamp: a
        # pass's arithmetic depends on how many images it holds (oneDNN picks its blocking by batch size, last
        # bits differ), and a batch row must be bit-identical to a click at the same position.
        out = [restore_cutouts(self.restorer, [st], uncertainty=c.uncertainty, rescale=rescale or c.rescale,
                               consistency=c.consistency, anchor=c.anchor, repair=c.repair,
                               point_source=False if region else c.point_source, margin=c.context,
                               progress=progress, cancel=cancel)[0] for st in stamps]
        steps = self.steps(image=image, region=region)
        results = []
        for r in out:
            r = crop_restoration(r, c.context)
            r.meta["pipeline"] = steps
            r.meta["cosmic_rays"] = int(r.stamp.extra.get("cosmic_rays", 0)) if r.stamp is not None else 0
            results.append(r)
        return results

    def judge(self, restoration: Restoration, measurements: Any = None) -> tuple[Any, Any]:
        """Step ``verdict``: measure LQ and RS and judge them; both are attached to the restoration."""
        from galviewer.core.restore.verdict import judge

        m, verdict = judge(restoration, measurements)
        restoration.measurements = m
        return m, verdict

    # ------------------------------------------------------------------ paths
    def run(self, image: Any, x: float, y: float, *, progress: Progress | None = None, cancel: Cancel = None,
            judge: bool = True) -> Restoration:
        """Every step for the source at (x, y) (0-based pixels of ``image``): a click, ``restore --xy``.

        Returns
        -------
        Restoration
            With ``meta["verdict"]`` and ``measurements`` when ``judge``.
        """
        st = self.cut(image, x, y)
        if _cancelled(cancel):
            raise RestoreCancelled("superseded")
        r = self.restore_stamps([st], progress=progress, cancel=cancel, image=image)[0]
        if judge:
            if _cancelled(cancel):
                raise RestoreCancelled("superseded")
            self.judge(r)
        return r

    def run_many(self, image: Any, positions: Sequence[tuple[float, float]], *, judge: bool = True,
                 progress: Progress | None = None, cancel: Cancel = None) -> list[Restoration | GalviewerError]:
        """Every step for many sources of one image, each exactly as :meth:`run` restores it (its own forward
        passes: see :meth:`restore_stamps`), so the results are bit-identical to :meth:`run` on each position.

        A source that fails gives its error in its place (the others go on).  ``progress(done, total)`` ticks
        once per source restored and once per source judged.

        Raises
        ------
        RestoreCancelled
            When cancelled.
        """
        out: list[Any] = [None] * len(positions)
        total = len(positions) * (2 if judge else 1)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        for i, (x, y) in enumerate(positions):
            if _cancelled(cancel):
                raise RestoreCancelled("batch cancelled")
            try:
                out[i] = self.restore_stamps([self.cut(image, x, y)], cancel=cancel, image=image)[0]
            except RestoreCancelled:
                raise
            except GalviewerError as exc:
                out[i] = exc
            tick()
        if judge:
            for r in out:
                if _cancelled(cancel):
                    raise RestoreCancelled("batch cancelled")
                if isinstance(r, Restoration):
                    try:
                        self.judge(r)
                    except GalviewerError as exc:
                        r.meta["measure_error"] = f"measurement failed: {exc}"
                tick()
        return out

    def run_region(self, image: Any, region: Any, *, progress: Progress | None = None,
                   cancel: Cancel = None, judge: bool = True) -> Any:
        """Every step for a region, restored as one piece (tiled within the memory budget), and its verdict over
        the region's pixels when ``judge`` (:func:`~galviewer.core.restore.verdict.assess` with ``inside``).

        Its bounding box is cut with the context margin and cropped back; the network output is mapped to the
        input's units by least squares over the pixels *inside* the region (eq. 8–9 need a source at the centre,
        which a region need not have); point-source mode does not apply.

        Returns
        -------
        RegionRestoration
        """
        from galviewer.core.restore.regions import restore_region

        return restore_region(self, image, region, progress=progress, cancel=cancel, judge=judge)


def _is_checkpoint_path(model: str | None) -> bool:
    return model is not None and (Path(model).suffix in (".safetensors", ".pth", ".pt") or Path(model).exists())


def _load_restorer(model: str | None, device: str) -> Restorer:
    """A shipped model by name (None: the default one) or a checkpoint file."""
    from galviewer.core.restore.engine import Restorer

    if _is_checkpoint_path(model):
        return Restorer.from_file(model, device)
    return Restorer.from_pretrained(model, device)


def _checkpoint_stamp(model: str | None) -> int:
    """A checkpoint file's modification time (0 for a shipped name): a rewritten file is loaded again."""
    try:
        return Path(model).stat().st_mtime_ns if _is_checkpoint_path(model) else 0
    except OSError:
        return 0  # loading will say why


@functools.lru_cache(maxsize=4)
def _shared_restorer(model: str | None, device: str, stamp: int) -> Restorer:
    """The restorer :func:`restore_at` uses: loaded (and its file hashed) once per model, device and file
    version, not on every call (76 ms a call on this machine, a fifth of a restoration); restorers are
    thread-safe."""
    return _load_restorer(model, device)


def _cleanable(image: Any) -> bool:
    from galviewer.core.io.cosmics import cleanable

    return image is not None and cleanable(image)


def restore_at(image: Any, x: float, y: float, size: int = 64, *, model: str | None = None, device: str = "auto",
               **settings: Any) -> Restoration:
    """Restore the source at (x, y) exactly as a click in the viewer does, and judge it.

    Parameters
    ----------
    image : galviewer.Image or str or path
        An image from :func:`galviewer.open_image`, or a FITS file name (its first science extension).
    x, y : float
        0-based pixel position (x = column).
    size : int
        Side of the stamp.
    model : str, optional
        A shipped model's name or a checkpoint path (default: the shipped default model).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``…
    **settings
        Any other :class:`PipelineConfig` setting (``context``, ``point_source``, ``anchor``…).

    Returns
    -------
    Restoration
        RS, SIGMA, residual and stamp in the input's units, ``meta["verdict"]``, ``measurements`` and
        ``meta["pipeline"]`` (the steps that ran).
    """
    config = DEFAULTS.replace(size=size, **settings)
    pipe = Pipeline(_shared_restorer(model, device, _checkpoint_stamp(model)), config)
    if isinstance(image, str) or hasattr(image, "__fspath__"):
        from galviewer.core.io.fits import open_image

        with open_image(image) as im:
            return pipe.run(im, x, y)
    return pipe.run(image, x, y)
