"""Timeline model of one camera stream: recorded ranges, gaps, events, bookmarks, thumbnails.

The view asks for a window (1 minute to 30 days wide) and its width in pixels; ranges are asked
of the recorder (``GET /recordings``) at a resolution from a fixed ladder that fits about a pixel,
so zooming back to a level reuses what was fetched. Each level remembers which spans it already
covers and fetches only the rest; the recent past (which still grows) is never taken as covered.
Events (``GET /events``; a recorder without it answers 404: no events) and bookmarks are kept
per span the same way. Where a recorder has an archive, its answer also says where footage is
(``locations``): the spans only in the archive (local copy gone) are kept beside the ranges, so
the timeline can colour them (docs/design/archive.md). Blocking methods: call them from a worker
thread, not the UI thread.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import cv2

from app.api import ApiClient, ApiError
from app.frames import VideoFrame
from app.loop import AsyncRunner
from app.playback.fetcher import SegmentFetcher
from app.playback.gop import Gop
from app.signals import Signal
from server.protocol.timeutil import now_us as wall_now_us

log = logging.getLogger(__name__)

US = 1_000_000
MIN_WINDOW_US = 60 * US
MAX_WINDOW_US = 30 * 86_400 * US
# resolutions (µs per merged gap) the recorder is asked for; a window picks the level that fits
LEVELS_US = tuple(
    int(s * US) for s in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
)
LIVE_MARGIN_US = 30 * US  # spans this close to now are fetched again (still recording)


def level_for(window_us: int, width_px: int) -> int:
    """The coarsest ladder resolution no wider than one pixel of the window."""
    per_px = window_us // max(1, width_px)
    i = bisect.bisect_right(LEVELS_US, per_px) - 1
    return LEVELS_US[max(0, i)]


class _Spans:
    """A set of covered [start, end) spans, merged."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, int]] = []

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        out, t = [], start
        for s, e in self.spans:
            if e <= t:
                continue
            if s >= end:
                break
            if s > t:
                out.append((t, s))
            t = max(t, e)
        if t < end:
            out.append((t, end))
        return out

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        merged: list[tuple[int, int]] = []
        for s, e in sorted([*self.spans, (start, end)]):
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        self.spans = merged


@dataclass
class _Level:
    covered: _Spans = field(default_factory=_Spans)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    archived: list[tuple[int, int]] = field(default_factory=list)  # only in the archive


def bookmark_mark(data: Any) -> tuple[int, str, int] | None:
    """``(time_us, name, duration_us)`` of a ``GET /bookmarks`` row for a timeline; None for a
    row without a start."""
    if not isinstance(data, dict) or "start_us" not in data:
        return None
    start = int(data["start_us"])
    return start, str(data.get("name") or ""), max(0, int(data.get("end_us") or start) - start)


@dataclass(frozen=True, slots=True)
class TimelineView:
    """What a timeline widget draws for its window."""

    start_us: int
    end_us: int
    resolution_us: int
    ranges: list[tuple[int, int]]
    gaps: list[tuple[int, int]]
    events: list[dict]
    bookmarks: list[dict]
    archived: list[tuple[int, int]] = field(default_factory=list)  # of ranges: archive only


class TimelineModel:
    def __init__(
        self,
        runner: AsyncRunner,
        api: ApiClient,
        camera_id: str,
        stream: str = "main",
        *,
        fetcher: SegmentFetcher | None = None,
        thumbnails: int = 256,
        thumb_width: int = 160,
        now_us: Any = None,
    ) -> None:
        self.runner, self.api = runner, api
        self.camera_id, self.stream = camera_id, stream
        self.fetcher = fetcher or SegmentFetcher(runner, api, camera_id, stream)
        self.thumb_width = thumb_width
        self._now = now_us or wall_now_us
        self._levels: dict[int, _Level] = {}
        self._marks_covered = _Spans()
        self._events: dict[Any, dict] = {}
        self._bookmarks: dict[Any, dict] = {}
        self.events_supported = True
        self._thumbs: OrderedDict[tuple, VideoFrame] = OrderedDict()
        self._max_thumbs = thumbnails
        self._lock = threading.Lock()
        self.requests = 0
        self.view: TimelineView | None = None
        self.changed: Signal[TimelineView] = Signal("timeline.changed")

    def _get(self, path: str, params: dict) -> Any:
        self.requests += 1
        return self.runner.call(self.api.get_json(path, params), 10)

    def set_window(self, start_us: int, end_us: int, width_px: int = 1000) -> TimelineView:
        """Fetch what the window lacks, then publish its view (``changed``)."""
        window = min(max(end_us - start_us, MIN_WINDOW_US), MAX_WINDOW_US)
        end_us = start_us + window
        res = level_for(window, width_px)
        stable_until = self._now() - LIVE_MARGIN_US
        with self._lock:
            level = self._levels.setdefault(res, _Level())
            for s, e in level.covered.missing(start_us, end_us):
                body = self._get(
                    "/recordings",
                    {"camera": self.camera_id, "stream": self.stream, "start_us": s,
                     "end_us": e, "resolution_us": res},
                )  # fmt: skip
                got = [(int(r["start_us"]), int(r["end_us"])) for r in body["ranges"]]
                keep = [r for r in level.ranges if r[1] <= s or r[0] >= e]
                level.ranges = _merge([*keep, *got], res)
                places = body.get("locations") or ()
                only = [(int(r["start_us"]), int(r["end_us"])) for r in places
                        if r.get("where") == "archived"]  # fmt: skip
                keep = [r for r in level.archived if r[1] <= s or r[0] >= e]
                level.archived = _merge([*keep, *only], res)
                level.covered.add(s, min(e, stable_until))
            for s, e in self._marks_covered.missing(start_us, end_us):
                self._fetch_marks(s, e)
                self._marks_covered.add(s, min(e, stable_until))
            ranges = [
                (max(a, start_us), min(b, end_us))
                for a, b in level.ranges
                if b > start_us and a < end_us
            ]
            archived = [
                (max(a, start_us), min(b, end_us))
                for a, b in level.archived
                if b > start_us and a < end_us
            ]
            events = sorted(
                (v for v in self._events.values() if _overlaps(v, start_us, end_us)),
                key=lambda v: int(v.get("start_us", 0)),
            )
            marks = sorted(
                (v for v in self._bookmarks.values() if _overlaps(v, start_us, end_us)),
                key=lambda v: int(v.get("start_us", 0)),
            )
        view = TimelineView(start_us, end_us, res, ranges, _gaps(ranges, start_us, end_us),
                            events, marks, archived)  # fmt: skip
        self.view = view
        self.changed.emit(view)
        return view

    def _fetch_marks(self, start: int, end: int) -> None:
        params = {"camera": self.camera_id, "start_us": start, "end_us": end}
        for b in self._get("/bookmarks", params) or []:
            self._bookmarks[b.get("id", (b.get("start_us"), b.get("name")))] = b
        if not self.events_supported:
            return
        try:
            events = self._get("/events", params) or []
        except ApiError as exc:
            if exc.status in (404, 405):  # a recorder without analytics: no events
                self.events_supported = False
                return
            raise
        if isinstance(events, dict):
            events = events.get("events", [])
        for ev in events:
            self._events[ev.get("id", (ev.get("start_us"), ev.get("label")))] = ev

    def mark_times(self) -> list[int]:
        """Start times of the events and bookmarks known so far (for next/previous jumps)."""
        with self._lock:
            items = [*self._events.values(), *self._bookmarks.values()]
        return sorted({int(v["start_us"]) for v in items if "start_us" in v})

    def thumbnail(self, t_us: int) -> VideoFrame | None:
        """A small picture of the key frame at or before ``t_us`` (the next one in a gap)."""
        pos = self.fetcher.locate(t_us) or self.fetcher.next_recorded(t_us)
        if pos is None:
            return None
        key = (self.camera_id, self.stream, pos.segment.id, pos.index)
        with self._lock:
            thumb = self._thumbs.get(key)
            if thumb is not None:
                self._thumbs.move_to_end(key)
                return thumb
        gop = Gop(pos, self.fetcher.init(pos.segment), self.fetcher.fragment(pos),
                  stream=self.stream)  # fmt: skip
        try:
            thumb = _downscale(gop.key_frame(), self.thumb_width)
        finally:
            gop.close()
        with self._lock:
            self._thumbs[key] = thumb
            while len(self._thumbs) > self._max_thumbs:
                self._thumbs.popitem(last=False)
        return thumb


def _downscale(frame: VideoFrame, width: int) -> VideoFrame:
    """yuv420p at ``width`` (even), keeping the aspect; nv12 is split into planes first."""
    w = max(2, min(width, frame.width)) & ~1
    h = max(2, round(frame.height * w / frame.width)) & ~1
    planes = frame.planes
    if frame.format == "nv12":
        uv = planes[1]
        planes = (planes[0], uv[:, 0::2], uv[:, 1::2])
    y = cv2.resize(planes[0], (w, h), interpolation=cv2.INTER_AREA)
    u = cv2.resize(planes[1], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    v = cv2.resize(planes[2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return VideoFrame(w, h, "yuv420p", (y, u, v), frame.pts_us, True, frame.seq,
                      frame.decoder, frame.stream)  # fmt: skip


def _overlaps(item: dict, start: int, end: int) -> bool:
    s = int(item.get("start_us", 0))
    e = int(item.get("end_us", s) or s)
    return e >= start and s < end


def _merge(ranges: list[tuple[int, int]], resolution: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if out and s - out[-1][1] <= resolution:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _gaps(ranges: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    gaps, t = [], start
    for s, e in ranges:
        if s > t:
            gaps.append((t, s))
        t = max(t, e)
    if t < end:
        gaps.append((t, end))
    return gaps
