"""Zones, lines and events over tracks that follow known paths (no video involved)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

import numpy as np
import pytest

from server.analytics.events import AnalyticsEvent, MotionEvents, ObjectEvents, PathRecorder
from server.analytics.tracker import Track
from server.analytics.zones import Line, Zone, ZoneEngine, points_in_polygon

T0 = 1_700_000_000_000_000
GAPS_US = (150_000, 250_000, 200_000, 300_000, 100_000)  # irregular analysis intervals


def track(
    tid: int, x: float, y: float, ts: int, label: str = "person", score: float = 0.8
) -> Track:
    """A 0.1 x 0.2 box whose reference point (bottom centre) is at (x, y)."""
    return Track(tid, label, score, x - 0.05, y - 0.2, x + 0.05, y, ts, 5, True, T0)


def frame_times(n: int) -> list[int]:
    out, ts = [], T0 + 37_000  # offset so no frame lands exactly on a zone edge
    for k in range(n):
        out.append(ts)
        ts += GAPS_US[k % len(GAPS_US)]
    return out


def walk(
    engine: ZoneEngine,
    times: Iterable[int],
    where: Callable[[float], tuple[float, float] | None],
    tid: int = 1,
    label: str = "person",
    end_lost: bool = False,
) -> list[AnalyticsEvent]:
    """Feed one track along where(t_s) (None: not seen that frame); returns all events."""
    events: list[AnalyticsEvent] = []
    last = None
    for ts in times:
        pos = where((ts - T0) / 1e6)
        tracks = [] if pos is None else [track(tid, *pos, ts, label)]
        if tracks:
            last = tracks[0]
        events += engine.update(tracks, [], ts)
    if end_lost and last is not None:
        events += engine.update([], [last], last.ts_us + 3_000_000)
    return events


def kinds(events: list[AnalyticsEvent]) -> list[tuple[str, str]]:
    return [(e.kind, e.phase) for e in events]


ZONE_BOX = ((0.4, 0.4), (0.6, 0.4), (0.6, 0.8), (0.4, 0.8))


def test_enter_leave_and_loiter_happen_at_the_right_frames():
    zone = Zone("z1", "door", ZONE_BOX, min_dwell_us=500_000, loiter_us=1_200_000)
    engine = ZoneEngine("cam1", [zone], [])
    times = frame_times(40)

    def x_at(t_s: float) -> float:
        return 0.1 + 0.1 * t_s  # inside while 3 s < t < 5 s

    events = walk(engine, times, lambda t: (x_at(t), 0.6))
    inside = [ts for ts in times if 0.4 < x_at((ts - T0) / 1e6) < 0.6]
    first_in, last_in = inside[0], inside[-1]
    enter_at = next(ts for ts in inside if ts - first_in >= 500_000)
    loiter_at = next(ts for ts in inside if ts - first_in >= 1_200_000)
    assert kinds(events) == [("enter", "instant"), ("loiter", "instant"), ("leave", "instant")]
    enter, loiter, leave = events
    assert (enter.start_us, enter.end_us, enter.zone_id, enter.track_id) == (
        first_in,
        first_in,
        "z1",
        1,
    )
    x = x_at((enter_at - T0) / 1e6)
    assert enter.box == pytest.approx((x - 0.05, 0.4, x + 0.05, 0.6))
    assert (loiter.start_us, loiter.end_us) == (first_in, loiter_at)
    assert (leave.start_us, leave.end_us) == (first_in, last_in)
    assert all(e.camera_id == "cam1" and e.label == "person" for e in events)

    # Each event is emitted in the frame it describes.
    emitted = {}
    engine2 = ZoneEngine("cam1", [zone], [])
    for ts in times:
        for e in engine2.update([track(1, x_at((ts - T0) / 1e6), 0.6, ts)], [], ts):
            emitted[e.kind] = ts
    first_out = next(ts for ts in times if ts > last_in)
    assert emitted == {"enter": enter_at, "loiter": loiter_at, "leave": first_out}


def test_short_stays_missed_frames_lost_tracks_and_second_stays():
    zone = Zone("z", "z", ZONE_BOX, min_dwell_us=1_000_000, loiter_us=2_000_000)
    engine = ZoneEngine("cam", [zone], [])
    times = frame_times(60)
    # 0.5 s inside only: shorter than min_dwell, so nothing at all.
    assert walk(engine, times[:20], lambda t: (0.5, 0.6) if 1.0 < t < 1.5 else (0.2, 0.6)) == []

    # Inside from ~1 s, unseen for a few frames (not lost), then lost while inside.
    def path(t: float) -> tuple[float, float] | None:
        if t < 1.0:
            return (0.2, 0.6)
        return None if 2.0 < t < 2.6 else (0.5, 0.6)

    events = walk(engine, times[:25], path, tid=2, end_lost=True)
    seen_inside = [ts for ts in times[:25] if path((ts - T0) / 1e6) == (0.5, 0.6)]
    assert kinds(events) == [("enter", "instant"), ("loiter", "instant"), ("leave", "instant")]
    assert events[2].start_us == seen_inside[0] and events[2].end_us == seen_inside[-1]
    assert events[2].track_id == 2

    # Out and back in: a second stay gives a second enter and a second loiter.
    def back_and_forth(t: float) -> tuple[float, float]:
        return (0.5, 0.6) if t < 3.0 or t > 4.0 else (0.9, 0.6)

    events = walk(engine, times[:45], back_and_forth, tid=3)
    assert kinds(events) == [
        ("enter", "instant"),
        ("loiter", "instant"),
        ("leave", "instant"),
        ("enter", "instant"),
        ("loiter", "instant"),
    ]
    assert events[3].start_us > events[2].end_us


def test_label_filters_and_tracks_side_by_side():
    cars_only = Zone("c", "parking", ZONE_BOX, labels=frozenset({"car"}))
    everyone = Zone("e", "all", ZONE_BOX)
    engine = ZoneEngine("cam", [cars_only, everyone], [])
    times = frame_times(10)
    events = []
    for ts in times:
        t_s = (ts - T0) / 1e6
        inside = 0.5 if t_s < 1.0 else 0.9
        tracks = [track(1, inside, 0.6, ts, "person"), track(2, inside, 0.7, ts, "car")]
        events += engine.update(tracks, [], ts)
    got = sorted((e.kind, e.zone_id, e.track_id, e.label) for e in events)
    assert got == [
        ("enter", "c", 2, "car"),
        ("enter", "e", 1, "person"),
        ("enter", "e", 2, "car"),
        ("leave", "c", 2, "car"),
        ("leave", "e", 1, "person"),
        ("leave", "e", 2, "car"),
    ]


# Line a→b pointing up the image: looking from a to b, left is -x, right is +x.
UP = Line("l1", "gate", (0.5, 0.9), (0.5, 0.2))


def crossings(line: Line, xs: list[float], y: float = 0.6, label: str = "person") -> list:
    engine = ZoneEngine("cam", [], [line])
    times = frame_times(len(xs))
    out = []
    for ts, x in zip(times, xs, strict=True):
        for e in engine.update([track(1, x, y, ts, label)], [], ts):
            out.append((e.kind, e.phase, e.direction, e.start_us, e.end_us, e.line_id))
    return out


def test_a_line_across_the_path_gives_one_crossing_with_direction():
    xs = [0.1 + 0.05 * k for k in range(17)]  # 0.1 .. 0.9 to the right, never exactly 0.5
    xs = [x if abs(x - 0.5) > 1e-9 else 0.52 for x in xs]
    times = frame_times(len(xs))
    first_past = times[next(k for k, x in enumerate(xs) if x > 0.5)]
    assert crossings(UP, xs) == [("line", "instant", "left_to_right", first_past, first_past, "l1")]
    back = crossings(UP, xs[::-1])
    assert [(c[2], c[3]) for c in back] == [
        ("right_to_left", frame_times(17)[next(k for k, x in enumerate(xs[::-1]) if x < 0.5)])
    ]
    # The same line drawn the other way round swaps the direction.
    down = Line("l2", "gate", UP.b, UP.a)
    assert [c[2] for c in crossings(down, xs)] == ["right_to_left"]
    # Horizontal, drawn left to right on screen: left is up, so walking down is left_to_right.
    horizontal = Line("h", "h", (0.2, 0.5), (0.8, 0.5))
    engine = ZoneEngine("cam", [], [horizontal])
    events = walk(engine, frame_times(10), lambda t: (0.4, 0.3 + 0.2 * t))
    assert [e.direction for e in events] == ["left_to_right"]


def test_touching_passing_beside_and_stopping_on_the_line():
    assert crossings(UP, [0.3, 0.4, 0.5, 0.4, 0.3]) == []  # touches, goes back
    assert crossings(UP, [0.3, 0.4, 0.5, 0.5, 0.5]) == []  # stops on the line
    assert crossings(UP, [0.3, 0.7, 0.3], y=0.95) == []  # crosses the extension below a
    assert crossings(UP, [0.3, 0.7, 0.3], y=0.1) == []  # ... and above b
    # On the line, then over: one crossing, counted when seen on the far side.
    over = crossings(UP, [0.3, 0.5, 0.5, 0.7])
    assert [(c[2], c[3]) for c in over] == [("left_to_right", frame_times(4)[3])]
    # Back and forth: one crossing per passage, alternating directions.
    assert [c[2] for c in crossings(UP, [0.3, 0.7, 0.3, 0.7])] == [
        "left_to_right",
        "right_to_left",
        "left_to_right",
    ]


def test_line_label_filter_and_lost_tracks_forget_their_side():
    people = Line("p", "p", UP.a, UP.b, labels=frozenset({"person"}))
    assert crossings(people, [0.3, 0.7], label="car") == []
    assert len(crossings(people, [0.3, 0.7], label="person")) == 1
    engine = ZoneEngine("cam", [], [UP])
    t1 = track(1, 0.3, 0.6, T0)
    engine.update([t1], [], T0)
    engine.update([], [t1], T0 + 100_000)
    # A later track that reuses nothing of track 1 starts without a side.
    assert engine.update([track(1, 0.7, 0.6, T0 + 200_000)], [], T0 + 200_000) == []


def test_bad_zones_and_lines_are_refused():
    with pytest.raises(ValueError, match="3 or more"):
        Zone("z", "z", ((0.0, 0.0), (1.0, 1.0)))
    with pytest.raises(ValueError, match="finite"):
        Zone("z", "z", ((0.0, 0.0), (1.0, float("nan")), (0.0, 1.0)))
    with pytest.raises(ValueError, match="different"):
        Line("l", "l", (0.5, 0.5), (0.5, 0.5))
    with pytest.raises(ValueError, match="unique"):
        ZoneEngine("cam", [Zone("z", "a", ZONE_BOX), Zone("z", "b", ZONE_BOX)], [])


def test_points_in_polygon_concave():
    # An L shape: the notch at the top right is outside.
    poly = ((0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0))
    pts = np.array([(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (1.5, 0.5), (0.25, 0.9)])
    assert points_in_polygon(pts, np.array(poly)).tolist() == [True, False, True, False, True]


def test_object_events_start_best_snapshot_and_end_with_path():
    objects = ObjectEvents("cam")
    scores = [0.6, 0.5, 0.7, 0.7, 0.7, 0.65]
    widths = [0.1, 0.1, 0.1, 0.2, 0.15, 0.3]
    times = frame_times(len(scores))
    events: list[AnalyticsEvent] = []
    last = None
    for ts, s, w in zip(times, scores, widths, strict=True):
        t = Track(4, "car", s, 0.4 - w / 2, 0.3, 0.4 + w / 2, 0.5, ts, 3, True, times[0] - 200_000)
        last = t
        events += objects.update([t], [], ts)
        # The next frame runs no detector, so the pipeline passes the same tracks again.
        events += objects.update([t], [], ts + 40_000)
    assert last is not None
    events += objects.update([], [last], times[-1] + 2_500_000)
    assert kinds(events) == [
        ("object", "start"),
        ("object", "update"),
        ("object", "update"),
        ("object", "end"),
    ]
    start, up1, up2, end = events
    assert start.best_changed and up1.best_changed and up2.best_changed and not end.best_changed
    assert start.start_us == times[0] - 200_000 and start.end_us is None  # first seen
    assert (start.score, up1.score, up2.score) == (0.6, 0.7, 0.7)
    assert up2.box == pytest.approx((0.3, 0.3, 0.5, 0.5))  # larger of the two 0.7 boxes
    assert end.end_us == times[-1] and end.score == 0.7 and end.box == up2.box
    assert end.track_id == 4 and end.label == "car"
    assert end.path == [(ts, pytest.approx(0.4), 0.5) for ts in times]
    # Unknown lost tracks (never confirmed here) give nothing.
    assert objects.update([], [last], times[-1] + 3_000_000) == []


def test_object_path_stays_bounded_and_spread():
    objects = ObjectEvents("cam", max_path_points=200)
    times = [T0 + k * 200_000 for k in range(1234)]
    last = None
    for ts in times:
        x = (ts - T0) / 1e6 / 300
        last = Track(1, "person", 0.8, x, 0.1, x + 0.1, 0.3, ts, 9, True, T0)
        objects.update([last], [], ts)
    (end,) = objects.update([], [last], times[-1] + 3_000_000)
    path = end.path
    assert 100 <= len(path) <= 200
    assert path[0][0] == times[0] and path[-1][0] == times[-1]
    steps = [b[0] - a[0] for a, b in itertools.pairwise(path[:-1])]
    assert len(set(steps)) == 1  # evenly thinned (the last point is added as is)
    for n in (1, 2, 3, 199, 200, 201, 401):
        rec = PathRecorder(200)
        for k in range(n):
            rec.add(k, 0.0, 0.0)
        pts = rec.points()
        assert len(pts) <= 200 and pts[0][0] == 0 and pts[-1][0] == n - 1


def test_motion_events():
    motion = MotionEvents("cam", end_after_us=1_000_000)
    pattern = [0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0]  # one frame per 200 ms
    events = []
    for k, active in enumerate(pattern):
        events += [(k, e) for e in motion.update(bool(active), T0 + k * 200_000)]
    assert [(k, e.phase) for k, e in events] == [(1, "start"), (9, "end"), (12, "start")]
    assert events[0][1].start_us == T0 + 200_000 and events[1][1].end_us == T0 + 4 * 200_000
    assert events[1][1].kind == "motion" and events[1][1].start_us == T0 + 200_000
    assert motion.active
    last = motion.finish()
    assert (last.phase, last.start_us, last.end_us) == ("end", T0 + 12 * 200_000, T0 + 12 * 200_000)
    assert not motion.active
