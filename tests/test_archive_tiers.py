"""Archive policies, tiers and restore, in process against a real SeaweedFS on 127.0.0.1
(docs/design/archive.md). Segments here are files of known bytes with catalog rows made the way
the recorder makes them (inserted open, then closed with their SHA-256), so the times of events,
bookmarks and retention can be placed exactly."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from server.archive import Archiver, ArchiveStore
from server.archive.ledger import Ledger
from server.archive.store import Credentials
from server.archive.verify import verify_archive
from server.catalog import Catalog, SegmentRow
from server.config import ArchiveConfig
from server.datadir import DataDir
from server.protocol.fragindex import encode_fragment_index
from server.protocol.timeutil import US_PER_SECOND, now_us
from server.recording.retention import Retention, VolumeLimits
from server.recording.segmenter import segment_relpath
from tests.conftest import ROOT, wait_until
from tests.s3server import ACCESS_KEY, SECRET_KEY, SeaweedS3

S = US_PER_SECOND


class FixedClock:
    def __init__(self, t: int) -> None:
        self.t = t

    def now_us(self) -> int:
        return self.t


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("s3"))
    server.start()
    yield server
    server.stop()


class Site:
    """A data dir and catalog with one archiver over a fresh prefix of the test bucket."""

    def __init__(self, root: Path, s3: SeaweedS3, **cfg: object) -> None:
        self.data = DataDir(root / "data")
        self.data.create()
        self.catalog = Catalog(self.data.catalog)
        self.clock = FixedClock(now_us())
        self.cfg = ArchiveConfig(endpoint=s3.endpoint, bucket=s3.bucket,
                                 prefix=f"{root.name}/", retry_max_s=2, **cfg)  # type: ignore[arg-type]  # fmt: skip
        self.store = ArchiveStore(self.cfg, Credentials(ACCESS_KEY, SECRET_KEY))
        self.archiver = Archiver(self.cfg, self.store, self.catalog, self.data.root, self.clock)
        self.ledger = Ledger(self.catalog)
        self.s3 = s3

    def camera(self, camera_id: str) -> int:
        self.catalog.upsert_camera(camera_id, camera_id.title(), {"main": (
            f"rtsp://user:secret@cam/{camera_id}", True)}, now_us=self.clock.t)  # fmt: skip
        stream = self.catalog.stream_id(camera_id, "main")
        return self.catalog.begin_run(stream, self.clock.t - 7200 * S)

    def segment(self, camera_id: str, run: int, start_us: int, size: int = 50_000) -> SegmentRow:
        """A closed 10 s segment of ``size`` random bytes starting at ``start_us``."""
        stream = self.catalog.stream_id(camera_id, "main")
        path = segment_relpath(camera_id, "main", start_us)
        body = os.urandom(size)
        (self.data.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.data.root / path).write_bytes(body)
        index = encode_fragment_index(1000, [(size - 1000, 10 * S)])
        row = SegmentRow(0, stream, run, start_us, start_us + 10 * S, 10 * S, path, size, 250,
                         "h264", 640, 360, index, "open")  # fmt: skip
        sid = self.catalog.insert_segment(row)
        sha = hashlib.sha256(body).hexdigest()
        self.catalog.update_segment(sid, start_us=start_us, end_us=start_us + 10 * S,
                                    media_duration_us=10 * S, bytes_=size, frames=250,
                                    fragment_index=index, state="closed", sha256=sha)  # fmt: skip
        seg = self.catalog.segment(sid)
        assert seg is not None and seg.sha256 == sha
        return seg

    def drained(self) -> bool:
        return self.ledger.backlog().segments == 0

    def media_keys(self) -> set[str]:
        prefix = self.cfg.prefix
        return {k[len(prefix) :] for k in self.s3.objects(prefix) if k.endswith(".mp4")}

    def close(self) -> None:
        self.archiver.stop()
        self.catalog.close()


@pytest.fixture
def site(tmp_path: Path, s3: SeaweedS3) -> Iterator[Site]:
    made: list[Site] = []
    yield lambda **cfg: made.append(Site(tmp_path, s3, **cfg)) or made[-1]  # type: ignore[misc]
    for s in made:
        s.close()


def test_policy_events_sends_only_padded_event_and_bookmark_ranges(site) -> None:
    s = site(mode="events", events_pre_s=10, events_post_s=10)
    run = s.camera("door")
    quiet = s.camera("yard")
    s.archiver.set_camera_mode("yard", "none")
    t0 = s.clock.t - 3600 * S
    segs = [s.segment("door", run, t0 + i * 10 * S) for i in range(10)]
    other = s.segment("yard", quiet, t0)
    s.catalog.read("SELECT 1")  # rows in place before the uploader looks
    with s.catalog.transaction() as c:
        c.execute("INSERT INTO events (camera_id, kind, label, score, start_us, end_us)"
                  " VALUES ('door', 'object', 'person', 0.9, ?, ?)",
                  (t0 + 45 * S, t0 + 47 * S))  # fmt: skip
    s.catalog.add_bookmark("door", t0 + 95 * S, t0 + 96 * S, now_us=s.clock.t)
    s.archiver.start()
    wait_until(s.drained, 30, "the backlog decided and sent")
    # event 45..47 s padded to 35..57 s: segments 30, 40, 50; bookmark 95..96 padded: 80, 90
    want = {segs[i].path for i in (3, 4, 5, 8, 9)}
    assert s.media_keys() == want
    assert other.path not in s.media_keys()
    assert {a.segment_id for a in s.ledger.all_archived()} == {segs[i].id for i in (3, 4, 5, 8, 9)}
    status = s.archiver.status()
    assert status.state == "ok" and status.archived_segments == 5 and status.backlog_segments == 0


def test_events_policy_waits_for_the_padding_after_a_segment(site) -> None:
    """A segment that just closed is not dropped while an event may still come within the
    padding; it is sent when one does."""
    s = site(mode="events", events_pre_s=10, events_post_s=10)
    run = s.camera("gate")
    seg = s.segment("gate", run, s.clock.t - 12 * S)  # ended 2 s ago
    s.archiver.start()
    wait_until(lambda: s.catalog.read("SELECT tries, next_try_us FROM archive_backlog")[0][1] > 0,
               10, "the segment deferred")  # fmt: skip
    assert not s.media_keys() and s.ledger.backlog().segments == 1
    with s.catalog.transaction() as c:
        c.execute("INSERT INTO events (camera_id, kind, label, score, start_us, end_us)"
                  " VALUES ('gate', 'motion', 'motion', 0, ?, ?)",
                  (s.clock.t + 5 * S, s.clock.t + 6 * S))  # fmt: skip
    s.clock.t += 20 * S
    s.archiver.wake()
    wait_until(s.drained, 20, "the deferred segment sent")
    assert s.media_keys() == {seg.path}


def test_archive_days_deletes_from_the_bucket_and_verify_reads_back(site) -> None:
    s = site(archive_days=1)
    run = s.camera("door")
    old = [s.segment("door", run, s.clock.t - 3 * 86_400 * S + i * 10 * S) for i in range(3)]
    new = [s.segment("door", run, s.clock.t - 3600 * S + i * 10 * S) for i in range(2)]
    s.archiver.start()
    wait_until(s.drained, 30, "every segment sent")
    report = verify_archive(s.ledger, s.store)
    assert report.ok and report.checked == 5, report.problems
    assert s.archiver.expire_once() == 3
    assert s.media_keys() == {x.path for x in new}
    manifests = {k for k in s.s3.objects(s.cfg.prefix) if k.endswith(".mp4.json")}
    assert len(manifests) == 2
    assert {a.segment_id for a in s.ledger.all_archived()} == {x.id for x in new}
    assert s.archiver.status().archive_deleted_segments == 3
    # an object changed in the bucket is caught by verify
    s.store.put(new[0].path, b"tampered", 8, hashlib.sha256(b"tampered").hexdigest())
    report = verify_archive(s.ledger, s.store)
    assert not report.ok and new[0].path in report.problems[0]
    assert old  # (the old ones' local files stay: local retention is separate)


def test_a_cameras_own_archive_days_and_events_leave_the_bucket(site) -> None:
    """``archive_days`` per camera (PUT /cameras/{id}/archive sets it): the door keeps half a
    day, the yard follows the default (none: forever). Old events leave with the footage, even
    once their local row is gone."""
    s = site(archive_days=None)
    door, yard = s.camera("door"), s.camera("yard")
    old = s.clock.t - 86_400 * S
    segs = {cam: s.segment(cam, run, old) for cam, run in (("door", door), ("yard", yard))}
    with s.catalog.transaction() as c:
        for eid, cam in ((1, "door"), (2, "yard")):
            c.execute("INSERT INTO events (id, camera_id, kind, label, score, start_us, end_us)"
                      " VALUES (?, ?, 'object', 'person', 0.9, ?, ?)",
                      (eid, cam, old + S, old + 2 * S))  # fmt: skip
    s.archiver.start()
    wait_until(lambda: s.drained() and len(s.s3.objects(s.cfg.prefix + "catalog/events/")) == 2,
               30, "segments and events sent")  # fmt: skip
    with s.catalog.transaction() as c:  # local event rows may go before the bucket's
        c.execute("DELETE FROM events WHERE id = 1")
    s.archiver.set_camera_days("door", 0.5)  # (set now: the housekeeping expires at start too)
    assert s.archiver.expire_once() == 1
    assert s.media_keys() == {segs["yard"].path}
    events = {k.rsplit("/", 1)[1] for k in s.s3.objects(s.cfg.prefix + "catalog/events/")}
    assert events == {"2.json"}
    assert s.archiver.expire_once() == 0 and s.ledger.expired_events(s.clock.t, None) == []
    s.segment("door", door, s.clock.t - 60 * S)  # the next upload sends the camera's row again
    wait_until(lambda: msgspec.json.decode(s.s3.get(s.cfg.prefix + "catalog/cameras/door.json"))
               ["archive_days"] == 0.5, 30, "the camera's archive_days in the bucket")  # fmt: skip


def test_local_retention_deletes_archived_segments_first(site) -> None:
    s = site()
    run = s.camera("door")
    t0 = s.clock.t - 7200 * S
    segs = [s.segment("door", run, t0 + i * 10 * S, size=10_000) for i in range(6)]
    s.archiver.start()
    wait_until(s.drained, 30, "the first segments sent")
    s.archiver.stop()  # later segments stay in the backlog
    later = [s.segment("door", run, t0 - 3600 * S + i * 10 * S, size=10_000) for i in range(3)]
    retention = Retention(s.catalog, s.data, VolumeLimits(max_bytes=50_000), s.clock)
    retention.on_unarchived = s.archiver.note_unarchived_deleted
    report = retention.run_once()
    # 90 kB over a 50 kB cap: 4 segments go, the archived ones, though the others are older
    assert {x.id for x in report.deleted} == {x.id for x in segs[:4]}
    assert s.archiver.status().unarchived_deleted_segments == 0
    retention.limits = VolumeLimits(max_bytes=15_000)
    retention.run_once()
    assert s.archiver.status().unarchived_deleted_segments == 2
    assert {x.id for x in s.catalog.segments()} == {later[2].id}


def test_restore_rebuilds_cameras_segments_and_events_from_the_bucket(site, tmp_path: Path) -> None:
    s = site()
    run = s.camera("door")
    t0 = s.clock.t - 600 * S
    segs = [s.segment("door", run, t0 + i * 10 * S) for i in range(4)]
    snap = s.data.root / "snapshots" / "door" / "1.jpg"
    snap.parent.mkdir(parents=True)
    snap.write_bytes(b"\xff\xd8jpeg\xff\xd9")
    with s.catalog.transaction() as c:
        c.execute("INSERT INTO events (id, camera_id, kind, label, score, start_us, end_us, box,"
                  " snapshot) VALUES (7, 'door', 'object', 'car', 0.8, ?, ?, '[1, 2, 3, 4]', ?)",
                  (t0 + 5 * S, t0 + 8 * S, "snapshots/door/1.jpg"))  # fmt: skip
    hour = time.strftime("%Y%m%d%H", time.gmtime(s.clock.t / S - 7200))
    now_hour = time.strftime("%Y%m%d%H", time.gmtime(s.clock.t / S))
    meta = {f"metadata/tracks/door/{hour}.parquet": b"PAR1 tracks PAR1",
            f"metadata/motion/door/{hour}.motion": b"VGMOTN01" + bytes(8),
            f"metadata/motion/door/{now_hour}.motion": b"VGMOTN01 still being written"}  # fmt: skip
    for rel, body in meta.items():
        (s.data.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (s.data.root / rel).write_bytes(body)
    s.archiver.start()
    wait_until(lambda: s.drained() and s.catalog.read("SELECT count(*) FROM archive_events")[0][0],
               30, "segments and the event sent")  # fmt: skip
    s.archiver.send_metadata_once()  # (the housekeeping thread may have sent them already)
    assert s.archiver.send_metadata_once() == 0, "unchanged files are not sent again"
    sent = {k[len(s.cfg.prefix) :] for k in s.s3.objects(s.cfg.prefix + "metadata/")}
    assert sent == set(list(meta)[:2]), "only hours that are over"
    new = DataDir(tmp_path / "restored")
    config = tmp_path / "restore.toml"
    config.write_text(
        f'[archive]\nendpoint = "{s.cfg.endpoint}"\nbucket = "{s.cfg.bucket}"\n'
        f'prefix = "{s.cfg.prefix}"\ncredentials_file = "{tmp_path / "keys.toml"}"\n'
    )
    (tmp_path / "keys.toml").write_text(
        f'access_key = "{ACCESS_KEY}"\nsecret_key = "{SECRET_KEY}"\n'
    )
    cli = subprocess.run(
        [sys.executable, "-m", "server", "archive", "restore", "--data-dir", str(new.root),
         "--config", str(config)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "restored 1 camera(s), 4 segment(s)" in cli.stdout and "1 event(s)" in cli.stdout
    assert "2 track/motion file(s)" in cli.stdout
    for rel in list(meta)[:2]:
        assert (new.root / rel).read_bytes() == meta[rel]
    again = subprocess.run(
        [sys.executable, "-m", "server", "archive", "restore", "--data-dir", str(new.root),
         "--config", str(config)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert again.returncode == 1 and "empty data directory" in again.stderr
    cat = Catalog(new.catalog)
    try:
        (cam,) = cat.cameras()
        assert (cam.id, cam.name) == ("door", "Door")
        (stream,) = cat.streams("door")
        assert stream.url == "rtsp://cam/door", "credentials must not reach the bucket"
        got = cat.segments()
        assert [(g.id, g.start_us, g.end_us, g.fragment_index, g.sha256, g.bytes) for g in got] == [
            (x.id, x.start_us, x.end_us, x.fragment_index, x.sha256, x.bytes) for x in segs
        ]
        for g in got:
            assert (new.root / g.path).read_bytes() == (s.data.root / g.path).read_bytes()
        (ev,) = cat.read("SELECT id, camera_id, label, start_us, end_us, box, snapshot FROM events")
        assert ev[:6] == (7, "door", "car", t0 + 5 * S, t0 + 8 * S, "[1, 2, 3, 4]")
        assert (new.root / ev[6]).read_bytes() == snap.read_bytes()
        assert not cat.read("SELECT * FROM archive_backlog")
    finally:
        cat.close()
    manifest = msgspec.json.decode(s.s3.get(s.cfg.prefix + segs[0].path + ".json"))
    assert manifest["sha256"] == segs[0].sha256


def test_bandwidth_cap_paces_uploads(site) -> None:
    """600 kB at a 200 kB/s cap (one second of burst): about 2 s, not milliseconds."""
    s = site(max_bytes_per_s=200_000)
    run = s.camera("door")
    for i in range(3):
        s.segment("door", run, s.clock.t - 600 * S + i * 10 * S, size=200_000)
    started = time.monotonic()
    s.archiver.start()
    wait_until(s.drained, 30, "the capped uploads")
    elapsed = time.monotonic() - started
    assert elapsed >= 1.5, f"600 kB took {elapsed:.2f} s at a 200 kB/s cap"
