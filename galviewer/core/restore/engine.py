"""The restoration engine: the network on normalised images, with tiles, flips, batching and a device.

:class:`Restorer` holds the model and runs it (METHOD §3–4): large inputs are cut into overlapping tiles
blended with smooth weights so that memory stays within a budget, and with test-time augmentation the 8
flips/rotations are restored, their mean the result and their spread the per-pixel uncertainty.  The steps
before and after the network (normalisation, units, anchoring, point sources, consistency, residual) are
:mod:`galviewer.core.restore.pipeline`'s; :meth:`Restorer.restore` runs them on a cut-out as it is given.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from galviewer.core.io.stamps import Stamp
from galviewer.core.nn.resources import available_models, default_model_name, models_dir
from galviewer.core.nn.restormer import Restormer
from galviewer.core.nn.weights import ModelMetadata, file_sha256, load_model
from galviewer.core.psf.gaussian import gaussian_psf
from galviewer.core.restore.calibration import SigmaCalibration
from galviewer.core.restore.cutouts import RescaleMethod, _cancelled, check_anchor, check_point_source, restore_cutouts
from galviewer.core.restore.pipeline import DEFAULTS
from galviewer.core.restore.result import Restoration
from galviewer.errors import ParameterError, RestoreCancelled, WeightsError

__all__ = ["Restorer", "choose_device", "dihedral"]

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool] | threading.Event | None

# Bytes of activations per input pixel per unit of `dim` (measured on CPU for the presets; see benchmarks/).
# With the architecture caps of galviewer.core.nn.restormer (dim <= MAX_DIM) the smallest pass (one 64×64 tile)
# needs at most 200 · 512 · 64² B = 400 MB, whatever checkpoint is loaded.
_BYTES_PER_PIXEL_PER_DIM = 200
# Work (pixels × dim) per forward pass and per CPU thread beyond which batching more images stops paying:
# measured per image, the small preset (dim 16) runs 64×64 stamps fastest at batch ~2 on one thread and 4–8 on
# two, the galaxy preset (dim 48) at batch 1 (batch 8 is 1.5–1.7× slower per image); see benchmarks/speed.py.
_FORWARD_PX_DIM_PER_THREAD = 150_000



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





def _trained_fwhm(metadata: ModelMetadata) -> tuple[float, float] | None:
    """The LQ PSF core FWHM range (pixels) a model trained with real PSFs saw, else None."""
    try:
        gauss = metadata.extra["train_config"]["degrade"]["fwhm_range"]
        real = metadata.extra["real_psf_fwhm_pix"]
        return (float(min(gauss[0], real[0])), float(max(gauss[1], real[1])))
    except (KeyError, TypeError, IndexError, ValueError):
        return None



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
    point_source : bool or "auto"
        Default for :meth:`restore` (``"auto"``: only where the source is unresolved): point-source mode
        (:mod:`galviewer.core.restore.point_source`): the star at the
        stamp's centre is fitted with the instrument PSF, the network restores the rest, and the star is
        added back at the model's target (GT) PSF.
    half : bool
        Run the network in float16 on a GPU (about half the memory; the LayerNorm statistics are
        computed in float32, so large activations cannot overflow). Refused on CPU, where float16
        and bfloat16 are slower than float32 on CPUs without native half-precision units.

    Notes
    -----
    The restorer restores cut-outs as they are given.  To restore a source of an image as every path of
    galviewer does (context margin, cosmic rays, crop, verdict), use
    :class:`~galviewer.core.restore.pipeline.Pipeline` or :func:`galviewer.restore_at`; the defaults of the
    settings above are the pipeline's (:data:`~galviewer.core.restore.pipeline.DEFAULTS`).

    Instances are thread-safe: forward passes are serialised by a lock and
    every call runs under ``torch.inference_mode``.
    """

    def __init__(
        self,
        model: Restormer,
        metadata: ModelMetadata,
        device: str | torch.device = "auto",
        *,
        uncertainty: bool = DEFAULTS.uncertainty,
        memory_budget_mb: float = 1024.0,
        batch_size: int = 8,
        model_path: str | os.PathLike[str] | None = None,
        model_sha256: str = "",
        half: bool = False,
        consistency: bool = DEFAULTS.consistency,
        anchor: float = DEFAULTS.anchor,
        point_source: bool | str = DEFAULTS.point_source,
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
        self.anchor = check_anchor(anchor)
        self.point_source = check_point_source(point_source)
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
        # The checkpoint's factors from the flip spread to a 1σ (None: the spread is shown as it is, and said to be)
        self.sigma_calibration = SigmaCalibration.from_metadata(metadata.extra)
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
        point_source: bool | str | None = None,
    ) -> Restoration:
        """Restore one cut-out as it is (no context margin, no crop, no verdict: see the Notes of the class).

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
        point_source : bool or "auto", optional
            Point-source mode for a star at the stamp's centre (default: the instance's setting; ``"auto"``
            decides by ``spread_model``, ``meta["point_source_decision"]`` says how);
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
        point_source: bool | str | None = None,
    ) -> list[Restoration]:
        """Restore several cut-outs, batching forward passes (see :meth:`restore`).

        ``batch_size`` overrides the instance's number of images per forward pass.
        """
        return restore_cutouts(
            self, list(images), batch_size=batch_size, progress=progress, cancel=cancel, rescale=rescale,
            uncertainty=self.uncertainty if uncertainty is None else bool(uncertainty),
            consistency=self.consistency if consistency is None else bool(consistency),
            anchor=self.anchor if anchor is None else check_anchor(anchor),
            point_source=self.point_source if point_source is None else check_point_source(point_source))

    # Fourier fusion is done in float64 over the padded image: bounded to regions of this many pixels.
    MAX_CONSISTENCY_PIXELS = 1024 * 1024
