"""Events and object search: a filterable list of analytics events, live, with snapshots.

The list is filled from ``GET /api/v1/events`` of every logged-in recorder (or of the chosen
camera's) and kept current by each camera's ``vigia.<sid>.events.<camera>`` NATS subject, so a
new event shows up without polling. Snapshot thumbnails are fetched only for rows Qt asks to
draw, and their JPEGs are decoded and scaled in a worker thread: the UI thread only turns a
finished ``QImage`` into a pixmap. All network work runs on the workstation's ``AsyncRunner``;
results come back through ``ui.bridge``. Activating a row (double-click or Enter) emits
``play_requested(server_id, camera_id, start_us)`` for the playback controller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QCoreApplication,
    QDateTime,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QKeySequence, QPainter, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.events import KINDS, EventFeed, EventFilter, EventItem, EventResults
from server.protocol.timeutil import now_us
from ui.bridge import bridge
from ui.dialogs.common import StatusLine
from ui.theme import label_color
from ui.timerange import TimeRange, camera_name

log = logging.getLogger(__name__)

COMMON_LABELS = ("person", "car", "truck", "bus", "bicycle", "motorbike", "dog", "cat")
THUMB_SIZE = QSize(96, 54)
MAX_ROWS = 2000  # a list longer than this is not read by a person; the oldest rows go


def _tr(text: str) -> str:
    return QCoreApplication.translate("EventsPanel", text)


# --- data -----------------------------------------------------------------------------------


def decode_thumbnail(jpeg: bytes, size: QSize = THUMB_SIZE) -> QImage:
    """JPEG bytes to a small QImage (runs in a worker thread; QImage is not tied to the GUI)."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("the snapshot is not a readable JPEG")
    h, w = bgr.shape[:2]
    scale = min(size.width() / w, size.height() / h)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    rgb = cv2.cvtColor(cv2.resize(bgr, (tw, th), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return QImage(rgb.data, tw, th, rgb.strides[0], QImage.Format.Format_RGB888).copy()


def format_time(t_us: int) -> str:
    return QDateTime.fromMSecsSinceEpoch(t_us // 1000).toString("yyyy-MM-dd HH:mm:ss")


# --- model ----------------------------------------------------------------------------------


class EventsModel(QAbstractTableModel):
    """Rows newest first; column 0 carries the snapshot thumbnail (asked for lazily)."""

    COLUMNS = ("Time", "Camera", "Event", "Score", "Zone")
    EventRole = Qt.ItemDataRole.UserRole + 1

    def __init__(
        self,
        want_thumbnail: Callable[[EventItem], None],
        camera_name: Callable[[str, str], str],
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self._items: list[EventItem] = []
        self._thumbs: dict[tuple[str, int], QPixmap] = {}
        self._asked: set[tuple[str, int]] = set()
        self._swatches: dict[str, QPixmap] = {}
        self._want = want_thumbnail
        self._camera_name = camera_name
        self._placeholder = QPixmap(THUMB_SIZE)
        self._placeholder.fill(QColor(0, 0, 0, 0))

    @property
    def items(self) -> list[EventItem]:
        return list(self._items)

    def item(self, row: int) -> EventItem:
        return self._items[row]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _tr(self.COLUMNS[section])
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid():
            return None
        item = self._items[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return format_time(item.start_us)
            if col == 1:
                return self._camera_name(item.server_id, item.camera_id)
            if col == 2:
                kind = _tr(item.kind)
                return (
                    f"{item.label} · {kind}"
                    if item.label and item.kind != "object"
                    else (item.label or kind)
                )
            if col == 3:
                return f"{item.score:.2f}" if item.score else ""
            if col == 4:  # the zone; for a camera's own event, what raised it (an input, a rule)
                return item.zone_id or item.source or ""
        elif role == Qt.ItemDataRole.DecorationRole:
            if col == 0:
                return self._thumbnail(item)
            if col == 2:
                return self._swatch(item.label or item.kind)
        elif role == self.EventRole:
            return item
        elif role == Qt.ItemDataRole.ToolTipRole:
            end = format_time(item.end_us) if item.end_us else _tr("ongoing")
            return f"{format_time(item.start_us)} – {end}"
        return None

    def _swatch(self, label: str) -> QPixmap:
        """A small dot in the label's colour (a bare QColor would fill the thumbnail size)."""
        pixmap = self._swatches.get(label)
        if pixmap is None:
            pixmap = QPixmap(12, 12)
            pixmap.fill(QColor(0, 0, 0, 0))
            p = QPainter(pixmap)
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(label_color(label))
            p.drawEllipse(1, 1, 10, 10)
            p.end()
            self._swatches[label] = pixmap
        return pixmap

    def _thumbnail(self, item: EventItem) -> QPixmap:
        pixmap = self._thumbs.get(item.key)
        if pixmap is not None:
            return pixmap
        if item.snapshot and item.key not in self._asked:
            self._asked.add(item.key)
            self._want(item)
        return self._placeholder

    def has_thumbnail(self, key: tuple[str, int]) -> bool:
        return key in self._thumbs

    def set_thumbnail(self, key: tuple[str, int], image: QImage) -> None:
        self._thumbs[key] = QPixmap.fromImage(image)
        row = self._row_of(key)
        if row is not None:
            idx = self.index(row, 0)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])

    def thumbnail_failed(self, key: tuple[str, int]) -> None:
        """Leave it asked: a snapshot that failed once is not fetched again for every paint."""

    def _row_of(self, key: tuple[str, int]) -> int | None:
        for row, item in enumerate(self._items):
            if item.key == key:
                return row
        return None

    def set_items(self, items: Iterable[EventItem]) -> None:
        self.beginResetModel()
        self._items = sorted(items, key=lambda e: e.start_us, reverse=True)[:MAX_ROWS]
        keep = {e.key for e in self._items}
        self._thumbs = {k: v for k, v in self._thumbs.items() if k in keep}
        self._asked &= keep
        self.endResetModel()

    def upsert(self, item: EventItem) -> int:
        """Insert or update one event (from the live subject); returns its row."""
        row = self._row_of(item.key)
        if row is not None:
            old = self._items[row]
            self._items[row] = item
            if item.snapshot and (not old.snapshot or item.end_us != old.end_us):
                # a better snapshot may have been written: fetch it again when shown
                self._asked.discard(item.key)
                self._thumbs.pop(item.key, None)
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))
            return row
        row = 0
        while row < len(self._items) and self._items[row].start_us > item.start_us:
            row += 1
        self.beginInsertRows(QModelIndex(), row, row)
        self._items.insert(row, item)
        self.endInsertRows()
        if len(self._items) > MAX_ROWS:
            last = len(self._items) - 1
            self.beginRemoveRows(QModelIndex(), last, last)
            dropped = self._items.pop()
            self.endRemoveRows()
            self._thumbs.pop(dropped.key, None)
        return row

    def remove_server(self, server_id: str) -> None:
        self.set_items(e for e in self._items if e.server_id != server_id)


# --- the panel --------------------------------------------------------------------------------


class EventsPanel(QWidget):
    """The events list with its filters, live updates and object search."""

    play_requested = Signal(str, str, "qint64")  # server_id, camera_id, start_us
    loaded = Signal(int)  # rows after a query finished
    event_received = Signal(object)  # an EventItem that arrived live and passed the filter
    error = Signal(str)

    def __init__(self, workstation: Any, wall: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workstation
        self.wall = wall
        self._bridge = bridge()
        self._generation = 0  # queries answered after a newer one started are dropped
        self._closed = False
        self.feed = EventFeed(workstation.runner, workstation.sessions)
        self.model = EventsModel(self._fetch_thumbnail, self._camera_name, self)
        self._build()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(250)
        self._refresh_timer.timeout.connect(self.refresh)
        self._unhook: list[Callable[[], None]] = []
        sessions = workstation.sessions
        self._unhook.append(self._bridge.connect(self.feed.received, self._live_event))
        self._unhook.append(self._bridge.connect(sessions.removed, self._on_session_removed))
        self._unhook.append(self._bridge.connect(workstation.tree.changed, self._on_tree))
        self._fill_cameras()

    # --- widgets ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.camera_box = QComboBox()
        self.time_range = TimeRange(self)
        self.range_box = self.time_range.box
        self.from_edit, self.to_edit = self.time_range.from_edit, self.time_range.to_edit
        self.label_box = QComboBox()
        self.label_box.setEditable(True)
        self.label_box.addItem(_tr("Any"), "")
        for label in COMMON_LABELS:
            self.label_box.addItem(label, label)
        self.zone_edit = QLineEdit()
        self.zone_edit.setPlaceholderText(_tr("Any zone"))
        self.kind_box = QComboBox()
        self.kind_box.addItem(_tr("Any"), "")
        for kind in KINDS:
            self.kind_box.addItem(_tr(kind), kind)
        self.score_spin = QDoubleSpinBox()
        self.score_spin.setRange(0.0, 1.0)
        self.score_spin.setSingleStep(0.05)
        self.score_spin.setDecimals(2)

        form = QFormLayout()
        form.addRow(_tr("Camera"), self.camera_box)
        self.time_range.add_rows(form, _tr("Time"))
        form.addRow(_tr("Label"), self.label_box)
        form.addRow(_tr("Zone"), self.zone_edit)
        form.addRow(_tr("Kind"), self.kind_box)
        form.addRow(_tr("Minimum score"), self.score_spin)

        self.object_group = QGroupBox(_tr("Object search"))
        self.object_label = QComboBox()
        self.object_label.setEditable(True)
        for label in COMMON_LABELS:
            self.object_label.addItem(label, label)
        self.find_button = QPushButton(_tr("Find objects"))
        self.find_button.setToolTip(_tr("Objects of this label on the chosen camera and time"))
        self.find_button.clicked.connect(self._find_objects)
        row = QHBoxLayout(self.object_group)
        row.addWidget(self.object_label, 1)
        row.addWidget(self.find_button)

        self.view = QTreeView()
        self.view.setModel(self.model)
        self.view.setRootIsDecorated(False)
        self.view.setUniformRowHeights(True)
        self.view.setAlternatingRowColors(True)
        self.view.setIconSize(THUMB_SIZE)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.view.header().setStretchLastSection(True)
        # activated: double-click, and Enter/Return on the current row
        self.view.activated.connect(self._activate)
        self.status = StatusLine()
        self.refresh_button = QPushButton(_tr("Search"))
        self.refresh_button.setToolTip(_tr("Search again (F5)"))
        self.refresh_button.clicked.connect(self.refresh)

        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.object_group)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)

        self.camera_box.currentIndexChanged.connect(self._schedule_refresh)
        self.time_range.changed.connect(self._schedule_refresh)
        self.label_box.currentTextChanged.connect(self._schedule_refresh)
        self.zone_edit.editingFinished.connect(self._schedule_refresh)
        self.kind_box.currentIndexChanged.connect(self._schedule_refresh)
        self.score_spin.valueChanged.connect(self._schedule_refresh)
        QShortcut(QKeySequence(Qt.Key.Key_F5), self, self.refresh)
        QShortcut(QKeySequence("Ctrl+Shift+F"), self, self.object_label.setFocus)

    def _schedule_refresh(self, *_args: object) -> None:
        self._refresh_timer.start()

    def _camera_name(self, server_id: str, camera_id: str) -> str:
        return camera_name(self.ws.tree, server_id, camera_id)

    def _fill_cameras(self) -> None:
        current = self.camera_box.currentData()
        self.camera_box.blockSignals(True)
        self.camera_box.clear()
        self.camera_box.addItem(_tr("All cameras"), None)
        for node in self.ws.tree.cameras():
            self.camera_box.addItem(node.name or node.camera_id, "/".join(node.key))
        index = self.camera_box.findData(current) if current is not None else 0
        self.camera_box.setCurrentIndex(max(0, index))
        self.camera_box.blockSignals(False)

    def _on_tree(self, _tree: object) -> None:
        self._fill_cameras()

    # --- filter -------------------------------------------------------------------------------

    def current_filter(self) -> EventFilter:
        label = self.label_box.currentText().strip()
        if self.label_box.currentIndex() == 0 and label == self.label_box.itemText(0):
            label = ""
        window = self.time_range.window_us
        start, end = self.time_range.custom_span()
        kind = self.kind_box.currentData() or ""
        camera = self.camera_box.currentData()  # "server_id/camera_id" or None
        return EventFilter(
            camera=tuple(camera.split("/", 1)) if camera else None,  # type: ignore[arg-type]
            window_us=window,
            start_us=start,
            end_us=end,
            labels=(label,) if label else (),
            zone=self.zone_edit.text().strip(),
            kinds=(kind,) if kind else (),
            min_score=round(self.score_spin.value(), 3),
        )

    def set_filter(self, f: EventFilter) -> None:
        """Show ``f`` in the widgets and search (for callers and tests)."""
        widgets = (self.camera_box, self.label_box, self.kind_box, self.score_spin)
        for w in widgets:
            w.blockSignals(True)
        try:
            self.camera_box.setCurrentIndex(
                max(0, self.camera_box.findData("/".join(f.camera))) if f.camera else 0
            )
            if f.window_us is None or not self.time_range.set_window(f.window_us):
                self.time_range.set_window(None)  # the span, in the date edits
                start = f.start_us if f.window_us is None else now_us() - f.window_us
                end = f.end_us if f.window_us is None else now_us()
                self.time_range.set_custom_span(start, end)
            self.label_box.setCurrentText(f.labels[0] if f.labels else self.label_box.itemText(0))
            self.zone_edit.setText(f.zone)
            self.kind_box.setCurrentIndex(max(0, self.kind_box.findData(f.kinds[0]))
                                          if f.kinds else 0)  # fmt: skip
            self.score_spin.setValue(f.min_score)
        finally:
            for w in widgets:
                w.blockSignals(False)
        self.refresh()

    def object_search(
        self, label: str, start_us: int, end_us: int, camera: tuple[str, str] | None = None
    ) -> None:
        """Objects of ``label`` seen on ``camera`` (None: all) between the two times."""
        if not label.strip():
            raise ValueError("object search needs a label")
        if end_us <= start_us:
            raise ValueError("the end of the search must be after its start")
        self.set_filter(
            EventFilter(
                camera=camera,
                window_us=None,
                start_us=start_us,
                end_us=end_us,
                labels=(label.strip(),),
                kinds=("object",),
            )
        )

    def _find_objects(self) -> None:
        label = self.object_label.currentText().strip()
        if not label:
            self._set_status(_tr("Type the label of the objects to find"), error=True)
            return
        f = self.current_filter()
        start, end = f.span(now_us())
        self.object_search(label, start, end, f.camera)

    # --- queries ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Query the recorders again with the current filter."""
        self._refresh_timer.stop()
        f = self.current_filter()
        if f.window_us is None and f.end_us <= f.start_us:
            self._set_status(_tr("The end of the range must be after its start"), error=True)
            return
        sessions = self.feed.target_sessions(f)
        self._generation += 1
        generation = self._generation
        if not sessions:
            self.model.set_items([])
            self._set_status(_tr("No recorder connected"))
            self.loaded.emit(0)
            return
        self._set_status(_tr("Searching…"))
        fut = self.feed.query(f, now_us(), sessions)
        fut.add_done_callback(
            lambda fut: self._bridge.post(lambda: self._query_done(generation, fut))
        )

    def _query_done(self, generation: int, fut: Any) -> None:
        if generation != self._generation or self._closed:
            return
        try:
            results: EventResults = fut.result()
        except Exception as exc:  # a stopped runner: say so, keep the panel
            results = EventResults([], [("", repr(exc))])
        failures = [
            f"{self._server_name(sid)}: {message}" if sid else message
            for sid, message in results.failures
        ]
        self.model.set_items(results.items)
        count = self.model.rowCount()
        if failures:
            self._set_status("; ".join(failures), error=True)
            self.error.emit("; ".join(failures))
        else:
            self._set_status(self._count_text(count))
        self.loaded.emit(count)

    def _count_text(self, count: int) -> str:
        return _tr("Events: %1").replace("%1", str(count))

    def _server_name(self, server_id: str) -> str:
        session = self.ws.session(server_id)
        return session.name if session is not None and session.name else server_id

    def _set_status(self, text: str, error: bool = False) -> None:
        if error:
            self.status.error(text)
        else:
            self.status.busy(text)

    # --- live ---------------------------------------------------------------------------------

    def _on_session_removed(self, session: Any) -> None:
        self.model.remove_server(session.server_id)

    def _live_event(self, item: EventItem) -> None:
        if self._closed:
            return
        if not self.current_filter().matches(item, now_us()):
            return
        self.model.upsert(item)
        self._set_status(self._count_text(self.model.rowCount()))
        self.event_received.emit(item)

    # --- thumbnails ---------------------------------------------------------------------------

    def _fetch_thumbnail(self, item: EventItem) -> None:
        if self._closed or self.ws.session(item.server_id) is None:
            return
        key = item.key

        def decode(fetched: Any) -> None:  # the JPEG is decoded off the UI thread
            self._bridge.run(
                lambda: decode_thumbnail(fetched.result()),
                lambda fut: self._thumbnail_done(key, fut),
            )

        self.feed.snapshot(item).add_done_callback(decode)

    def _thumbnail_done(self, key: tuple[str, int], fut: Any) -> None:
        if self._closed:
            return
        try:
            image = fut.result()
        except Exception as exc:
            log.info("no snapshot for event %s: %r", key, exc)
            self.model.thumbnail_failed(key)
            return
        self.model.set_thumbnail(key, image)

    # --- actions ------------------------------------------------------------------------------

    def _activate(self, index: QModelIndex) -> None:
        if index.isValid():
            self.play_event(self.model.item(index.row()))

    def play_event(self, item: EventItem) -> None:
        self.play_requested.emit(item.server_id, item.camera_id, item.start_us)

    def close_panel(self) -> None:
        """Drop subscriptions and hooks (the window calls it before deleting the panel)."""
        if self._closed:
            return
        self._closed = True
        for undo in self._unhook:
            undo()
        self.feed.close()

    def closeEvent(self, event) -> None:
        self.close_panel()
        super().closeEvent(event)

    def changeEvent(self, event) -> None:
        if event.type() == event.Type.LanguageChange:
            self.object_group.setTitle(_tr("Object search"))
            self.find_button.setText(_tr("Find objects"))
            self.refresh_button.setText(_tr("Search"))
            self.time_range.retranslate()
            self.model.headerDataChanged.emit(
                Qt.Orientation.Horizontal, 0, len(EventsModel.COLUMNS) - 1
            )
        super().changeEvent(event)
