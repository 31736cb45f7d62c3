"""Zones (polygons) and directed lines over tracks, in normalised image coordinates.

Coordinates are 0..1 of the frame, x to the right, y down. A track is placed at its reference
point, the bottom centre of its box (a person's feet, a car's contact with the road), which is
what a zone drawn on the ground means.

Zone events, per track and zone, all self-contained (phase 'instant', nothing to pair):
- 'enter': once the point has been inside for `min_dwell_us`; start_us = end_us = the time of
  the first frame inside (emitted min_dwell_us later).
- 'loiter': once per stay, at the first frame at least `loiter_us` after the stay began
  (0 = never); start_us is the stay's first frame, end_us that frame's time.
- 'leave': when the point is seen outside again, or the track is lost, after an 'enter';
  start_us as for 'enter', end_us the time of the last frame inside, so the event spans the stay.
A stay shorter than min_dwell_us gives no events at all.
A track missing from a frame (not yet lost) keeps its state.

Line events ('line', phase 'instant', start_us = end_us = the first frame past the line): the
reference point crossed the segment a→b between two frames. The direction is seen from a
looking towards b, with y down as on screen: 'left_to_right' when the point went from the
left-hand side to the right-hand side, else 'right_to_left'. For a horizontal line drawn left
to right on screen (a west of b) left is up, so walking down the image is 'left_to_right'.
The step must cross the segment itself, not its extension; a point that touches the line and
goes back, or stops on it, does not cross (the crossing counts when it is seen on the far side).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from server.analytics.events import AnalyticsEvent
from server.analytics.tracker import Track

__all__ = ["Line", "Zone", "ZoneEngine", "points_in_polygon"]

LEFT_TO_RIGHT = "left_to_right"
RIGHT_TO_LEFT = "right_to_left"


def _check_point(what: str, p: tuple[float, float]) -> tuple[float, float]:
    if len(p) != 2 or not all(math.isfinite(float(v)) for v in p):
        raise ValueError(f"{what}: a point is two finite numbers (x, y), not {p!r}")
    return (float(p[0]), float(p[1]))


@dataclass(frozen=True)
class Zone:
    id: str
    name: str
    polygon: tuple[tuple[float, float], ...]
    labels: frozenset[str] = frozenset()  # empty: every label
    min_dwell_us: int = 0
    loiter_us: int = 0  # 0: no loiter events

    def __post_init__(self) -> None:
        pts = tuple(_check_point(f"zone {self.id!r}", p) for p in self.polygon)
        if len(pts) < 3:
            raise ValueError(
                f"zone {self.id!r} needs a polygon of 3 or more points, has {len(pts)}"
            )
        if self.min_dwell_us < 0 or self.loiter_us < 0:
            raise ValueError(f"zone {self.id!r}: min_dwell_us and loiter_us must be >= 0")
        object.__setattr__(self, "polygon", pts)
        object.__setattr__(self, "labels", frozenset(self.labels))


@dataclass(frozen=True)
class Line:
    id: str
    name: str
    a: tuple[float, float]
    b: tuple[float, float]
    labels: frozenset[str] = frozenset()  # empty: every label

    def __post_init__(self) -> None:
        a = _check_point(f"line {self.id!r}", self.a)
        b = _check_point(f"line {self.id!r}", self.b)
        if a == b:
            raise ValueError(f"line {self.id!r} needs two different end points, got {a} twice")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "labels", frozenset(self.labels))


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd test of points (P, 2) against a polygon (V, 2), vectorised over both."""
    return _Polygon(polygon).contains(points)


class _Polygon:
    """A polygon's edges, prepared once for the even-odd test."""

    __slots__ = ("slope", "xi", "xj", "yi", "yj")

    def __init__(self, polygon: np.ndarray) -> None:
        self.xi, self.yi = polygon[:, 0], polygon[:, 1]
        self.xj, self.yj = np.roll(self.xi, 1), np.roll(self.yi, 1)
        dy = np.where(self.yj == self.yi, 1.0, self.yj - self.yi)
        self.slope = (self.xj - self.xi) / dy  # dx/dy; unused for horizontal edges

    def contains(self, points: np.ndarray) -> np.ndarray:
        if points.shape[0] == 0:
            return np.zeros(0, dtype=bool)
        px, py = points[:, 0:1], points[:, 1:2]
        spans = (self.yi > py) != (self.yj > py)  # (P, V): the edge straddles the horizontal
        x_cross = self.xi + (py - self.yi) * self.slope
        return (np.count_nonzero(spans & (px < x_cross), axis=1) % 2) == 1


def _cross(ax: float, ay: float, bx: float, by: float, px: float, py: float) -> float:
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


class _Stay:
    __slots__ = ("box", "entered", "first_us", "last_us", "loitered")

    def __init__(self, ts_us: int, box: tuple[float, float, float, float]) -> None:
        self.first_us = ts_us
        self.last_us = ts_us
        self.entered = False
        self.loitered = False
        self.box = box


class ZoneEngine:
    """Zone and line events of one camera from its tracker's output; not thread-safe."""

    def __init__(self, camera_id: str, zones: Sequence[Zone], lines: Sequence[Line]) -> None:
        for kind, items in (("zone", zones), ("line", lines)):
            ids = [z.id for z in items]
            if len(set(ids)) != len(ids):
                raise ValueError(f"{kind} ids must be unique per camera: {sorted(ids)}")
        self.camera_id = camera_id
        self.zones = tuple(zones)
        self.lines = tuple(lines)
        self._polys = [_Polygon(np.asarray(z.polygon, dtype=np.float64)) for z in self.zones]
        self._stays: list[dict[int, _Stay]] = [{} for _ in self.zones]
        # per line: track id -> (side, x, y) of the last point seen off the line
        self._sides: list[dict[int, tuple[int, float, float]]] = [{} for _ in self.lines]

    def update(
        self, tracks: Sequence[Track], lost: Sequence[Track], ts_us: int
    ) -> list[AnalyticsEvent]:
        events: list[AnalyticsEvent] = []
        if tracks:
            pts = np.array([t.point for t in tracks], dtype=np.float64)
            for zi, zone in enumerate(self.zones):
                self._update_zone(zi, zone, tracks, pts, ts_us, events)
            for li, line in enumerate(self.lines):
                self._update_line(li, line, tracks, pts, ts_us, events)
        for t in lost:
            for zi, zone in enumerate(self.zones):
                stay = self._stays[zi].pop(t.track_id, None)
                if stay is not None and stay.entered:
                    events.append(self._leave(zone, t, stay))
            for sides in self._sides:
                sides.pop(t.track_id, None)
        return events

    def _update_zone(
        self,
        zi: int,
        zone: Zone,
        tracks: Sequence[Track],
        pts: np.ndarray,
        ts_us: int,
        events: list[AnalyticsEvent],
    ) -> None:
        stays = self._stays[zi]
        inside = self._polys[zi].contains(pts)
        for k, t in enumerate(tracks):
            if zone.labels and t.label not in zone.labels:
                continue
            stay = stays.get(t.track_id)
            if not inside[k]:
                if stay is not None:
                    del stays[t.track_id]
                    if stay.entered:
                        events.append(self._leave(zone, t, stay))
                continue
            box = (t.x1, t.y1, t.x2, t.y2)
            if stay is None:
                stay = stays[t.track_id] = _Stay(ts_us, box)
            stay.last_us = ts_us
            stay.box = box
            if not stay.entered and ts_us - stay.first_us >= zone.min_dwell_us:
                stay.entered = True
                events.append(
                    self._zone_event("enter", "instant", zone, t, stay.first_us, stay.first_us)
                )
            if (
                stay.entered
                and not stay.loitered
                and zone.loiter_us > 0
                and ts_us - stay.first_us >= zone.loiter_us
            ):
                stay.loitered = True
                events.append(self._zone_event("loiter", "instant", zone, t, stay.first_us, ts_us))

    def _update_line(
        self,
        li: int,
        line: Line,
        tracks: Sequence[Track],
        pts: np.ndarray,
        ts_us: int,
        events: list[AnalyticsEvent],
    ) -> None:
        (ax, ay), (bx, by) = line.a, line.b
        side = np.sign((bx - ax) * (pts[:, 1] - ay) - (by - ay) * (pts[:, 0] - ax))
        sides = self._sides[li]
        for k, t in enumerate(tracks):
            s = int(side[k])
            if s == 0 or (line.labels and t.label not in line.labels):
                continue  # on the line: wait to see which side it ends up on
            px, py = float(pts[k, 0]), float(pts[k, 1])
            prev = sides.get(t.track_id)
            sides[t.track_id] = (s, px, py)
            if prev is None or prev[0] == s:
                continue
            _, qx, qy = prev
            # The step q→p crosses the infinite line; does it pass between a and b?
            da = _cross(qx, qy, px, py, ax, ay)
            db = _cross(qx, qy, px, py, bx, by)
            if da * db > 0:
                continue
            direction = LEFT_TO_RIGHT if s > 0 else RIGHT_TO_LEFT
            events.append(
                AnalyticsEvent(
                    kind="line",
                    phase="instant",
                    camera_id=self.camera_id,
                    label=t.label,
                    score=t.score,
                    start_us=ts_us,
                    end_us=ts_us,
                    track_id=t.track_id,
                    line_id=line.id,
                    direction=direction,
                    box=(t.x1, t.y1, t.x2, t.y2),
                )
            )

    def _leave(self, zone: Zone, t: Track, stay: _Stay) -> AnalyticsEvent:
        ev = self._zone_event("leave", "instant", zone, t, stay.first_us, stay.last_us)
        ev.box = stay.box
        return ev

    def _zone_event(
        self, kind: str, phase: str, zone: Zone, t: Track, start_us: int, end_us: int | None
    ) -> AnalyticsEvent:
        return AnalyticsEvent(
            kind=kind,
            phase=phase,
            camera_id=self.camera_id,
            label=t.label,
            score=t.score,
            start_us=start_us,
            end_us=end_us,
            track_id=t.track_id,
            zone_id=zone.id,
            box=(t.x1, t.y1, t.x2, t.y2),
        )
