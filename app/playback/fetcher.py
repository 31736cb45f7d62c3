"""Range fetching of recorded segments: segment rows, init segments and fragments, cached.

The recorder lists a stream's segments with their fragment index (``GET /cameras/{id}/segments``)
and serves each segment file with HTTP Range (``GET /segments/{id}/media``), so a player fetches
the init (ftyp+moov) once per segment and then exactly the fragment (one GOP) it needs. Bytes go
through one bounded LRU cache shared by all cameras. Calls block and are meant for decoder
threads; the HTTP work runs on the ``AsyncRunner`` loop.

Open (still recording) segments grow: their rows are read again when a time past their known end
is asked for, and a stream's newest listing expires after ``live_ttl_s``.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Coroutine, Hashable
from dataclasses import dataclass
from typing import Any

from app.api import ApiClient
from app.loop import AsyncRunner
from server.protocol.fragindex import Fragment

log = logging.getLogger(__name__)

US = 1_000_000
DAY_US = 86_400 * US


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment row as the API lists it (times are wall times, µs)."""

    id: int
    start_us: int
    end_us: int
    state: str  # 'open' (still recording) or 'closed'
    codec: str
    width: int
    height: int
    frames: int
    init_bytes: int
    fragments: tuple[Fragment, ...]

    @classmethod
    def from_json(cls, d: dict) -> Segment:
        frags = tuple(
            Fragment(int(f["offset"]), int(f["bytes"]), int(f["start_us"]), int(f["duration_us"]))
            for f in d["fragments"]
        )
        return cls(
            int(d["id"]), int(d["start_us"]), int(d["end_us"]), str(d["state"]), str(d["codec"]),
            int(d["width"]), int(d["height"]), int(d["frames"]), int(d["init_bytes"]), frags,
        )  # fmt: skip

    @property
    def indexed_end_us(self) -> int:
        """End of the last complete fragment (what can be fetched now)."""
        return self.fragments[-1].end_us if self.fragments else self.start_us

    def fragment_at(self, t_us: int) -> int | None:
        """Index of the fragment holding ``t_us``, or None outside the indexed range."""
        if not self.fragments or not self.start_us <= t_us < self.indexed_end_us:
            return None
        starts = [f.start_us for f in self.fragments]
        return max(0, bisect.bisect_right(starts, t_us) - 1)


@dataclass(frozen=True, slots=True)
class Position:
    """A fragment of a segment: what a decoder loads as one GOP."""

    segment: Segment
    index: int

    @property
    def fragment(self) -> Fragment:
        return self.segment.fragments[self.index]


class ByteCache:
    """Thread-safe LRU of byte strings bounded by their total size."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._items[key] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)

    @property
    def size(self) -> int:
        with self._lock:
            return self._size

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class LiveEdge(Exception):
    """Nothing recorded after this point yet: the stream is at (or near) live."""


class SegmentFetcher:
    """Segments and media of one camera stream. Blocking methods; call from worker threads."""

    def __init__(
        self,
        runner: AsyncRunner,
        api: ApiClient,
        camera_id: str,
        stream: str = "main",
        cache: ByteCache | None = None,
        *,
        chunk_us: int = 600 * US,
        live_ttl_s: float = 1.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.runner, self.api = runner, api
        self.camera_id, self.stream = camera_id, stream
        self.cache = cache if cache is not None else ByteCache()
        self.chunk_us = chunk_us
        self.live_ttl_s = live_ttl_s
        self.timeout_s = timeout_s
        self.requests = 0  # HTTP requests made (lists and media), for tests and metrics
        self._lock = threading.Lock()
        # chunk number -> (segments overlapping it, monotonic time fetched, complete)
        self._chunks: dict[int, tuple[list[Segment], float, bool]] = {}
        self._inflight: dict[Hashable, concurrent.futures.Future[bytes]] = {}

    # --- segment rows ----------------------------------------------------------------------

    def _get(self, coro: Coroutine[Any, Any, Any]) -> Any:
        with self._lock:
            self.requests += 1
        return self.runner.call(coro, self.timeout_s)

    def _list(self, start_us: int, end_us: int) -> list[Segment]:
        rows = self._get(
            self.api.get_json(
                f"/cameras/{self.camera_id}/segments",
                {"start_us": start_us, "end_us": end_us, "stream": self.stream},
            )
        )
        return [Segment.from_json(r) for r in rows]

    def _chunk(self, k: int, *, fresh: bool = False) -> list[Segment]:
        with self._lock:
            entry = self._chunks.get(k)
        if entry is not None and not fresh:
            segs, fetched, complete = entry
            if complete or time.monotonic() - fetched < self.live_ttl_s:
                return segs
        segs = self._list(k * self.chunk_us, (k + 1) * self.chunk_us)
        # a chunk is final once something was recorded after it and all its rows are closed
        complete = bool(segs) and all(s.state == "closed" for s in segs)
        complete = complete and segs[-1].end_us >= (k + 1) * self.chunk_us
        with self._lock:
            self._chunks[k] = (segs, time.monotonic(), complete)
        return segs

    def segments(self, start_us: int, end_us: int) -> list[Segment]:
        """Segments overlapping [start_us, end_us), oldest first (cached per chunk)."""
        out: dict[int, Segment] = {}
        for k in range(start_us // self.chunk_us, (end_us - 1) // self.chunk_us + 1):
            for s in self._chunk(k):
                if s.end_us > start_us and s.start_us < end_us:
                    out[s.id] = s
        return sorted(out.values(), key=lambda s: (s.start_us, s.id))

    def refresh(self, segment: Segment) -> Segment:
        """Read an open segment's row again (its fragment index grows while it records)."""
        k = segment.start_us // self.chunk_us
        for s in self._chunk(k, fresh=True):
            if s.id == segment.id:
                return s
        return segment  # deleted meanwhile (retention): keep what we knew

    def locate(self, t_us: int) -> Position | None:
        """The fragment holding ``t_us``; None when ``t_us`` is not recorded (a gap)."""
        for fresh in (False, True):
            segs = self._chunk(t_us // self.chunk_us, fresh=fresh)
            for s in segs:
                i = s.fragment_at(t_us)
                if i is not None:
                    return Position(s, i)
            open_past_end = any(s.state == "open" and t_us >= s.indexed_end_us for s in segs)
            if not open_past_end or fresh:
                return None
        return None

    def next_recorded(self, t_us: int, horizon_us: int = 30 * DAY_US) -> Position | None:
        """The first fragment starting at or after ``t_us`` (what follows a gap), or None."""
        pos = self.locate(t_us)
        if pos is not None:
            return pos
        k = t_us // self.chunk_us
        for s in self._chunk(k):
            for i, f in enumerate(s.fragments):
                if f.start_us >= t_us:
                    return Position(s, i)
        # a longer gap: the timeline query finds the next recorded range in one request
        body = self._get(
            self.api.get_json(
                "/recordings",
                {"camera": self.camera_id, "stream": self.stream, "start_us": t_us,
                 "end_us": t_us + horizon_us, "resolution_us": 0},
            )
        )  # fmt: skip
        for r in body["ranges"]:
            start = max(int(r["start_us"]), t_us)
            pos = self.locate(start)
            if pos is None:
                for s in self._chunk(start // self.chunk_us):
                    for i, f in enumerate(s.fragments):
                        if f.start_us >= start:
                            return Position(s, i)
            elif pos.fragment.end_us > t_us:
                return pos
        return None

    def previous_recorded(self, t_us: int, horizon_us: int = 30 * DAY_US) -> Position | None:
        """The last fragment ending at or before ``t_us`` or holding it (what precedes a gap)."""
        pos = self.locate(t_us)
        if pos is not None:
            return pos
        body = self._get(
            self.api.get_json(
                "/recordings",
                {"camera": self.camera_id, "stream": self.stream,
                 "start_us": max(0, t_us - horizon_us), "end_us": t_us + 1, "resolution_us": 0},
            )
        )  # fmt: skip
        for r in reversed(body["ranges"]):
            end = min(int(r["end_us"]), t_us + 1)
            for s in reversed(self.segments(end - 1, end)):
                frags = [i for i, f in enumerate(s.fragments) if f.start_us < end]
                if frags:
                    return Position(s, frags[-1])
        return None

    def after(self, pos: Position) -> Position:
        """The fragment after ``pos`` (next segment, across a gap); LiveEdge when none yet."""
        seg = pos.segment
        if pos.index + 1 < len(seg.fragments):
            return Position(seg, pos.index + 1)
        if seg.state == "open":
            seg = self.refresh(seg)
            if pos.index + 1 < len(seg.fragments):
                return Position(seg, pos.index + 1)
            if seg.state == "open":
                raise LiveEdge(seg.indexed_end_us)
        nxt = self.next_recorded(seg.end_us)
        if nxt is None or (nxt.segment.id == seg.id and nxt.index <= pos.index):
            raise LiveEdge(seg.indexed_end_us)
        return nxt

    def before(self, pos: Position) -> Position | None:
        """The fragment before ``pos`` (previous segment, across a gap); None at the start."""
        if pos.index > 0:
            return Position(pos.segment, pos.index - 1)
        prev = self.previous_recorded(pos.segment.start_us - 1)
        if prev is None or prev.segment.id == pos.segment.id:
            return None
        return prev

    # --- media -----------------------------------------------------------------------------

    def _media(self, key: Hashable, segment_id: int, first: int, end: int) -> bytes:
        data = self.cache.get(key)
        if data is not None:
            return data
        with self._lock:
            fut = self._inflight.get(key)
            if fut is None:
                self.requests += 1
                fut = self.runner.submit(
                    self.api.get_bytes(f"/segments/{segment_id}/media", byte_range=(first, end))
                )
                self._inflight[key] = fut
        try:
            data = fut.result(self.timeout_s)
        finally:
            with self._lock:
                if self._inflight.get(key) is fut:
                    del self._inflight[key]
        if len(data) != end - first:
            raise ValueError(f"segment {segment_id}: got {len(data)} bytes, wanted {end - first}")
        self.cache.put(key, data)
        return data

    def _key(self, segment_id: int, first: int, end: int) -> tuple:
        return (self.api.base_url, segment_id, first, end)

    def init(self, segment: Segment) -> bytes:
        """The segment's init (ftyp+moov), cached per segment."""
        return self._media(self._key(segment.id, 0, segment.init_bytes), segment.id, 0,
                           segment.init_bytes)  # fmt: skip

    def fragment(self, pos: Position) -> bytes:
        f = pos.fragment
        end = f.offset + f.bytes
        return self._media(self._key(pos.segment.id, f.offset, end), pos.segment.id, f.offset, end)

    def prefetch(self, pos: Position) -> None:
        """Start fetching a fragment (and its init) in the background; errors surface later."""
        f = pos.fragment
        seg = pos.segment
        for first, end in ((0, seg.init_bytes), (f.offset, f.offset + f.bytes)):
            key = self._key(seg.id, first, end)
            if self.cache.get(key) is not None:
                continue
            with self._lock:
                if key in self._inflight:
                    continue
                self.requests += 1
                fut = self.runner.submit(
                    self.api.get_bytes(f"/segments/{seg.id}/media", byte_range=(first, end))
                )
                self._inflight[key] = fut

            def done(
                fut: concurrent.futures.Future[bytes], key: Hashable = key, size: int = end - first
            ) -> None:
                with self._lock:
                    if self._inflight.get(key) is fut:
                        del self._inflight[key]
                if not fut.cancelled() and fut.exception() is None and len(fut.result()) == size:
                    self.cache.put(key, fut.result())  # a short body is fetched again when used

            fut.add_done_callback(done)
