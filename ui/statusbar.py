"""The status bar: recorder health, and decoder (HW/SW), fps and dropped frames of the current
tile. Read once a second (the figures are counters; nothing here needs to be instant)."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QTimer
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from app.live.tile import TileStats
from app.workstation import Workstation
from ui.sources import LiveSources
from ui.wall import VideoWall

INTERVAL_MS = 1000


def _tr(text: str) -> str:
    return QCoreApplication.translate("StatusBar", text)


def decoder_label(kind: str) -> str:
    """'software' -> SW; a hardware device type -> HW (cuda)."""
    if kind in ("none", ""):
        return "—"
    return _tr("SW") if kind == "software" else f"{_tr('HW')} ({kind})"


def tile_text(name: str, stats: TileStats) -> str:
    text = _tr("{name}: {stream} · {decoder} · {fps:.1f} fps · {dropped} dropped").format(
        name=name,
        stream=stats.stream,
        decoder=decoder_label(stats.decoder),
        fps=stats.fps,
        dropped=stats.frames_dropped,
    )
    if stats.keyframes_only:
        text += " · " + _tr("key frames only")
    return text


class WorkstationStatus(QStatusBar):
    def __init__(
        self,
        workstation: Workstation,
        wall: VideoWall,
        sources: LiveSources,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.workstation, self.wall, self.sources = workstation, wall, sources
        self.recorders = QLabel(self)
        self.tile = QLabel(self)
        self.addWidget(self.tile, 1)
        self.addPermanentWidget(self.recorders)
        self._timer = QTimer(self)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        wall.current_changed.connect(lambda _i: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        self.recorders.setText(self.recorder_text())
        self.tile.setText(self.current_tile_text())

    def recorder_text(self) -> str:
        sessions = self.workstation.sessions.sessions()
        if not sessions:
            return _tr("Not connected")
        parts = []
        for s in sessions:
            state = s.state if s.state != "online" or s.live_available else "no live"
            parts.append(f"{s.name or s.base_url}: {_state(state)}")
        return " | ".join(parts)

    def current_tile_text(self) -> str:
        index = self.wall.current
        if index < 0 and self.wall.cells:
            index = 0
        source = self.sources.source_at(index)
        if source is None:
            return ""
        stats = source.stats()
        name = self.sources.display_name(source.camera)
        if stats is None:
            return f"{name}: {_tr('waiting for the recorder')}"
        return tile_text(name, stats)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.refresh()
        super().changeEvent(event)

    def stop(self) -> None:
        self._timer.stop()


def _state(state: str) -> str:
    names = {
        "online": _tr("online"),
        "connecting": _tr("connecting"),
        "reconnecting": _tr("reconnecting"),
        "offline": _tr("offline"),
        "error": _tr("login refused"),
        "no live": _tr("online, live unavailable"),
    }
    return names.get(state, state)
