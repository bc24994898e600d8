"""An astronomical image display: DS9-like mouse, stretches, limits, colour maps, readout."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsRectItem, QWidget

from galviewer.core.io.regions import AnyRegion, PolygonRegion, Region
from galviewer.qt.display import COLORMAPS, LIMITS, STRETCHES, ColourBar, compute_limits, nice_ticks, stretch

__all__ = ["COLORMAPS", "LIMITS", "STRETCHES", "ColourBar", "ImageView", "compute_limits", "nice_ticks", "stretch"]

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

class _Markers(pg.ScatterPlotItem):
    """Markers that let clicks through to the image (a second click on a marked source restores it again)."""

    def mouseClickEvent(self, ev) -> None:
        ev.ignore()


class _Preview(pg.PlotCurveItem):
    """The dashed outline and vertex dots of a polygon being drawn; clicks pass through to the image."""

    def __init__(self) -> None:
        super().__init__(pen=pg.mkPen("y", width=1, style=Qt.PenStyle.DashLine))
        self.dots = _Markers(size=6, pen=None, brush="y", symbol="o")
        self.dots.setParentItem(self)
        self.setZValue(20)

    def show_vertices(self, x: list[float], y: list[float]) -> None:
        """Show the vertices so far."""
        self.setData(x=np.asarray(x, float), y=np.asarray(y, float))
        self.dots.setData(x=list(x), y=list(y))

    def mouseClickEvent(self, ev) -> None:
        ev.ignore()


class _ViewBox(pg.ViewBox):
    """Left click selects, middle drag pans, wheel zooms, right drag sets contrast (y) and bias (x).

    With ``draw_shape`` set to ``"rectangle"`` or ``"ellipse"``, a left drag draws that shape
    (a dashed preview follows the mouse) and emits ``drawn(shape, x0, y0, x1, y1)``; with
    ``"polygon"``, each left click adds a vertex; a click on the first vertex, a double click or
    Enter closes the polygon, emitting ``polygon_drawn(vertices)``.
    """

    clicked = Signal(float, float)
    menu_requested = Signal(float, float, object)
    contrast_changed = Signal(float, float)
    drawn = Signal(str, float, float, float, float)
    polygon_drawn = Signal(object)

    def __init__(self) -> None:
        super().__init__(lockAspect=True, enableMenu=False)
        self._cb0 = (1.0, 0.5)
        self.contrast, self.bias = 1.0, 0.5
        self.draw_shape: str | None = None
        self._preview: QGraphicsRectItem | QGraphicsEllipseItem | None = None
        self.vertices: list[tuple[float, float]] = []
        self._poly_preview = _Preview()
        self.addItem(self._poly_preview, ignoreBounds=True)

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.RightButton:  # a right *click* (a drag sets contrast/bias)
            p = self.mapSceneToView(ev.scenePos())
            ev.accept()
            self.menu_requested.emit(float(p.x()), float(p.y()), ev.screenPos().toPoint())
            return
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        p = self.mapSceneToView(ev.scenePos())
        ev.accept()
        if self.draw_shape is None:
            self.clicked.emit(float(p.x()), float(p.y()))
        elif self.draw_shape == "polygon":
            if self.vertices:
                first = self.mapViewToScene(QPointF(*self.vertices[0]))
                on_first = (first - ev.scenePos()).manhattanLength() < 10  # screen pixels
            else:
                on_first = False
            if ev.double() or (on_first and len(self.vertices) >= 3):
                self.finish_polygon()
                return
            self.vertices.append((float(p.x()), float(p.y())))
            xs, ys = zip(*self.vertices, strict=True)
            self._poly_preview.show_vertices(list(xs), list(ys))

    def finish_polygon(self) -> None:
        """Close the polygon being drawn (emits ``polygon_drawn`` when it has at least 3 vertices)."""
        verts, self.vertices = self.vertices, []
        self._poly_preview.show_vertices([], [])
        if len(verts) >= 3:
            self.polygon_drawn.emit(verts)

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() == Qt.MouseButton.LeftButton and self.draw_shape in ("rectangle", "ellipse"):
            ev.accept()
            p0 = self.mapSceneToView(ev.buttonDownScenePos())
            p1 = self.mapSceneToView(ev.scenePos())
            rect = QRectF(p0, p1).normalized()
            if self._preview is None:
                cls = QGraphicsEllipseItem if self.draw_shape == "ellipse" else QGraphicsRectItem
                self._preview = cls()
                pen = pg.mkPen("y", width=1, style=Qt.PenStyle.DashLine)
                pen.setCosmetic(True)
                self._preview.setPen(pen)
                self._preview.setZValue(20)
                self.addItem(self._preview, ignoreBounds=True)
            self._preview.setRect(rect)
            if ev.isFinish():
                self.removeItem(self._preview)
                self._preview = None
                self.drawn.emit(self.draw_shape, float(p0.x()), float(p0.y()), float(p1.x()), float(p1.y()))
        elif ev.button() == Qt.MouseButton.MiddleButton:
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
    menu_requested(x, y, screen_pos)
        Right click (without drag) at image position (x, y); ``screen_pos`` is where a menu should open.
    region_drawn(object)
        A :class:`~galviewer.core.io.regions.Region` was drawn (draw mode) and added.
    region_selected(object)
        A region was clicked (or drawn): the selected one.
    region_edited(object)
        A region was moved, resized or rotated (after the mouse is released).
    """

    clicked = Signal(float, float)
    menu_requested = Signal(float, float, object)
    hovered = Signal(float, float)
    region_drawn = Signal(object)
    region_selected = Signal(object)
    region_edited = Signal(object)

    def __init__(self, parent: QWidget | None = None, title: str = "", *, axes: bool = False,
                 colorbar: bool = False, unit: str = "") -> None:
        super().__init__(parent)
        self.vb = _ViewBox()
        self.title_label = self.addLabel(title, row=0, col=1, colspan=2) if title else None
        self.addItem(self.vb, row=1, col=1)
        self.axes: dict[str, pg.AxisItem] = {}
        if axes:  # stamp pixels, 0-based, linked to the view (they follow zoom and pan)
            for side, row, col in (("left", 1, 0), ("bottom", 2, 1)):
                ax = pg.AxisItem(side)
                ax.linkToView(self.vb)
                ax.setStyle(tickLength=-4)
                self.addItem(ax, row=row, col=col)
                self.axes[side] = ax
        self.colorbar = ColourBar(unit) if colorbar else None
        if self.colorbar is not None:
            self.addItem(self.colorbar, row=1, col=2)
        if axes or colorbar:  # small panels: every pixel of margin is taken from the stamp
            self.ci.layout.setContentsMargins(2, 2, 2, 2)
            self.ci.layout.setSpacing(0)
            if "left" in self.axes:
                self.axes["left"].setWidth(32)
        self.image_item = pg.ImageItem()
        self.mask_item = pg.ImageItem()
        self.mask_item.setZValue(5)
        self.mask_item.setOpacity(0.55)
        self.mask_item.setVisible(False)
        self.vb.addItem(self.image_item)
        self.vb.addItem(self.mask_item)
        self.markers = _Markers(size=14, pen=pg.mkPen("c", width=1.2), brush=None, symbol="o")
        self.markers.setZValue(10)
        self.vb.addItem(self.markers)
        self.data: np.ndarray | None = None
        self.limits_mode, self.stretch_kind, self.cmap = "zscale", "asinh", "gray"
        self.levels: tuple[float, float] | None = None
        self.fixed_levels: tuple[float, float] | None = None
        self.sources_item = _Markers(size=11, pen=pg.mkPen("#8fd16a", width=1), brush=None, symbol="s")
        self.sources_item.setZValue(9)
        self.vb.addItem(self.sources_item)
        self.rois: list[pg.ROI] = []
        self.selected_roi: pg.ROI | None = None
        self.vb.clicked.connect(self.clicked)
        self.vb.sigRangeChanged.connect(self.place_grid_labels)
        self.vb.menu_requested.connect(self.menu_requested)
        self.vb.drawn.connect(self._drawn)
        self.vb.polygon_drawn.connect(self._polygon_drawn)
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
            if self.colorbar is not None:
                self.colorbar.show_scale(None)
            return
        self._redraw()
        if autorange:
            self.vb.autoRange(padding=0)

    def _redraw(self) -> None:
        if self.data is None:
            return
        self.levels = self.fixed_levels or compute_limits(self.data, self.limits_mode)
        disp = stretch(self.data, *self.levels, self.stretch_kind, self.vb.contrast, self.vb.bias)
        blank = ~np.isfinite(self.data)
        if blank.any():
            # NaN (outside a region, no data) is left NaN, which pyqtgraph draws transparent; as the colour map's
            # lowest colour it made a "−5σ" frame around the residual of every rectangle region
            disp = np.where(blank, np.float32(np.nan), disp)
        self.image_item.setImage(disp, levels=(0.0, 1.0), autoLevels=False)
        self.image_item.setRect(-0.5, -0.5, disp.shape[1], disp.shape[0])
        if self.colorbar is not None:
            self.colorbar.show_scale(*self.levels, self.stretch_kind, self.vb.contrast, self.vb.bias)

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
        lut = cmap.getLookupTable(0.0, 1.0, 256)
        self.image_item.setLookupTable(lut)
        if self.colorbar is not None:
            self.colorbar.set_lut(lut)

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

    def zoom_to_fit(self) -> None:
        """Show the whole image."""
        if self.data is not None:
            self.vb.autoRange(padding=0)

    def zoom_actual(self, x: float | None = None, y: float | None = None) -> None:
        """One image pixel per screen pixel (DS9's zoom 1), centred on (x, y) or on the view's centre."""
        if self.data is None:
            return
        (x0, x1), (y0, y1) = self.vb.viewRange()
        cx = (x0 + x1) / 2 if x is None else x
        cy = (y0 + y1) / 2 if y is None else y
        w, h = self.vb.width(), self.vb.height()
        self.vb.setRange(xRange=(cx - w / 2, cx + w / 2), yRange=(cy - h / 2, cy + h / 2), padding=0)

    def centre_on(self, x: float, y: float) -> None:
        """Pan so that (x, y) is at the centre, keeping the zoom."""
        (x0, x1), (y0, y1) = self.vb.viewRange()
        hw, hh = (x1 - x0) / 2, (y1 - y0) / 2
        self.vb.setRange(xRange=(x - hw, x + hw), yRange=(y - hh, y + hh), padding=0)

    def set_grid(self, lines: list | None) -> None:
        """Draw coordinate grid lines (:class:`~galviewer.core.io.wcsgrid.GridLine`) with their labels (None clears)."""
        for item in getattr(self, "grid_items", []):
            self.vb.removeItem(item)
        self.grid_items: list = []
        self.grid_labels: list = []  # (line, its label)
        for line in lines or []:
            colour = (120, 230, 120, 170) if line.axis == "ra" else (120, 200, 255, 170)
            curve = pg.PlotCurveItem(line.x, line.y, pen=pg.mkPen(colour, width=1, style=Qt.PenStyle.DashLine),
                                     connect="finite")
            curve.setZValue(8)
            self.vb.addItem(curve, ignoreBounds=True)
            text = pg.TextItem(line.label, color=colour[:3], anchor=(0, 1) if line.axis == "ra" else (0, 0))
            text.setZValue(8)
            self.vb.addItem(text, ignoreBounds=True)
            self.grid_items += [curve, text]
            self.grid_labels.append((line, text))
        self.place_grid_labels()

    def place_grid_labels(self, *_: object) -> None:
        """Each label where its line enters the *view* (RA at its lowest point, Dec at its leftmost), written
        inwards so the view's edge never clips it; a label that would overlap one already placed is hidden."""
        (x0, x1), (y0, y1) = self.vb.viewRange()
        px, py = self.vb.viewPixelSize()
        placed: list[tuple[float, float, float, float]] = []
        for line, text in getattr(self, "grid_labels", []):
            with np.errstate(invalid="ignore"):
                ok = np.flatnonzero((line.x >= x0) & (line.x <= x1) & (line.y >= y0) & (line.y <= y1))
            if not ok.size:
                text.hide()
                continue
            k = ok[np.argmin(line.y[ok])] if line.axis == "ra" else ok[np.argmin(line.x[ok])]
            x, y = float(line.x[k]), float(line.y[k])
            w, h = text.boundingRect().width() * px, text.boundingRect().height() * py
            x, y = max(min(x, x1 - w), x0), (min(y, y1 - h) if line.axis == "ra" else max(y, y0 + h))  # in view
            box = (x, y, x + w, y + h) if line.axis == "ra" else (x, y - h, x + w, y)
            if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                text.hide()
                continue
            placed.append(box)
            text.setPos(x, y)
            text.show()

    # ------------------------------------------------------------------ detections
    def set_sources(self, xy: np.ndarray | None) -> None:
        """Square markers at detected sources (None clears them)."""
        if xy is None or len(xy) == 0:
            self.sources_item.clear()
        else:
            self.sources_item.setData(x=np.asarray(xy)[:, 0], y=np.asarray(xy)[:, 1])

    # ------------------------------------------------------------------ regions
    def set_draw_mode(self, shape: str | None) -> None:
        """``"rectangle"`` or ``"ellipse"``: left drag draws that shape; ``"polygon"``: left clicks add
        vertices, a click on the first one (or a double click, or Enter) closes; None: left click
        selects/restores."""
        if shape not in (None, "rectangle", "ellipse", "polygon"):
            raise ValueError(f"unknown region shape {shape!r}")
        self.vb.draw_shape = shape
        self.vb.vertices = []
        self.vb._poly_preview.show_vertices([], [])

    def _drawn(self, shape: str, x0: float, y0: float, x1: float, y1: float) -> None:
        w, h = abs(x1 - x0), abs(y1 - y0)
        if w < 4 or h < 4:  # a click or a slip, not a region
            return
        region = Region(shape, (x0 + x1) / 2, (y0 + y1) / 2, w, h)  # type: ignore[arg-type]
        roi = self.add_region(region)
        self.select_region(roi)
        self.region_drawn.emit(region)

    def _polygon_drawn(self, vertices: list[tuple[float, float]]) -> None:
        xs, ys = zip(*vertices, strict=True)
        if max(xs) - min(xs) < 4 or max(ys) - min(ys) < 4:
            return
        region = PolygonRegion(tuple(vertices))
        self.select_region(self.add_region(region))
        self.region_drawn.emit(region)

    def add_region(self, region: AnyRegion) -> pg.ROI:
        """Show a region as an editable ROI (drag to move, handles to resize and rotate, or move vertices)."""
        pen = pg.mkPen("#f2c14e", width=1.5)
        if isinstance(region, PolygonRegion):
            roi = pg.PolyLineROI(list(region.vertices), closed=True, pen=pen, removable=True)
            return self._register(roi, region)
        theta = np.deg2rad(region.angle)
        c, s = np.cos(theta), np.sin(theta)
        hw, hh = region.width / 2, region.height / 2
        pos = (region.x - (c * hw - s * hh), region.y - (s * hw + c * hh))
        size = (region.width, region.height)
        if region.shape == "ellipse":
            roi = pg.EllipseROI(pos, size, angle=region.angle, pen=pen, removable=True)
        else:
            roi = pg.ROI(pos, size, angle=region.angle, pen=pen, removable=True)
            roi.addScaleHandle((1, 1), (0, 0))
            roi.addScaleHandle((0, 0), (1, 1))
            roi.addRotateHandle((1, 0), (0.5, 0.5))
        return self._register(roi, region)

    def _register(self, roi: pg.ROI, region: AnyRegion) -> pg.ROI:
        roi.region_shape = region.shape
        roi.region_label = region.label
        roi.setZValue(15)
        roi.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        roi.sigClicked.connect(lambda r, ev: self.select_region(r))
        roi.sigRegionChangeFinished.connect(self._edited)
        roi.sigRemoveRequested.connect(self.remove_region)
        self.vb.addItem(roi)
        self.rois.append(roi)
        return roi

    def region_of(self, roi: pg.ROI) -> AnyRegion:
        """The region an ROI shows now."""
        if roi.region_shape == "polygon":
            verts = [roi.mapToParent(h.pos()) for h in roi.getHandles()]
            return PolygonRegion(tuple((float(v.x()), float(v.y())) for v in verts), roi.region_label)
        w, h = float(roi.size().x()), float(roi.size().y())
        angle = float(roi.angle())
        theta = np.deg2rad(angle)
        c, s = np.cos(theta), np.sin(theta)
        p = roi.pos()
        x = float(p.x()) + c * w / 2 - s * h / 2
        y = float(p.y()) + s * w / 2 + c * h / 2
        return Region(roi.region_shape, x, y, max(w, 1.0), max(h, 1.0), angle % 360.0, roi.region_label)

    def regions(self) -> list[AnyRegion]:
        """Every region on the image."""
        return [self.region_of(r) for r in self.rois]

    def select_region(self, roi: pg.ROI | None) -> None:
        """Highlight ``roi`` (and un-highlight the others)."""
        self.selected_roi = roi
        for r in self.rois:
            r.setPen(pg.mkPen("#4cc9f0" if r is roi else "#f2c14e", width=2.5 if r is roi else 1.5))
        if roi is not None:
            self.region_selected.emit(self.region_of(roi))

    def _edited(self, roi: pg.ROI) -> None:
        self.select_region(roi)
        self.region_edited.emit(self.region_of(roi))

    def remove_region(self, roi: pg.ROI | None = None) -> None:
        """Remove one ROI (default: the selected one)."""
        roi = roi if roi is not None else self.selected_roi
        if roi is None or roi not in self.rois:
            return
        self.rois.remove(roi)
        self.vb.removeItem(roi)
        if self.selected_roi is roi:
            self.selected_roi = None

    def clear_regions(self) -> None:
        """Remove every ROI."""
        for roi in list(self.rois):
            self.remove_region(roi)
