"""Area motion search: draw a rectangle on a video tile, list when something moved inside it.

``MotionRegionTool`` is a transparent widget laid over a ``VideoTile`` while the search is
armed: a drag draws the rectangle (mapped through the tile's letterbox and digital zoom into
normalised image coordinates), Esc disarms it. ``MotionSearchPanel`` sends the rectangle and a
time range to ``POST /api/v1/search/motion`` (the recorder answers from its coarse motion grid)
and lists the merged time ranges; activating one emits ``play_requested`` with its start.
The request runs on the workstation's network loop; the answer comes back through the bridge.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import (
    QCoreApplication,
    QDateTime,
    QEvent,
    QObject,
    QRectF,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QKeySequence, QPainter, QPainterPath, QPen, QShortcut
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from app.motion_search import MotionSearch, Region, check_region
from app.remote import ApiError
from server.protocol.timeutil import DAY_US, MINUTE_US, now_us
from ui.bridge import bridge
from ui.dialogs.common import StatusLine
from ui.theme import DARK
from ui.timerange import PRESETS, TimeRange, camera_name
from ui.videotile import VideoTile

log = logging.getLogger(__name__)

MIN_REGION = 0.01  # a rectangle thinner than this (normalised) is a click, not a region
# up to a day: longer searches of the motion grid are asked for as a custom range
MOTION_PRESETS = tuple(w for w in PRESETS if w is None or w <= DAY_US)


def _tr(text: str) -> str:
    return QCoreApplication.translate("MotionSearch", text)


def normalise_region(a: tuple[float, float], b: tuple[float, float]) -> Region | None:
    """Two image points (any order, maybe outside the picture) -> (x1, y1, x2, y2) in [0, 1],
    or None when the rectangle is too small to mean an area."""
    x1, x2 = sorted(min(max(v, 0.0), 1.0) for v in (a[0], b[0]))
    y1, y2 = sorted(min(max(v, 0.0), 1.0) for v in (a[1], b[1]))
    if x2 - x1 < MIN_REGION or y2 - y1 < MIN_REGION:
        return None
    return (round(x1, 4), round(y1, 4), round(x2, 4), round(y2, 4))


def format_range(start_us: int, end_us: int) -> str:
    start = QDateTime.fromMSecsSinceEpoch(start_us // 1000)
    seconds = max(0, (end_us - start_us) // 1_000_000)
    return f"{start.toString('yyyy-MM-dd HH:mm:ss')}  ({seconds // 60}:{seconds % 60:02d})"


class MotionRegionTool(QWidget):
    """Covers a VideoTile while armed; a drag draws the search rectangle."""

    region_drawn = Signal(float, float, float, float)  # x1, y1, x2, y2 (normalised image)
    cancelled = Signal()

    def __init__(self, tile: VideoTile) -> None:
        super().__init__(tile)
        self.tile = tile
        self.region: Region | None = None
        self._from: tuple[float, float] | None = None
        self._to: tuple[float, float] | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setToolTip(_tr("Drag a rectangle to search for motion in it (Esc cancels)"))
        self.setGeometry(tile.rect())
        tile.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.tile and event.type() == QEvent.Type.Resize:
            self.setGeometry(self.tile.rect())
        return False

    def arm(self) -> None:
        self.setGeometry(self.tile.rect())
        self.show()
        self.raise_()
        self.setFocus()

    def disarm(self) -> None:
        self._from = self._to = None
        if isValid(self.tile):
            self.tile.removeEventFilter(self)
        self.hide()

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._from = self._to = self.tile.widget_to_image(event.position())
            self.update()
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        if self._from is not None:
            self._to = self.tile.widget_to_image(event.position())
            self.update()
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._from is None:
            event.accept()
            return
        region = normalise_region(self._from, self.tile.widget_to_image(event.position()))
        self._from = self._to = None
        if region is not None:
            self.region = region
            self.region_drawn.emit(*region)
        self.update()
        event.accept()

    def mouseDoubleClickEvent(self, event) -> None:
        event.accept()  # not the wall's maximise while drawing

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.disarm()
            self.cancelled.emit()
            event.accept()
        else:
            super().keyPressEvent(event)

    def _rect(self, a: tuple[float, float], b: tuple[float, float]) -> QRectF:
        return QRectF(self.tile.image_to_widget(*a), self.tile.image_to_widget(*b)).normalized()

    def paintEvent(self, _event) -> None:
        if self._from is not None and self._to is not None:
            rect = self._rect(self._from, self._to)
        elif self.region is not None:
            x1, y1, x2, y2 = self.region
            rect = self._rect((x1, y1), (x2, y2))
        else:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        outside = QPainterPath()
        outside.addRect(QRectF(self.rect()))
        inside = QPainterPath()
        inside.addRect(rect)
        p.fillPath(outside.subtracted(inside), QColor(0, 0, 0, 90))
        pen = QPen(QColor(DARK.accent), 2, Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.drawRect(rect)
        p.end()


class MotionSearchPanel(QWidget):
    """Time range, the drawn region and the ranges found; activating a range plays it."""

    play_requested = Signal(str, str, "qint64")  # server_id, camera_id, start_us
    searched = Signal(int)  # ranges found (after each answer)
    error = Signal(str)

    def __init__(self, workstation: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workstation
        self._bridge = bridge()
        self.server_id = ""
        self.camera_id = ""
        self.region: Region | None = None
        self.ranges: list[tuple[int, int]] = []
        self.tool: MotionRegionTool | None = None
        self._generation = 0
        self._build()

    def _build(self) -> None:
        self.camera_label = QLabel(_tr("Draw a rectangle on a tile"))
        self.time_range = TimeRange(self, MOTION_PRESETS)
        self.search_button = QPushButton(_tr("Search motion"))
        self.search_button.setToolTip(_tr("Search the drawn area again (Ctrl+Return)"))
        self.search_button.clicked.connect(self.search_again)
        self.status = StatusLine()
        self.results = QListWidget()
        self.results.itemActivated.connect(self._activate)

        form = QFormLayout()
        form.addRow(_tr("Camera"), self.camera_label)
        self.time_range.add_rows(form, _tr("Time"))
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.search_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addLayout(row)
        layout.addWidget(self.results, 1)
        QShortcut(QKeySequence("Ctrl+Return"), self, self.search_again)

    def span(self) -> tuple[int, int]:
        window = self.time_range.window_us
        if window is not None:
            now = now_us()
            return now - window, now + MINUTE_US
        return self.time_range.custom_span()

    # --- drawing ------------------------------------------------------------------------------

    def arm(self, tile: VideoTile, server_id: str, camera_id: str) -> MotionRegionTool:
        """Lay the drawing tool over ``tile`` (showing ``camera_id``); a drawn rectangle
        starts a search."""
        self.disarm()
        self.server_id, self.camera_id = server_id, camera_id
        self.camera_label.setText(self._camera_name(server_id, camera_id))
        tool = MotionRegionTool(tile)
        tool.region_drawn.connect(self._region_drawn)
        tool.cancelled.connect(self.disarm)
        tool.arm()
        self.tool = tool
        return tool

    def disarm(self) -> None:
        tool, self.tool = self.tool, None
        if tool is not None and isValid(tool):
            tool.disarm()
            tool.deleteLater()

    def _camera_name(self, server_id: str, camera_id: str) -> str:
        return camera_name(self.ws.tree, server_id, camera_id)

    def _region_drawn(self, x1: float, y1: float, x2: float, y2: float) -> None:
        self.disarm()  # one rectangle per arming: the tile takes its clicks back
        start, end = self.span()
        self.search(self.server_id, self.camera_id, (x1, y1, x2, y2), start, end)

    # --- searching ----------------------------------------------------------------------------

    def search_again(self) -> None:
        if self.region is None or not self.camera_id:
            self._set_status(_tr("Draw a rectangle on a tile first"), error=True)
            return
        start, end = self.span()
        self.search(self.server_id, self.camera_id, self.region, start, end)

    def search(
        self, server_id: str, camera_id: str, region: Region, start_us: int, end_us: int
    ) -> None:
        """Ask the recorder when something moved in ``region`` (normalised x1, y1, x2, y2)."""
        check_region(region)
        if end_us <= start_us:
            self._set_status(_tr("The end of the range must be after its start"), error=True)
            return
        session = self.ws.session(server_id)
        if session is None:
            self._set_status(_tr("No recorder connected"), error=True)
            return
        self.server_id, self.camera_id, self.region = server_id, camera_id, region
        self.camera_label.setText(self._camera_name(server_id, camera_id))
        self._generation += 1
        generation = self._generation
        self._set_status(_tr("Searching…"))
        fut = MotionSearch(session).search(camera_id, region, start_us, end_us)
        fut.add_done_callback(lambda fut: self._bridge.post(lambda: self._done(generation, fut)))

    def _done(self, generation: int, fut: Any) -> None:
        if generation != self._generation:
            return
        try:
            ranges = fut.result()
        except ApiError as exc:
            self._fail(exc.message)
            return
        except (KeyError, TypeError, ValueError) as exc:
            self._fail(_tr("Unexpected answer from the recorder: %1").replace("%1", repr(exc)))
            return
        except Exception as exc:  # a timeout or a stopped runner: say so, keep the panel
            self._fail(repr(exc))
            return
        self.ranges = ranges  # newest first, as the events list
        self.results.clear()
        for start, end in self.ranges:
            self.results.addItem(QListWidgetItem(format_range(start, end)))
        if self.ranges:
            self._set_status(_tr("Motion found: %1").replace("%1", str(len(self.ranges))))
        else:
            self._set_status(_tr("No motion in this area"))
        self.searched.emit(len(self.ranges))

    def _fail(self, message: str) -> None:
        self.ranges = []
        self.results.clear()
        self._set_status(message, error=True)
        self.error.emit(message)

    def _set_status(self, text: str, error: bool = False) -> None:
        if error:
            self.status.error(text)
        else:
            self.status.busy(text)

    def _activate(self, item: QListWidgetItem) -> None:
        self.play_range(self.results.row(item))

    def play_range(self, index: int) -> None:
        """Emit ``play_requested`` for the ``index``-th range shown (newest first)."""
        start, _ = self.ranges[index]
        self.play_requested.emit(self.server_id, self.camera_id, start)

    def changeEvent(self, event) -> None:
        if event.type() == event.Type.LanguageChange:
            self.search_button.setText(_tr("Search motion"))
            self.time_range.retranslate()
        super().changeEvent(event)
