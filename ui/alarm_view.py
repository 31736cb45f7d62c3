"""One alarm opened: the camera live beside the playback of the moment it fired, with the
analytics boxes, and acknowledge/close with a comment (docs/design/rules.md).

A two-tile ``VideoWall``: the left tile shows the camera live (its own ``LiveSources``, like a
detached wall), the right one plays the recording back from ``PRE_US`` before the alarm through
``WallPlayback`` without sync, so the boxes come from ``GET /tracks`` exactly as on the main
wall. When the playback reaches the live edge it starts over at the alarm (at most every
``REPLAY_GAP_S``), so the right tile keeps showing the moment. Keys: Enter acknowledges with
the comment, Shift+Enter closes, Ctrl+R replays the moment, Escape closes the view.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from app.alarms import AlarmFeed, AlarmItem
from app.walllayout import WallLayout
from app.workstation import Workstation
from ui.bridge import bridge
from ui.playback import WallPlayback
from ui.sources import LiveSources
from ui.wall import VideoWall

PRE_US = 5_000_000  # the playback starts this long before the alarm
REPLAY_GAP_S = 2.0  # at most one automatic replay this often (no footage: no busy loop)
LIVE, PLAYBACK = 0, 1  # the tiles


class _LiveOnce:
    """The wall's provider: a live source for the live tile only; the playback tile's picture
    comes from its engine, so it does not open a second live stream of the same camera."""

    def __init__(self, sources: LiveSources) -> None:
        self.sources = sources
        self.live = True

    def acquire(self, camera: str) -> Any:
        return self.sources.acquire(camera) if self.live else None

    def release(self, camera: str, source: Any) -> None:
        self.sources.release(camera, source)

    def __getattr__(self, name: str) -> Any:  # display_name, ptz_for
        return getattr(self.sources, name)


class AlarmView(QWidget):
    """The opened alarm; ``handled`` carries the Alarm once acknowledged or closed here."""

    handled = Signal(object)

    def __init__(
        self,
        workstation: Workstation,
        feed: AlarmFeed,
        item: AlarmItem,
        parent: QWidget | None = None,
        renderer: str = "auto",
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.feed, self.item = feed, item
        a = item.alarm
        self.camera = f"{item.server_id}/{a.camera}"
        self.start_us = max(1, a.ts_us - PRE_US)
        self.sources = LiveSources(workstation)
        self._provider = _LiveOnce(self.sources)
        self.wall = VideoWall(self, provider=self._provider, renderer=renderer,  # type: ignore[arg-type]
                              layout=WallLayout.grid(1, 2))  # fmt: skip
        self.sources.attach(self.wall)
        self.wall.assign(LIVE, self.camera)
        self._provider.live = False
        self.wall.assign(PLAYBACK, self.camera)
        self.playback = WallPlayback(workstation, self.wall, self)
        self.playback.set_sync(False)  # the live tile stays live
        self.playback.mode_changed.connect(self._mode_changed)
        self._shut = False
        self._replayed = 0.0

        when = dt.datetime.fromtimestamp(a.ts_us / 1e6).strftime("%Y-%m-%d %H:%M:%S")
        what = a.event.get("label") or a.trigger
        self.title = QLabel(f"P{a.priority}  {when}  {a.camera}  {a.rule}  ({what})", self)
        self.title.setObjectName("alarm_title")
        heads = QHBoxLayout()
        heads.addWidget(QLabel(self.tr("Live"), self), 1)
        heads.addWidget(QLabel(self.tr("When it fired"), self), 1)
        self.comment = QLineEdit(self)
        self.comment.setPlaceholderText(self.tr("Comment (Enter: acknowledge, Shift+Enter: close)"))
        self.ack_button = QPushButton(self.tr("Acknowledge"), self)
        self.close_button = QPushButton(self.tr("Close alarm"), self)
        self.ack_button.clicked.connect(lambda: self.act("acknowledged"))
        self.close_button.clicked.connect(lambda: self.act("closed"))
        self.status = QLabel(self)
        row = QHBoxLayout()
        row.addWidget(self.comment, 1)
        row.addWidget(self.ack_button)
        row.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(heads)
        layout.addWidget(self.wall, 1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        for keys, fn in (
            ("Return", lambda: self.act("acknowledged")),
            ("Enter", lambda: self.act("acknowledged")),
            ("Shift+Return", lambda: self.act("closed")),
            ("Shift+Enter", lambda: self.act("closed")),
            ("Ctrl+R", self.replay),
            ("Escape", self.close),
        ):
            sc = QShortcut(QKeySequence(keys), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(fn)
        self.setWindowTitle(self.tr("Alarm: %1").replace("%1", a.rule))
        self.resize(1100, 420)
        self.replay()

    def replay(self) -> None:
        """The moment again: the playback tile from ``PRE_US`` before the alarm, playing."""
        self._replayed = time.monotonic()
        self.wall.set_current(PLAYBACK)
        self.playback.seek(self.start_us)
        self.playback.play()

    def _mode_changed(self, playing_back: bool) -> None:
        if playing_back or self._shut:
            return
        # reached the live edge: show the moment again (not at once when there is no footage)
        wait = REPLAY_GAP_S - (time.monotonic() - self._replayed)
        if wait <= 0:
            self.replay()
        else:
            QTimer.singleShot(int(wait * 1000), lambda: self._shut or self.replay())

    def act(self, state: str) -> None:
        comment = self.comment.text()
        if state == "closed":
            future = self.feed.close_alarm(self.item, comment)
        else:
            future = self.feed.acknowledge(self.item, comment)

        def done(f) -> None:
            try:
                alarm = f.result()
            except Exception as exc:
                self.status.setText(self.tr("Not saved: %1").replace("%1", str(exc)))
                return
            self.status.setText(self.tr("Saved: %1").replace("%1", alarm.state))
            self.handled.emit(alarm)

        future.add_done_callback(lambda f: bridge().post(lambda: done(f)))

    def shutdown(self) -> None:
        if self._shut:
            return
        self._shut = True
        self.playback.close()
        self.wall.clear()
        self.sources.close()

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)
