"""The restoration engine: from an LQ stamp or region to a restored image in physical units.

Steps (METHOD §3–4):

1. min-max normalise the input to [0, 1] (the model was trained that way);
2. run the Restormer, optionally on the 8 flips/rotations of the input
   (test-time augmentation), whose mean is the result and whose spread is the
   per-pixel uncertainty; large inputs are cut into overlapping tiles that
   are blended with smooth weights, so memory stays within a budget;
3. bring the result back to the input's units without any ground truth, with
   eq. 8–9 of the paper (background level and central 4×4 mean of LQ and of
   PSF⊗RS) for stamps, or with a least-squares fit of PSF⊗RS to LQ for large
   regions whose centre is not a source;
4. report the residual LQ − PSF⊗RS.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from galviewer.core.io.stamps import Stamp, stamp_from_array
from galviewer.core.measure.background import background
from galviewer.core.nn.resources import available_models, default_model_name, models_dir
from galviewer.core.nn.restormer import Restormer
from galviewer.core.nn.weights import ModelMetadata, file_sha256, load_model
from galviewer.core.psf.degrade import convolve
from galviewer.core.psf.gaussian import gaussian_psf
from galviewer.core.restore.consistency import DEFAULT_ANCHOR
from galviewer.core.restore.point_source import place
from galviewer.errors import ParameterError, RestoreCancelled, RestoreError, WeightsError

__all__ = ["Restoration", "Restorer", "choose_device", "crop_restoration", "dihedral", "rescale_to_physical"]

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool] | threading.Event | None
RescaleMethod = Literal["auto", "paper", "lstsq", "minmax"]

# Bytes of activations per input pixel per unit of `dim` (measured on CPU for the presets; see benchmarks/).
# With the architecture caps of galviewer.core.nn.restormer (dim <= MAX_DIM) the smallest pass (one 64×64 tile)
# needs at most 200 · 512 · 64² B = 400 MB, whatever checkpoint is loaded.
_BYTES_PER_PIXEL_PER_DIM = 200
# Work (pixels × dim) per forward pass and per CPU thread beyond which batching more images stops paying:
# measured per image, the small preset (dim 16) runs 64×64 stamps fastest at batch ~2 on one thread and 4–8 on
# two, the galaxy preset (dim 48) at batch 1 (batch 8 is 1.5–1.7× slower per image); see benchmarks/speed.py.
_FORWARD_PX_DIM_PER_THREAD = 150_000
# Larger pixel values are not data (float32 holds up to 3.4e38; a restoration multiplies them further).
MAX_PIXEL_VALUE = 1e30


def choose_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto"`` to CUDA, then Apple MPS, then CPU; validate anything else."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError("device", f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", "CUDA was requested but no CUDA GPU is available")
    return dev


def dihedral(x: np.ndarray, k: int, inverse: bool = False) -> np.ndarray:
    """Apply (or undo) the k-th of the 8 flips/rotations to the last two axes."""
    rot, flip = k % 4, k >= 4
    if not inverse:
        y = np.rot90(x, rot, axes=(-2, -1))
        return np.flip(y, axis=-1) if flip else y
    y = np.flip(x, axis=-1) if flip else x
    return np.rot90(y, -rot, axes=(-2, -1))


def _cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


@dataclass
class Restoration:
    """A restored image with everything needed to judge it.

    Attributes
    ----------
    lq : numpy.ndarray
        The input, in its own units (after stamp padding / in-painting).
    data : numpy.ndarray
        Restored image in the input's units: ``scale · normalized + offset``, then anchored to the data's large
        scales and/or fused with the data where those steps ran (``meta["anchor"]``, ``meta["consistency"]``);
        in point-source mode the fitted star at the target PSF is added first (``meta["point_source"]``).
    normalized : numpy.ndarray
        Network output in the min-max normalised units of the input.
    sigma : numpy.ndarray or None
        Per-pixel spread of the 8 flip/rotation restorations, in the input's units.
    residual : numpy.ndarray
        ``lq − PSF ⊗ data``.
    model_input : numpy.ndarray
        The normalised LQ the network saw.
    scale, offset : float
        The eq. 8–9 (or fallback) mapping from normalised to input units.
    psf : numpy.ndarray
        The LQ PSF used for the rescaling and the residual.
    stamp : Stamp or None
    meta : dict
        Model name and sha256, rescale method, device, timing, ...
    """

    lq: np.ndarray
    data: np.ndarray
    normalized: np.ndarray
    sigma: np.ndarray | None
    residual: np.ndarray
    model_input: np.ndarray
    scale: float
    offset: float
    psf: np.ndarray
    stamp: Stamp | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _convolve32(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """PSF convolution kept in float32 for large images (a 4096² float64 copy alone is 128 MB)."""
    if image.size <= 256 * 256:
        return convolve(image, psf)
    from scipy import ndimage

    k = np.asarray(psf, dtype=np.float64)[::-1, ::-1]
    return ndimage.convolve(np.asarray(image, dtype=np.float32), k, output=np.float32, mode="reflect")


def _lstsq_line(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None, rows: int = 256) -> tuple[float, float]:
    """Least-squares ``y ≈ s·x + c`` over unmasked pixels, accumulating the normal equations by row blocks.

    Float64 sums over blocks of ``rows`` rows keep the memory to a few blocks whatever the image size.
    """
    n = sx = sy = sxx = sxy = 0.0
    for r0 in range(0, x.shape[0], rows):
        xb = np.asarray(x[r0: r0 + rows], dtype=np.float64)
        yb = np.asarray(y[r0: r0 + rows], dtype=np.float64)
        if mask is not None:
            keep = ~mask[r0: r0 + rows]
            xb, yb = xb[keep], yb[keep]
        xb, yb = xb.ravel(), yb.ravel()
        n += xb.size
        sx += float(xb.sum())
        sy += float(yb.sum())
        sxx += float(np.dot(xb, xb))
        sxy += float(np.dot(xb, yb))
    if n < 2:
        return float("nan"), float("nan")
    var = sxx - sx * sx / n
    if not var > 0:
        return float("nan"), float("nan")
    s = (sxy - sx * sy / n) / var
    return float(s), float((sy - s * sx) / n)


def _central_mean(img: np.ndarray, cx: float, cy: float, half: int = 2) -> float:
    ny, nx = img.shape
    ix = min(max(round(cx), half), nx - half)
    iy = min(max(round(cy), half), ny - half)
    return float(np.mean(img[iy - half : iy + half, ix - half : ix + half]))


def rescale_to_physical(
    lq: np.ndarray,
    rs: np.ndarray,
    psf: np.ndarray,
    *,
    method: Literal["paper", "lstsq"] = "paper",
    center: tuple[float, float] | None = None,
    mask: np.ndarray | None = None,
) -> tuple[float, float, str]:
    """Scale and offset mapping a normalised restoration to the LQ image's units.

    ``paper`` is eq. 8–9 of Park et al.: with l = background level (σ-clipped
    SExtractor mode) and u = mean of the central 4×4 pixels, measured on LQ and
    on PSF⊗RS, ``s = (u_LQ − l_LQ)/(u_RS − l_RS)`` and ``c = −s·l_RS + l_LQ``.
    ``lstsq`` fits ``LQ ≈ s·(PSF⊗RS) + c`` over all usable pixels, for regions
    with no source at their centre.

    Returns
    -------
    scale, offset : float
    method : str
        The method actually used (``"minmax"`` is reported by the caller's fallback).

    Raises
    ------
    RestoreError
        When the mapping is undefined (no contrast, or a non-positive scale).
    """
    conv = _convolve32(rs, psf)
    if method == "paper":
        ny, nx = lq.shape
        cx, cy = center if center is not None else (nx // 2, ny // 2)
        l_lq = background(lq, mask=mask).level
        l_rs = background(conv, mask=mask).level
        u_lq = _central_mean(lq, cx, cy)
        u_rs = _central_mean(conv, cx, cy)
        denom = u_rs - l_rs
        s = (u_lq - l_lq) / denom if denom != 0 else float("nan")
        c = -s * l_rs + l_lq
    elif method == "lstsq":
        s, c = _lstsq_line(conv, lq, mask)
    else:
        raise ParameterError("rescale", f"unknown method {method!r}")
    if not (math.isfinite(s) and math.isfinite(c) and s > 0):
        raise RestoreError(f"the {method} rescaling is undefined for this input (scale {s:.3g})", "rescale")
    return float(s), float(c), method


def _trained_fwhm(metadata: ModelMetadata) -> tuple[float, float] | None:
    """The LQ PSF core FWHM range (pixels) a model trained with real PSFs saw, else None."""
    try:
        gauss = metadata.extra["train_config"]["degrade"]["fwhm_range"]
        real = metadata.extra["real_psf_fwhm_pix"]
        return (float(min(gauss[0], real[0])), float(max(gauss[1], real[1])))
    except (KeyError, TypeError, IndexError, ValueError):
        return None


def _anchor_scale(value: float) -> float:
    """A valid anchoring σ in pixels (0: off)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError("anchor", f"must be a number of pixels (0 for none), got {value!r}") from None
    if not (math.isfinite(v) and 0 <= v <= 64):
        raise ParameterError("anchor", f"must be 0 (off) or a σ of up to 64 pixels, got {value!r}")
    return v


# How point-source mode brings the network's restoration of the remainder (LQ minus the fitted star, its core
# filled with sky: _network_remainder) back to the input's units.  The remainder is no galaxy at the stamp's
# centre, so eq. 8–9 would measure the filled core; inverting the min-max normalisation is exact for what the
# network was given.  Measured on the two real stars (8-px margin, with / without the 8 flips): minmax — STIS
# RS/LQ rms 0.29 / 0.53, border 1.11, WFC3/IR 0.61 / 0.62, 1.02, no new source, flux 0.990 / 1.036; eq. 8–9
# ("paper") — the same for STIS but a new source on the WFC3/IR star's spike with the flips; least squares
# ("lstsq") — rms STIS 0.41 / 0.78, WFC3/IR 0.75 / 0.80.  (Before the core was filled no rule served both stars:
# eq. 8–9 left the STIS star at rms 15.5, least squares the WFC3/IR star at 3.8.)
POINT_RESCALE = "minmax"
# Point-source mode: the remainder is kept unrestored within STAR_CORE[0] FWHM of the star, restored beyond
# STAR_CORE[1] (see Restorer._add_star).
STAR_CORE = (2.0, 4.0)


def _partial(mask: np.ndarray) -> np.ndarray | None:
    """A mask for the post-steps and fits, or None when it masks nothing (or everything: nothing to use)."""
    return mask if mask.any() and not mask.all() else None


def _star_radius(star: Any, shape: tuple[int, int]) -> np.ndarray:
    """Distance of every pixel from a fitted star, in units of its PSF's FWHM."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.hypot(xx - star.x, yy - star.y) / max(star.fwhm, 1.0)


def _star_core(star: Any, shape: tuple[int, int]) -> np.ndarray:
    """The pixels within ``STAR_CORE[0]`` FWHM of a fitted star, where point-source mode keeps the data."""
    return _star_radius(star, shape) < STAR_CORE[0]


def _network_remainder(st: Stamp, star: Any) -> np.ndarray:
    """What the network restores in point-source mode: the stamp less the fitted star, its core filled with sky.

    Within ``STAR_CORE[0]`` FWHM the remainder is the PSF model's mismatch (−1,500σ to +280σ on the STIS star)
    and the result there is the data's own remainder anyway (:meth:`Restorer._add_star`); left in, it set the
    min-max range and put the rest of the stamp at a noise 18× below anything the network was trained on, which
    it answered with a lattice of 4-px dots.  The core is filled with the median of the remainder between
    ``STAR_CORE[0]`` and ``STAR_CORE[1]`` FWHM plus noise of the stamp's background rms (seeded by the star's
    position: the same click gives the same input)."""
    rem = np.asarray(st.lq, dtype=np.float64) - star.model
    r = _star_radius(star, rem.shape)
    core = _star_core(star, rem.shape)
    ring = ~core & (r < STAR_CORE[1]) & ~(st.padded | st.bad)
    level = float(np.median(rem[ring])) if ring.any() else float(np.median(rem[~core]))
    rms = st.background_rms if math.isfinite(st.background_rms) else 0.0
    rng = np.random.default_rng([abs(round(100 * star.x)), abs(round(100 * star.y)), *rem.shape])
    rem[core] = level + rng.normal(0.0, rms, int(core.sum()))
    return rem.astype(np.float32)


def star_psf(st: Stamp, model_fwhm: float) -> tuple[np.ndarray, float, str]:
    """The PSF a star of this stamp is fitted with: its instrument's, or the model's LQ Gaussian for a bare array.

    Returns
    -------
    (kernel, FWHM in pixels, where it came from)
    """
    meta = getattr(st, "meta", None)
    if meta is None:
        return gaussian_psf(model_fwhm, 15), model_fwhm, "the model's LQ Gaussian"
    from galviewer.core.psf.instrument import instrument_psf

    inst = instrument_psf(meta)
    return inst.kernel, inst.fwhm_pix, inst.describe(ascii=True)


def steps_text(meta: dict[str, Any]) -> str:
    """What was done after the network, for status lines, panels and figures (empty when nothing).

    Parameters
    ----------
    meta : dict
        ``Restoration.meta``.

    Returns
    -------
    str
        E.g. ``"large scales anchored to the data (σ 2 px) · consistency: χ² 3.1 → 1"``.
    """
    parts = []
    if meta.get("context"):
        n = int(meta["context"])
        article = "an" if str(n).startswith("8") or n in (11, 18) else "a"  # "an 8 px", "an 11 px"
        parts.append(f"restored with {article} {n} px context margin")
    star = meta.get("point_source")
    if star:
        parts.append(f"point source: flux {star['flux']:.4g} PSF-fitted at ({star['x']:.2f}, {star['y']:.2f}), "
                     "restored as the target PSF")
    anchored = meta.get("anchor")
    if anchored:
        parts.append(f"large scales anchored to the data (σ {anchored['scale']:g} px)")
    cons = meta.get("consistency")
    if cons:
        parts.append(f"consistency: χ² {cons['chi2_network']:.3g} → {cons['chi2']:.3g}" if math.isfinite(cons["mu"])
                     else f"consistency: RS kept (χ² {cons['chi2_network']:.3g})")
    for step, why in (meta.get("skipped") or {}).items():
        parts.append(f"{'anchoring' if step == 'anchor' else step} skipped: {why}")
    return " · ".join(parts)


def crop_restoration(r: Restoration, margin: int) -> Restoration:
    """The central part of a restoration, ``margin`` pixels in from every side (context margin, issue 11).

    Restoring a cut-out ``2·margin`` larger than the stamp and cropping keeps the network's own edges out of the
    result; the residual is the larger one's, cropped, so it is computed with the context too.  The stamp (LQ,
    ERR, masks, WCS, origin) is cropped alike, a point source's fitted position moved into the kept pixels;
    ``meta["context"]`` records the margin.

    Raises
    ------
    ParameterError
        For a negative margin or one that leaves fewer than 8×8 pixels.
    """
    m = int(margin)
    if m < 0 or min(r.lq.shape) - 2 * m < 8:
        raise ParameterError("context", f"a margin of {margin} px leaves less than 8×8 of a {r.lq.shape} restoration")
    if m == 0:
        return r
    sl = (slice(m, -m), slice(m, -m))

    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a[sl])

    st = r.stamp
    if st is not None:
        st = dataclasses.replace(st, lq=cut(st.lq), err=cut(st.err), bad=cut(st.bad), padded=cut(st.padded),
                                 wcs=None if st.wcs is None else st.wcs[sl],
                                 origin=(st.origin[0] + m, st.origin[1] + m))
    meta = {**r.meta, "context": m}
    if meta.get("point_source"):  # the fitted star's position, in the kept stamp's pixels
        star = meta["point_source"]
        meta["point_source"] = {**star, "x": star["x"] - m, "y": star["y"] - m}
    return dataclasses.replace(r, lq=cut(r.lq), data=cut(r.data), normalized=cut(r.normalized), sigma=cut(r.sigma),
                               residual=cut(r.residual), model_input=cut(r.model_input), stamp=st, meta=meta)


class Restorer:
    """Restore galaxy stamps and regions with a Restormer checkpoint.

    Parameters
    ----------
    model : Restormer
        The network (its weights are used as given).
    metadata : ModelMetadata
        How the model must be used (PSF FWHM, normalisation, ...).
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ...
    uncertainty : bool
        Default for :meth:`restore`: run the 8 flips/rotations and report their spread.
    memory_budget_mb : float
        Upper bound on the network's activation memory per forward pass: inputs are batched and
        large inputs tiled so that one pass stays within it (the tile side never drops below 64).
        Beside it, restoring an H×W region holds about ten H×W float32 arrays (input, its
        normalised copy, accumulators, the restored image, residual and uncertainty), e.g. 0.7 GB
        for 4096×4096; see ``benchmarks/tile_memory.py``.
    batch_size : int
        Images per forward pass.
    model_path : path-like, optional
        Where the model came from (for provenance).
    consistency : bool
        Default for :meth:`restore`: fuse the network's answer with the data after rescaling
        (:func:`galviewer.core.restore.consistency.fuse`) so that the residual χ² is at most 1.
    anchor : float
        Default for :meth:`restore`: σ in pixels of the large-scale anchoring
        (:func:`galviewer.core.restore.consistency.anchor`, applied after rescaling and before the consistency
        step), which gives the restoration back the data's scales well above σ; 0 turns it off.
    point_source : bool
        Default for :meth:`restore`: point-source mode (:mod:`galviewer.core.restore.point_source`): the star at the
        stamp's centre is fitted with the instrument PSF, the network restores the rest, and the star is
        added back at the model's target (GT) PSF.
    half : bool
        Run the network in float16 on a GPU (about half the memory; the LayerNorm statistics are
        computed in float32, so large activations cannot overflow). Refused on CPU, where float16
        and bfloat16 are slower than float32 on CPUs without native half-precision units.

    Notes
    -----
    Instances are thread-safe: forward passes are serialised by a lock and
    every call runs under ``torch.inference_mode``.
    """

    def __init__(
        self,
        model: Restormer,
        metadata: ModelMetadata,
        device: str | torch.device = "auto",
        *,
        uncertainty: bool = True,
        memory_budget_mb: float = 1024.0,
        batch_size: int = 8,
        model_path: str | os.PathLike[str] | None = None,
        model_sha256: str = "",
        half: bool = False,
        consistency: bool = False,
        anchor: float = DEFAULT_ANCHOR,
        point_source: bool = False,
    ) -> None:
        if not memory_budget_mb > 0:
            raise ParameterError("memory_budget_mb", f"must be > 0, got {memory_budget_mb}")
        if batch_size < 1:
            raise ParameterError("batch_size", f"must be >= 1, got {batch_size}")
        self.device = choose_device(device)
        if half and self.device.type != "cuda":
            raise ParameterError("half", f"float16 inference needs a CUDA GPU; this restorer runs on "
                                 f"{self.device.type.upper()}, where float32 is faster")
        self.half = bool(half)
        self.metadata = metadata
        self.uncertainty = bool(uncertainty)
        self.consistency = bool(consistency)
        self.anchor = _anchor_scale(anchor)
        self.point_source = bool(point_source)
        self.memory_budget_mb = float(memory_budget_mb)
        self.batch_size = int(batch_size)
        self.model_path = None if model_path is None else Path(model_path)
        self.model_sha256 = model_sha256
        # The kernel relating RS to LQ (rescaling, residual, consistency): the model's Gaussian, also for models
        # trained with the shipped HST PSF shapes.  Measured on the real-data set (benchmarks/realdata.py): the
        # instrument PSF's own shape, its core narrowed in quadrature by the GT PSF (as the trainer's LQ = K ⊗ GT
        # implies), put 11–35 % too much flux into the WFC3/IR galaxies and doubled their χ²; with the Gaussian
        # their flux is within 4–15 % (README, *Real HST data*): the network does not restore the wings of the
        # real PSFs, so a kernel with those wings over-scales its output.
        self.psf = gaussian_psf(metadata.psf_fwhm_pix, 7)
        self.psf_source = f"Gaussian FWHM {metadata.psf_fwhm_pix:.2f} px (the model's)"
        # Models trained with the shipped HST PSFs (issue 11): the LQ PSF core FWHM range (pixels) they saw,
        # Gaussians and real PSFs together, for the verdict's training-range check.
        self.trained_fwhm = _trained_fwhm(metadata)
        self._lock = threading.Lock()
        self._channels_last = self.device.type == "cpu"
        model = model.eval().to(self.device)
        if self.half:
            model = model.half()
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_file(cls, path: str | os.PathLike[str], device: str | torch.device = "auto", **kwargs: Any) -> Restorer:
        """Load a checkpoint (galviewer ``.safetensors`` or a published ``.pth``)."""
        dev = choose_device(device)
        model, meta = load_model(path, "cpu")
        return cls(model, meta, dev, model_path=path, model_sha256=file_sha256(path), **kwargs)

    @classmethod
    def from_pretrained(cls, name: str | None = None, device: str | torch.device = "auto", **kwargs: Any) -> Restorer:
        """Load a model shipped in ``resources/models`` (the default one when ``name`` is None).

        Raises
        ------
        WeightsError
            When no model (or no model of that name) is shipped.
        """
        names = available_models()
        if name is None:
            name = default_model_name()
            if name is None:
                reason = (
                    "no model is shipped with this installation; train one with `galviewer-train` "
                    "and pass it with --model PATH (or Restorer.from_file)"
                    if not names
                    else f"several models are shipped ({names}) and none is marked default; pass a name"
                )
                raise WeightsError(models_dir(), reason)
        if name not in names:
            raise WeightsError(models_dir() / f"{name}.safetensors", f"no shipped model {name!r}; available: {names}")
        return cls.from_file(models_dir() / f"{name}.safetensors", device, **kwargs)

    # ------------------------------------------------------------------ network
    @property
    def name(self) -> str:
        """Model name from its metadata."""
        return self.metadata.name

    def tile_pixels(self, batch: int) -> int:
        """Largest number of pixels per image that fits the memory budget at this batch size."""
        per_pixel = _BYTES_PER_PIXEL_PER_DIM * self.model.config.dim * max(batch, 1)
        return max(int(self.memory_budget_mb * 2**20 / per_pixel), 32 * 32)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on ``(B, H, W)`` normalised float32 images."""
        t = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).unsqueeze(1)
        t = t.to(self.device, dtype=torch.float16 if self.half else torch.float32)
        if self._channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        with self._lock, torch.inference_mode():
            out = self.model(t)
        return out[:, 0].float().cpu().numpy()

    def _run_variants(
        self, images: Sequence[np.ndarray], tta: bool, step: Callable[[], None], batch: int
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Forward many same-or-different-shaped images, with or without the 8 dihedral variants."""
        ks = range(8) if tta else range(1)
        jobs: dict[tuple[int, int], list[tuple[int, int, np.ndarray]]] = {}
        for i, img in enumerate(images):
            for k in ks:
                v = dihedral(img, k)
                jobs.setdefault(v.shape, []).append((i, k, v))
        outs: dict[int, list[np.ndarray]] = {i: [] for i in range(len(images))}
        for shape_jobs in jobs.values():
            for start in range(0, len(shape_jobs), batch):
                chunk = shape_jobs[start : start + batch]
                res = self._forward(np.stack([v for _, _, v in chunk]))
                for (i, k, _), r in zip(chunk, res, strict=True):
                    outs[i].append(dihedral(r, k, inverse=True))
                step()
        result = []
        for i in range(len(images)):
            stack = np.stack(outs[i])
            if tta:
                result.append((stack.mean(axis=0), stack.std(axis=0)))
            else:
                result.append((stack[0], None))
        return result

    @staticmethod
    def _overlap(tile: int) -> int:
        """Tile overlap: a quarter of the tile, at least 16 and at most 64 px (the convolutional context of the
        presets is under 64 px; a wider overlap only repeats work)."""
        return min(max(16, (tile // 4) // 8 * 8), 64)

    def _tiles(self, ny: int, nx: int, tile: int) -> list[tuple[slice, slice]]:
        def starts(n: int) -> list[int]:
            if n <= tile:
                return [0]
            step = tile - self._overlap(tile)
            s = list(range(0, n - tile, step))
            s.append(n - tile)
            return sorted(set(s))

        return [
            (slice(y, min(y + tile, ny)), slice(x, min(x + tile, nx))) for y in starts(ny) for x in starts(nx)
        ]

    @staticmethod
    def _window(h: int, w: int, full_h: bool, full_w: bool, overlap: int = 64) -> np.ndarray:
        """Blending weights of a tile: flat inside, a sin² ramp over ``overlap`` px at each end (a Tukey
        window), so that neighbouring tiles cross-fade over their overlap and tile edges weigh little."""
        def one(n: int, full: bool) -> np.ndarray:
            if full:
                return np.ones(n)
            ramp = min(overlap, n // 2)
            t = (np.arange(n) + 0.5) / ramp
            up = np.sin(0.5 * np.pi * np.clip(t, 0.0, 1.0)) ** 2
            return np.maximum(np.minimum(up, up[::-1]), 1e-3)

        return np.outer(one(h, full_h), one(w, full_w))

    def restore_normalized(
        self,
        images: Sequence[np.ndarray],
        *,
        uncertainty: bool | None = None,
        progress: Progress | None = None,
        cancel: Cancel = None,
        batch_size: int | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Network output (and TTA spread) for normalised inputs, tiling where needed.

        Parameters
        ----------
        images : sequence of 2-D arrays
            Min-max normalised inputs.
        uncertainty : bool, optional
            Run the 8 flips/rotations (default: the instance's setting).
        progress : callable(done, total), optional
            Called after every forward batch.
        cancel : callable or threading.Event, optional
            Checked before every batch; raises :class:`RestoreCancelled`.
        batch_size : int, optional
            Images per forward pass (default: the instance's ``batch_size``).

        Returns
        -------
        list of (mean, spread)
            ``spread`` is None without uncertainty.
        """
        tta = self.uncertainty if uncertainty is None else bool(uncertainty)
        nvar = 8 if tta else 1
        batch = self.batch_size if batch_size is None else int(batch_size)
        if batch < 1:
            raise ParameterError("batch_size", f"must be >= 1, got {batch_size}")
        # The budget bounds the pixels of one forward pass, all images in it together; the work cap
        # bounds how many images share a pass where batching stops paying (see _FORWARD_PX_DIM_PER_THREAD).
        budget_px = self.tile_pixels(1)
        limit = max(budget_px, 64 * 64)  # largest image (or tile) run whole, one variant per pass
        tile = max(64, math.isqrt(limit) // 8 * 8)
        small = [i for i, im in enumerate(images) if im.size <= limit]
        large = [i for i, im in enumerate(images) if im.size > limit]
        tiles = {i: self._tiles(*images[i].shape, tile) for i in large}
        dim = self.model.config.dim
        threads = torch.get_num_threads() if self.device.type == "cpu" else 64

        def per_pass(px: int) -> int:
            """Images of ``px`` pixels per forward pass: within the budget, the work cap and ``batch``."""
            cap = _FORWARD_PX_DIM_PER_THREAD * threads // (dim * max(px, 1))
            return max(1, min(batch, budget_px // max(px, 1), cap))

        # Small inputs are batched, as many per forward pass as allowed; tiles run their variants likewise.
        fwd = per_pass(max((images[i].size for i in small), default=1))
        group = max(1, fwd // nvar)
        per_tile = min(per_pass(tile * tile), nvar)
        total = sum(math.ceil(min(group, len(small) - g) * nvar / fwd) for g in range(0, len(small), group)) + sum(
            math.ceil(nvar / per_tile) * len(t) for t in tiles.values()
        )
        done = 0

        def step() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        def check() -> None:
            if _cancelled(cancel):
                raise RestoreCancelled("restoration cancelled")

        results: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        if small:
            # Batch small inputs together, checking for cancellation between groups.
            for start in range(0, len(small), group):
                check()
                idx = small[start : start + group]
                for i, r in zip(idx, self._run_variants([images[i] for i in idx], tta, step, fwd), strict=True):
                    results[i] = r
        for i in large:
            ny, nx = images[i].shape
            # float32 accumulators: three (two without TTA) input-sized arrays beside the input.
            acc = np.zeros((ny, nx), np.float32)
            acc_s = np.zeros((ny, nx), np.float32) if tta else None
            wsum = np.zeros((ny, nx), np.float32)
            for sy, sx in tiles[i]:
                check()
                (mean, spread), = self._run_variants([images[i][sy, sx]], tta, step, per_tile)
                win = self._window(sy.stop - sy.start, sx.stop - sx.start, ny <= tile, nx <= tile,
                                   self._overlap(tile)).astype(np.float32)
                acc[sy, sx] += win * mean
                if acc_s is not None and spread is not None:
                    acc_s[sy, sx] += win * spread
                wsum[sy, sx] += win
            acc /= wsum
            if acc_s is not None:
                acc_s /= wsum
            del wsum
            results[i] = (acc, acc_s)
        return [results[i] for i in range(len(images))]

    # ------------------------------------------------------------------ public API
    def restore(
        self,
        image: Stamp | np.ndarray,
        *,
        uncertainty: bool | None = None,
        rescale: RescaleMethod = "auto",
        progress: Progress | None = None,
        cancel: Cancel = None,
        consistency: bool | None = None,
        anchor: float | None = None,
        point_source: bool | None = None,
    ) -> Restoration:
        """Restore one stamp or region.

        Parameters
        ----------
        image : Stamp or array_like
            A stamp from :func:`galviewer.core.io.stamps.cutout`, or any 2-D array in any units.
        uncertainty : bool, optional
            Compute ``sigma`` from the 8 flips/rotations (default: the instance's setting).
        rescale : {"auto", "paper", "lstsq", "minmax"}
            How to return to physical units; ``auto`` uses eq. 8–9 (``paper``) for
            inputs up to 128×128 and ``lstsq`` for larger regions; ``minmax`` simply
            inverts the input normalisation.
        progress, cancel
            See :meth:`restore_normalized`.
        consistency : bool, optional
            Fuse the result with the data so that it explains them to the noise (default: the
            instance's setting); ``meta["consistency"]`` reports μ and the χ² before and after.
        anchor : float, optional
            σ (pixels) of the large-scale anchoring, 0 for none (default: the instance's setting);
            ``meta["anchor"]`` reports it.
        point_source : bool, optional
            Point-source mode for a star at the stamp's centre (default: the instance's setting);
            ``meta["point_source"]`` reports the fitted flux and position.

        Returns
        -------
        Restoration

        Raises
        ------
        ParameterError
            For an input that is not a finite 2-D image.
        RestoreError
            For a constant image.
        RestoreCancelled
            When cancelled.
        """
        return self.restore_many([image], None, uncertainty=uncertainty, rescale=rescale, progress=progress,
                                 cancel=cancel, consistency=consistency, anchor=anchor,
                                 point_source=point_source)[0]

    def restore_many(
        self,
        images: Iterable[Stamp | np.ndarray],
        batch_size: int | None = None,
        *,
        uncertainty: bool | None = None,
        rescale: RescaleMethod = "auto",
        progress: Progress | None = None,
        cancel: Cancel = None,
        consistency: bool | None = None,
        anchor: float | None = None,
        point_source: bool | None = None,
    ) -> list[Restoration]:
        """Restore several stamps, batching forward passes (see :meth:`restore`).

        ``batch_size`` overrides the instance's number of images per forward pass.
        """
        if rescale not in ("auto", "paper", "lstsq", "minmax"):
            raise ParameterError("rescale", f"must be auto, paper, lstsq or minmax, got {rescale!r}")
        t0 = time.perf_counter()
        stamps = [im if isinstance(im, Stamp) else stamp_from_array(im) for im in images]
        stars = [self._fit_star(st) if (self.point_source if point_source is None else point_source) else None
                 for st in stamps]
        prepared = []
        for st, star in zip(stamps, stars, strict=True):
            for step in ("anchor", "consistency"):  # a reason from an earlier restoration of the same stamp
                st.extra.pop(f"{step}_skipped", None)
            lq = np.asarray(st.lq, dtype=np.float32)
            if star is not None:  # the network restores what the star leaves, its core filled with sky
                lq = _network_remainder(st, star)
            lo, hi = float(lq.min()), float(lq.max())
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ParameterError("image", "holds non-finite values")
            if max(abs(lo), abs(hi)) > MAX_PIXEL_VALUE:
                raise RestoreError(f"the image holds values up to {max(abs(lo), abs(hi)):.3g}, beyond any plausible "
                                   f"pixel value (|v| <= {MAX_PIXEL_VALUE:g}): mark such pixels as bad (DQ flags or a "
                                   "masked array) and try again", "image")
            if hi - lo <= 0 or (hi - lo) <= 1e-7 * max(abs(hi), abs(lo)):
                raise RestoreError("the image is constant: nothing to restore", "image")
            prepared.append(((lq - lo) / (hi - lo), lo, hi, lq))  # lq: what the network is given, in input units
        outs = self.restore_normalized([p[0] for p in prepared], uncertainty=uncertainty, progress=progress,
                                       cancel=cancel, batch_size=batch_size)
        for rs, spread in outs:
            if not (np.isfinite(rs).all() and (spread is None or np.isfinite(spread).all())):
                raise RestoreError(f"the network gave NaN or infinite pixels for a finite input in [0, 1]: the "
                                   f"checkpoint {self.name!r} is broken or unstable", "model")
        fuse_data = self.consistency if consistency is None else bool(consistency)
        anchor_scale = self.anchor if anchor is None else _anchor_scale(anchor)
        results = []
        for st, star, (norm_in, lo, hi, seen), (rs, spread) in zip(stamps, stars, prepared, outs, strict=True):
            net_lq = st.lq if star is None else st.lq - star.model
            method = rescale
            if method == "auto":
                method = ("paper" if max(st.lq.shape) <= 128 else "lstsq") if star is None else POINT_RESCALE
            note = ""
            mask = st.padded | st.bad
            if method == "minmax":
                s, c = hi - lo, lo
            else:
                try:
                    s, c, _ = rescale_to_physical(
                        seen, rs, self.psf, method=method, center=st.center_in_stamp,
                        mask=_partial(mask),
                    )
                except RestoreError as exc:
                    note = f"{exc.reason}; fell back to inverting the min-max normalisation"
                    s, c, method = hi - lo, lo, "minmax"
            overflow = RestoreError(f"the restored image does not fit in float32 (input values {lo:.3g} to "
                                    f"{hi:.3g}, scale {s:.3g}): rescale the input (e.g. to electrons/s) and try "
                                    "again", "image")
            with np.errstate(over="ignore", invalid="ignore"):
                data = (s * rs + c).astype(np.float32)
                sigma = None if spread is None else (abs(s) * spread).astype(np.float32)
            if not (np.isfinite(data).all() and (sigma is None or np.isfinite(sigma).all())):
                raise overflow
            # anchored to the data the network saw: in point-source mode, the remainder (the star's model, made by
            # the instrument PSF, is not what the model's Gaussian kernel would make of the target PSF: anchoring
            # the sum dug a ring 70σ below the sky around the WFC3/IR star)
            core = np.zeros(mask.shape, bool) if star is None else _star_core(star, mask.shape)
            anchored = self._anchor(st, net_lq, data, mask | core, anchor_scale) if anchor_scale > 0 else None
            if anchored is not None:
                data = anchored.image
            if star is not None:
                data = self._add_star(star, net_lq, data)
            fused = self._fuse(st, data, mask) if fuse_data else None
            if fused is not None:
                data = fused.image
            with np.errstate(over="ignore", invalid="ignore"):  # once, on the image that is returned
                residual = np.subtract(st.lq, _convolve32(data, self.psf), dtype=np.float32)
            if not np.isfinite(residual).all():
                raise overflow
            meta = {
                "model": self.name,
                "model_sha256": self.model_sha256 or self.metadata.weights_sha256,
                "model_path": "" if self.model_path is None else str(self.model_path),
                "rescale": method,
                "rescale_note": note,
                "scale": s,
                "offset": c,
                "input_min": lo,
                "input_max": hi,
                "uncertainty": spread is not None,
                "device": str(self.device),
                "precision": "float16" if self.half else "float32",
                "psf_fwhm_pix": self.metadata.psf_fwhm_pix,
                "residual_psf": self.psf_source,
                "trained_fwhm_pix": self.trained_fwhm,
                "model_pixel_scale": self.metadata.pixel_scale_arcsec,
                "noise_rms_range": tuple(self.metadata.noise_rms_range),
                "input_noise_norm": (st.background_rms / (hi - lo) if math.isfinite(st.background_rms)
                                     else math.nan),
                "gt_psf_fwhm_pix": self.metadata.extra.get("gt_psf_fwhm_pix"),
                "point_source": None if star is None else {
                    "flux": star.flux, "x": star.x, "y": star.y, "sky": star.sky, "explained": star.explained,
                    "psf": star_psf(st, self.metadata.psf_fwhm_pix)[2]},
                "anchor": None if anchored is None else {
                    "scale": anchored.scale, "iterations": anchored.iterations,
                    "threshold": anchored.threshold, "changed_fraction": anchored.changed_fraction},
                # a step that was asked for but could not run says why (panel header, CLI, figure)
                "skipped": {k: st.extra[f"{k}_skipped"] for k, asked in (("anchor", anchor_scale > 0),
                                                                          ("consistency", fuse_data))
                            if asked and f"{k}_skipped" in st.extra},
                "consistency": None if fused is None else {
                    "mu": fused.mu, "chi2_network": fused.chi2_before, "chi2": fused.chi2_after,
                    "changed_fraction": fused.changed_fraction},
            }
            results.append(Restoration(lq=st.lq, data=data, normalized=rs.astype(np.float32, copy=False), sigma=sigma,
                                       residual=residual, model_input=norm_in.astype(np.float32, copy=False), scale=s,
                                       offset=c, psf=self.psf, stamp=st, meta=meta))
        elapsed = (time.perf_counter() - t0) / max(len(stamps), 1)
        for r in results:
            r.meta["seconds"] = elapsed
        return results

    # Fourier fusion is done in float64 over the padded image: bounded to regions of this many pixels.
    MAX_CONSISTENCY_PIXELS = 1024 * 1024

    def _target_psf(self) -> np.ndarray:
        """The model's target (GT) PSF, the image of a restored star."""
        fwhm = self.metadata.extra.get("gt_psf_fwhm_pix")
        if not fwhm:
            raise ParameterError("point_source", f"the model {self.name!r} does not state its target (GT) PSF, so "
                                 "a star cannot be restored as one")
        return gaussian_psf(float(fwhm), 2 * math.ceil(2 * float(fwhm)) + 1)

    def _add_star(self, star: Any, remainder: np.ndarray, data: np.ndarray) -> np.ndarray:
        """The restoration of a point-source stamp: the star as the target PSF, plus the network's restoration
        of the remainder away from the star and the remainder itself (unrestored) on it.

        Near a bright star's core the remainder is the PSF model's mismatch, hundreds of σ bright, far outside
        the network's range: restored, it came back as a ring 80σ *below* the sky around the WFC3/IR star.  Within
        ``STAR_CORE[0]`` FWHM the data's own remainder is kept; the network's answer takes over by
        ``STAR_CORE[1]`` FWHM (a cosine ramp)."""
        a, b = STAR_CORE
        w = np.clip((_star_radius(star, data.shape) - a) / (b - a), 0.0, 1.0)
        w = 0.5 - 0.5 * np.cos(np.pi * w)  # 0 on the star, 1 away from it
        rem = np.asarray(remainder, dtype=np.float64)
        out = w * data + (1.0 - w) * rem + star.flux * place(self._target_psf(), star.x, star.y, data.shape)
        return out.astype(np.float32)

    def _fit_star(self, st: Stamp) -> Any:
        """Fit the star at the stamp's centre with the input's PSF (point-source mode)."""
        from galviewer.core.restore.point_source import fit_point_source

        self._target_psf()  # refuse before the fit if the model cannot say what a restored star looks like
        kernel, fwhm, _ = star_psf(st, self.metadata.psf_fwhm_pix)
        mask = st.padded | st.bad
        return fit_point_source(st.lq, kernel, st.center_in_stamp, fwhm=fwhm,
                                mask=_partial(mask))

    def _post_noise(self, st: Stamp, data: np.ndarray, step: str) -> np.ndarray | float | None:
        """The noise a post-step (anchoring, consistency) works with, or None (reason in ``st.extra``)."""
        if data.size > self.MAX_CONSISTENCY_PIXELS:
            st.extra[f"{step}_skipped"] = f"larger than {self.MAX_CONSISTENCY_PIXELS} pixels"
            return None
        noise: np.ndarray | float = st.err if st.err is not None else st.background_rms
        if np.ndim(noise) == 0 and not (math.isfinite(float(noise)) and float(noise) > 0):
            st.extra[f"{step}_skipped"] = "no noise estimate"
            return None
        return noise

    def _anchor(self, st: Stamp, lq: np.ndarray, data: np.ndarray, mask: np.ndarray, scale: float) -> Any:
        """The large-scale anchoring of one restoration to ``lq`` (the stamp's data, or in point-source mode what
        the star leaves), or None where it cannot apply (reason in the stamp)."""
        from galviewer.core.restore.consistency import anchor

        noise = self._post_noise(st, data, "anchor")
        if noise is None:
            return None
        try:
            return anchor(lq, data, self.psf, noise, scale=scale,
                          mask=_partial(mask))
        except ParameterError as exc:
            st.extra["anchor_skipped"] = exc.reason
            return None

    def _fuse(self, st: Stamp, data: np.ndarray, mask: np.ndarray) -> Any:
        """The data-consistency step on one restoration, or None where it cannot apply (reason in the stamp)."""
        from galviewer.core.restore.consistency import fuse

        noise = self._post_noise(st, data, "consistency")
        if noise is None:
            return None
        try:
            return fuse(st.lq, data, self.psf, noise, mask=_partial(mask))
        except ParameterError as exc:
            st.extra["consistency_skipped"] = exc.reason
            return None
