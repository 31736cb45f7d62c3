"""ByteTracker on synthetic detections: ids through crossings, misses, low scores, gaps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from server.analytics.tracker import ByteTracker, Track, iou_matrix

T0 = 1_700_000_000_000_000


def det(label: str, score: float, box: tuple[float, float, float, float]):
    from server.analytics.detector import Detection  # written alongside; imported when used

    return Detection(label, float(score), *(float(v) for v in box))


@dataclass
class Walker:
    """A box moving linearly: centre (x, y) at t_s = 0, velocity per second, size."""

    label: str
    x: float
    y: float
    vx: float
    vy: float
    w: float = 0.08
    h: float = 0.25

    def box(self, t_s: float) -> tuple[float, float, float, float]:
        cx, cy = self.x + self.vx * t_s, self.y + self.vy * t_s
        return (cx - self.w / 2, cy - self.h / 2, cx + self.w / 2, cy + self.h / 2)


def irregular_times(rng: np.random.Generator, n: int) -> list[int]:
    gaps = rng.integers(100_000, 300_001, size=n)
    gaps[0] = 0
    return (T0 + np.cumsum(gaps)).tolist()


def assign(tracks: list[Track], truth: dict[str, tuple]) -> dict[str, int]:
    """Ground-truth name -> id of the track covering it (optimal matching, IoU >= 0.5)."""
    if not tracks:
        return {}
    names = list(truth)
    tb = np.array([(t.x1, t.y1, t.x2, t.y2) for t in tracks])
    iou = iou_matrix(np.array([truth[n] for n in names]), tb)
    rows, cols = linear_sum_assignment(-iou)
    return {
        names[r]: tracks[c].track_id for r, c in zip(rows, cols, strict=True) if iou[r, c] >= 0.5
    }


def test_crossing_objects_keep_their_ids_through_misses_and_low_scores():
    rng = np.random.default_rng(7)
    a = Walker("person", 0.3, 0.50, 0.05, 0.0)
    b = Walker("person", 0.7, 0.53, -0.05, 0.0)  # passes a around t = 4 s, boxes overlapping
    c = Walker("person", 0.5, 0.2, 0.0, 0.02, w=0.06, h=0.15)  # a newcomer from frame 40
    times = irregular_times(rng, 60)
    missed = {("a", 10), ("a", 11), ("b", 20), ("a", 24), ("b", 25)}
    low = {("a", 15), ("b", 22), ("a", 30)}  # scores 0.3: found only by the second stage
    tracker = ByteTracker(max_lost_us=1_000_000)
    seen: dict[str, set[int]] = {"a": set(), "b": set(), "c": set()}
    reported: dict[str, int] = {"a": 0, "b": 0, "c": 0}
    crossing_frames = 0
    for k, ts in enumerate(times):
        t_s = (ts - T0) / 1e6
        truth = {"a": a.box(t_s), "b": b.box(t_s)}
        if k >= 40:
            truth["c"] = c.box(t_s)
        dets = []
        for name, box in truth.items():
            if (name, k) in missed:
                continue
            noisy = tuple(np.asarray(box) + rng.normal(0, 0.003, 4))
            score = 0.3 if (name, k) in low else rng.uniform(0.6, 0.95)
            dets.append(det("person", score, noisy))
        dets.append(det("person", 0.05, (0.0, 0.0, 0.01, 0.01)))  # below low_threshold: ignored
        rng.shuffle(dets)
        tracks = tracker.update(dets, ts)
        assert len({t.track_id for t in tracks}) == len(tracks)
        assert len(tracks) <= len(truth)
        if iou_matrix(np.array([truth["a"]]), np.array([truth["b"]]))[0, 0] > 0.3:
            crossing_frames += 1
        found = assign(tracks, truth)
        for name in truth:
            if name in found:
                seen[name].add(found[name])
                reported[name] += 1
            elif (name, k) not in missed and k not in (0, 40):
                # Every detected frame after the first (min_hits = 2) is reported.
                pytest.fail(f"{name} detected at frame {k} but no track covers it: {tracks}")
        assert tracker.lost == []
    assert crossing_frames >= 3, "the walkers must really overlap for the test to mean anything"
    assert all(len(ids) == 1 for ids in seen.values()), f"id switches: {seen}"
    ida, idb, idc = (next(iter(seen[n])) for n in "abc")
    assert ida < idc and idb < idc and ida != idb
    assert reported["a"] == 60 - 1 - 3 and reported["b"] == 60 - 1 - 2 and reported["c"] == 19

    # Everybody leaves: each track is listed in `lost` exactly once, after max_lost_us.
    last_seen = times[-1]
    lost_at: dict[int, int] = {}
    ts = last_seen
    for _ in range(12):
        ts += 150_000
        assert tracker.update([], ts) == []
        for t in tracker.lost:
            assert t.track_id not in lost_at
            lost_at[t.track_id] = ts
            assert t.ts_us == last_seen and t.confirmed
    assert set(lost_at) == {ida, idb, idc}
    for ended in lost_at.values():
        assert ended - last_seen > 1_000_000 >= ended - 150_000 - last_seen
    assert tracker.active_count == 0


def test_velocity_is_per_second_so_an_occluded_walker_is_found_again():
    """Irregular gaps, then 1.2 s unseen: only the Kalman prediction can bridge that."""
    rng = np.random.default_rng(3)
    w = Walker("person", 0.1, 0.5, 0.15, 0.0)
    tracker = ByteTracker(max_lost_us=2_000_000)
    times = irregular_times(rng, 25)
    ids = set()
    for ts in times:
        tracks = tracker.update([det("person", 0.9, w.box((ts - T0) / 1e6))], ts)
        ids.update(t.track_id for t in tracks)
    assert len(ids) == 1
    (tid,) = ids
    # A gap of 1.2 s: the walker moved 0.18, more than twice its width, so no IoU without motion.
    back = times[-1] + 1_200_000
    box = w.box((back - T0) / 1e6)
    stale = w.box((times[-1] - T0) / 1e6)
    assert iou_matrix(np.array([box]), np.array([stale]))[0, 0] == 0.0
    (track,) = tracker.update([det("person", 0.9, box)], back)
    assert track.track_id == tid
    assert np.allclose((track.x1, track.y1, track.x2, track.y2), box, atol=0.01)
    assert track.start_us == times[0] and track.ts_us == back and track.hits == 26


def test_labels_never_share_a_track():
    tracker = ByteTracker(min_hits=1)
    box = (0.4, 0.4, 0.5, 0.6)
    (p,) = tracker.update([det("person", 0.9, box)], T0)
    both = tracker.update([det("person", 0.9, box), det("car", 0.9, box)], T0 + 200_000)
    assert {t.label for t in both} == {"person", "car"}
    assert {t.track_id for t in both if t.label == "person"} == {p.track_id}
    car_id = next(t.track_id for t in both if t.label == "car")
    assert car_id > p.track_id
    # The person vanishes and a car takes its exact place: the car keeps its own id.
    (c,) = tracker.update([det("car", 0.9, box)], T0 + 400_000)
    assert c.track_id == car_id
    # A low-score detection of another label does not continue the person either.
    assert tracker.update([det("dog", 0.3, box)], T0 + 600_000) == []


def test_tentative_tracks_need_min_hits_and_unmatched_ones_are_dropped():
    tracker = ByteTracker(min_hits=3)
    box = (0.1, 0.1, 0.2, 0.3)
    assert tracker.update([det("person", 0.9, box)], T0) == []
    assert tracker.update([det("person", 0.9, box)], T0 + 100_000) == []
    (t,) = tracker.update([det("person", 0.9, box)], T0 + 200_000)
    assert t.confirmed and t.hits == 3 and t.start_us == T0 and t.track_id == 1
    # A one-frame blip never becomes a track, and never shows up in `lost`.
    other = (0.7, 0.7, 0.8, 0.9)
    tracker.update([det("person", 0.9, box), det("person", 0.9, other)], T0 + 300_000)
    tracker.update([det("person", 0.9, box)], T0 + 400_000)
    tracker.update([det("person", 0.9, box), det("person", 0.9, other)], T0 + 500_000)
    (t,) = tracker.update([det("person", 0.9, box)], T0 + 600_000)
    assert t.track_id == 1
    # Low-score detections alone never start a track.
    tracker2 = ByteTracker(min_hits=1)
    assert tracker2.update([det("person", 0.4, box)], T0) == []


def test_bad_input_is_refused_clearly():
    tracker = ByteTracker()
    tracker.update([det("person", 0.9, (0.1, 0.1, 0.2, 0.2))], T0)
    with pytest.raises(ValueError, match="backwards"):
        tracker.update([], T0 - 1)
    with pytest.raises(ValueError, match="x1 <= x2"):
        tracker.update([det("person", 0.9, (0.3, 0.1, 0.2, 0.2))], T0 + 1)
    with pytest.raises(ValueError, match="finite"):
        tracker.update([det("person", float("nan"), (0.1, 0.1, 0.2, 0.2))], T0 + 1)
    with pytest.raises(ValueError):
        ByteTracker(high_threshold=0.2, low_threshold=0.5)
    # A refused frame leaves the tracker as it was.
    (t,) = tracker.update([det("person", 0.9, (0.1, 0.1, 0.2, 0.2))], T0 + 2)
    assert t.track_id == 1 and t.hits == 2


def test_finish_ends_every_confirmed_track():
    tracker = ByteTracker(min_hits=1)
    tracker.update([det("person", 0.9, (0.1, 0.1, 0.2, 0.3))], T0)
    tracker.update([det("car", 0.9, (0.5, 0.5, 0.7, 0.6))], T0 + 100_000)
    ended = tracker.finish()
    assert sorted(t.label for t in ended) == ["car", "person"]
    assert tracker.lost == ended and tracker.active_count == 0
