"""Both chips of an FLT/FLC file side by side, as DS9's *mosaic* frames show them.

The chips are placed on one canvas by their WCS: each chip's centre is mapped through the sky into the first
chip's pixel frame and the chip pasted there, to the nearest pixel (the few-pixel gap between the ACS/WFC or
WFC3/UVIS chips shows as blank).  The canvas is for display and for choosing a position only: a click is
sent back to the chip it falls on (:meth:`Mosaic.locate`) and stamps, their WCS, ERR and DQ always come from
that chip, so nothing measured depends on the small rotation between the chips that the canvas ignores.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from galviewer.core.io.fits import Image, list_images, open_image
from galviewer.errors import ImageLoadError

__all__ = ["MOSAIC_EXT", "Mosaic", "mosaic_possible", "open_mosaic"]

MOSAIC_EXT = "SCI (all chips)"
MAX_MOSAIC_PIXELS = 64 * 1024 * 1024  # 256 MB of float32 canvas


@dataclass
class Mosaic:
    """The chips of one file on a common pixel canvas.

    Attributes
    ----------
    chips : list of Image
        The open chips (``SCI,1``, ``SCI,2``, …).
    offsets : list of (int, int)
        Canvas position (x, y) of each chip's pixel (0, 0).
    data : numpy.ndarray
        float32 canvas; NaN where no chip is.
    bad : numpy.ndarray of bool
        The chips' bad pixels on the canvas (True also between chips).
    """

    chips: list[Image]
    offsets: list[tuple[int, int]]
    data: np.ndarray
    bad: np.ndarray
    owner: np.ndarray = field(repr=False)  # int8 canvas: index of the chip at each pixel, −1 in the gaps

    @property
    def meta(self) -> Any:
        """The first chip's :class:`~galviewer.core.io.fits.ImageMeta` (instrument, filter, units)."""
        return self.chips[0].meta

    @property
    def header(self) -> Any:
        """The first chip's header."""
        return self.chips[0].header

    @property
    def path(self) -> Path:
        return self.chips[0].path

    @property
    def wcs(self) -> None:
        """None: the canvas has no single WCS; positions go through :meth:`pixel_to_world` (the chip's own)."""
        return None

    @property
    def exts(self) -> list[str]:
        return [f"{c.meta.extname},{c.meta.extver}" for c in self.chips]

    def locate(self, x: float, y: float) -> tuple[int, Image, float, float] | None:
        """The chip under canvas position (x, y) and the position in that chip's pixels; None in a gap."""
        i, j = round(y), round(x)
        if not (0 <= i < self.owner.shape[0] and 0 <= j < self.owner.shape[1]):
            return None
        k = int(self.owner[i, j])
        if k < 0:
            return None
        ox, oy = self.offsets[k]
        return k, self.chips[k], x - ox, y - oy

    def to_canvas(self, ext: str, x: float, y: float) -> tuple[float, float]:
        """Canvas position of (x, y) in chip ``ext`` (``"SCI,2"``)."""
        k = self.exts.index(ext)
        ox, oy = self.offsets[k]
        return x + ox, y + oy

    def pixel_to_world(self, x: float, y: float) -> tuple[float, float]:
        """RA, Dec (deg) of a canvas position through its chip's full WCS; NaN in a gap."""
        hit = self.locate(x, y)
        if hit is None:
            return math.nan, math.nan
        _, chip, cx, cy = hit
        return chip.pixel_to_world(cx, cy)

    def close(self) -> None:
        """Close every chip."""
        for c in self.chips:
            c.close()


def _placement(shapes: list[tuple[int, int]], wcss: list[Any]) -> list[tuple[int, int]]:
    """Canvas offsets of chips from their WCS: each chip's centre mapped into the first chip's pixels."""
    ref = wcss[0]
    raw = []
    for (ny, nx), w in zip(shapes, wcss, strict=True):
        cx, cy = (nx - 1) / 2, (ny - 1) / 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ra, dec = w.all_pix2world(cx, cy, 0)
            rx, ry = ref.all_world2pix(ra, dec, 0, quiet=True)
        if not (np.isfinite(rx) and np.isfinite(ry)):
            raise ValueError("a chip's centre has no position in the first chip's frame")
        raw.append((round(float(rx) - cx), round(float(ry) - cy)))
    x0, y0 = min(o[0] for o in raw), min(o[1] for o in raw)
    return [(ox - x0, oy - y0) for ox, oy in raw]


def _overlapping(shapes: list[tuple[int, int]], offsets: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The first pair of chips sharing more than 5 % of the smaller one's area (repeated exposures)."""
    for a in range(len(shapes)):
        for b in range(a + 1, len(shapes)):
            (ax, ay), (bx, by) = offsets[a], offsets[b]
            (ah, aw), (bh, bw) = shapes[a], shapes[b]
            ov = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
            if ov > 0.05 * min(ah * aw, bh * bw):
                return a, b
    return None


def mosaic_possible(path: str | os.PathLike[str]) -> bool:
    """Whether a file has two or more SCI chips that lie side by side on the sky (FLT/FLC of ACS/WFC,
    WFC3/UVIS…), judged from the headers alone; repeated exposures of one field (STIS CR-SPLIT) are not."""
    from astropy.io import fits
    from astropy.wcs import WCS

    try:
        sci = [(n, v, shape) for n, v, shape in list_images(path) if n.upper() == "SCI"]
        if len(sci) < 2:
            return False
        with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcss = [WCS(hdul[n, v].header, hdul) for n, v, _ in sci]
        if not all(w.has_celestial for w in wcss):
            return False
        shapes = [tuple(int(d) for d in shape[-2:]) for _, _, shape in sci]
        return _overlapping(shapes, _placement(shapes, [w.celestial for w in wcss])) is None
    except Exception:  # only decides whether to offer the mosaic; open_mosaic names problems
        return False


def open_mosaic(path: str | os.PathLike[str], *, dq_ignore_bits: int = 0) -> Mosaic:
    """Open every SCI chip of a file and place them by their WCS.

    Raises
    ------
    ImageLoadError
        When the file has fewer than two SCI chips, a chip has no celestial WCS, two of them cover the same
        sky (repeated exposures), or the canvas would exceed 256 MB (open them one at a time).
    """
    p = Path(path)
    sci = [(n, v) for n, v, _ in list_images(p) if n.upper() == "SCI"]
    if len(sci) < 2:
        raise ImageLoadError(p, f"has {len(sci)} SCI extension(s); a mosaic needs two or more chips")
    chips = [open_image(p, (n, v), dq_ignore_bits=dq_ignore_bits) for n, v in sci]
    try:
        for (n, v), c in zip(sci, chips, strict=True):
            if c.wcs is None or not c.wcs.has_celestial:
                raise ImageLoadError(p, f"{n},{v} has no celestial WCS: the chips cannot be placed")
        shapes = [c.data.shape for c in chips]
        try:
            offsets = _placement(shapes, [c.wcs.celestial for c in chips])
        except ValueError as exc:
            raise ImageLoadError(p, f"the chips cannot be placed: {exc}") from exc
        width = max(ox + w for (ox, _), (_, w) in zip(offsets, shapes, strict=True))
        height = max(oy + h for (_, oy), (h, _) in zip(offsets, shapes, strict=True))
        if width * height > MAX_MOSAIC_PIXELS:
            raise ImageLoadError(p, f"the chips span {width}×{height} px on the sky, beyond the mosaic limit "
                                 f"({MAX_MOSAIC_PIXELS} px): open them one at a time")
        pair = _overlapping(shapes, offsets)
        if pair is not None:
            (na, va), (nb, vb) = sci[pair[0]], sci[pair[1]]
            raise ImageLoadError(p, f"{na},{va} and {nb},{vb} cover the same sky (repeated exposures, e.g. a "
                                 "STIS CR-SPLIT, not chips of one detector): open them one at a time")
        data = np.full((height, width), np.nan, np.float32)
        bad = np.ones((height, width), bool)
        owner = np.full((height, width), -1, np.int8)
        for k, ((ox, oy), c) in enumerate(zip(offsets, chips, strict=True)):
            ny, nx = c.data.shape
            data[oy:oy + ny, ox:ox + nx] = c.data
            bad[oy:oy + ny, ox:ox + nx] = c.bad if c.bad is not None else False
            owner[oy:oy + ny, ox:ox + nx] = k
        return Mosaic(chips, offsets, data, bad, owner)
    except BaseException:
        for c in chips:
            c.close()
        raise
