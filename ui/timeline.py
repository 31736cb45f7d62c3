"""The timeline: recorded ranges, gaps, events by label, bookmarks, live edge and a cursor.

The widget paints from a small model interface (``TimelineModel``) and keeps only its view (the
visible window) and the cursor the playback engine sets. Wheel zooms about the mouse between one
minute and thirty days, drag pans, a click asks to seek (``seek_requested``), hovering reports
the time under the mouse (``hover``) so a thumbnail can be shown. Times are µs since the epoch;
labels are local time and adapt to the zoom.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from PySide6.QtCore import QCoreApplication, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from server.protocol.timeutil import DAY_US, HOUR_US, MINUTE_US, US_PER_SECOND
from server.protocol.timeutil import now_us as wall_now_us
from ui.theme import DARK, label_color

US = US_PER_SECOND
MIN_SPAN_US = MINUTE_US
MAX_SPAN_US = 30 * DAY_US
WHEEL_FACTOR = 0.8  # one wheel notch forward shows 80 % of the span
DRAG_THRESHOLD_PX = 4
MIN_LABEL_SPACING_PX = 90

# Candidate label steps, finest first; the first one at least MIN_LABEL_SPACING_PX apart wins.
TICK_STEPS_US = [
    s * US
    for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
] + [DAY_US, 2 * DAY_US, 7 * DAY_US]


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    start_us: int
    end_us: int
    label: str  # 'motion', 'person', 'car', ...: the colour follows the label
    camera: str = ""


@dataclass(frozen=True, slots=True)
class Bookmark:
    time_us: int
    name: str = ""
    duration_us: int = 0


@runtime_checkable
class TimelineModel(Protocol):
    """What the timeline paints. Queries are for a window and must be cheap (called per paint).

    A model may also have ``changed`` (an ``app.signals.Signal``); the widget then repaints when
    it fires, from whatever thread; and ``archived(start_us, end_us)``: the parts of the recorded
    ranges that are only in the archive (their local copy gone), painted in their own colour.
    """

    def recorded(self, start_us: int, end_us: int) -> Sequence[tuple[int, int]]:
        """Recorded [start, end) ranges overlapping the window, sorted; the rest are gaps."""
        ...

    def events(self, start_us: int, end_us: int) -> Sequence[TimelineEvent]: ...

    def bookmarks(self, start_us: int, end_us: int) -> Sequence[Bookmark]: ...

    def live_edge_us(self) -> int | None:
        """Newest recorded instant while the camera records live, else None."""
        ...


class ListTimelineModel:
    """A timeline model over plain lists (fixed content; also the shape an adapter fills)."""

    def __init__(
        self,
        recorded: Sequence[tuple[int, int]] = (),
        events: Sequence[TimelineEvent] = (),
        bookmarks: Sequence[Bookmark] = (),
        live_edge_us: int | None = None,
        archived: Sequence[tuple[int, int]] = (),
    ) -> None:
        self._archived = sorted((int(a), int(b)) for a, b in archived if b > a)
        self._ranges = sorted((int(a), int(b)) for a, b in recorded if b > a)
        self._starts = [a for a, _ in self._ranges]
        self._events = sorted(events, key=lambda e: e.start_us)
        self._bookmarks = sorted(bookmarks, key=lambda b: b.time_us)
        self._live = live_edge_us

    def recorded(self, start_us: int, end_us: int) -> list[tuple[int, int]]:
        i = max(0, bisect.bisect_right(self._starts, start_us) - 1)
        out = []
        for a, b in self._ranges[i:]:
            if a >= end_us:
                break
            if b > start_us:
                out.append((a, b))
        return out

    def archived(self, start_us: int, end_us: int) -> list[tuple[int, int]]:
        return [(a, b) for a, b in self._archived if b > start_us and a < end_us]

    def events(self, start_us: int, end_us: int) -> list[TimelineEvent]:
        return [e for e in self._events if e.start_us < end_us and e.end_us > start_us]

    def bookmarks(self, start_us: int, end_us: int) -> list[Bookmark]:
        return [
            b
            for b in self._bookmarks
            if b.time_us < end_us and b.time_us + b.duration_us >= start_us
        ]

    def live_edge_us(self) -> int | None:
        return self._live


def tick_step(span_us: int, width_px: float) -> int:
    """The label step for a span drawn over ``width_px``: labels ≥ MIN_LABEL_SPACING_PX apart."""
    need = span_us * MIN_LABEL_SPACING_PX / max(width_px, 1.0)
    for step in TICK_STEPS_US:
        if step >= need:
            return step
    return TICK_STEPS_US[-1]


def _local_offset_us(t_us: int) -> int:
    return time.localtime(t_us // US).tm_gmtoff * US


def ticks(start_us: int, end_us: int, step_us: int) -> list[int]:
    """Tick instants aligned to local time (midnight, the hour, ...) within [start, end]."""
    off = _local_offset_us(start_us)
    first = (start_us + off) // step_us * step_us - off
    if first < start_us:
        first += step_us
    return list(range(first, end_us + 1, step_us))


def tick_label(t_us: int, step_us: int) -> str:
    """Tick text: seconds below a one-minute step, the date at midnight or above a day."""
    lt = time.localtime(t_us // US)
    if step_us >= DAY_US:
        return time.strftime("%d %b", lt)
    if lt.tm_hour == 0 and lt.tm_min == 0 and lt.tm_sec == 0:
        return time.strftime("%a %d %b", lt)
    if step_us < MINUTE_US:
        return time.strftime("%H:%M:%S", lt)
    return time.strftime("%H:%M", lt)


def _tr(text: str) -> str:
    return QCoreApplication.translate("Timeline", text)


class TimelineWidget(QWidget):
    seek_requested = Signal("qint64")  # µs: a click asks playback to go there
    hover = Signal("qint64")  # µs under the mouse (for the thumbnail popup)
    hover_ended = Signal()
    view_changed = Signal("qint64", "qint64")  # start_us, end_us
    _model_changed = Signal()  # marshals a model's change (any thread) onto the UI thread

    def __init__(
        self,
        parent: QWidget | None = None,
        model: TimelineModel | None = None,
        now_us: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(parent)
        self._now_us = now_us or wall_now_us
        self._model: TimelineModel | None = None
        self._disconnect: Callable[[], None] | None = None
        holder = self._holder = [None]  # lets the destroyed handler reach the live disconnect

        def _drop(*_args, holder=holder) -> None:
            if holder[0] is not None:
                holder[0]()

        self.destroyed.connect(_drop)
        self._span_us = HOUR_US
        self._start_us = self._now_us() - self._span_us * 3 // 4
        self._cursor_us: int | None = None
        self._hover_x: float | None = None
        self._press_x: float | None = None
        self._press_start_us = 0
        self._dragging = False
        self._model_changed.connect(self.update)
        self.setMouseTracking(True)
        self.setMinimumHeight(56)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.set_model(model)

    def sizeHint(self):
        size = super().sizeHint()
        size.setHeight(64)
        return size

    # model and state

    def set_model(self, model: TimelineModel | None) -> None:
        if self._disconnect is not None:
            self._disconnect()
            self._disconnect = None
        self._model = model
        changed: Any = getattr(model, "changed", None)
        if changed is not None and hasattr(changed, "connect"):
            self._disconnect = changed.connect(lambda _value: self._model_changed.emit())
        self._holder[0] = self._disconnect
        self.update()

    @property
    def model(self) -> TimelineModel | None:
        return self._model

    @property
    def start_us(self) -> int:
        return self._start_us

    @property
    def span_us(self) -> int:
        return self._span_us

    @property
    def end_us(self) -> int:
        return self._start_us + self._span_us

    @property
    def cursor_us(self) -> int | None:
        return self._cursor_us

    def set_cursor(self, t_us: int | None) -> None:
        """Where playback is (None: no cursor). Does not move the view."""
        self._cursor_us = t_us
        self.update()

    def set_view(self, start_us: int, span_us: int) -> None:
        span = int(min(max(span_us, MIN_SPAN_US), MAX_SPAN_US))
        start = int(max(start_us, 0))
        if (start, span) == (self._start_us, self._span_us):
            return
        self._start_us, self._span_us = start, span
        self.view_changed.emit(start, start + span)
        self.update()

    def center_on(self, t_us: int) -> None:
        self.set_view(t_us - self._span_us // 2, self._span_us)

    # coordinates

    def us_per_px(self) -> float:
        return self._span_us / max(self.width(), 1)

    def x_to_us(self, x: float) -> int:
        return self._start_us + round(x * self.us_per_px())

    def us_to_x(self, t_us: int) -> float:
        return (t_us - self._start_us) / self.us_per_px()

    def zoom_about(self, factor: float, x: float) -> None:
        """Scale the span by ``factor`` keeping the instant under ``x`` in place."""
        t = self.x_to_us(x)
        span = int(min(max(self._span_us * factor, MIN_SPAN_US), MAX_SPAN_US))
        self.set_view(t - round(x * span / max(self.width(), 1)), span)

    # input

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_about(WHEEL_FACTOR**steps, event.position().x())
        event.accept()

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._press_x = event.position().x()
            self._press_start_us = self._start_us
            self._dragging = False
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        x = event.position().x()
        if self._press_x is not None:
            dx = x - self._press_x
            if self._dragging or abs(dx) >= DRAG_THRESHOLD_PX:
                self._dragging = True
                self.set_view(self._press_start_us - round(dx * self.us_per_px()), self._span_us)
        self._hover_x = x
        self.hover.emit(self.x_to_us(x))
        self.update()

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._press_x is not None:
            if not self._dragging:
                self.seek_requested.emit(self.x_to_us(event.position().x()))
            self._press_x = None
            self._dragging = False
        event.accept()

    def leaveEvent(self, event) -> None:
        self._hover_x = None
        self.hover_ended.emit()
        self.update()
        super().leaveEvent(event)

    def keyPressEvent(self, event) -> None:
        # Ctrl+ keys: the plain ones are the playback bar's window shortcuts (step, speed)
        key, mid = event.key(), self.width() / 2
        if not event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().keyPressEvent(event)
            return
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_about(WHEEL_FACTOR, mid)
        elif key == Qt.Key.Key_Minus:
            self.zoom_about(1 / WHEEL_FACTOR, mid)
        elif key == Qt.Key.Key_Left:
            self.set_view(self._start_us - self._span_us // 10, self._span_us)
        elif key == Qt.Key.Key_Right:
            self.set_view(self._start_us + self._span_us // 10, self._span_us)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    # painting

    def lanes(self) -> dict[str, QRectF]:
        """Where each layer is painted (tests and the thumbnail popup use it too)."""
        w, h = float(self.width()), float(self.height())
        scale_h = 18.0
        events_h = max(8.0, (h - scale_h) * 0.3)
        return {
            "scale": QRectF(0, 0, w, scale_h),
            "events": QRectF(0, scale_h + 2, w, events_h),
            "recorded": QRectF(0, scale_h + events_h + 4, w, max(6.0, h - scale_h - events_h - 6)),
        }

    def _span_x(self, a: int, b: int) -> tuple[float, float]:
        w = float(self.width())
        return max(self.us_to_x(a), -1.0), min(self.us_to_x(b), w + 1)

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        try:
            self._paint(p)
        finally:
            p.end()

    def _paint(self, p: QPainter) -> None:
        w, h = float(self.width()), float(self.height())
        lanes = self.lanes()
        start, end = self._start_us, self.end_us
        p.fillRect(self.rect(), QColor(DARK.base))
        font = QFont(p.font())
        font.setPixelSize(11)
        p.setFont(font)
        fm = QFontMetrics(font)
        model = self._model
        rec = lanes["recorded"]
        p.fillRect(rec, QColor(DARK.gap))
        live = None
        if model is not None:
            color = QColor(DARK.recorded)
            for a, b in model.recorded(start, end):
                x0, x1 = self._span_x(a, b)
                p.fillRect(QRectF(x0, rec.top(), max(x1 - x0, 1.0), rec.height()), color)
            archived = getattr(model, "archived", None)
            if archived is not None:  # footage whose local copy is gone: played from the bucket
                color = QColor(DARK.archived)
                for a, b in archived(start, end):
                    x0, x1 = self._span_x(a, b)
                    p.fillRect(QRectF(x0, rec.top(), max(x1 - x0, 1.0), rec.height()), color)
            ev = lanes["events"]
            for e in model.events(start, end):
                x0, x1 = self._span_x(e.start_us, e.end_us)
                p.fillRect(
                    QRectF(x0, ev.top(), max(x1 - x0, 2.0), ev.height()), label_color(e.label)
                )
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(DARK.accent))
            for b in model.bookmarks(start, end):
                x = self.us_to_x(b.time_us)
                if b.duration_us > 0:
                    x1 = self.us_to_x(b.time_us + b.duration_us)
                    bar = QColor(DARK.accent)
                    bar.setAlpha(90)
                    p.fillRect(QRectF(x, rec.top(), max(x1 - x, 1.0), 3), bar)
                p.drawPolygon(
                    QPolygonF(
                        [
                            QPointF(x - 5, rec.top()),
                            QPointF(x + 5, rec.top()),
                            QPointF(x, rec.top() + 7),
                        ]
                    )
                )
            live = model.live_edge_us()
        # the future (past the live edge, or past now) is dimmed
        future_from = live if live is not None else self._now_us()
        fx = self.us_to_x(future_from)
        if fx < w:
            p.fillRect(
                QRectF(max(fx, 0.0), lanes["events"].top(), w - max(fx, 0.0), h),
                QColor(0, 0, 0, 110),
            )
        if live is not None and 0 <= fx <= w:
            p.setPen(QPen(QColor(DARK.alarm), 2))
            p.drawLine(QPointF(fx, lanes["events"].top()), QPointF(fx, h))
        # scale
        step = tick_step(self._span_us, w)
        p.setPen(QColor(DARK.border))
        for t in ticks(start, end, step):
            x = round(self.us_to_x(t)) + 0.5
            p.setPen(QColor(DARK.border))
            p.drawLine(QPointF(x, lanes["scale"].bottom() - 5), QPointF(x, h))
            p.setPen(QColor(DARK.text_dim))
            p.drawText(QPointF(x + 3, fm.ascent() + 2), tick_label(t, step))
        # hover and cursor
        if self._hover_x is not None:
            p.setPen(QPen(QColor(DARK.text_dim), 1, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(self._hover_x, 0), QPointF(self._hover_x, h))
        if self._cursor_us is not None:
            cx = self.us_to_x(self._cursor_us)
            if -2 <= cx <= w + 2:
                p.setPen(QPen(QColor(DARK.text_bright), 2))
                p.drawLine(QPointF(cx, 0), QPointF(cx, h))
        if model is None:
            p.setPen(QColor(DARK.text_dim))
            p.drawText(rec, Qt.AlignmentFlag.AlignCenter, _tr("No recordings"))

    def changeEvent(self, event) -> None:
        if event.type() == event.Type.LanguageChange:
            self.update()
        super().changeEvent(event)

    def closeEvent(self, event) -> None:
        if self._disconnect is not None:
            self._disconnect()
            self._disconnect = None
        super().closeEvent(event)
