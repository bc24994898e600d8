"""An astronomical image display: DS9-like mouse, stretches, limits, colour maps, readout."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QWidget

__all__ = ["COLORMAPS", "LIMITS", "STRETCHES", "ImageView", "compute_limits", "stretch"]

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

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


class _ViewBox(pg.ViewBox):
    """Left click selects, middle drag pans, wheel zooms, right drag sets contrast (y) and bias (x)."""

    clicked = Signal(float, float)
    contrast_changed = Signal(float, float)

    def __init__(self) -> None:
        super().__init__(lockAspect=True, enableMenu=False)
        self._cb0 = (1.0, 0.5)
        self.contrast, self.bias = 1.0, 0.5

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            p = self.mapSceneToView(ev.scenePos())
            self.clicked.emit(float(p.x()), float(p.y()))
            ev.accept()
        else:
            ev.ignore()

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() == Qt.MouseButton.MiddleButton:
            super().mouseDragEvent(ev, axis)
        elif ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            if ev.isStart():
                self._cb0 = (self.contrast, self.bias)
            w = max(self.screenGeometry().width(), 1)
            h = max(self.screenGeometry().height(), 1)
            d = ev.pos() - ev.buttonDownPos()
            self.contrast = float(np.clip(self._cb0[0] * 2 ** (-4 * d.y() / h), 0.05, 20))
            self.bias = float(np.clip(self._cb0[1] - d.x() / w, 0.0, 1.0))
            self.contrast_changed.emit(self.contrast, self.bias)
        else:
            ev.ignore()


class ImageView(pg.GraphicsLayoutWidget):
    """One image with a stretch, limits, colour map and an optional mask overlay.

    Pixel (i, j) of the array is drawn centred on (x, y) = (j, i) in 0-based pixel
    coordinates with y up, as in DS9.

    Signals
    -------
    clicked(x, y)
        Left click, 0-based pixel coordinates.
    hovered(x, y)
        Mouse position over the image.
    """

    clicked = Signal(float, float)
    hovered = Signal(float, float)

    def __init__(self, parent: QWidget | None = None, title: str = "") -> None:
        super().__init__(parent)
        self.vb = _ViewBox()
        if title:
            self.addLabel(title, row=0, col=0)
        self.addItem(self.vb, row=1, col=0)
        self.image_item = pg.ImageItem()
        self.mask_item = pg.ImageItem()
        self.mask_item.setZValue(5)
        self.mask_item.setOpacity(0.55)
        self.mask_item.setVisible(False)
        self.vb.addItem(self.image_item)
        self.vb.addItem(self.mask_item)
        self.markers = pg.ScatterPlotItem(size=14, pen=pg.mkPen("c", width=1.2), brush=None, symbol="o")
        self.markers.setZValue(10)
        self.vb.addItem(self.markers)
        self.data: np.ndarray | None = None
        self.limits_mode, self.stretch_kind, self.cmap = "zscale", "asinh", "gray"
        self.levels: tuple[float, float] | None = None
        self.fixed_levels: tuple[float, float] | None = None
        self.vb.clicked.connect(self.clicked)
        self.vb.contrast_changed.connect(lambda c, b: self._redraw())
        self.scene().sigMouseMoved.connect(self._moved)
        self.set_colormap("gray")

    def set_data(self, data: np.ndarray | None, levels: tuple[float, float] | None = None,
                 autorange: bool = True) -> None:
        """Show ``data`` (2-D); ``levels`` fixes the display limits (else the limits mode decides)."""
        self.data = None if data is None else np.asarray(data)
        self.fixed_levels = levels
        if self.data is None:
            self.image_item.clear()
            return
        self._redraw()
        if autorange:
            self.vb.autoRange(padding=0)

    def _redraw(self) -> None:
        if self.data is None:
            return
        self.levels = self.fixed_levels or compute_limits(self.data, self.limits_mode)
        disp = stretch(self.data, *self.levels, self.stretch_kind, self.vb.contrast, self.vb.bias)
        self.image_item.setImage(disp, levels=(0.0, 1.0), autoLevels=False)
        self.image_item.setRect(-0.5, -0.5, disp.shape[1], disp.shape[0])

    def set_display(self, stretch_kind: str | None = None, limits: str | None = None) -> None:
        """Change the stretch and/or the limits mode and redraw."""
        if stretch_kind is not None:
            if stretch_kind not in STRETCHES:
                raise ValueError(f"unknown stretch {stretch_kind!r}")
            self.stretch_kind = stretch_kind
        if limits is not None:
            if limits not in LIMITS:
                raise ValueError(f"unknown limits {limits!r}")
            self.limits_mode = limits
        self._redraw()

    def set_colormap(self, name: str) -> None:
        """Use one of :data:`COLORMAPS`."""
        self.cmap = name
        cmap = pg.colormap.get(name) if name != "gray" else pg.ColorMap([0.0, 1.0], [(0, 0, 0), (255, 255, 255)])
        self.image_item.setLookupTable(cmap.getLookupTable(0.0, 1.0, 256))

    def set_mask(self, mask: np.ndarray | None) -> None:
        """Overlay a boolean mask in translucent red (None hides it)."""
        if mask is None:
            self.mask_item.setVisible(False)
            return
        rgba = np.zeros((*mask.shape, 4), np.uint8)
        rgba[mask] = (255, 40, 40, 255)
        self.mask_item.setImage(rgba, autoLevels=False)
        self.mask_item.setRect(-0.5, -0.5, mask.shape[1], mask.shape[0])
        self.mask_item.setVisible(True)

    def set_markers(self, xy: np.ndarray | None) -> None:
        """Circles at 0-based (x, y) positions (None clears them)."""
        if xy is None or len(xy) == 0:
            self.markers.clear()
        else:
            self.markers.setData(x=np.asarray(xy)[:, 0], y=np.asarray(xy)[:, 1])

    def _moved(self, pos: QPointF) -> None:
        if self.data is None or not self.vb.sceneBoundingRect().contains(pos):
            return
        p = self.vb.mapSceneToView(pos)
        self.hovered.emit(float(p.x()), float(p.y()))

    def value_at(self, x: float, y: float) -> float | None:
        """Pixel value at 0-based (x, y), or None outside the image."""
        if self.data is None:
            return None
        i, j = round(y), round(x)
        if 0 <= i < self.data.shape[0] and 0 <= j < self.data.shape[1]:
            return float(self.data[i, j])
        return None
