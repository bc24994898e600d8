"""Display maths and widgets shared by the image and the panels: limits (zscale, percentiles), stretches, round
ticks, and a colour bar whose labels are data values placed through the display stretch (as DS9's)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

__all__ = ["COLORMAPS", "LIMITS", "STRETCHES", "ColourBar", "compute_limits", "nice_ticks", "stretch"]

STRETCHES = ("linear", "sqrt", "log", "asinh")
LIMITS = ("zscale", "minmax", "99.5%", "99%", "95%")
COLORMAPS = ("gray", "viridis", "inferno", "magma", "cividis")


def compute_limits(data: np.ndarray, mode: str) -> tuple[float, float]:
    """Display limits of finite pixels: zscale (astropy), min–max or a central percentile range."""
    finite = np.asarray(data)[np.isfinite(data)]
    if finite.size == 0:
        return 0.0, 1.0
    if finite.size > 400_000:
        finite = finite[:: finite.size // 400_000 + 1]
    if mode == "zscale":
        from astropy.visualization import ZScaleInterval

        lo, hi = ZScaleInterval().get_limits(finite)
    elif mode == "minmax":
        lo, hi = float(finite.min()), float(finite.max())
    elif mode.endswith("%"):
        p = float(mode[:-1])
        lo, hi = np.percentile(finite, [(100 - p) / 2, 100 - (100 - p) / 2])
    else:
        raise ValueError(f"unknown limits mode {mode!r}; choose from {LIMITS}")
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def stretch(data: np.ndarray, lo: float, hi: float, kind: str, contrast: float = 1.0, bias: float = 0.5) -> np.ndarray:
    """Map data to [0, 1]: clip to [lo, hi], apply the stretch, then DS9-style contrast/bias."""
    x = np.clip((np.asarray(data, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0)
    x = np.nan_to_num(x, nan=0.0)
    if kind == "sqrt":
        x = np.sqrt(x)
    elif kind == "log":
        x = np.log10(1000.0 * x + 1.0) / 3.0
    elif kind == "asinh":
        x = np.arcsinh(10.0 * x) / np.arcsinh(10.0)
    elif kind != "linear":
        raise ValueError(f"unknown stretch {kind!r}; choose from {STRETCHES}")
    return np.clip((x - bias) * contrast + 0.5, 0.0, 1.0)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round values (1, 2, 2.5 or 5 × 10^k steps) between ``lo`` and ``hi``, about ``count`` of them."""
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        return []
    raw = (hi - lo) / max(count, 1)
    mag = 10.0 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = np.ceil(lo / step - 1e-9) * step
    return [float(v) for v in np.arange(first, hi + step * 1e-9, step)]


class ColourBar(pg.GraphicsLayout):
    """A vertical colour bar whose tick labels are data values placed through the display's own stretch.

    The bar shows the colour map from display value 0 (bottom) to 1 (top); a data value ``v`` sits at
    ``stretch(v)`` so that the labels are right for sqrt, log and asinh stretches and for any contrast/bias.
    """

    def __init__(self, unit: str = "") -> None:
        super().__init__()
        self.unit = unit
        self.bar_vb = pg.ViewBox(enableMouse=False, enableMenu=False, defaultPadding=0)
        self.bar_vb.setFixedWidth(14)
        self.bar = pg.ImageItem(np.linspace(0, 1, 256, dtype=np.float32)[:, None])
        self.bar.setLevels((0.0, 1.0))
        self.bar.setRect(0, 0, 1, 1)
        self.bar_vb.addItem(self.bar)
        self.bar_vb.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.axis = pg.AxisItem("right")
        self.axis.linkToView(self.bar_vb)
        self.axis.setStyle(tickLength=3)
        if unit:
            self.axis.setLabel(unit)
        self.addItem(self.bar_vb, row=0, col=0)
        self.addItem(self.axis, row=0, col=1)
        self.layout.setContentsMargins(4, 0, 0, 0)
        self.layout.setSpacing(0)
        self.ticks: list[tuple[float, str]] = []

    def set_lut(self, lut: np.ndarray) -> None:
        """The colour map's lookup table (as the image uses)."""
        self.bar.setLookupTable(lut)

    def set_unit(self, unit: str) -> None:
        """The label beside the ticks (BUNIT, σ…)."""
        self.unit = unit
        self.axis.setLabel(unit)

    def show_scale(self, lo: float | None, hi: float = 1.0, kind: str = "linear", contrast: float = 1.0,
                   bias: float = 0.5) -> None:
        """Place ticks for the display limits ``lo``..``hi`` through the stretch (None: no ticks)."""
        self.ticks = []
        if lo is not None:
            values = np.array(nice_ticks(lo, hi), dtype=np.float64)
            if values.size:
                pos = stretch(values, lo, hi, kind, contrast, bias)
                last = -1.0
                for v, p in zip(values, pos, strict=True):
                    if 0.0 < p < 1.0 and p - last > 0.06:  # skip clipped values and labels that would overlap
                        self.ticks.append((float(p), f"{v:.4g}"))
                        last = float(p)
        self.axis.setTicks([self.ticks, []])
