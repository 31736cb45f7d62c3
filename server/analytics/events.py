"""Analytics events from tracks and motion: what the catalog stores and NATS carries.

An event that lasts (an object in view, motion) is told in phases: 'start' when it begins,
'update' when something worth a new snapshot happens, 'end' with its end time. Consumers pair
the phases by (camera_id, kind, track_id, zone_id or line_id, start_us). Zone and line events
(enter, leave, loiter, line) are self-contained, phase 'instant'; `zones.ZoneEngine` documents
their fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from server.analytics.tracker import Track

__all__ = ["AnalyticsEvent", "MotionEvents", "ObjectEvents", "PathRecorder"]


@dataclass
class AnalyticsEvent:
    kind: str  # 'object' | 'enter' | 'leave' | 'loiter' | 'line' | 'motion'
    phase: str  # 'start' | 'update' | 'end' | 'instant'
    camera_id: str
    label: str
    score: float
    start_us: int
    end_us: int | None
    track_id: int | None = None
    zone_id: str | None = None
    line_id: str | None = None
    direction: str | None = None  # lines: 'left_to_right' | 'right_to_left' (see zones.py)
    box: tuple[float, float, float, float] | None = None  # normalised x1, y1, x2, y2
    path: list[tuple[int, float, float]] = field(default_factory=list)  # (ts_us, x, y)
    best_changed: bool = False  # the pipeline takes a JPEG snapshot of this frame when True


def _box(t: Track) -> tuple[float, float, float, float]:
    return (t.x1, t.y1, t.x2, t.y2)


class PathRecorder:
    """A track's path kept to at most `max_points`, evenly thinned, first and last kept.

    When full, every other point is dropped and the sampling stride doubles, so memory stays
    bounded however long the object stays and the kept points stay evenly spread in time.
    """

    __slots__ = ("_count", "_last", "_max", "_points", "_stride")

    def __init__(self, max_points: int = 200) -> None:
        if max_points < 2:
            raise ValueError(f"a path needs room for at least 2 points, not {max_points}")
        self._max = max_points
        self._points: list[tuple[int, float, float]] = []
        self._stride = 1
        self._count = 0
        self._last: tuple[int, float, float] | None = None

    def add(self, ts_us: int, x: float, y: float) -> None:
        point = (ts_us, x, y)
        if self._count % self._stride == 0:
            if len(self._points) >= self._max:
                self._points = self._points[::2]
                self._stride *= 2
                if self._count % self._stride == 0:
                    self._points.append(point)
            else:
                self._points.append(point)
        self._count += 1
        self._last = point

    @property
    def last_ts_us(self) -> int:
        return -1 if self._last is None else self._last[0]

    def points(self) -> list[tuple[int, float, float]]:
        """The kept points, ending with the latest one added."""
        out = list(self._points)
        if self._last is not None and (not out or out[-1] is not self._last):
            if len(out) >= self._max:
                out[-1] = self._last
            else:
                out.append(self._last)
        return out


class _ObjectState:
    __slots__ = ("best_area", "best_box", "best_score", "label", "path", "start_us")

    def __init__(self, t: Track, max_points: int) -> None:
        self.label = t.label
        self.start_us = t.start_us
        self.best_score = t.score
        self.best_area = (t.x2 - t.x1) * (t.y2 - t.y1)
        self.best_box = _box(t)
        self.path = PathRecorder(max_points)


class ObjectEvents:
    """'object' events: one per confirmed track, from confirmation until the track is lost.

    'start' (start_us = first seen, best_changed) when the tracker confirms it; 'update' only
    when the best snapshot changes (higher score, ties broken by larger box), so the pipeline
    grabs one JPEG per improvement; 'end' when the tracker reports it lost (end_us = last seen)
    with the path of its reference point (bottom centre of the box). Score and box of every
    phase are those of the best snapshot so far. A track passed again with the same ts_us (a
    frame analysed without running the detector) adds nothing.
    """

    def __init__(self, camera_id: str, max_path_points: int = 200) -> None:
        self.camera_id = camera_id
        self._max_points = max_path_points
        self._objects: dict[int, _ObjectState] = {}

    def update(
        self, tracks: Sequence[Track], lost: Sequence[Track], ts_us: int
    ) -> list[AnalyticsEvent]:
        events: list[AnalyticsEvent] = []
        for t in tracks:
            if not t.confirmed:
                continue
            st = self._objects.get(t.track_id)
            x, y = t.point
            if st is None:
                st = self._objects[t.track_id] = _ObjectState(t, self._max_points)
                st.path.add(t.ts_us, x, y)
                events.append(self._event(t.track_id, st, "start", None, best_changed=True))
                continue
            if t.ts_us <= st.path.last_ts_us:
                continue  # the same snapshot again (a frame analysed without detection)
            st.path.add(t.ts_us, x, y)
            area = (t.x2 - t.x1) * (t.y2 - t.y1)
            if t.score > st.best_score or (t.score == st.best_score and area > st.best_area):
                st.best_score, st.best_area, st.best_box = t.score, area, _box(t)
                events.append(self._event(t.track_id, st, "update", None, best_changed=True))
        for t in lost:
            st = self._objects.pop(t.track_id, None)
            if st is None:
                continue
            ev = self._event(t.track_id, st, "end", t.ts_us, best_changed=False)
            ev.path = st.path.points()
            events.append(ev)
        return events

    def _event(
        self, track_id: int, st: _ObjectState, phase: str, end_us: int | None, best_changed: bool
    ) -> AnalyticsEvent:
        return AnalyticsEvent(
            kind="object",
            phase=phase,
            camera_id=self.camera_id,
            label=st.label,
            score=st.best_score,
            start_us=st.start_us,
            end_us=end_us,
            track_id=track_id,
            box=st.best_box,
            best_changed=best_changed,
        )


class MotionEvents:
    """'motion' events: start at the first active frame, end after end_after_us of stillness.

    end_us is the last frame with motion, so the event covers exactly the moving frames.
    """

    def __init__(self, camera_id: str, end_after_us: int = 2_000_000) -> None:
        if end_after_us < 0:
            raise ValueError(f"end_after_us must be >= 0, not {end_after_us}")
        self.camera_id = camera_id
        self.end_after_us = end_after_us
        self._start_us: int | None = None
        self._last_active_us = 0

    def update(self, active: bool, ts_us: int) -> list[AnalyticsEvent]:
        if active:
            self._last_active_us = ts_us
            if self._start_us is None:
                self._start_us = ts_us
                return [self._event("start", None)]
            return []
        if self._start_us is not None and ts_us - self._last_active_us >= self.end_after_us:
            return [self.finish()]
        return []

    def finish(self) -> AnalyticsEvent:
        """End the current motion event now (camera stopped); call only while one is open."""
        if self._start_us is None:
            raise RuntimeError("no motion event is open")
        ev = self._event("end", self._last_active_us)
        self._start_us = None
        return ev

    @property
    def active(self) -> bool:
        return self._start_us is not None

    def _event(self, phase: str, end_us: int | None) -> AnalyticsEvent:
        assert self._start_us is not None
        return AnalyticsEvent(
            kind="motion",
            phase=phase,
            camera_id=self.camera_id,
            label="motion",
            score=1.0,
            start_us=self._start_us,
            end_us=end_us,
        )
