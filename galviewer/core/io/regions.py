"""Rectangle, ellipse and polygon regions: DS9 region files (through ``regions``) and restoring a region as one piece.

A :class:`Region` is a rectangle or an ellipse (a :class:`PolygonRegion` a polygon) in 0-based pixel coordinates of
the parent image (pixel centres on integers, as in ``regions.PixCoord`` and
galviewer's display).  Reading and writing DS9 files is delegated to the
``regions`` package, which converts to DS9's 1-based ``image`` frame and to
sky frames; which pixels a region holds is ``regions``' own ``contains`` test of the pixel centres, with one
convention added: a centre exactly on an edge counts on the low side only (half-open, as array slices), so a
100×60 box placed on pixel centres holds 100×60 pixels (``to_mask(mode="center")`` gave 99×59 = 5,841).

Restoring a region cuts its bounding box (pixels outside the parent image are
padded with noise, bad pixels in-painted, as for stamps), runs the network
tiled within the restorer's memory budget, and maps the output back to the
input's units with a least-squares fit of PSF⊗RS to LQ over the pixels inside
the region (eq. 8–9 need a source at the centre, which a region need not have).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from galviewer.core.io.fits import Image
from galviewer.core.io.stamps import Stamp, cutout
from galviewer.errors import ImageLoadError, ParameterError

__all__ = ["PolygonRegion", "Region", "read_regions", "region_stamp",
           "write_regions"]

Shape = Literal["rectangle", "ellipse"]
_MAX_SIDE = 16384


_EDGE_NUDGE = 1e-7  # px: pixel centres are tested here, so that one exactly on an edge counts on one side only


class _Shape:
    """What every region shape shares, given ``to_regions()`` and ``describe()``."""

    def footprint(self, image_shape: tuple[int, int]) -> tuple[int, int, np.ndarray]:
        """The region's pixels: bounding-box origin ``(x0, y0)`` and a boolean mask of the box.

        The box may extend beyond the image (its pixels are padded when cut out).

        Raises
        ------
        ParameterError
            When the region holds no pixel of the image.
        """
        from regions import PixCoord

        reg = self.to_regions()
        box = reg.bounding_box
        x0, y0 = int(box.ixmin) - 1, int(box.iymin) - 1  # one pixel of room for centres on the low edges
        yy, xx = np.mgrid[y0:int(box.iymax) + 1, x0:int(box.ixmax) + 1]
        # a centre on an edge: the nudge puts it inside on the low side, outside on the high side
        mask = np.asarray(reg.contains(PixCoord(xx + _EDGE_NUDGE, yy + _EDGE_NUDGE)), dtype=bool)
        if mask.any():
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            mask = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            x0, y0 = x0 + int(cols[0]), y0 + int(rows[0])
        ny, nx = image_shape
        inside = mask[max(0, -y0): max(0, ny - y0), max(0, -x0): max(0, nx - x0)]
        if not mask.any() or not inside.any():
            raise ParameterError("region", f"{self.describe()} holds no pixel of the {nx}×{ny} image")
        return x0, y0, mask

    def ds9(self) -> str:
        """The region as one DS9 line in the ``image`` frame (1-based)."""
        return self.to_regions().serialize(format="ds9").strip().splitlines()[-1]


@dataclass(frozen=True)
class Region(_Shape):
    """A rectangle or ellipse on the parent image.

    Attributes
    ----------
    shape : {"rectangle", "ellipse"}
    x, y : float
        Centre, 0-based pixels.
    width, height : float
        Full side lengths (rectangle) or full axis lengths (ellipse) along the region's own
        axes, before rotation, in pixels.
    angle : float
        Rotation in degrees, counter-clockwise from +x (DS9's convention).
    label : str
        Free text (DS9 ``text={...}``).
    """

    shape: Shape
    x: float
    y: float
    width: float
    height: float
    angle: float = 0.0
    label: str = ""

    def __post_init__(self) -> None:
        if self.shape not in ("rectangle", "ellipse"):
            raise ParameterError("shape", f"must be 'rectangle' or 'ellipse', got {self.shape!r}")
        for name in ("x", "y", "width", "height", "angle"):
            if not math.isfinite(getattr(self, name)):
                raise ParameterError(name, f"must be finite, got {getattr(self, name)}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if not 1.0 <= v <= _MAX_SIDE:
                raise ParameterError(name, f"must lie in [1, {_MAX_SIDE}] pixels, got {v:g}")

    def to_regions(self) -> Any:
        """The equivalent ``regions`` pixel region."""
        import astropy.units as u
        from regions import EllipsePixelRegion, PixCoord, RectanglePixelRegion

        cls = RectanglePixelRegion if self.shape == "rectangle" else EllipsePixelRegion
        reg = cls(PixCoord(self.x, self.y), width=self.width, height=self.height, angle=self.angle * u.deg)
        if self.label:
            reg.meta["text"] = self.label
        return reg

    def describe(self) -> str:
        """A short human-readable description."""
        rot = f", {self.angle:.0f}°" if self.angle else ""
        return f"{self.shape} {self.width:.0f}×{self.height:.0f} px at ({self.x:.1f}, {self.y:.1f}){rot}"



@dataclass(frozen=True)
class PolygonRegion(_Shape):
    """A polygon on the parent image: vertices in 0-based pixels (DS9's ``polygon``)."""

    vertices: tuple[tuple[float, float], ...]
    label: str = ""
    shape: str = "polygon"

    def __post_init__(self) -> None:
        v = tuple((float(x), float(y)) for x, y in self.vertices)
        if len(v) < 3:
            raise ParameterError("vertices", f"a polygon needs at least 3 vertices, got {len(v)}")
        if not all(math.isfinite(c) for xy in v for c in xy):
            raise ParameterError("vertices", "must be finite")
        xs, ys = [x for x, _ in v], [y for _, y in v]
        if max(xs) - min(xs) > _MAX_SIDE or max(ys) - min(ys) > _MAX_SIDE:
            raise ParameterError("vertices", f"the polygon spans more than {_MAX_SIDE} pixels")
        object.__setattr__(self, "vertices", v)

    @property
    def x(self) -> float:
        """Mean of the vertices (for messages and centring the view)."""
        return sum(x for x, _ in self.vertices) / len(self.vertices)

    @property
    def y(self) -> float:
        """Mean of the vertices."""
        return sum(y for _, y in self.vertices) / len(self.vertices)

    def to_regions(self) -> Any:
        """The equivalent ``regions.PolygonPixelRegion``."""
        from regions import PixCoord, PolygonPixelRegion

        xs, ys = zip(*self.vertices, strict=True)
        reg = PolygonPixelRegion(PixCoord(list(xs), list(ys)))
        if self.label:
            reg.meta["text"] = self.label
        return reg

    def describe(self) -> str:
        """A short human-readable description."""
        xs, ys = zip(*self.vertices, strict=True)
        return (f"polygon of {len(self.vertices)} vertices, {max(xs) - min(xs):.0f}×{max(ys) - min(ys):.0f} px "
                f"at ({self.x:.1f}, {self.y:.1f})")



AnyRegion = Region | PolygonRegion


def _from_regions(reg: Any) -> AnyRegion | None:
    from regions import CirclePixelRegion, EllipsePixelRegion, PolygonPixelRegion, RectanglePixelRegion

    label = str(reg.meta.get("text", "")) if hasattr(reg, "meta") else ""
    if isinstance(reg, PolygonPixelRegion):
        return PolygonRegion(tuple(zip(reg.vertices.x.tolist(), reg.vertices.y.tolist(), strict=True)), label)
    if isinstance(reg, CirclePixelRegion):
        d = 2.0 * float(reg.radius)
        return Region("ellipse", float(reg.center.x), float(reg.center.y), d, d, 0.0, label)
    if isinstance(reg, EllipsePixelRegion | RectanglePixelRegion):
        shape: Shape = "ellipse" if isinstance(reg, EllipsePixelRegion) else "rectangle"
        return Region(shape, float(reg.center.x), float(reg.center.y), float(reg.width), float(reg.height),
                      float(reg.angle.to_value("deg")), label)
    return None


def read_regions(path: str | os.PathLike[str], wcs: Any = None) -> tuple[list[AnyRegion], list[str]]:
    """Read rectangles, ellipses, circles (as ellipses) and polygons from a DS9 region file.

    Parameters
    ----------
    path : path-like
        DS9 region file.
    wcs : astropy.wcs.WCS, optional
        Needed for regions in sky frames (fk5, icrs, galactic, ...).

    Returns
    -------
    regions : list of Region or PolygonRegion
    skipped : list of str
        One line per region that was not read (another shape, or a sky region without WCS).

    Raises
    ------
    ImageLoadError
        When the file is missing or not a DS9 region file.
    """
    from regions import Regions

    p = Path(path)
    if not p.is_file():
        raise ImageLoadError(p, "region file not found")
    try:
        regs = Regions.read(str(p), format="ds9")
    except Exception as exc:  # regions raises several parser errors
        raise ImageLoadError(p, f"not a readable DS9 region file: {exc}") from exc
    out: list[AnyRegion] = []
    skipped: list[str] = []
    for k, reg in enumerate(regs, start=1):
        kind = type(reg).__name__.replace("PixelRegion", "").replace("SkyRegion", "").lower()
        if "Sky" in type(reg).__name__:
            if wcs is None:
                skipped.append(f"region {k} ({kind}): sky coordinates need an image with a celestial WCS")
                continue
            reg = reg.to_pixel(wcs)
        try:
            r = _from_regions(reg)
        except ParameterError as exc:
            skipped.append(f"region {k} ({kind}): {exc}")
            continue
        if r is None:
            skipped.append(f"region {k} ({kind}): only rectangles, ellipses, circles and polygons can be restored")
        else:
            out.append(r)
    return out, skipped


def write_regions(path: str | os.PathLike[str], regions: list[AnyRegion], *, wcs: Any = None,
                  overwrite: bool = False) -> Path:
    """Write regions as a DS9 file, atomically; in ``fk5`` when ``wcs`` is given, else in ``image``.

    Raises
    ------
    ParameterError
        For an empty list.
    OutputExistsError
        When the file exists and ``overwrite`` is False.
    """
    from regions import Regions

    from galviewer._atomic import atomic_write

    if not regions:
        raise ParameterError("regions", "there is no region to write")
    regs = [r.to_regions() for r in regions]
    if wcs is not None:
        regs = [r.to_sky(wcs) for r in regs]
    text = Regions(regs).serialize(format="ds9")
    return atomic_write(path, lambda tmp: tmp.write_text(text), overwrite=overwrite)


def region_stamp(image: Image | np.ndarray, region: AnyRegion, context: int = 0) -> tuple[Stamp, np.ndarray]:
    """Cut out the region's bounding box as a :class:`Stamp` and return it with the in-region mask.

    With ``context`` the box is that many pixels larger on every side (the margin is outside the region)."""
    data = image.data if isinstance(image, Image) else np.asarray(image)
    if data.ndim != 2:
        raise ParameterError("image", f"must be 2-D, got shape {data.shape}")
    x0, y0, mask = region.footprint(data.shape)
    ny, nx = mask.shape
    # cutout() puts stamp pixel (nx // 2, ny // 2) on round(x), round(y): choose x, y so the box starts at x0, y0.
    # The centre must lie on the image: clamp it (the rest of the box is padded).
    cx = float(np.clip(x0 + nx // 2, 0, data.shape[1] - 1))
    cy = float(np.clip(y0 + ny // 2, 0, data.shape[0] - 1))
    stamp = cutout(image, cx, cy, (ny, nx), refine=False, context=context)
    mask = np.pad(mask, context)
    x0, y0, ny, nx = x0 - context, y0 - context, ny + 2 * context, nx + 2 * context
    if stamp.origin != (x0, y0):
        # The centre was clamped: cut the box around the clamped centre instead, and move the mask with it.
        dx, dy = stamp.origin[0] - x0, stamp.origin[1] - y0
        shifted = np.zeros_like(mask)
        src = mask[max(dy, 0): ny + min(dy, 0), max(dx, 0): nx + min(dx, 0)]
        shifted[max(-dy, 0): max(-dy, 0) + src.shape[0], max(-dx, 0): max(-dx, 0) + src.shape[1]] = src
        mask = shifted
    return stamp, mask & ~stamp.padded
