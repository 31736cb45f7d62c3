"""Playback on the video wall: each tile switches between its live source and a playback engine.

A tile in playback gets a ``PlaybackEngine`` for its camera and a latest-wins ``FrameSlot`` the
engine's ``on_frame`` fills (on the engine's thread); the tile's ``FrameSource`` becomes that
slot when the first recorded frame arrives, so the picture never blanks in between. With "sync
all" (the default) every engine follows one ``PlaybackClock``, so a seek, a step or a change of
speed moves every camera to the same instant; without it each tile has its own clock and the
controls act on the current tile only.

An engine that reaches the live edge (``reached_live``) hands its tile back to the live source;
frames it finds by chasing the still-growing recording are ignored until the next seek, step or
jump, so the tile does not flap. Once every tile stands at live the wall is live again.

Playback overlays come from ``GET /tracks`` (``app.overlays.PlaybackOverlays``), loaded for a
window around the shown frame on the network loop and matched to each frame on the Qt thread.
Only the Qt thread touches widgets and this object's tables; engine threads touch their cell.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QTimer, Signal

from app.live.slot import FrameSlot
from app.overlays import PlaybackOverlays
from app.playback import PlaybackClock, PlaybackEngine, Presented
from app.playback.clock import monotonic_us
from app.remote import ApiError
from app.workstation import Workstation
from server.protocol.timeutil import now_us as wall_now_us
from ui.bridge import bridge
from ui.wall import VideoWall

log = logging.getLogger(__name__)

US = 1_000_000
SPEEDS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
# leaving live by pause, step or reverse starts this far back: the recorder indexes whole GOPs,
# so the last second or two before now cannot be fetched yet
LIVE_BACKOFF_US = 10 * US
TRACKS_SPAN_US = 5 * 60 * US  # boxes are loaded this far either side of the shown frame
TRACKS_MARGIN_US = 60 * US  # reload once the shown frame comes this close to a loaded end
# tracks carry the analysed frames' own pts: a box set matches a frame within half a frame
# interval (25 fps), so it is never drawn on its neighbour
MATCH_US = 20_000
# while playing, the clocks are ticked this often: an engine that handled a seek (a click, a
# gap skip) while the clock runs waits for the clock's next change, and this is it
TICK_MS = 200


def split_camera(camera: str) -> tuple[str, str]:
    server_id, _, camera_id = camera.partition("/")
    return server_id, camera_id


@dataclass(eq=False)
class _Cell:
    """One tile in playback; its flags are set on its engine's thread and the Qt thread."""

    index: int
    camera: str
    clock: PlaybackClock
    engine: PlaybackEngine
    slot: FrameSlot
    overlays: PlaybackOverlays
    shown: bool = False  # the tile shows ``slot`` (else its live source)
    live: bool = False  # reached the live edge: the tile shows live meanwhile
    live_gen: int = -1  # the command generation when it reached live
    closed: bool = False
    exact_only: bool = False  # moved to another clock: skip the new engine's quick image
    switch_posted: bool = False
    boxes_posted: bool = False
    has_boxes: bool = False
    tracks_span: tuple[int, int] | None = None
    tracks_loading: bool = False
    tracks_off: bool = False  # the recorder has no tracks for us (no analytics, no right)
    unhook: list[Callable[[], None]] = field(default_factory=list)

    def position_us(self) -> int:
        frame = self.slot.frame
        return frame.pts_us if frame is not None else self.clock.media_now()


class WallPlayback(QObject):
    """Live/playback switching and the playback commands for a whole ``VideoWall``."""

    mode_changed = Signal(bool)  # True: some tile plays back; False: the wall is live
    state_changed = Signal()  # speed, direction, pause or sync changed
    error = Signal(str)  # an engine could not fetch or decode

    def __init__(
        self,
        workstation: Workstation,
        wall: VideoWall,
        parent: QObject | None = None,
        *,
        now_us: Callable[[], int] = monotonic_us,
    ) -> None:
        """``now_us``: the monotonic time source of the clocks (a ``ManualTime`` in tests)."""
        super().__init__(parent)
        self.workstation, self.wall = workstation, wall
        self._now = now_us
        self._clock = PlaybackClock(now_us)  # the shared clock of "sync all"
        self._cells: dict[int, _Cell] = {}
        self._sync = True
        self._speed = 1.0
        self._backwards = False
        self._cmd_gen = 0  # bumps on every seek, step and jump
        self._closing: list[threading.Thread] = []
        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self._on_tick)
        self._tick.start()
        wall.camera_assigned.connect(self._on_assigned)
        wall.tiles_swapped.connect(self._on_swapped)
        wall.layout_changed.connect(self._on_layout)

    # --- state -----------------------------------------------------------------------------

    @property
    def playing_back(self) -> bool:
        return bool(self._cells)

    @property
    def sync(self) -> bool:
        return self._sync

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def backwards(self) -> bool:
        return self._backwards

    @property
    def shared_clock(self) -> PlaybackClock:
        return self._clock

    def in_playback(self, index: int) -> bool:
        cell = self._cells.get(index)
        return cell is not None and not cell.live

    def engine(self, index: int) -> PlaybackEngine | None:
        cell = self._cells.get(index)
        return cell.engine if cell is not None else None

    def overlays(self, index: int) -> PlaybackOverlays | None:
        cell = self._cells.get(index)
        return cell.overlays if cell is not None else None

    def clock(self) -> PlaybackClock:
        """The clock the controls act on: the current tile's (the shared one when synced)."""
        lead = self._lead()
        return lead.clock if lead is not None else self._clock

    @property
    def paused(self) -> bool:
        return not self.playing_back or self.clock().paused

    def position_us(self) -> int | None:
        """Wall time of the current tile's shown recorded frame (None while live)."""
        lead = self._lead()
        return None if lead is None or lead.live else lead.position_us()

    def _rate(self) -> float:
        return -self._speed if self._backwards else self._speed

    def _lead_index(self) -> int | None:
        cells = self.wall.cells
        cur = self.wall.current
        if 0 <= cur < len(cells) and cells[cur].camera:
            return cur
        if self._cells:
            return min(self._cells)
        return next((i for i, c in enumerate(cells) if c.camera), None)

    def _lead(self) -> _Cell | None:
        i = self._lead_index()
        return self._cells.get(i) if i is not None else None

    def _targets(self) -> list[int]:
        if self._sync:
            return [i for i, c in enumerate(self.wall.cells) if c.camera]
        i = self._lead_index()
        return [] if i is None else [i]

    def _control_clocks(self) -> list[PlaybackClock]:
        if self._sync:
            return [self._clock] if self._cells else []
        lead = self._lead()
        return [lead.clock] if lead is not None else []

    # --- commands (Qt thread) --------------------------------------------------------------

    def seek(self, t_us: int) -> concurrent.futures.Future | None:
        """Show ``t_us`` on every tile (the current one only without sync); the future gets
        the current tile's exact frame. Playback keeps its play or pause state."""
        lead = self._enter(self._targets())
        if lead is None:
            return None
        self._cmd_gen += 1
        return lead.engine.seek(int(t_us))

    def _enter_from_live(self) -> _Cell | None:
        """Into playback (paused) a little before now, when the wall is live."""
        if self.playing_back and self._lead() is not None:
            return self._lead()
        self.seek(wall_now_us() - LIVE_BACKOFF_US)
        return self._lead()

    def toggle_play(self) -> None:
        """Play or pause; from live this pauses a little before now."""
        if not self.playing_back:
            self._enter_from_live()
            return
        if self.paused:
            self.play()
        else:
            self.pause()

    def play(self) -> None:
        if self._enter_from_live() is None:
            return
        for clock in self._control_clocks():
            clock.play(self._rate())
        self.state_changed.emit()

    def pause(self) -> None:
        for clock in self._control_clocks():
            clock.pause()
        self.state_changed.emit()

    def set_speed(self, speed: float) -> None:
        """Absolute speed, one of ``SPEEDS``; the direction stays."""
        if speed not in SPEEDS:
            raise ValueError(f"speed must be one of {SPEEDS}, not {speed}")
        self._speed = float(speed)
        for clock in self._control_clocks():
            clock.set_rate(self._rate())
        self.state_changed.emit()

    def faster(self) -> None:
        i = SPEEDS.index(self._speed)
        self.set_speed(SPEEDS[min(i + 1, len(SPEEDS) - 1)])

    def slower(self) -> None:
        i = SPEEDS.index(self._speed)
        self.set_speed(SPEEDS[max(i - 1, 0)])

    def reverse(self) -> None:
        """Turn the direction round and play (from live: backwards from a little before now)."""
        self._backwards = not self._backwards if self.playing_back else True
        self._cmd_gen += 1
        self.play()

    def step(self, n: int = 1) -> concurrent.futures.Future | None:
        """Pause and move ``n`` frames (the other synced tiles follow to the same instant)."""
        lead = self._enter_from_live()
        if lead is None:
            return None
        self._cmd_gen += 1
        for clock in self._control_clocks():  # paused now, not when the engine gets to it
            clock.pause()
        fut = lead.engine.step(n)
        fut.add_done_callback(lambda _f: bridge().post(self.state_changed.emit))
        return fut

    def jump(self, marks: Sequence[int], direction: int) -> concurrent.futures.Future | None:
        """To the next (+1) or previous (-1) event or bookmark time; None when there is none."""
        lead = self._enter_from_live()
        if lead is None:
            return None
        self._cmd_gen += 1
        return lead.engine.jump(marks, direction)

    def go_live(self) -> None:
        """Every tile back to its live source."""
        was = self.playing_back
        for cell in list(self._cells.values()):
            self._drop(cell)
        self._cells.clear()
        self._clock.pause()
        self._backwards = False
        if was:
            self.mode_changed.emit(False)
            self.state_changed.emit()

    def set_sync(self, on: bool) -> None:
        """Lock every tile to one clock (on) or let each keep its own (off)."""
        on = bool(on)
        if on == self._sync:
            return
        self._sync = on
        lead = self._lead()
        if self._cells and lead is not None:
            position, source = lead.position_us(), lead.clock
            paused, rate = source.paused, source.rate
            if on:
                self._prime(self._clock, position, paused, rate)
                for cell in list(self._cells.values()):
                    if cell.clock is not self._clock:
                        self._rebind(cell, self._clock)
                self._enter(self._targets())
            else:
                for cell in list(self._cells.values()):
                    if cell is not lead:
                        clock = PlaybackClock(self._now)
                        self._prime(clock, cell.position_us(), paused, rate)
                        self._rebind(cell, clock)
        self.state_changed.emit()

    @staticmethod
    def _prime(clock: PlaybackClock, position_us: int, paused: bool, rate: float) -> None:
        clock.pause()
        clock.set_rate(rate)
        clock.seek(position_us)
        if not paused:
            clock.resume()

    def close(self, timeout: float = 10.0) -> None:
        """Back to live, stop following the wall, and wait for the engines to stop."""
        self.go_live()
        self._tick.stop()
        for sig, slot in (
            (self.wall.camera_assigned, self._on_assigned),
            (self.wall.tiles_swapped, self._on_swapped),
            (self.wall.layout_changed, self._on_layout),
        ):
            with contextlib.suppress(RuntimeError, TypeError):  # the wall went first
                sig.disconnect(slot)
        deadline = time.monotonic() + timeout
        for thread in self._closing:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._closing.clear()

    # --- cells -----------------------------------------------------------------------------

    def _enter(self, indices: Sequence[int]) -> _Cell | None:
        """Put ``indices`` into playback (those already in it stay); returns the lead cell."""
        was = self.playing_back
        if not was:
            self._clock.pause()
            self._clock.set_rate(self._rate())
        for i in indices:
            if i not in self._cells and self.wall.cells[i].camera:
                clock = self._clock if self._sync else PlaybackClock(self._now)
                if not self._sync:
                    clock.set_rate(self._rate())
                try:
                    self._cells[i] = self._make(i, clock)
                except KeyError as exc:  # its recorder is not connected
                    log.warning("no playback for %s: %s", self.wall.cells[i].camera, exc)
                    self.error.emit(str(exc))
        if self.playing_back != was:
            self.mode_changed.emit(self.playing_back)
            self.state_changed.emit()
        return self._lead()

    def _make(self, index: int, clock: PlaybackClock) -> _Cell:
        camera = self.wall.cells[index].camera
        assert camera is not None
        server_id, camera_id = split_camera(camera)
        fetcher = self.workstation.fetcher(server_id, camera_id)
        engine = PlaybackEngine(fetcher, clock, name=camera)
        cell = _Cell(index, camera, clock, engine, FrameSlot(camera), PlaybackOverlays(camera_id))
        self._hook(cell)
        engine.start()
        return cell

    def _hook(self, cell: _Cell) -> None:
        engine = cell.engine
        cell.unhook = [
            engine.on_frame.connect(lambda p, cell=cell: self._on_frame(cell, p)),
            engine.reached_live.connect(lambda m, cell=cell: self._on_live(cell, m)),
            engine.error.connect(lambda text: bridge().post(lambda: self.error.emit(text))),
        ]

    def _rebind(self, cell: _Cell, clock: PlaybackClock) -> None:
        """Move ``cell`` to another clock: a new engine there, the same slot (no blank)."""
        old = cell.engine
        for unhook in cell.unhook:
            unhook()
        self._close_later(old)
        server_id, camera_id = split_camera(cell.camera)
        cell.clock = clock
        cell.exact_only = True
        cell.engine = PlaybackEngine(
            self.workstation.fetcher(server_id, camera_id), clock, name=cell.camera
        )
        self._hook(cell)
        cell.engine.start()

    def _drop(self, cell: _Cell) -> None:
        """Stop ``cell``'s engine (on a thread: it may be in a fetch) and show live again."""
        cell.closed = True
        for unhook in cell.unhook:
            unhook()
        self._close_later(cell.engine)
        self._show_live_source(cell.index)

    def _close_later(self, engine: PlaybackEngine) -> None:
        self._closing = [t for t in self._closing if t.is_alive()]
        thread = threading.Thread(target=engine.close, name=f"close-{engine.name}", daemon=True)
        thread.start()
        self._closing.append(thread)

    def _show_live_source(self, index: int) -> None:
        if index >= len(self.wall.cells):
            return
        wcell = self.wall.cells[index]
        tile = wcell.tile
        tile.set_boxes(())
        tile.set_source(wcell.source)
        if wcell.source is None:
            tile.set_frame(None)
            tile.set_state("no_signal")
        else:
            tile.set_state("live")

    # --- engine threads --------------------------------------------------------------------

    def _on_frame(self, cell: _Cell, p: Presented) -> None:
        if cell.closed:
            return
        if cell.live:
            if cell.live_gen == self._cmd_gen:
                return  # chasing the live edge: the tile stays live
            cell.live = False
        if cell.exact_only:
            if not p.exact and abs(cell.clock.rate) <= cell.engine.key_only_above:
                return  # the key frame before the exact one would flash back in time
            cell.exact_only = False
        cell.slot.put(p.frame)
        if not cell.shown and not cell.switch_posted:
            cell.switch_posted = True
            bridge().post(lambda: self._show_playback(cell))
        if not cell.boxes_posted and self._wants_boxes(cell, p.frame.pts_us):
            cell.boxes_posted = True
            bridge().post(lambda: self._update_boxes(cell))

    @staticmethod
    def _wants_boxes(cell: _Cell, pts_us: int) -> bool:
        if cell.has_boxes or len(cell.overlays):
            return True
        span = cell.tracks_span
        return not cell.tracks_off and (span is None or not span[0] <= pts_us < span[1])

    def _on_live(self, cell: _Cell, _media_us: int) -> None:
        if cell.closed:
            return
        cell.live_gen = self._cmd_gen
        cell.live = True
        bridge().post(lambda: self._went_live(cell))

    # --- Qt thread -------------------------------------------------------------------------

    def _show_playback(self, cell: _Cell) -> None:
        cell.switch_posted = False
        if cell.closed or cell.live or self._cells.get(cell.index) is not cell:
            return
        tile = self.wall.cells[cell.index].tile
        tile.set_source(cell.slot)
        tile.set_state("playback")
        cell.shown = True

    def _went_live(self, cell: _Cell) -> None:
        if cell.closed or not cell.live or self._cells.get(cell.index) is not cell:
            return
        cell.shown = False
        cell.has_boxes = False
        self._show_live_source(cell.index)
        if all(c.live for c in self._cells.values()):
            self.go_live()

    def _update_boxes(self, cell: _Cell) -> None:
        cell.boxes_posted = False
        frame = cell.slot.frame
        if cell.closed or frame is None or self._cells.get(cell.index) is not cell:
            return
        self._need_tracks(cell, frame.pts_us)
        found = cell.overlays.match(frame.pts_us, MATCH_US) if cell.shown else None
        boxes = found.objects if found is not None else ()
        if boxes or cell.has_boxes:
            self.wall.cells[cell.index].tile.set_boxes(boxes)
            cell.has_boxes = bool(boxes)

    def _need_tracks(self, cell: _Cell, pts_us: int) -> None:
        span = cell.tracks_span
        if cell.tracks_off or cell.tracks_loading:
            return
        if span is not None and span[0] + TRACKS_MARGIN_US <= pts_us < span[1] - TRACKS_MARGIN_US:
            return
        session = self.workstation.session(split_camera(cell.camera)[0])
        if session is None:
            return
        start, end = pts_us - TRACKS_SPAN_US, pts_us + TRACKS_SPAN_US
        cell.tracks_loading = True
        fut = cell.overlays.load(session, start, end)
        fut.add_done_callback(
            lambda f: bridge().post(lambda: self._tracks_done(cell, (start, end), f))
        )

    def _tracks_done(
        self, cell: _Cell, span: tuple[int, int], fut: concurrent.futures.Future
    ) -> None:
        cell.tracks_loading = False
        cell.tracks_span = span
        exc = fut.exception()
        if isinstance(exc, ApiError) and exc.status in (403, 404, 405, 501, 503):
            log.info("%s: no playback overlays (%s)", cell.camera, exc)
            cell.tracks_off = True
        elif exc is not None:
            log.warning("%s: loading tracks failed: %s", cell.camera, exc)
        self._update_boxes(cell)

    def _on_tick(self) -> None:
        clocks = {id(c.clock): c.clock for c in self._cells.values()}
        for clock in clocks.values():
            if not clock.paused:
                clock.notify()

    # --- the wall changes ------------------------------------------------------------------

    def _on_assigned(self, index: int, camera: str) -> None:
        cell = self._cells.pop(index, None)
        if cell is not None:
            cell.closed = True
            for unhook in cell.unhook:
                unhook()
            self._close_later(cell.engine)  # the wall already shows the new camera's source
        if camera and self._sync and self._cells:
            self._enter([index])  # joins the shared clock where it stands
        elif cell is not None and not self._cells:
            self.mode_changed.emit(False)
            self.state_changed.emit()

    def _on_swapped(self, a: int, b: int) -> None:
        ca, cb = self._cells.pop(a, None), self._cells.pop(b, None)
        for cell, index in ((ca, b), (cb, a)):
            if cell is None:
                continue
            cell.index = index
            self._cells[index] = cell
            if cell.shown:  # the wall put the live sources back: show the recording again
                tile = self.wall.cells[index].tile
                tile.set_source(cell.slot)
                tile.set_state("playback")

    def _on_layout(self) -> None:
        for index in [i for i in self._cells if i >= len(self.wall.cells)]:
            self._on_assigned(index, "")
