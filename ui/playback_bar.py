"""The bar at the bottom of the main window: the timeline and the playback controls.

The timeline shows the current tile's camera (recorded ranges, gaps, events by label, bookmarks,
the live edge) through ``TimelineAdapter``, which reads ``app.timeline.TimelineModel``'s latest
view; the model's blocking ``set_window`` runs on a worker for the newest window only. Clicking
it seeks the wall (every tile together while "sync all" is on); hovering it shows a thumbnail.
Every control is a ``QAction`` with its shortcut in its tooltip, in the habits of Nx Witness and
Milestone: Space play/pause, R or Shift+Space reverse, Left/Right frame step, Shift+Left/Right
previous/next event or bookmark, +/- speed, L live, S sync all.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from app.events import event_mark
from app.session import Session
from app.timeline import TimelineModel as TimelineData
from app.timeline import TimelineView, bookmark_mark
from app.workstation import Workstation
from ui.bridge import bridge
from ui.playback import SPEEDS, WallPlayback, split_camera, wall_now_us
from ui.theme import icon
from ui.thumbnail import HoverThumbnail, LatestWins, time_text
from ui.timeline import Bookmark, TimelineEvent, TimelineWidget
from ui.wall import VideoWall

log = logging.getLogger(__name__)

US = 1_000_000
LIVE_EDGE_WINDOW_US = 120 * US  # a recording ending this close to now is the live edge
REFRESH_MS = 5000  # a view that shows the recent past is fetched again this often
TICK_MS = 100  # the playback time and the cursor follow the shown frame this often
MODELS_KEPT = 16  # timeline models of recently shown cameras kept (their fetched views)


def _tr(text: str) -> str:
    return QCoreApplication.translate("PlaybackBar", text)


def speed_text(speed: float) -> str:
    return f"1/{round(1 / speed)}×" if speed < 1 else f"{speed:g}×"


class TimelineAdapter:
    """``ui.timeline.TimelineModel`` over ``app.timeline.TimelineModel``'s latest view."""

    def __init__(self, data: TimelineData, camera: str = "") -> None:
        self.data = data
        self.camera = camera
        self.changed = data.changed  # the widget repaints when a view arrives
        self._for: TimelineView | None = None
        self._events: list[TimelineEvent] = []
        self._bookmarks: list[Bookmark] = []

    def _convert(self) -> TimelineView | None:
        view = self.data.view
        if view is not None and view is not self._for:
            events = (event_mark(e) for e in view.events)
            self._events = [TimelineEvent(*m, self.camera) for m in events if m is not None]
            marks = (bookmark_mark(b) for b in view.bookmarks)
            self._bookmarks = [Bookmark(*m) for m in marks if m is not None]
            self._for = view
        return view

    def recorded(self, start_us: int, end_us: int) -> list[tuple[int, int]]:
        view = self._convert()
        if view is None:
            return []
        return [(a, b) for a, b in view.ranges if b > start_us and a < end_us]

    def archived(self, start_us: int, end_us: int) -> list[tuple[int, int]]:
        """Recorded spans only in the recorder's archive (their local copy gone)."""
        view = self._convert()
        if view is None:
            return []
        return [(a, b) for a, b in view.archived if b > start_us and a < end_us]

    def events(self, start_us: int, end_us: int) -> list[TimelineEvent]:
        self._convert()
        return [e for e in self._events if e.start_us < end_us and e.end_us >= start_us]

    def bookmarks(self, start_us: int, end_us: int) -> list[Bookmark]:
        self._convert()
        return [
            b
            for b in self._bookmarks
            if b.time_us < end_us and b.time_us + b.duration_us >= start_us
        ]

    def live_edge_us(self) -> int | None:
        view = self._convert()
        if view is None or not view.ranges:
            return None
        end = view.ranges[-1][1]
        return end if end >= wall_now_us() - LIVE_EDGE_WINDOW_US else None


class PlaybackBar(QWidget):
    """Timeline + playback controls for a wall; ``playback`` is the wall's controller."""

    def __init__(
        self,
        workstation: Workstation,
        wall: VideoWall,
        parent: QWidget | None = None,
        *,
        playback: WallPlayback | None = None,
    ) -> None:
        super().__init__(parent)
        self.workstation, self.wall = workstation, wall
        self.playback = playback or WallPlayback(workstation, wall, self)
        self.camera: str | None = None
        self.adapter: TimelineAdapter | None = None
        # by (camera, id(session)): a model holds its session's api, so a new login gets new ones
        self._models: OrderedDict[tuple[str, int], TimelineData] = OrderedDict()
        self._hover_us: int | None = None
        self._windows: LatestWins[tuple[TimelineData, int, int, int], TimelineView] = LatestWins(
            lambda k: k[0].set_window(k[1], k[2], k[3]), lambda _k, _v: None, "timeline-window"
        )

        self.timeline = TimelineWidget(self)
        self.thumbnails = HoverThumbnail(self.timeline)
        self.hover_label = QLabel(self)
        self.position_label = QLabel(self)
        self.speed_combo = QComboBox(self)
        self.speed_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for speed in SPEEDS:
            self.speed_combo.addItem(speed_text(speed), speed)
        self.speed_combo.setCurrentIndex(SPEEDS.index(self.playback.speed))
        self.speed_combo.activated.connect(
            lambda i: self.playback.set_speed(self.speed_combo.itemData(i))
        )

        pb = self.playback
        self.actions_by_name: dict[str, QAction] = {}
        self._texts: dict[str, str] = {}
        self._add("reverse", "Reverse", ["R", "Shift+Space"], pb.reverse, "reverse")
        self._add("step_back", "Previous frame", ["Left"], lambda: pb.step(-1), "step-back")
        self._add("previous_mark", "Previous event or bookmark", ["Shift+Left"],
                  lambda: self.jump(-1))  # fmt: skip
        self._add("play", "Play or pause", ["Space"], pb.toggle_play, "play")
        self._add("next_mark", "Next event or bookmark", ["Shift+Right"], lambda: self.jump(+1))
        self._add("step_forward", "Next frame", ["Right"], lambda: pb.step(+1), "step-forward")
        self._add("slower", "Slower", ["-"], pb.slower)
        self._add("faster", "Faster", ["+", "="], pb.faster)
        self._add("live", "Go live", ["L"], pb.go_live, "live")
        self._add("sync", "Sync all tiles", ["S"], None)
        sync = self.actions_by_name["sync"]
        sync.setCheckable(True)
        sync.setChecked(pb.sync)
        sync.toggled.connect(pb.set_sync)

        controls = QHBoxLayout()
        controls.setContentsMargins(4, 0, 4, 2)
        controls.setSpacing(2)
        for name in ("reverse", "step_back", "previous_mark", "play", "next_mark", "step_forward"):
            controls.addWidget(self._button(name))
        controls.addWidget(self.speed_combo)
        controls.addSpacing(12)
        controls.addWidget(self.hover_label)
        controls.addStretch(1)
        controls.addWidget(self.position_label)
        controls.addSpacing(12)
        controls.addWidget(self._button("sync"))
        controls.addWidget(self._button("live"))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.timeline)
        layout.addLayout(controls)

        self.timeline.seek_requested.connect(self._on_seek_requested)
        self.timeline.view_changed.connect(lambda _s, _e: self.request_window())
        self.timeline.hover.connect(self._on_hover)
        self.timeline.hover_ended.connect(self._on_hover_ended)
        pb.state_changed.connect(self._sync_controls)
        pb.mode_changed.connect(lambda _on: self._sync_controls())
        wall.current_changed.connect(lambda _i: self.follow_camera())
        wall.camera_assigned.connect(lambda _i, _c: self.follow_camera())
        wall.layout_changed.connect(self.follow_camera)
        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self._on_tick)
        self._tick.start()
        self._refresh = QTimer(self)
        self._refresh.setInterval(REFRESH_MS)
        self._refresh.timeout.connect(self._refresh_recent)
        self._refresh.start()
        self.destroyed.connect(lambda *_a, w=self._windows: w.close(0))
        self._undo = [
            bridge().connect(workstation.sessions.removed, self._session_removed),
            bridge().connect(workstation.sessions.added, lambda _s: self._session_added()),
        ]
        self.destroyed.connect(lambda *_a, undo=self._undo: [u() for u in undo])
        self._retranslate()
        self.follow_camera()

    # --- building --------------------------------------------------------------------------

    def _add(
        self,
        name: str,
        text: str,
        keys: list[str],
        slot: Callable[[], object] | None,
        icon_name: str | None = None,
    ) -> None:
        action = QAction(self)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if icon_name is not None:
            action.setIcon(icon(icon_name))
        if slot is not None:
            action.triggered.connect(lambda _checked=False, slot=slot: slot())
        self.addAction(action)
        self.actions_by_name[name] = action
        self._texts[name] = text

    def _button(self, name: str) -> QToolButton:
        button = QToolButton(self)
        button.setDefaultAction(self.actions_by_name[name])
        button.setAutoRaise(True)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return button

    def _retranslate(self) -> None:
        for name, action in self.actions_by_name.items():
            text = _tr(self._texts[name])
            keys = " / ".join(
                s.toString(QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts()
            )
            action.setText(text)
            action.setToolTip(f"{text} ({keys})")
        marks = {"previous_mark": "|◀", "next_mark": "▶|", "sync": _tr("Sync")}
        for name, label in marks.items():
            self.actions_by_name[name].setIconText(label)
        self.speed_combo.setToolTip(_tr("Playback speed (- / +)"))
        self.timeline.setToolTip(_tr("Click to play from there; wheel zooms, drag pans"))
        self._sync_controls()
        self._show_hover()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    # --- camera shown on the timeline ------------------------------------------------------

    def _current_camera(self) -> str | None:
        cells = self.wall.cells
        cur = self.wall.current
        if 0 <= cur < len(cells) and cells[cur].camera:
            return cells[cur].camera
        return next((c.camera for c in cells if c.camera), None)

    def follow_camera(self) -> None:
        """Show the current tile's camera (else the first camera on the wall)."""
        camera = self._current_camera()
        if camera == self.camera:
            return
        self.camera = camera
        data = self._model_for(camera) if camera else None
        self.adapter = TimelineAdapter(data, camera or "") if data is not None else None
        self.timeline.set_model(self.adapter)
        self.thumbnails.set_model(data)
        self.request_window()

    def _model_for(self, camera: str) -> TimelineData | None:
        server_id, camera_id = split_camera(camera)
        session = self.workstation.session(server_id)
        if session is None:  # its recorder is not connected (yet)
            return None
        key = (camera, id(session))
        data = self._models.get(key)
        if data is None:
            try:
                data = self.workstation.timeline(server_id, camera_id)
            except KeyError as exc:  # logged out meanwhile
                log.info("no timeline for %s: %s", camera, exc)
                return None
            self._models[key] = data
            while len(self._models) > MODELS_KEPT:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(key)
        return data

    def _session_removed(self, session: Session) -> None:
        """Forget that session's models; the timeline waits for the next login."""
        gone = [k for k in self._models if k[1] == id(session)]
        for key in gone:
            del self._models[key]
        if self.camera is not None and split_camera(self.camera)[0] == session.server_id:
            self.camera = None
            self.follow_camera()

    def _session_added(self) -> None:
        if self.adapter is None:  # the camera shown had no recorder: try again
            self.camera = None
            self.follow_camera()

    @property
    def timeline_data(self) -> TimelineData | None:
        return self.adapter.data if self.adapter is not None else None

    def request_window(self) -> None:
        """Fetch what the visible window lacks (on a worker; the timeline repaints after)."""
        data = self.timeline_data
        if data is not None:
            t = self.timeline
            self._windows.request((data, t.start_us, t.end_us, max(1, t.width())))

    def _refresh_recent(self) -> None:
        if self.timeline.end_us >= wall_now_us() - LIVE_EDGE_WINDOW_US and self.isVisible():
            self.request_window()

    # --- commands --------------------------------------------------------------------------

    def jump(self, direction: int) -> None:
        data = self.timeline_data
        marks = data.mark_times() if data is not None else []
        if self.playback.jump(marks, direction) is None:
            log.debug("no event or bookmark that way")

    def _on_seek_requested(self, t_us: int) -> None:
        if t_us >= wall_now_us():
            self.playback.go_live()
        else:
            self.playback.seek(t_us)

    # --- display ---------------------------------------------------------------------------

    def _on_hover(self, t_us: int) -> None:
        self._hover_us = int(t_us)
        self._show_hover()

    def _on_hover_ended(self) -> None:
        self._hover_us = None
        self._show_hover()

    def _show_hover(self) -> None:
        t = self._hover_us
        self.hover_label.setText("" if t is None else time_text(t))

    def _sync_controls(self) -> None:
        pb = self.playback
        play = self.actions_by_name["play"]
        playing = pb.playing_back and not pb.paused
        play.setIcon(icon("pause" if playing else "play"))
        i = SPEEDS.index(pb.speed)
        if self.speed_combo.currentIndex() != i:
            self.speed_combo.setCurrentIndex(i)
        sync = self.actions_by_name["sync"]
        if sync.isChecked() != pb.sync:
            sync.setChecked(pb.sync)
        self.actions_by_name["reverse"].setCheckable(True)
        self.actions_by_name["reverse"].setChecked(pb.playing_back and pb.backwards)
        self._on_tick()

    def _on_tick(self) -> None:
        pos = self.playback.position_us()
        if pos is None:
            text = _tr("Live")
        else:
            text = time_text(pos, millis=True)
            if not self.playback.paused:
                text += (
                    f"  {'◀' if self.playback.backwards else '▶'} {speed_text(self.playback.speed)}"
                )
        if self.position_label.text() != text:
            self.position_label.setText(text)
        if pos != self.timeline.cursor_us:
            self.timeline.set_cursor(pos)
            t = self.timeline
            if pos is not None and not self.playback.paused and not t.start_us <= pos < t.end_us:
                t.center_on(pos)

    def shutdown(self) -> None:
        """Back to live and stop every worker (call before the window goes away)."""
        self._tick.stop()
        self._refresh.stop()
        for undo in self._undo:
            undo()
        self._undo.clear()
        self.thumbnails.close()
        self._windows.close()
        self.playback.close()
