"""The background uploader: closed segments from the catalog's backlog to the bucket.

``concurrency`` upload threads share one boto3 client and one token bucket (``max_bytes_per_s``).
They only read finished files and write a few catalog rows, never touching ingest: a slow or
dead store grows the backlog, nothing else. While the store fails, every thread waits out one
shared backoff with jitter (``server.protocol.backoff``) and one thread at a time probes, so a
store that is down or keys that are wrong see one request per delay, not a storm.
A housekeeping thread probes the store at start (wrong keys show within seconds, before any
segment closes), uploads ended events and their snapshots, and applies ``archive_days``.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from server.archive import manifest as m
from server.archive.ledger import Ledger, Pending
from server.archive.store import ArchiveStore, StoreError, describe
from server.archive.throttle import ThrottledReader, TokenBucket
from server.catalog import Catalog
from server.clock import Clock
from server.config import ArchiveConfig
from server.datadir import DataDir
from server.discovery import strip_credentials
from server.export.manifest import load_public_key
from server.protocol.backoff import Backoff
from server.protocol.files import file_sha256
from server.protocol.models import ArchiveStatus
from server.protocol.timeutil import US_PER_SECOND

log = logging.getLogger(__name__)

DAY_US = 86_400 * US_PER_SECOND
IDLE_S = 1.0  # an idle thread looks at the backlog this often (and when woken)
HOUSEKEEPING_S = 1.0
RETENTION_EVERY_S = 60.0
METADATA_EVERY_S = 300.0
HOUR_GRACE_US = 10 * 60 * US_PER_SECOND  # an hour's files are sent this long after it ends


class Archiver:
    def __init__(
        self, cfg: ArchiveConfig, store: ArchiveStore, catalog: Catalog, data_root: Path,
        clock: Clock,
    ) -> None:  # fmt: skip
        self.cfg, self.store, self.catalog = cfg, store, catalog
        self.data_root, self.clock = data_root, clock
        self.ledger = Ledger(catalog)
        self.bucket = TokenBucket(cfg.max_bytes_per_s)
        self._backoff = Backoff(1.0, cfg.retry_max_s)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._busy: set[int] = set()
        self._paused_until = 0.0  # monotonic; shared backoff while the store fails
        self._probing = False
        self._cameras_sent: set[str] = set()
        self._server_sent = False
        self._threads: list[threading.Thread] = []
        self._metadata_lock = threading.Lock()
        self.state: str = "starting"
        self.error: str | None = None
        self.error_us: int | None = None
        self.uploaded_objects = 0
        self.uploaded_bytes = 0
        self.upload_errors = 0
        self.deleted_segments = 0
        self.unarchived_deleted = 0  # local retention removed them before their upload

    # --- life ---------------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.cfg.concurrency):
            t = threading.Thread(target=_named(self._upload_loop), name=f"archive-{i}",
                                 daemon=True)  # fmt: skip
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=_named(self._housekeeping), name="archive-house",
                             daemon=True)  # fmt: skip
        t.start()
        self._threads.append(t)
        cap = self.cfg.max_bytes_per_s
        log.info("archive to %s bucket %s prefix %r (%s by default, %d uploads at once%s)",
                 self.cfg.endpoint, self.cfg.bucket, self.cfg.prefix, self.cfg.mode,
                 self.cfg.concurrency, f", {cap} B/s cap" if cap else "")  # fmt: skip

    def stop(self, timeout: float = 10.0) -> None:
        """Uploads in flight are abandoned: their segments stay in the backlog."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def note_unarchived_deleted(self, count: int) -> None:
        """Local retention removed segments still in the backlog: space ran out first."""
        with self._lock:
            self.unarchived_deleted += count

    def set_camera_mode(self, camera_id: str, mode: str | None) -> None:
        self.ledger.set_camera_mode(camera_id, mode)
        self._cameras_sent.discard(camera_id)  # its manifest says the new policy
        self.wake()

    def set_camera_days(self, camera_id: str, days: float | None) -> None:
        """The camera's own ``archive_days``; applied at the next archive retention pass."""
        self.ledger.set_camera_days(camera_id, days)
        self._cameras_sent.discard(camera_id)

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    # --- status -------------------------------------------------------------------------

    def status(self) -> ArchiveStatus:
        backlog = self.ledger.backlog()
        archived, archived_bytes = self.ledger.archived_totals()
        now = self.clock.now_us()
        age = (now - backlog.oldest_us) / US_PER_SECOND if backlog.oldest_us else 0.0
        return ArchiveStatus(
            state=self.state,  # type: ignore[arg-type]
            endpoint=self.cfg.endpoint,
            bucket=self.cfg.bucket,
            error=self.error,
            error_us=self.error_us,
            backlog_segments=backlog.segments,
            backlog_bytes=backlog.bytes,
            backlog_oldest_age_s=max(0.0, age),
            uploaded_objects=self.uploaded_objects,
            uploaded_bytes=self.uploaded_bytes,
            upload_errors=self.upload_errors,
            archived_segments=archived,
            archived_bytes=archived_bytes,
            archive_deleted_segments=self.deleted_segments,
            unarchived_deleted_segments=self.unarchived_deleted,
        )

    def _ok(self) -> None:
        with self._lock:
            self._backoff.reset()
            self._paused_until = 0.0
            if self.state != "ok":
                if self.error:
                    log.info("archive: store %s answers again", self.cfg.endpoint)
                self.state, self.error, self.error_us = "ok", None, None

    def _failed(self, err: StoreError) -> None:
        """The store failed: everyone waits out one backoff, then one thread probes."""
        with self._lock:
            self.upload_errors += 1
            delay = self._backoff.next()
            self._paused_until = time.monotonic() + delay
            if self.error != str(err):
                log.error("archive: %s (%s); retrying with backoff, recording goes on",
                          err, self.cfg.endpoint)  # fmt: skip
            else:
                log.debug("archive: still failing (%s); next try in %.1f s", err, delay)
            self.state, self.error, self.error_us = "error", str(err), self.clock.now_us()

    # --- upload threads -----------------------------------------------------------------

    def _claim(self) -> Pending | None:
        with self._wake:
            while not self._stop.is_set():
                wait = self._paused_until - time.monotonic()
                if wait > 0:
                    self._wake.wait(min(wait, IDLE_S))
                    continue
                if self.state == "error" and (self._probing or self._busy):
                    self._wake.wait(IDLE_S)  # one probe at a time while the store fails
                    continue
                item = self.ledger.next_due(self.clock.now_us(), self._busy)
                if item is not None:
                    self._busy.add(item.segment.id)
                    if self.state == "error":
                        self._probing = True
                    return item
                self._wake.wait(IDLE_S)
        return None

    def _release(self, item: Pending) -> None:
        with self._wake:
            self._busy.discard(item.segment.id)
            self._probing = False
            self._wake.notify_all()

    def _upload_loop(self) -> None:
        while (item := self._claim()) is not None:
            try:
                self._handle(item)
            except StoreError as exc:
                if exc.code == "BadDigest":  # this file, not the store: try it again later
                    log.error("archive: %s: %s", item.segment.path, exc)
                    later = self.clock.now_us() + 60 * US_PER_SECOND
                    self.ledger.defer(item.segment.id, later, str(exc), failed=True)
                    continue
                self._failed(exc)
                self.ledger.defer(item.segment.id, 0, str(exc), failed=True)
            except Exception as exc:  # never let one segment kill the thread
                log.exception("archive: segment %d", item.segment.id)
                self._failed(describe(exc))
            finally:
                self._release(item)

    def _handle(self, p: Pending) -> None:
        seg = p.segment
        mode = p.mode or self.cfg.mode
        if mode == "none":
            self.ledger.drop(seg.id)
            return
        if mode == "events" and not self._wanted(p):
            return
        path = self.data_root / seg.path
        if not path.exists():
            log.warning("archive: %s is gone before its upload; not archived", seg.path)
            self.ledger.drop(seg.id)
            return
        sha = seg.sha256
        if sha is None:  # closed by start-up recovery
            sha = file_sha256(path)
            self.ledger.set_sha256(seg.id, sha)
        self._send_camera(p.camera_id)
        size = path.stat().st_size
        with path.open("rb") as f:
            body = ThrottledReader(f, self.bucket) if self.bucket.rate else f
            self.store.put(seg.path, body, size, sha, "video/mp4")
        doc = m.encode(m.SegmentManifest(
            m.VERSION, seg.id, p.camera_id, p.stream, seg.start_us, seg.end_us,
            seg.media_duration_us, size, seg.frames, seg.codec, seg.width, seg.height,
            seg.fragment_index, sha,
        ))  # fmt: skip
        self._put_bytes(m.manifest_key(seg.path), doc, "application/json")
        self.ledger.mark_archived(p, seg.path, sha, self.clock.now_us())
        with self._lock:
            self.uploaded_objects += 1
            self.uploaded_bytes += size
        self._ok()
        log.debug("archive: %s (%d bytes) stored", seg.path, size)

    def _wanted(self, p: Pending) -> bool:
        """Policy 'events': keep a segment only if an event or bookmark lies within the
        padding; decide once the padding after it has passed and no event is still open."""
        seg = p.segment
        pre = int(self.cfg.events_pre_s * US_PER_SECOND)
        post = int(self.cfg.events_post_s * US_PER_SECOND)
        now = self.clock.now_us()
        if self.ledger.has_marks(p.camera_id, seg.start_us - post, seg.end_us + pre):
            return True
        if now < seg.end_us + pre or self.ledger.open_event(p.camera_id, seg.end_us + pre):
            # an event may still come (or end) within the padding: ask again later
            self.ledger.defer(seg.id, max(now, seg.end_us + pre) + US_PER_SECOND, None,
                              failed=False)  # fmt: skip
            return False
        self.ledger.drop(seg.id)
        return False

    def _put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self.bucket.take(len(data))
        self.store.put(key, data, len(data), hashlib.sha256(data).hexdigest(), content_type)
        with self._lock:
            self.uploaded_objects += 1
            self.uploaded_bytes += len(data)

    def _send_camera(self, camera_id: str) -> None:
        """The camera's row, once per run of the process (a restore needs it)."""
        if camera_id in self._cameras_sent:
            return
        cams = [c for c in self.catalog.cameras() if c.id == camera_id]
        if not cams:
            return
        cam = cams[0]
        sql = "SELECT archive_mode, archive_days FROM cameras WHERE id = ?"
        ((mode, days),) = self.catalog.read(sql, (camera_id,))
        streams = [
            m.StreamManifest(s.name, strip_credentials(s.url), s.record)
            for s in self.catalog.streams(camera_id)
        ]
        doc = m.CameraManifest(m.VERSION, cam.id, cam.name, cam.enabled, cam.retention_days,
                               mode, streams, days)  # fmt: skip
        self._put_bytes(f"{m.CAMERAS}{camera_id}.json", m.encode(doc), "application/json")
        self._cameras_sent.add(camera_id)

    # --- housekeeping -------------------------------------------------------------------

    def _housekeeping(self) -> None:
        next_retention = next_metadata = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= self._paused_until and self.state != "ok":
                    with self._lock:
                        idle = not self._busy
                    if idle:
                        self.store.check()
                        self._ok()
                        self.wake()
                if self.state == "ok":
                    self._send_server()
                    self._send_events()
                    if time.monotonic() >= next_retention:
                        next_retention = time.monotonic() + RETENTION_EVERY_S
                        self.expire_once()
                    if time.monotonic() >= next_metadata:
                        next_metadata = time.monotonic() + METADATA_EVERY_S
                        self.send_metadata_once()
            except StoreError as exc:
                self._failed(exc)
            except Exception as exc:
                log.exception("archive housekeeping")
                self._failed(describe(exc))
            self._stop.wait(HOUSEKEEPING_S)

    def _send_server(self) -> None:
        """The recorder's id and signing public key, once per run (once the key exists: the
        API makes it at start)."""
        if self._server_sent:
            return
        data = DataDir(self.data_root)
        public = load_public_key(data)
        if public is None:
            return
        doc = m.ServerManifest(m.VERSION, data.server_id(), public)
        self._put_bytes(m.SERVER, m.encode(doc), "application/json")
        self._server_sent = True

    def _send_events(self) -> None:
        for row in self.ledger.events_to_archive():
            (eid, cam, kind, label, score, start, end, track, zone, direction, box, path,
             snapshot, mode) = row  # fmt: skip
            if (mode or self.cfg.mode) == "none":  # nothing to send, ever (nor to expire)
                self.ledger.mark_event(eid, self.clock.now_us())
                continue
            snap = self.data_root / snapshot if snapshot else None
            has_snap = snap is not None and snap.exists()
            if has_snap:
                assert snap is not None
                self._put_bytes(f"{m.EVENTS}{eid}.jpg", snap.read_bytes(), "image/jpeg")
            self._send_camera(cam)
            doc = m.EventManifest(m.VERSION, eid, cam, kind, label, score, start, end, track,
                                  zone, direction, box, path, has_snap)  # fmt: skip
            self._put_bytes(f"{m.EVENTS}{eid}.json", m.encode(doc), "application/json")
            self.ledger.mark_event(eid, self.clock.now_us(), cam, end)

    def send_metadata_once(self) -> int:
        """Hourly track and motion files whose hour ended (plus a grace) and that are not in the
        bucket as they are now (a late rewrite is sent again). Returns how many were sent."""
        with self._metadata_lock:
            sent = self.ledger.sent_files()
            modes = {c: m for c, m in self.catalog.read("SELECT id, archive_mode FROM cameras")}
            done_before = self.clock.now_us() - HOUR_GRACE_US
            count = 0
            for kind, suffix in m.HOURLY:
                root = self.data_root / "metadata" / kind
                for path in sorted(root.glob(f"*/*{suffix}")) if root.is_dir() else []:
                    camera = path.parent.name
                    if (modes.get(camera) or self.cfg.mode) == "none":
                        continue
                    if not _hour_over(path.stem, done_before):
                        continue
                    st = path.stat()
                    rel = path.relative_to(self.data_root).as_posix()
                    if sent.get(rel) == (st.st_size, st.st_mtime_ns):
                        continue
                    data = path.read_bytes()
                    digest = hashlib.sha256(data).hexdigest()
                    self.bucket.take(len(data))
                    self.store.put(rel, data, len(data), digest)
                    with self._lock:
                        self.uploaded_objects += 1
                        self.uploaded_bytes += len(data)
                    self.ledger.mark_file(rel, st.st_size, st.st_mtime_ns, digest,
                                          self.clock.now_us())  # fmt: skip
                    count += 1
            return count

    def expire_once(self) -> int:
        """``archive_days`` (the camera's own, or ``[archive]``'s): older segments leave the
        bucket (media and manifest), and so do older events (row and snapshot); returns how
        many segments went."""
        gone = 0
        now, days = self.clock.now_us(), self.cfg.archive_days
        while batch := self.ledger.expired(now, days):
            keys = [k for a in batch for k in (a.key, m.manifest_key(a.key))]
            self.store.delete(keys)
            self.ledger.forget([a.segment_id for a in batch])
            self.deleted_segments += len(batch)
            gone += len(batch)
            log.info("archive retention: %d segments deleted from the bucket", len(batch))
        while events := self.ledger.expired_events(now, days):
            self.store.delete([f"{m.EVENTS}{i}{ext}" for i in events for ext in (".json", ".jpg")])
            self.ledger.forget_events(events, now)
            log.info("archive retention: %d events deleted from the bucket", len(events))
        return gone


def _named(target: Callable[[], None]) -> Callable[[], None]:
    """``target`` in a thread that the OS knows by its Python name (``top -H``, ``ps -L``, and
    bench/archive.py, which tells the upload threads' CPU from ingest's by it). Linux only."""

    def run() -> None:
        if sys.platform == "linux":
            try:
                name = threading.current_thread().name.encode()[:15]
                ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
            except (OSError, AttributeError) as exc:
                log.debug("thread name: %s", exc)
        target()

    return run


def _hour_over(stem: str, before_us: int) -> bool:
    """``YYYYMMDDHH`` names an hour that ended before ``before_us``."""
    try:
        start = datetime.strptime(stem, "%Y%m%d%H").replace(tzinfo=UTC)
    except ValueError:
        return False
    return (int(start.timestamp()) + 3600) * US_PER_SECOND <= before_us
