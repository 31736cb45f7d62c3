"""The alarm console: open alarms of every recorder, most urgent first, driven by the keyboard.

Binds to ``app.alarms.AlarmFeed`` (the list, live over NATS, and acknowledge/close); the
widget only shows and asks. Keys: Up/Down choose, Enter acknowledges the chosen alarm with the
comment typed below, Shift+Enter closes it, Ctrl+L goes to the comment, Ctrl+O (or a
double click) opens the chosen alarm: its camera live beside the playback of the moment it fired
(``ui.alarm_view.AlarmView``). Ctrl+T fires the manual rule chosen below on the camera of the
wall's current tile; F5 reads the manual rules and the failed notifications again (listed under
the alarms, for admins). ``flash`` tells the wall which cameras have open alarms and whether
their tiles' border is lit this half second; an alarm not seen before sounds the system bell
(``QApplication.beep``: PySide6-Essentials ships no QtMultimedia to play a sound file with)
(docs/design/rules.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.alarms import AlarmFeed, AlarmItem, FailedDelivery, Trigger
from app.workstation import Workstation
from ui.alarm_view import AlarmView
from ui.bridge import bridge

PRIORITY_COLOURS = {1: "#d32f2f", 2: "#f57c00", 3: "#fbc02d", 4: "#1976d2", 5: "#757575"}
FLASH_MS = 500


def delivery_text(f: FailedDelivery) -> str:
    d = f.delivery
    when = dt.datetime.fromtimestamp(d.ts_us / 1e6).strftime("%m-%d %H:%M:%S")
    return f"{when}  {d.kind} → {d.target}: {d.error} ({d.attempts}×)"


def row_text(item: AlarmItem) -> str:
    a = item.alarm
    when = dt.datetime.fromtimestamp(a.ts_us / 1e6).strftime("%H:%M:%S")
    what = a.event.get("label") or a.trigger
    return f"P{a.priority}  {when}  {a.camera}  {a.rule}  ({what})"


class AlarmConsole(QWidget):
    flash = Signal(object, bool)  # {(server id, camera)}, lit
    handled = Signal(object)  # the Alarm after an acknowledge/close of ours
    opened = Signal(object)  # the AlarmView of an opened alarm
    sounded = Signal(object)  # the AlarmItem a beep announced
    reloaded = Signal()  # manual rules and failed deliveries read again
    fired = Signal(bool)  # a manual rule fired (False: disarmed, off schedule, cooling down)

    def __init__(
        self,
        feed: AlarmFeed,
        parent: QWidget | None = None,
        workstation: Workstation | None = None,
        renderer: str = "auto",
        current_camera: Callable[[], str | None] = lambda: None,
    ) -> None:
        super().__init__(parent)
        self.feed, self.workstation, self.renderer = feed, workstation, renderer
        self.current_camera = current_camera  # "<server id>/<camera>" of the wall's tile
        self.triggers: list[Trigger] = []
        self.failed: list[FailedDelivery] = []
        self.items: list[AlarmItem] = []
        self.views: list[AlarmView] = []
        self._heard: set[tuple[str, int]] | None = None  # None: the first list is not news
        self.list = QListWidget(self)
        self.list.setObjectName("alarms")
        self.comment = QLineEdit(self)
        self.comment.setPlaceholderText(self.tr("Comment (Enter: acknowledge, Shift+Enter: close)"))
        self.status = QLabel(self)
        self.trigger_box = QComboBox(self)
        self.trigger_box.setObjectName("triggers")
        self.trigger_box.setToolTip(self.tr("Manual rule fired by Ctrl+T on the current tile"))
        self.failed_label = QLabel(self.tr("Failed notifications"), self)
        self.failed_list = QListWidget(self)
        self.failed_list.setObjectName("failed_deliveries")
        self.failed_list.setMaximumHeight(90)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        layout.addWidget(self.comment)
        layout.addWidget(self.trigger_box)
        layout.addWidget(self.status)
        layout.addWidget(self.failed_label)
        layout.addWidget(self.failed_list)
        self.failed_label.hide()
        self.failed_list.hide()
        self._lit = False
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._blink)
        self._timer.start(FLASH_MS)
        for keys, fn in (
            ("Return", lambda: self.act("acknowledged")),
            ("Enter", lambda: self.act("acknowledged")),
            ("Shift+Return", lambda: self.act("closed")),
            ("Shift+Enter", lambda: self.act("closed")),
            ("Ctrl+L", self.comment.setFocus),
            ("Ctrl+O", self.open_selected),
            ("Ctrl+T", self.fire_selected),
            ("F5", self.reload),
        ):
            sc = QShortcut(QKeySequence(keys), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(fn)
        self.list.itemDoubleClicked.connect(lambda _row: self.open_selected())
        self._disconnect = bridge().connect(feed.changed, self.show_items)
        self.show_items(feed.alarms.items())
        self.reload()

    def show_items(self, items: list[AlarmItem]) -> None:
        chosen = self.selected()
        self.items = list(items)
        keys = {i.key for i in self.items}
        if self._heard is not None:
            new = [i for i in self.items if i.key not in self._heard]
            if new:
                QApplication.beep()
                self.sounded.emit(new[0])
            self._heard |= keys
        else:
            self._heard = set(keys)
        self.list.clear()
        for i in self.items:
            row = QListWidgetItem(row_text(i))
            row.setForeground(QColor(PRIORITY_COLOURS.get(i.alarm.priority, "#000000")))
            self.list.addItem(row)
        keys = [i.key for i in self.items]
        at = keys.index(chosen.key) if chosen is not None and chosen.key in keys else 0
        if self.items:
            self.list.setCurrentRow(at)
        self.status.setText(self.tr("%n open alarm(s)", "", len(self.items)))

    def selected(self) -> AlarmItem | None:
        row = self.list.currentRow()
        return self.items[row] if 0 <= row < len(self.items) else None

    def act(self, state: str) -> None:
        item = self.selected()
        if item is None:
            return
        comment = self.comment.text()
        if state == "closed":
            future = self.feed.close_alarm(item, comment)
        else:
            future = self.feed.acknowledge(item, comment)

        def done(f) -> None:
            try:
                alarm = f.result()
            except Exception as exc:
                self.status.setText(self.tr("Not saved: %1").replace("%1", str(exc)))
                return
            self.comment.clear()
            self.handled.emit(alarm)

        future.add_done_callback(lambda f: bridge().post(lambda: done(f)))

    # --- manual rules and failed notifications ------------------------------------------

    def reload(self) -> None:
        """Read the manual rules and the failed notifications of every recorder again."""
        triggers, failed = self.feed.triggers(), self.feed.failed_deliveries()

        def done() -> None:
            try:
                self._show_extras(triggers.result(), failed.result())
            except Exception as exc:
                self.status.setText(self.tr("Not read: %1").replace("%1", str(exc)))

        both = [triggers, failed]
        for f in both:
            f.add_done_callback(
                lambda _f: all(x.done() for x in both) and bridge().post(done)
            )  # fmt: skip

    def _show_extras(self, triggers: list[Trigger], failed: list[FailedDelivery]) -> None:
        chosen = self.trigger_box.currentText()
        self.triggers = triggers
        self.trigger_box.clear()
        for t in triggers:
            self.trigger_box.addItem(t.rule.name)
        at = self.trigger_box.findText(chosen)
        self.trigger_box.setCurrentIndex(max(at, 0) if triggers else -1)
        self.trigger_box.setVisible(bool(triggers))
        self.failed = failed
        self.failed_list.clear()
        for f in failed:
            self.failed_list.addItem(delivery_text(f))
        self.failed_label.setVisible(bool(failed))
        self.failed_list.setVisible(bool(failed))
        self.reloaded.emit()

    def fire_selected(self) -> None:
        """Fire the chosen manual rule on the camera of the wall's current tile."""
        camera = self.current_camera()
        i = self.trigger_box.currentIndex()
        if camera is None or not 0 <= i < len(self.triggers):
            self.status.setText(self.tr("Choose a tile and a manual rule first"))
            return
        server_id, _, camera_id = camera.partition("/")
        trigger = self.triggers[i]
        if not trigger.fits(server_id, camera_id):
            self.status.setText(
                self.tr("%1 is not for this camera").replace("%1", trigger.rule.name)
            )
            return
        future = self.feed.fire(trigger, camera_id, self.comment.text())

        def done(f) -> None:
            try:
                fired = f.result()
            except Exception as exc:
                self.status.setText(self.tr("Not fired: %1").replace("%1", str(exc)))
                return
            if not fired:
                self.status.setText(self.tr("Not fired: disarmed, off schedule or cooling down"))
            self.fired.emit(fired)

        future.add_done_callback(lambda f: bridge().post(lambda: done(f)))

    def open_selected(self) -> AlarmView | None:
        """Open the chosen alarm: its camera live beside the playback of its moment."""
        item = self.selected()
        if item is None or self.workstation is None:
            return None
        view = AlarmView(self.workstation, self.feed, item, None, self.renderer)
        view.handled.connect(self.handled.emit)
        view.handled.connect(lambda _a, v=view: v.close())
        view.destroyed.connect(lambda _o=None, v=view: self._forget(v))
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        self.views.append(view)
        view.show()
        view.comment.setFocus()
        self.opened.emit(view)
        return view

    def _forget(self, view: AlarmView) -> None:
        if view in self.views:
            self.views.remove(view)

    def _blink(self) -> None:
        self._lit = not self._lit and bool(self.items)
        self.flash.emit({(i.server_id, i.alarm.camera) for i in self.items}, self._lit)

    def closeEvent(self, event) -> None:
        for view in list(self.views):
            view.close()
        self._disconnect()
        self._timer.stop()
        super().closeEvent(event)
