"""Draw analytics zones (polygons) and lines (directed) on a camera snapshot.

Coordinates are normalised to the image (0..1, y down), as the recorder stores them
(``PUT /cameras/{id}/zones/{zone_id}``). The image is letterboxed into the widget, so a point
means the same place on the picture whatever the widget's size.

Mouse: choose ``start_drawing('zone')`` then click the corners; double-click, Enter or a click
on the first corner closes it (3 corners at least); Esc cancels. ``start_drawing('line')``:
press at the start, release at the end; the arrow shows the direction a→b (a crossing from
its left to its right is 'left_to_right', as the recorder reports it). Without a drawing mode
a click selects the shape under it and a drag moves the nearest corner of the selected shape.
Delete removes the selected shape.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from PySide6.QtCore import QCoreApplication, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from ui.theme import DARK

Point = tuple[float, float]
KINDS = ("zone", "line")
ID_PATTERN = re.compile(r"^[a-z0-9_-]{1,64}$")  # the recorder's zone id rule
GRAB_PX = 10  # how close a click must be to a corner or edge


@dataclass
class Shape:
    """A zone or line as the recorder stores it."""

    id: str
    kind: str  # 'zone' | 'line'
    points: list[Point]
    name: str = ""
    labels: tuple[str, ...] = ()
    min_dwell_us: int = 0
    loiter_us: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be 'zone' or 'line', not {self.kind!r}")
        if not ID_PATTERN.match(self.id):
            raise ValueError(f"zone id {self.id!r} must match [a-z0-9_-]{{1,64}}")
        pts = [(float(x), float(y)) for x, y in self.points]
        if any(not (0 <= v <= 1) for p in pts for v in p):
            raise ValueError("points are normalised: 0..1")
        if self.kind == "line" and len(pts) != 2:
            raise ValueError("a line has exactly 2 points")
        if self.kind == "zone" and len(pts) < 3:
            raise ValueError("a zone needs at least 3 points")
        self.points = pts
        self.labels = tuple(self.labels)

    def body(self) -> dict:
        """The ``PUT /cameras/{id}/zones/{zone_id}`` body."""
        return {
            "kind": self.kind,
            "name": self.name or self.id,
            "points": [[round(x, 5), round(y, 5)] for x, y in self.points],
            "labels": list(self.labels),
            "min_dwell_us": self.min_dwell_us,
            "loiter_us": self.loiter_us,
        }

    @classmethod
    def from_json(cls, d: dict) -> Shape:
        return cls(
            id=str(d["id"]),
            kind=str(d.get("kind", "zone")),
            points=[(float(p[0]), float(p[1])) for p in d.get("points", [])],
            name=str(d.get("name") or ""),
            labels=tuple(d.get("labels") or ()),
            min_dwell_us=int(d.get("min_dwell_us") or 0),
            loiter_us=int(d.get("loiter_us") or 0),
        )


def _clamp(v: float) -> float:
    return min(1.0, max(0.0, v))


@dataclass
class _Draft:
    kind: str
    points: list[Point] = field(default_factory=list)
    hover: Point | None = None


class ZoneEditor(QWidget):
    """A snapshot with zones and lines on it; edits them with the mouse or through methods."""

    changed = Signal()  # shapes added, removed or edited
    selection_changed = Signal(str)  # the selected shape id, "" for none
    drawing_changed = Signal(str)  # the drawing mode: 'zone', 'line' or ""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self._image: QImage | None = None
        self._shapes: list[Shape] = []
        self._selected = ""
        self._draft: _Draft | None = None
        self._drag: tuple[str, int] | None = None  # (shape id, corner index)

    # --- model ------------------------------------------------------------------------------

    def set_image(self, image: QImage | None) -> None:
        self._image = None if image is None or image.isNull() else image
        self.update()

    def image(self) -> QImage | None:
        return self._image

    def image_aspect(self) -> float:
        if self._image is None:
            return 16 / 9
        return self._image.width() / max(1, self._image.height())

    def set_shapes(self, shapes: list[Shape]) -> None:
        self._shapes = [replace(s) for s in shapes]
        if self._selected and self.shape(self._selected) is None:
            self._set_selected("")
        self.update()

    def shapes(self) -> list[Shape]:
        return [replace(s, points=list(s.points)) for s in self._shapes]

    def shape(self, shape_id: str) -> Shape | None:
        return next((s for s in self._shapes if s.id == shape_id), None)

    def new_id(self, kind: str) -> str:
        taken = {s.id for s in self._shapes}
        n = 1
        while f"{kind}-{n}" in taken:
            n += 1
        return f"{kind}-{n}"

    def add_zone(self, points: list[Point], shape_id: str | None = None, name: str = "") -> Shape:
        return self._add(Shape(shape_id or self.new_id("zone"), "zone", points, name))

    def add_line(self, a: Point, b: Point, shape_id: str | None = None, name: str = "") -> Shape:
        return self._add(Shape(shape_id or self.new_id("line"), "line", [a, b], name))

    def _add(self, shape: Shape) -> Shape:
        if self.shape(shape.id) is not None:
            raise ValueError(f"a zone or line {shape.id!r} exists")
        self._shapes.append(shape)
        self._set_selected(shape.id)
        self.changed.emit()
        self.update()
        return shape

    def update_shape(self, shape_id: str, **changes: object) -> Shape:
        """Change name, labels, points, ... of a shape (validated like a new one)."""
        old = self.shape(shape_id)
        if old is None:
            raise KeyError(shape_id)
        new = replace(old, **changes)  # type: ignore[arg-type]
        if new.id != shape_id and self.shape(new.id) is not None:
            raise ValueError(f"a zone or line {new.id!r} exists")
        self._shapes = [new if s is old else s for s in self._shapes]
        if self._selected == shape_id:
            self._selected = new.id
        self.changed.emit()
        self.update()
        return new

    def remove(self, shape_id: str) -> bool:
        before = len(self._shapes)
        self._shapes = [s for s in self._shapes if s.id != shape_id]
        if len(self._shapes) == before:
            return False
        if self._selected == shape_id:
            self._set_selected("")
        self.changed.emit()
        self.update()
        return True

    def selected(self) -> str:
        return self._selected

    def select(self, shape_id: str) -> None:
        self._set_selected(shape_id if self.shape(shape_id) else "")
        self.update()

    def _set_selected(self, shape_id: str) -> None:
        if shape_id != self._selected:
            self._selected = shape_id
            self.selection_changed.emit(shape_id)

    # --- drawing mode -----------------------------------------------------------------------

    def start_drawing(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be 'zone' or 'line', not {kind!r}")
        self._draft = _Draft(kind)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setFocus()
        self.drawing_changed.emit(kind)
        self.update()

    def cancel_drawing(self) -> None:
        if self._draft is not None:
            self._draft = None
            self.unsetCursor()
            self.drawing_changed.emit("")
            self.update()

    def drawing(self) -> str:
        return self._draft.kind if self._draft else ""

    def _finish_zone(self) -> None:
        draft = self._draft
        if draft is None or draft.kind != "zone" or len(draft.points) < 3:
            return
        points = draft.points
        self._draft = None
        self.unsetCursor()
        self.drawing_changed.emit("")
        self.add_zone(points)

    # --- geometry ---------------------------------------------------------------------------

    def image_rect(self) -> QRectF:
        """Where the picture is drawn: the widget letterboxed to the image's aspect."""
        w, h = self.width(), self.height()
        aspect = self.image_aspect()
        if w / max(1, h) > aspect:
            iw, ih = h * aspect, float(h)
        else:
            iw, ih = float(w), w / aspect
        return QRectF((w - iw) / 2, (h - ih) / 2, iw, ih)

    def to_widget(self, p: Point) -> QPointF:
        r = self.image_rect()
        return QPointF(r.x() + p[0] * r.width(), r.y() + p[1] * r.height())

    def to_normalised(self, pos: QPointF) -> Point:
        r = self.image_rect()
        return (
            _clamp((pos.x() - r.x()) / max(1.0, r.width())),
            _clamp((pos.y() - r.y()) / max(1.0, r.height())),
        )

    def shape_at(self, pos: QPointF) -> str:
        """The shape under ``pos`` (inside a zone, or near a line), topmost first."""
        for s in reversed(self._shapes):
            pts = [self.to_widget(p) for p in s.points]
            if s.kind == "zone":
                if QPolygonF(pts).containsPoint(pos, Qt.FillRule.OddEvenFill):
                    return s.id
            elif _distance_to_segment(pos, pts[0], pts[1]) <= GRAB_PX:
                return s.id
        return ""

    def _corner_at(self, pos: QPointF) -> int | None:
        s = self.shape(self._selected)
        if s is None:
            return None
        for i, p in enumerate(s.points):
            q = self.to_widget(p)
            if math.hypot(q.x() - pos.x(), q.y() - pos.y()) <= GRAB_PX:
                return i
        return None

    # --- events -----------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        pos = event.position()
        p = self.to_normalised(pos)
        draft = self._draft
        if draft is not None:
            if draft.kind == "line":
                draft.points = [p]
                draft.hover = p
            else:
                if len(draft.points) >= 3:
                    first = self.to_widget(draft.points[0])
                    if math.hypot(first.x() - pos.x(), first.y() - pos.y()) <= GRAB_PX:
                        self._finish_zone()
                        return
                draft.points.append(p)
            self.update()
            return
        corner = self._corner_at(pos)
        if corner is not None:
            self._drag = (self._selected, corner)
            return
        self.select(self.shape_at(pos))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        p = self.to_normalised(event.position())
        if self._draft is not None:
            self._draft.hover = p
            self.update()
        elif self._drag is not None:
            sid, i = self._drag
            s = self.shape(sid)
            if s is not None:
                pts = list(s.points)
                pts[i] = p
                self.update_shape(sid, points=pts)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        draft = self._draft
        if draft is not None and draft.kind == "line" and draft.points:
            a, b = draft.points[0], self.to_normalised(event.position())
            self._draft = None
            self.unsetCursor()
            self.drawing_changed.emit("")
            if math.dist(a, b) > 0.01:  # a click is not a line
                self.add_line(a, b)
            self.update()
        self._drag = None

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self._draft is not None and self._draft.kind == "zone":
            # the double-click's first press already added this corner
            self._finish_zone()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Escape and self._draft is not None:
            self.cancel_drawing()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._draft is not None:
            self._finish_zone()
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self._selected:
            self.remove(self._selected)
        else:
            super().keyPressEvent(event)

    # --- painting ---------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(DARK.tile))
        r = self.image_rect()
        if self._image is not None:
            painter.drawImage(r, self._image)
        else:
            painter.setPen(QColor(DARK.text_dim))
            painter.drawText(
                r,
                Qt.AlignmentFlag.AlignCenter,
                QCoreApplication.translate("ZoneEditor", "No snapshot"),
            )
        for s in self._shapes:
            self._paint_shape(painter, s, s.id == self._selected)
        if self._draft is not None:
            self._paint_draft(painter, self._draft)
        painter.end()

    def _paint_shape(self, painter: QPainter, s: Shape, selected: bool) -> None:
        color = QColor(DARK.accent if selected else DARK.warning)
        pts = [self.to_widget(p) for p in s.points]
        painter.setPen(QPen(color, 3 if selected else 2))
        if s.kind == "zone":
            fill = QColor(color)
            fill.setAlpha(60)
            painter.setBrush(QBrush(fill))
            painter.drawPolygon(QPolygonF(pts))
            anchor = pts[0]
        else:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            _draw_arrow(painter, pts[0], pts[1], color)
            anchor = QPointF((pts[0].x() + pts[1].x()) / 2, (pts[0].y() + pts[1].y()) / 2)
        if selected:
            painter.setBrush(QBrush(color))
            for p in pts:
                painter.drawEllipse(p, 4, 4)
        painter.setPen(QColor(DARK.text_bright))
        painter.drawText(anchor + QPointF(6, -6), s.name or s.id)

    def _paint_draft(self, painter: QPainter, draft: _Draft) -> None:
        color = QColor(DARK.accent)
        painter.setPen(QPen(color, 2, Qt.PenStyle.DashLine))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        pts = [self.to_widget(p) for p in draft.points]
        if draft.hover is not None and pts:
            pts.append(self.to_widget(draft.hover))
        if draft.kind == "line" and len(pts) == 2:
            _draw_arrow(painter, pts[0], pts[1], color)
            return
        if len(pts) >= 2:
            painter.drawPolyline(QPolygonF(pts))
        painter.setBrush(QBrush(color))
        for p in pts[: len(draft.points)]:
            painter.drawEllipse(p, 3, 3)


def _draw_arrow(painter: QPainter, a: QPointF, b: QPointF, color: QColor) -> None:
    """The line a→b with a head at b, and a tick at the middle pointing to its right-hand side
    (the side a 'left_to_right' crossing ends on)."""
    painter.drawLine(a, b)
    dx, dy = b.x() - a.x(), b.y() - a.y()
    length = math.hypot(dx, dy)
    if length < 1:
        return
    ux, uy = dx / length, dy / length
    size = min(14.0, length / 3)
    head = QPainterPath(b)
    head.lineTo(b.x() - ux * size - uy * size / 2, b.y() - uy * size + ux * size / 2)
    head.lineTo(b.x() - ux * size + uy * size / 2, b.y() - uy * size - ux * size / 2)
    head.closeSubpath()
    painter.fillPath(head, color)
    # right-hand side seen from a towards b with y down: rotate (ux, uy) by +90°: (-uy, ux)
    mid = QPointF((a.x() + b.x()) / 2, (a.y() + b.y()) / 2)
    painter.drawLine(mid, mid + QPointF(-uy * size, ux * size))


def _distance_to_segment(p: QPointF, a: QPointF, b: QPointF) -> float:
    ax, ay, bx, by = a.x(), a.y(), b.x(), b.y()
    dx, dy = bx - ax, by - ay
    if dx == 0 and dy == 0:
        return math.hypot(p.x() - ax, p.y() - ay)
    t = max(0.0, min(1.0, ((p.x() - ax) * dx + (p.y() - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(p.x() - (ax + t * dx), p.y() - (ay + t * dy))
