"""Playback of one camera stream: seek, play at any speed either way, step, follow a clock.

Everything heavy (fetching, demuxing, decoding) runs on the engine's own worker thread, never on
the asyncio loop nor the UI thread. The engine follows a ``PlaybackClock``: on a seek it shows
the fragment's key frame at once (``exact=False``), then the exact frame (the last frame whose
wall time is <= the target); while the clock runs it shows the frame for the clock's media time,
waking on an ``Event`` when that frame changes or the clock does. Above ``key_only_above`` x it
decodes key frames only. Backwards it decodes a GOP forwards and shows it from the end. Gaps are
skipped (through the clock, once every engine bound to it stands in one); past the end of the
still-recording segment it says ``reached_live`` so the tile can switch to the live pipeline.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import itertools
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.api import ApiError
from app.frames import VideoFrame
from app.playback.clock import ClockState, PlaybackClock
from app.playback.fetcher import LiveEdge, Position, SegmentFetcher
from app.playback.gop import Gop, GopError
from app.signals import Signal

log = logging.getLogger(__name__)

_ids = itertools.count(1)
_MAX_WAIT_S = 0.5  # re-check the clock at least this often while playing
_LIVE_RETRY_S = 0.5


@dataclass(frozen=True, slots=True)
class Presented:
    """A frame the engine shows; ``exact`` is False for a seek's quick image."""

    frame: VideoFrame
    exact: bool
    clock_version: int = 0


class PlaybackEngine:
    def __init__(
        self,
        fetcher: SegmentFetcher,
        clock: PlaybackClock | None = None,
        *,
        key_only_above: float = 8.0,
        decode_threads: int = 0,
        keep_gops: int = 2,
        name: str = "",
    ) -> None:
        self.fetcher = fetcher
        self.clock = clock or PlaybackClock()
        self.key_only_above = key_only_above
        self.decode_threads = decode_threads
        self.keep_gops = max(1, keep_gops)
        self.name = name or f"{fetcher.camera_id}/{fetcher.stream}"
        self.id = next(_ids)
        self.on_frame: Signal[Presented] = Signal("playback.on_frame")
        self.reached_live: Signal[int] = Signal("playback.reached_live")
        self.error: Signal[str] = Signal("playback.error")
        self.presented: Presented | None = None
        self._gops: OrderedDict[tuple[int, int], Gop] = OrderedDict()
        self._at: tuple[Gop, int] | None = None  # GOP and frame index shown now
        self._wake = threading.Event()
        self._cmds: queue.SimpleQueue[tuple[Callable[[], object], concurrent.futures.Future]] = (
            queue.SimpleQueue()
        )
        self._seek_waiters: list[tuple[int, concurrent.futures.Future]] = []
        self._seek_seen = 0  # the clock's seek version 0 is 'never seeked': nothing to show
        self._handled = -1
        self._cond = threading.Condition()
        self._closed = False
        self._live_said = False
        self._thread: threading.Thread | None = None

    # --- life ------------------------------------------------------------------------------

    def start(self) -> PlaybackEngine:
        if self._thread is None:
            self.clock.bind(self._wake, self.id)
            self._thread = threading.Thread(target=self._run, name=f"playback-{self.name}",
                                            daemon=True)  # fmt: skip
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.clock.unbind(self._wake, self.id)
        for gop in self._gops.values():
            gop.close()
        self._gops.clear()

    def __enter__(self) -> PlaybackEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- commands (any thread) -------------------------------------------------------------

    def seek(self, t_us: int) -> concurrent.futures.Future[VideoFrame | None]:
        """Seek the clock (and so every engine bound to it); the future gets this engine's
        exact frame (the first frame after a gap when ``t_us`` is not recorded)."""
        fut: concurrent.futures.Future[VideoFrame | None] = concurrent.futures.Future()
        with self._cond:
            self.clock.seek(t_us)
            self._seek_waiters.append((self.clock.state().seek_version, fut))
        self._wake.set()
        return fut

    def step(self, n: int = 1) -> concurrent.futures.Future[VideoFrame | None]:
        """Pause and move ``n`` frames forwards (+) or backwards (-), across GOP, fragment,
        segment and gap boundaries; the future gets the new frame (None at an end)."""
        return self._submit(lambda: self._step(n))

    def jump(self, marks: Sequence[int], direction: int) -> concurrent.futures.Future | None:
        """Seek to the next (+1) or previous (-1) of ``marks`` (event or bookmark times) from the
        frame shown now; None when there is none that way."""
        shown = self.presented.frame.pts_us if self.presented else self.clock.media_now()
        marks = sorted(marks)
        if direction > 0:
            i = bisect.bisect_right(marks, shown)
            target = marks[i] if i < len(marks) else None
        else:
            i = bisect.bisect_left(marks, shown)
            target = marks[i - 1] if i > 0 else None
        return None if target is None else self.seek(target)

    def wait_handled(self, version: int, timeout: float) -> Presented | None:
        """Block until the engine has acted on clock version ``version``; what it shows then."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._handled < version:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: clock version {version} not handled")
                self._cond.wait(left)
            return self.presented

    def _submit(self, fn: Callable[[], object]) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._cmds.put((fn, fut))
        self._wake.set()
        return fut

    # --- worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed:
            self._wake.clear()
            timeout: float | None = None
            st: ClockState | None = None
            try:
                while True:
                    try:
                        fn, fut = self._cmds.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        fut.set_result(fn())
                    except Exception as exc:  # the caller gets it through the future
                        fut.set_exception(exc)
                st = self.clock.state()
                if st.seek_version != self._seek_seen:
                    self._seek_seen = st.seek_version
                    frame = self._seek(st)
                    self._resolve_seeks(st.seek_version, frame)
                    if not st.paused:
                        timeout = 0.0  # playing: follow the clock on from the new position
                elif not st.paused:
                    timeout = self._follow(st)
            except (ApiError, GopError, ValueError, TimeoutError) as exc:
                log.warning("%s: %s", self.name, exc)
                self.error.emit(str(exc))
                self._fail_seeks(exc)
                timeout = _MAX_WAIT_S
            if st is not None:
                with self._cond:
                    self._handled = max(self._handled, st.version)
                    self._cond.notify_all()
            if self._closed:
                break
            self._wake.wait(timeout)

    def _resolve_seeks(self, version: int, frame: VideoFrame | None) -> None:
        with self._cond:
            done = [f for v, f in self._seek_waiters if v <= version]
            self._seek_waiters = [(v, f) for v, f in self._seek_waiters if v > version]
        for fut in done:
            fut.set_result(frame)

    def _fail_seeks(self, exc: Exception) -> None:
        with self._cond:
            waiters, self._seek_waiters = self._seek_waiters, []
        for _, fut in waiters:
            fut.set_exception(exc)

    def _present(self, gop: Gop, i: int, exact: bool, version: int) -> VideoFrame:
        frame = gop.frame(i, on_key=lambda f: self._emit(f, False, version))
        self._at = (gop, i)
        self._emit(frame, exact, version)
        return frame

    def _emit(self, frame: VideoFrame, exact: bool, version: int) -> None:
        p = Presented(frame, exact, version)
        with self._cond:
            self.presented = p
        self.on_frame.emit(p)

    def _load(self, pos: Position, forward: bool = True) -> Gop:
        key = (pos.segment.id, pos.index)
        gop = self._gops.get(key)
        if gop is not None:
            self._gops.move_to_end(key)
            return gop
        init = self.fetcher.init(pos.segment)
        data = self.fetcher.fragment(pos)
        gop = Gop(pos, init, data, stream=self.fetcher.stream, threads=self.decode_threads)
        self._gops[key] = gop
        while len(self._gops) > self.keep_gops:
            _, old = self._gops.popitem(last=False)
            old.close()
        # the fragment that comes next in this direction, while this one plays
        seg = pos.segment
        nxt = pos.index + (1 if forward else -1)
        if 0 <= nxt < len(seg.fragments):
            self.fetcher.prefetch(Position(seg, nxt))
        return gop

    def _gop_for(self, m: int) -> Gop | None:
        if self._at is not None:
            gop = self._at[0]
            if gop.start_us <= m < gop.end_us:
                return gop
        for gop in self._gops.values():
            if gop.start_us <= m < gop.end_us:
                return gop
        pos = self.fetcher.locate(m)
        return None if pos is None else self._load(pos, forward=self.clock.rate > 0)

    def _seek(self, st: ClockState) -> VideoFrame | None:
        self._live_said = False
        m = st.media_us
        gop = self._gop_for(m)
        if gop is None:
            pos = self.fetcher.next_recorded(m)  # in a gap: the first frame after it
            if pos is None:
                self._say_live(m)
                return None
            gop = self._load(pos)
            return self._present(gop, 0, True, st.version)
        return self._present(gop, gop.index_at(m), True, st.version)

    def _follow(self, st: ClockState) -> float | None:
        """Show the frame for the clock's media time; return seconds until it changes."""
        m, forward = st.media_us, st.rate > 0
        key_only = abs(st.rate) > self.key_only_above
        gop = self._gop_for(m)
        if gop is None:
            return self._in_gap(m, forward)
        self.clock.out_of_gap(self.id)
        i = 0 if key_only else gop.index_at(m)
        if self._at is None or self._at[0] is not gop or self._at[1] != i:
            self._present(gop, i, not key_only, st.version)
        if forward:
            boundary = gop.end_us if key_only or i + 1 >= len(gop) else gop.walls[i + 1]
        else:
            boundary = gop.walls[i] - 1
        wait_us = self.clock.real_us_until(boundary)
        return min(_MAX_WAIT_S, max(0.0, wait_us / 1e6))

    def _in_gap(self, m: int, forward: bool) -> float:
        """Nothing recorded at ``m``: tell the clock where the next recording is, or go live."""
        at = self._at[0].pos if self._at is not None else None
        if forward:
            try:
                if at is not None and at.fragment.end_us <= m:
                    nxt = self.fetcher.after(at)
                    while nxt.fragment.end_us <= m:  # the clock ran past it too: walk on
                        nxt = self.fetcher.after(nxt)
                else:
                    nxt = self.fetcher.next_recorded(m)
                    if nxt is None:
                        raise LiveEdge(m)
            except LiveEdge:
                self._say_live(m)
                self.clock.in_gap(self.id, None)
                return _LIVE_RETRY_S
            if nxt.fragment.start_us <= m:
                return 0.0  # recorded meanwhile (an open segment grew): show it now
            self.clock.in_gap(self.id, nxt.fragment.start_us)
        else:
            prev = self.fetcher.previous_recorded(m)
            self.clock.in_gap(self.id, None if prev is None else prev.fragment.end_us - 1)
        return _MAX_WAIT_S

    def _say_live(self, m: int) -> None:
        if not self._live_said:
            self._live_said = True
            self.reached_live.emit(m)

    def _step(self, n: int) -> VideoFrame | None:
        st = self.clock.state()
        if not st.paused:
            self.clock.pause()
            st = self.clock.state()
        if self._at is None:
            frame = self._seek(st)
            if frame is None:
                return None
        assert self._at is not None
        gop, i = self._at
        for _ in range(abs(n)):
            if n > 0:
                if i + 1 < len(gop):
                    i += 1
                    continue
                try:
                    pos = self.fetcher.after(gop.pos)
                except LiveEdge:
                    break
                gop, i = self._load(pos, forward=True), 0
            else:
                if i > 0:
                    i -= 1
                    continue
                prev = self.fetcher.before(gop.pos)
                if prev is None:
                    break
                gop = self._load(prev, forward=False)
                i = len(gop) - 1
        frame = self._present(gop, i, True, st.version)
        # the clock follows the frame shown, so other engines bound to it show the same instant
        self.clock.seek(frame.pts_us)
        self._seek_seen = self.clock.state().seek_version
        return frame
