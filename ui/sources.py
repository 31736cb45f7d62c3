"""Live video for the wall: each tile's camera gets a ``LiveTile`` from the Workstation.

``LiveSources`` is the wall's ``SourceProvider``. It hands each cell a ``LiveSource`` (the
tile's frame slot plus what the picture needs around it) and, because a provider does not learn
which ``VideoTile`` shows a source, follows the wall's signals to bind each source to its tile.
Once bound, the source:

- tells its ``LiveTile`` the tile's size in device pixels, so small tiles take the sub-stream
  and big ones the main stream;
- matches the camera's live detections to the pts of each frame the tile takes and sets the
  boxes, so a box is drawn on the picture it belongs to or not at all;
- shows "no signal", "reconnecting" or "key frames only" from the session, the camera's status
  and ``TileStats``.

Everything here runs on the Qt thread; engine signals arrive through ``ui.bridge``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer
from shiboken6 import isValid

from app.analytics_settings import AnalyticsSettings
from app.frames import VideoFrame
from app.live.tile import LiveTile, TileStats
from app.overlays import LiveOverlays
from app.ptz import PtzControl
from app.session import Session
from app.workstation import Workstation
from ui.bridge import bridge
from ui.tile_ptz import TilePtz
from ui.videotile import OverlayBox, OverlayShape, VideoTile
from ui.wall import VideoWall

log = logging.getLogger(__name__)

STALL_S = 3.0  # no new frame for this long: the tile says "no signal"
STATE_INTERVAL_MS = 500
STOP_WAIT_S = 15.0  # close() waits this long for tiles still stopping on workers
DEFAULT_INTERVAL_US = 40_000  # overlay matching window before the stream's rate is known


class LiveSource:
    """One wall cell's live camera: a ``FrameSource`` for the VideoTile, bound to it."""

    def __init__(self, provider: LiveSources, camera: str) -> None:
        self.provider = provider
        self.camera = camera
        self.server_id, _, self.camera_id = camera.partition("/")
        self.live: LiveTile | None = None
        self.overlays: LiveOverlays | None = None
        self.view: VideoTile | None = None
        self.error = ""
        self.shapes: list[OverlayShape] = []  # the camera's zones and lines, drawn over it
        self._shown_seq = -1
        self._last_new = time.monotonic()
        self._closed = False
        self._generation = 0  # bumped when the live tile goes, so late answers are dropped

    # FrameSource

    @property
    def seq(self) -> int:
        """Grows with every new frame; without a live tile it never changes."""
        return self.live.slot.seq if self.live is not None else 0

    def latest(self) -> tuple[int, VideoFrame | None]:
        if self.live is None:
            return 0, None
        seq, frame = self.live.slot.latest()
        if seq != self._shown_seq:
            self._shown_seq = seq
            self._last_new = time.monotonic()
            if frame is not None:
                self._match_boxes(frame)
        return seq, frame

    def _match_boxes(self, frame: VideoFrame) -> None:
        view, overlays = self.view, self.overlays
        if view is None or overlays is None or self.live is None:
            return
        interval = self.live.frame_interval_us() or DEFAULT_INTERVAL_US
        found = overlays.match(frame.pts_us, interval)
        boxes = (
            [
                OverlayBox(*d.box, label=d.label, score=d.score, track_id=d.track_id)
                for d in found.objects
            ]
            if found is not None
            else []
        )
        if boxes or view.boxes:
            view.set_boxes(boxes)

    # life

    def start(self) -> bool:
        """Start the live tile when the recorder is connected; False while it is not."""
        if self.live is not None or self._closed:
            return self.live is not None
        ws = self.provider.workstation
        if ws.session(self.server_id) is None:
            return False
        try:
            self.live = ws.live_tile(self.server_id, self.camera_id)
        except (KeyError, ValueError) as exc:
            self.error = str(exc)
            log.warning("no live video for %s: %s", self.camera, exc)
            return False
        self._last_new = time.monotonic()
        if self.view is not None:
            self.update_view_size()
        if self.provider.overlays_enabled:
            # subscribing blocks for a round trip: never on the Qt thread
            sid, cid, gen = self.server_id, self.camera_id, self._generation
            bridge().run(lambda: ws.overlays(sid, cid), lambda f: self._overlays_ready(f, gen))
            session = ws.session(self.server_id)
            bridge().run(lambda: _zones(session, cid), lambda f: self._zones_ready(f, gen))
        return True

    def _zones_ready(
        self, future: concurrent.futures.Future[list[OverlayShape]], generation: int
    ) -> None:
        if self._closed or generation != self._generation:
            return
        try:
            self.shapes = future.result()
        except Exception as exc:  # no analytics there, or no right to see it: no zones
            log.info("no zones for %s: %s", self.camera, exc)
            return
        if self.view is not None and isValid(self.view):
            self.view.set_shapes(self.shapes)

    def _overlays_ready(
        self, future: concurrent.futures.Future[LiveOverlays], generation: int
    ) -> None:
        if self._closed or generation != self._generation:
            return
        try:
            self.overlays = future.result()
        except Exception as exc:  # NATS down, timeout: live video still plays, without boxes
            log.info("no detections for %s: %s", self.camera, exc)

    def stop(self, *, wait: bool = False) -> None:
        """End for good; ``wait`` joins the tile's threads here (shutdown), else a worker does."""
        self._closed = True
        self.suspend(wait=wait)
        self.view = None

    def suspend(self, *, wait: bool = False) -> None:
        """Drop the live tile (its session went away); ``start`` makes a new one later."""
        self._generation += 1
        live, self.live = self.live, None
        self.overlays = None
        if live is None:
            return
        if wait:
            live.stop()
        else:  # joining the decoder thread can take seconds: never on the Qt thread
            self.provider.stopping(bridge().run(live.stop))

    def stats(self) -> TileStats | None:
        return self.live.stats() if self.live is not None else None

    # the VideoTile showing it

    def bind(self, view: VideoTile | None) -> None:
        if self.view is view:
            return
        self.view = view
        if view is not None:
            self.update_view_size()
            view.set_boxes([])
            view.set_shapes(self.shapes)

    def update_view_size(self) -> None:
        view, live = self.view, self.live
        if view is None or live is None or not isValid(view):
            return
        ratio = view.devicePixelRatioF()
        live.set_view_size(round(view.width() * ratio), round(view.height() * ratio))

    def state(self) -> str:
        """The tile state to show: live, no_signal, reconnecting or keyframes_only."""
        session = self.provider.workstation.session(self.server_id)
        if session is None or session.state in ("connecting", "reconnecting", "offline", "error"):
            return "reconnecting" if session is not None else "no_signal"
        if self.live is None:
            return "no_signal"
        node = self.provider.workstation.tree.camera((self.server_id, self.camera_id))
        stalled = time.monotonic() - self._last_new > STALL_S
        if stalled or self.live.slot.frame is None:
            if node is not None and node.status in ("connecting",):
                return "reconnecting"
            return "no_signal"
        if self.live.stats().keyframes_only:
            return "keyframes_only"
        return "live"


class _ResizeWatch(QObject):
    """Tells a source its VideoTile's new size."""

    def __init__(self, provider: LiveSources) -> None:
        super().__init__()
        self.provider = provider

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            for source in self.provider.sources():
                if source.view is watched:
                    source.update_view_size()
        return False


class LiveSources:
    """The wall's ``SourceProvider`` backed by the Workstation's live tiles."""

    def __init__(self, workstation: Workstation, *, overlays: bool = True) -> None:
        self.workstation = workstation
        self.overlays_enabled = overlays
        self.wall: VideoWall | None = None
        self._sources: list[LiveSource] = []
        self._stopping: set[concurrent.futures.Future[None]] = set()  # tiles a worker stops
        self._watch = _ResizeWatch(self)
        self._timer = QTimer(self._watch)
        self._timer.setInterval(STATE_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh_states)
        self._undo: list[Callable[[], None]] = [
            bridge().connect(workstation.sessions.added, lambda _s: self.start_waiting()),
            bridge().connect(workstation.sessions.removed, self._session_removed),
        ]

    def sources(self) -> list[LiveSource]:
        return list(self._sources)

    def stopping(self, future: concurrent.futures.Future[None]) -> None:
        """A tile being stopped on a worker: ``close`` waits for it."""
        self._stopping.add(future)
        future.add_done_callback(self._stopping.discard)

    # SourceProvider

    def acquire(self, camera: str) -> LiveSource:
        source = LiveSource(self, camera)
        self._sources.append(source)
        source.start()
        return source

    def release(self, camera: str, source: LiveSource) -> None:  # type: ignore[override]
        if source in self._sources:
            self._sources.remove(source)
        source.stop()

    def display_name(self, camera: str) -> str:
        server_id, _, camera_id = camera.partition("/")
        node = self.workstation.tree.camera((server_id, camera_id))
        return node.name if node is not None else camera_id

    def ptz_for(self, camera: str, tile: VideoTile) -> TilePtz | None:
        """PTZ for a camera added from an ONVIF device (its JSON names the device)."""
        server_id, _, camera_id = camera.partition("/")
        session = self.workstation.session(server_id)
        if session is None:
            return None
        cam = next((c for c in session.cameras if c.get("id") == camera_id), None)
        if cam is None or not cam.get("onvif"):
            return None
        return TilePtz(PtzControl(session, camera_id), tile)

    # the wall

    def attach(self, wall: VideoWall) -> None:
        """Follow ``wall`` (made with this provider) to know which tile shows which source."""
        self.wall = wall
        wall.camera_assigned.connect(lambda *_: self.rebind())
        wall.tiles_swapped.connect(lambda *_: self.rebind())
        wall.layout_changed.connect(self.rebind)
        self._timer.start()
        self.rebind()

    def rebind(self) -> None:
        wall = self.wall
        if wall is None or not isValid(wall):
            return
        shown: dict[int, VideoTile] = {}
        for cell in wall.cells:
            if isinstance(cell.source, LiveSource):
                shown[id(cell.source)] = cell.tile
                cell.tile.installEventFilter(self._watch)
        for source in self._sources:
            source.bind(shown.get(id(source)))
        self.refresh_states()

    def start_waiting(self) -> None:
        """A recorder came online: start the sources that were waiting for it."""
        for source in self._sources:
            if source.live is None:
                source.start()
        self.refresh_states()

    def _session_removed(self, session: Session) -> None:
        """A recorder was logged out: its tiles wait for the next login (``start_waiting``)."""
        for source in self._sources:
            if source.server_id == session.server_id:
                source.suspend()
                if source.view is not None and isValid(source.view):
                    source.view.set_boxes([])
        self.refresh_states()

    def refresh_states(self) -> None:
        for source in self._sources:
            view = source.view
            if view is None or not isValid(view) or view.source is not source:
                continue  # not shown, or the tile plays something else (playback)
            state = source.state()
            if state != view.state:
                view.set_state(state)
            if state in ("no_signal", "reconnecting") and view.boxes:
                view.set_boxes([])
            name = self.display_name(source.camera)
            if name != view.camera_name:
                view.set_camera_name(name)

    def source_at(self, index: int) -> LiveSource | None:
        wall = self.wall
        if wall is None or not 0 <= index < len(wall.cells):
            return None
        source = wall.cells[index].source
        return source if isinstance(source, LiveSource) else None

    def close(self) -> None:
        """Stop every live tile (the wall should be cleared first; this catches the rest)."""
        self._timer.stop()
        for undo in self._undo:
            undo()
        self._undo.clear()
        for source in list(self._sources):
            source.stop(wait=True)
        self._sources.clear()
        pending = list(self._stopping)
        if pending:  # tiles released just before (wall.clear()): gone when this returns
            concurrent.futures.wait(pending, timeout=STOP_WAIT_S)


def _zones(session: Session | None, camera_id: str) -> list[OverlayShape]:
    """The camera's zones and lines as tile overlays (a worker thread: one API round trip)."""
    if session is None:
        return []
    rows = AnalyticsSettings(session, camera_id).zones_sync(10)
    return [
        OverlayShape([tuple(p) for p in z["points"]], z.get("kind", "zone"), z.get("name", ""))
        for z in rows or []
    ]
