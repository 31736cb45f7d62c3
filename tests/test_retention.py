"""Retention on real segments: by days, by volume bytes, by free space, and locked bookmarks."""

from __future__ import annotations

import time
from pathlib import Path

from server.catalog import Catalog, SegmentRow
from server.clock import SystemClock
from server.config import CameraConfig, RecordingConfig
from server.datadir import DataDir
from server.recording.diskspace import StorageGuard
from server.recording.recovery import check
from server.recording.retention import DAY_US, Retention, VolumeLimits
from server.recording.segmenter import RecordingSettings, SegmentWriter
from server.service import apply_camera
from server.supervisor import IngestSupervisor
from tests.conftest import wait_until
from tests.helpers import clip_packets, ingest_packet


class FixedClock:
    """A clock that stands still at a chosen time (retention only reads "now")."""

    def __init__(self, now_us: int) -> None:
        self.now = now_us

    def now_us(self) -> int:
        return self.now


NOW = 1_800_000_000_000_000


def _record(catalog: Catalog, data: DataDir, cam: str, clip: Path, start_us: int) -> None:
    """Real segments of ``clip`` (two loops, 4 s segments) as if recorded from ``start_us``."""
    rec = SegmentWriter(catalog, data.root, cam, "main", RecordingSettings(segment_us=4_000_000))
    info, packets = clip_packets(clip, loops=2)
    rec.on_connect(info)
    first = packets[0][2]
    for payload, pts, dts, key in packets:
        media_us = int((dts - first) * info.time_base * 1_000_000)
        rec.on_packet(ingest_packet(payload, pts, dts, key, start_us + media_us, info.time_base))
    rec.close()


def _setup(tmp_path: Path, camera_clips: list, days: dict[str, float | None]):
    data = DataDir(tmp_path / "data")
    data.create()
    catalog = Catalog(data.catalog)
    clock = FixedClock(NOW)
    for i, (cam, retention_days) in enumerate(days.items()):
        cfg = CameraConfig(cam, cam, "rtsp://127.0.0.1:1/m", retention_days=retention_days)
        apply_camera(catalog, cfg, clock, "config")
        clip = camera_clips[i][0]
        _record(catalog, data, cam, clip, NOW - 3 * DAY_US + i * 1_000_000)
        _record(catalog, data, cam, clip, NOW - DAY_US // 2 + i * 1_000_000)
    return data, catalog, clock


def _paths(segs: list[SegmentRow]) -> set[str]:
    return {s.path for s in segs}


def test_retention_by_days_deletes_exactly_the_old_segments(tmp_path: Path, camera_clips) -> None:
    data, catalog, clock = _setup(tmp_path, camera_clips, {"a": 1.0, "b": None})
    before = catalog.segments()
    old_a = [s for s in before if s.stream_id == catalog.stream_id("a", "main")
             and s.end_us <= NOW - DAY_US]  # fmt: skip
    assert old_a
    report = Retention(catalog, data, VolumeLimits(), clock).run_once()
    assert _paths(report.deleted) == _paths(old_a)
    assert _paths(catalog.segments()) == _paths(before) - _paths(old_a)
    assert not any((data.root / s.path).exists() for s in old_a)
    assert catalog.garbage() == []
    assert check(catalog, data, repair=False).problems == []


def test_storage_totals_follow_real_recording_retention_and_restart(
    tmp_path: Path, camera_clips
) -> None:
    """The totals /metrics and retention read stay equal to a full sum of the segments."""

    def real_sum() -> int:
        return catalog._one("SELECT coalesce(sum(bytes), 0) FROM segments")[0]

    data, catalog, clock = _setup(tmp_path, camera_clips, {"a": 1.0, "b": None})
    before = real_sum()
    assert before > 0 and catalog.total_bytes() == before and catalog.recount_totals() == []
    report = Retention(catalog, data, VolumeLimits(), clock).run_once()
    assert report.deleted and catalog.total_bytes() == real_sum() == before - report.freed_bytes
    catalog.close()
    catalog = Catalog(data.catalog)
    assert catalog.total_bytes() == real_sum() and catalog.recount_totals() == []
    catalog.close()


def test_retention_by_bytes_deletes_the_fewest_oldest(tmp_path: Path, camera_clips) -> None:
    data, catalog, clock = _setup(tmp_path, camera_clips, {"a": None, "b": None})
    segs = catalog.segments()  # oldest first, across both cameras
    total = catalog.total_bytes()
    limit = total - segs[0].bytes - segs[1].bytes + 1  # needs the two oldest, not three
    report = Retention(catalog, data, VolumeLimits(max_bytes=limit), clock).run_once()
    assert _paths(report.deleted) == _paths(segs[:2])
    assert len(report.deleted) == 2
    assert catalog.total_bytes() <= limit


def test_locked_bookmark_keeps_its_segments(tmp_path: Path, camera_clips) -> None:
    data, catalog, clock = _setup(tmp_path, camera_clips, {"a": 1.0, "b": None})
    segs = catalog.segments(catalog.stream_id("a", "main"))
    kept = segs[1]
    catalog.add_bookmark("a", kept.start_us + 1000, kept.start_us + 2000, name="evidence",
                         locked=True, now_us=NOW)  # fmt: skip
    Retention(catalog, data, VolumeLimits(), clock).run_once()
    left = _paths(catalog.segments())
    assert kept.path in left and segs[0].path not in left
    assert (data.root / kept.path).exists()


def test_min_free_space(tmp_path: Path, camera_clips) -> None:
    data, catalog, clock = _setup(tmp_path, camera_clips, {"a": None})
    segs = catalog.segments()
    capacity = catalog.total_bytes() + 1_000  # a volume this small: free = capacity - used
    need_free = 1_000 + segs[0].bytes + segs[1].bytes // 2

    def free_bytes(_data: DataDir) -> int:
        return capacity - catalog.total_bytes()

    limits = VolumeLimits(min_free_bytes=need_free)
    report = Retention(catalog, data, limits, clock, free_bytes=free_bytes).run_once()
    assert _paths(report.deleted) == _paths(segs[:2])
    assert free_bytes(data) >= need_free


def test_full_volume_keeps_recording(tmp_path: Path, camera_clips) -> None:
    """A volume at its byte limit deletes the oldest and goes on recording the newest."""
    data = DataDir(tmp_path / "data")
    data.create()
    catalog = Catalog(data.catalog)
    clock = SystemClock()
    main = camera_clips[0][0].resolve().as_uri()  # a file:// camera, looped at real-time pace
    apply_camera(catalog, CameraConfig("cam", "cam", main), clock, "api")
    recorder = IngestSupervisor(catalog, data, clock, RecordingConfig(segment_seconds=2))
    recorder.sync()
    try:
        wait_until(lambda: len(catalog.segments(state="closed")) >= 2, 20, "two segments")
        limit = sum(s.bytes for s in catalog.segments(state="closed")[:2])
        retention = Retention(catalog, data, VolumeLimits(max_bytes=limit), clock)
        deleted: list[SegmentRow] = []
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:  # the retention loop, at a fast pace
            deleted += retention.run_once().deleted
            time.sleep(0.5)
        assert len(deleted) >= 3
        newest = catalog.segments()[-1]
        assert newest.start_us > max(s.end_us for s in deleted) - 1, "still recording"
        assert catalog.total_bytes() <= limit + newest.bytes + catalog.segments()[-2].bytes
    finally:
        recorder.stop()
    assert check(catalog, data, repair=False).problems == []


def test_a_full_volume_with_everything_locked_is_reported_not_raised(
    tmp_path: Path, camera_clips
) -> None:
    """Issue 19: every segment under a locked bookmark and the volume full: the pass says
    'unfreeable' in the storage state and deletes nothing; it raises nothing."""
    data, catalog, clock = _setup(tmp_path, camera_clips, {"a": None})
    catalog.add_bookmark("a", 0, 2**62, name="all", locked=True, now_us=NOW)
    before = _paths(catalog.segments())
    guard = StorageGuard(data, reserve_bytes=1 << 20, free_bytes=lambda _d: 1000)
    retention = Retention(catalog, data, VolumeLimits(min_free_bytes=10**9), clock,
                          free_bytes=lambda _d: 1000, guard=guard)  # fmt: skip
    assert retention.run_guarded() is not None
    assert guard.state == "unfreeable" and guard.full_events == 1
    assert _paths(catalog.segments()) == before
    metrics = {m.name: m for m in guard.collect()}
    assert [s.value for s in metrics["vigia_storage_state"].samples
            if s.labels["state"] == "unfreeable"] == [1.0]  # fmt: skip


def test_the_reserve_is_given_back_on_a_full_volume_and_taken_again(
    tmp_path: Path, camera_clips
) -> None:
    """The volume's free space follows the catalog's bytes (what deleting segments frees)."""
    data, catalog, clock = _setup(tmp_path, camera_clips, {"a": None})
    total = catalog.total_bytes()
    held = {"full": False}

    def free_bytes(_d: DataDir) -> int:
        return (1000 if held["full"] else 10**9) + total - catalog.total_bytes()

    guard = StorageGuard(data, reserve_bytes=1 << 20, free_bytes=free_bytes)
    assert guard.ensure_reserve() and guard.reserve_held() >= 1 << 20
    held["full"] = True
    before = sorted(catalog.segments(), key=lambda s: s.start_us)
    retention = Retention(catalog, data, VolumeLimits(), clock, free_bytes=free_bytes, guard=guard)
    report = retention.run_once()
    n = len(report.deleted)
    assert report.reasons == {"volume-full": n} and _paths(report.deleted) == _paths(before[:n])
    need = guard.floor_bytes + (1 << 20) - 1000  # room for the floor and the reserve
    assert report.freed_bytes >= need > report.freed_bytes - report.deleted[-1].bytes
    assert guard.state == "ok" and guard.reserve_held() >= 1 << 20  # taken again
