"""Analytics for every camera of the recorder: settings from the catalog, one shared detector,
metadata stores, events in the catalog and on NATS.

Owned by ``server.service``; the API reads ``status``, the stores and the catalog through it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import msgspec

from server.analytics.detector import Detector, DetectorError
from server.analytics.events import AnalyticsEvent
from server.analytics.governor import LEVELS, SPARSE_US, LoadGovernor
from server.analytics.models import default_model
from server.analytics.motion import MotionResult
from server.analytics.motionstore import MotionStore
from server.analytics.pipeline import (
    LOW_SCORE,
    CameraAnalytics,
    CameraSettings,
    DetectionService,
    Outputs,
)
from server.analytics.tracker import Track
from server.analytics.trackstore import TrackStore
from server.analytics.zones import Line, Zone
from server.catalog import Catalog
from server.catalog.analytics import AnalyticsCatalog, AnalyticsSettings, EventRow, ZoneRow
from server.clock import Clock
from server.config import AnalyticsConfig
from server.protocol.live import ai_subject, events_subject
from server.protocol.timeutil import US_PER_SECOND

log = logging.getLogger(__name__)

UPDATE_INTERVAL_S = 1.0  # a lasting event's row and snapshot are rewritten at most this often

Subscribe = Callable[[str, str, object], Callable[[], None]]  # Fanout.subscribe
Publish = Callable[[str, bytes], None]  # subject, payload


@dataclass
class _Running:
    camera: CameraAnalytics
    stream: str
    unsubscribe: Callable[[], None]
    settings: CameraSettings


def zone_objects(rows: Sequence[ZoneRow]) -> tuple[tuple[Zone, ...], tuple[Line, ...]]:
    zones, lines = [], []
    for z in rows:
        if z.kind == "line":
            lines.append(Line(z.id, z.name, z.points[0], z.points[1], frozenset(z.labels)))
        else:
            zones.append(
                Zone(z.id, z.name, z.points, frozenset(z.labels), z.min_dwell_us, z.loiter_us)
            )
    return tuple(zones), tuple(lines)


class Analytics(Outputs):
    def __init__(
        self,
        config: AnalyticsConfig,
        catalog: Catalog,
        data_root: Path,
        server_id: str,
        clock: Clock,
        subscribe: Subscribe,
        publish: Publish | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.db = AnalyticsCatalog(catalog)
        self.root = data_root
        self.server_id = server_id
        self.clock = clock
        self._subscribe = subscribe
        self._publish = publish
        self.tracks = TrackStore(data_root / "metadata" / "tracks")
        self.motion = MotionStore(data_root / "metadata" / "motion")
        self.snapshots = data_root / "events"
        self.service = DetectionService(
            self._make_detector,
            batch=config.batch,
            queue_size=config.queue,
            nice=config.shed_load,
        )
        self._running: dict[str, _Running] = {}
        self._retired_cpu_s = 0.0  # decode CPU of pipelines that stopped
        self.governor: LoadGovernor | None = None
        if config.shed_load:
            self.governor = LoadGovernor(
                self.own_cpu_s, self._shed, max_cpu=config.max_cpu, max_busy=config.max_busy
            )
        self._open: dict[tuple, EventRow] = {}  # open events by their pairing key
        self._best: dict[tuple, av.VideoFrame] = {}  # best frame of an open event, unwritten
        self._written: dict[tuple, float] = {}  # when an open event's row was last written
        self._lock = threading.Lock()
        # every stored event phase, as published (the rules engine; docs/design/rules.md)
        self.on_event: Callable[[dict], None] | None = None

    # --- life cycle -----------------------------------------------------------------------

    def _make_detector(self) -> Detector:
        cfg = self.config
        model = Path(cfg.model).expanduser() if cfg.model else default_model(self.root / "models")
        labels = Path(cfg.labels).expanduser() if cfg.labels else None
        return Detector(
            model,
            labels=labels,
            providers=cfg.providers or None,
            score_threshold=LOW_SCORE,
            threads=cfg.threads or None,
        )

    def start(self) -> None:
        closed = self.db.close_open_events(self.clock.now_us())
        if closed:
            log.info("analytics: %d events left open by the last run were closed", closed)
        self.service.start()
        self.sync()
        if self.governor is not None:
            self.governor.start()

    def own_cpu_s(self) -> float:
        """Analytics' CPU seconds so far: decode threads and the detection thread's busy time."""
        with self._lock:
            cams = sum(r.camera.cpu_s for r in self._running.values())
        return self._retired_cpu_s + cams + self.service.busy_s

    def _shed(self, level: int) -> None:
        sparse = self.governor.load.sparse_us if self.governor is not None else SPARSE_US
        with self._lock:
            for r in self._running.values():
                r.camera.sparse_us = sparse
                r.camera.shed = level

    @property
    def shed_level(self) -> int:
        return self.governor.load.level if self.governor is not None else 0

    def stop(self) -> None:
        if self.governor is not None:
            self.governor.stop()
        with self._lock:
            running, self._running = self._running, {}
        for r in running.values():
            r.unsubscribe()
            r.camera.stop()
        self.service.stop()  # after the cameras' last jobs, which end their events
        try:
            now = self.clock.now_us()
            for key, ev in list(self._open.items()):
                try:
                    ev.end_us = max(ev.start_us, now)
                    if ev.id is None:
                        self.db.insert_event(ev)
                    best = self._best.pop(key, None)
                    if best is not None:
                        ev.snapshot = self._snapshot(ev, best)
                    self._save(ev)
                except Exception:
                    log.exception("%s: cannot close event %s", ev.camera_id, ev.id)
            self._open.clear()
        finally:
            self.tracks.close()  # buffered tracks and grids are written whatever happened
            self.motion.close()

    def settings_for(self, camera_id: str, has_sub: bool) -> AnalyticsSettings:
        s = self.db.settings(camera_id)
        if s is not None:
            return s
        return AnalyticsSettings(
            camera_id,
            enabled=self.config.enabled,
            stream="sub" if has_sub else "main",
            fps=self.config.fps,
        )

    def sync(self) -> None:
        """Start, restart or stop camera pipelines to match the catalog."""
        wanted: dict[str, CameraSettings] = {}
        zones_by_cam: dict[str, list[ZoneRow]] = {}
        for z in self.db.zones():
            zones_by_cam.setdefault(z.camera_id, []).append(z)
        for cam in self.catalog.cameras():
            if not cam.enabled:
                continue
            streams = {s.name for s in self.catalog.streams(cam.id)}
            s = self.settings_for(cam.id, "sub" in streams)
            if not s.enabled:
                continue
            stream = s.stream if s.stream in streams else "main"
            zones, lines = zone_objects(zones_by_cam.get(cam.id, []))
            wanted[cam.id] = CameraSettings(
                cam.id,
                stream=stream,
                fps=s.fps,
                labels=frozenset(s.labels),
                min_score=s.min_score,
                refresh_us=int(self.config.refresh_s * US_PER_SECOND),
                motion_gate=self.config.motion_gate,
                key_frames_only=(
                    self.config.main_key_frames_only and stream == "main" and "sub" not in streams
                ),
                zones=zones,
                lines=lines,
            )
        with self._lock:
            for cam_id in list(self._running):
                r = self._running[cam_id]
                want = wanted.get(cam_id)
                if want is None or _restart_needed(r.settings, want):
                    del self._running[cam_id]
                    r.unsubscribe()
                    r.camera.stop()
                    self._retired_cpu_s += r.camera.cpu_s
                elif (want.zones, want.lines) != (r.settings.zones, r.settings.lines):
                    r.camera.set_zones(want.zones, want.lines)
                    r.settings = want
            for cam_id, want in wanted.items():
                if cam_id in self._running:
                    continue
                camera = CameraAnalytics(want, self.service, self)
                camera.shed = self.shed_level
                if self.governor is not None:
                    camera.sparse_us = self.governor.load.sparse_us
                camera.start()
                unsubscribe = self._subscribe(cam_id, want.stream, camera)
                self._running[cam_id] = _Running(camera, want.stream, unsubscribe, want)

    # --- status and metrics ----------------------------------------------------------------

    def status(self, camera_id: str) -> dict:
        r = self._running.get(camera_id)
        if r is None:
            return {"state": "disabled"}
        c = r.camera.counters
        svc = self.service
        if svc.error:
            state, reason = "error", svc.error
        elif not svc.ready.is_set():
            state, reason = "starting", "loading the detection model"
        elif not r.camera.connected:
            state, reason = "waiting", f"no video yet from the {r.stream} stream"
        elif self.shed_level:
            load = self.governor.load if self.governor is not None else None
            state, reason = (
                "running",
                (
                    f"shedding load: {LEVELS[self.shed_level].replace('_', ' ')} (analytics "
                    f"{load.own * 100:.0f} % of the machine, machine {load.busy * 100:.0f} % busy)"
                    if load is not None
                    else ""
                ),
            )
        else:
            state, reason = "running", ""
        out = {
            "state": state,
            "reason": reason,
            "stream": r.stream,
            "fps": r.settings.fps,
            "analysed": c.analysed,
            "detected": c.detected,
            "dropped_frames": c.dropped_frames,
            "dropped_packets": c.dropped_packets,
            "last_ts_us": c.last_ts_us,
            "key_frames_only": r.settings.key_frames_only,
            "load": LEVELS[self.shed_level],
            "shed_packets": c.shed_packets,
        }
        if svc.info is not None:
            out["provider"] = svc.info.provider
            out["model"] = Path(svc.info.model).name
        return out

    def cameras(self) -> dict[str, CameraAnalytics]:
        return {k: r.camera for k, r in self._running.items()}

    # --- Outputs, on the detection service thread -------------------------------------------

    def frame(
        self, camera_id: str, ts_us: int, tracks: Sequence[Track], motion: MotionResult
    ) -> None:
        if tracks:
            self.tracks.append(camera_id, ts_us, tracks)
        if motion.active:
            self.motion.append(camera_id, ts_us, motion.grid)
        if self._publish is not None:
            msg = {
                "ts_us": ts_us,
                "camera": camera_id,
                "motion": motion.active,
                "objects": [
                    {
                        "track_id": t.track_id,
                        "label": t.label,
                        "score": round(t.score, 3),
                        "box": [round(v, 4) for v in (t.x1, t.y1, t.x2, t.y2)],
                    }
                    for t in tracks
                ],
            }
            self._publish(ai_subject(self.server_id, camera_id), _dumps(msg))

    def events(
        self, camera_id: str, events: Sequence[AnalyticsEvent], picture: av.VideoFrame | None
    ) -> None:
        for ev in events:
            try:
                row = self._apply(ev, picture)
            except Exception:
                log.exception("%s: cannot store a %s event", camera_id, ev.kind)
                continue
            if row is None or row.id is None:
                continue
            msg = {"phase": ev.phase, **msgspec.to_builtins(row.to_event())}
            if self._publish is not None:
                self._publish(events_subject(self.server_id, camera_id), _dumps(msg))
            if self.on_event is not None:
                try:
                    self.on_event(msg)
                except Exception:  # rules never stop analytics
                    log.exception("%s: rules could not take a %s event", camera_id, ev.kind)

    def _apply(self, ev: AnalyticsEvent, picture: av.VideoFrame | None) -> EventRow | None:
        """Store one event phase. Updates of a lasting event (a better snapshot) are written at
        most every ``UPDATE_INTERVAL_S``: the best frame is kept in memory meanwhile and
        written with the next update or the end, so a busy scene does not encode a JPEG and
        commit a transaction per frame. Returns the row when it was written (to publish)."""
        key = (ev.camera_id, ev.kind, ev.track_id, ev.zone_id or ev.line_id, ev.start_us)
        row = self._open.get(key)
        if row is None:
            row = EventRow(camera_id=ev.camera_id, kind=ev.kind, start_us=ev.start_us)
        row.label, row.score = ev.label, max(row.score, ev.score)
        row.track_id, row.zone_id = ev.track_id, ev.zone_id or ev.line_id
        row.direction = ev.direction
        if ev.box is not None and (ev.best_changed or row.box is None):
            row.box = ev.box
        if ev.path:
            row.path = [[t, round(x, 4), round(y, 4)] for t, x, y in ev.path]
        row.end_us = ev.end_us if ev.phase in ("end", "instant") else None
        if ev.phase == "instant" and row.end_us is None:
            row.end_us = ev.start_us
        if ev.best_changed and picture is not None:
            self._best[key] = picture
        now = time.monotonic()
        if ev.phase == "update" and now - self._written.get(key, 0.0) < UPDATE_INTERVAL_S:
            self._open[key] = row
            return None
        if row.id is None:
            self.db.insert_event(row)
        if row.end_us is None:  # known before any file work, so a failure there never doubles it
            self._open[key] = row
            self._written[key] = now
        else:
            self._open.pop(key, None)
            self._written.pop(key, None)
        best = self._best.pop(key, None)
        if best is not None:
            row.snapshot = self._snapshot(row, best)
        self._save(row)
        return row

    def _save(self, row: EventRow) -> None:
        self.db.update_event(row)

    def _snapshot(self, row: EventRow, picture: av.VideoFrame) -> str | None:
        """The event's JPEG (written aside, then renamed); on a full disk the event keeps
        its previous snapshot, or none."""
        ok, jpeg = cv2.imencode(".jpg", picture.to_ndarray(format="bgr24"))
        if not ok:
            return row.snapshot
        rel = Path("events") / row.camera_id / f"{row.id}.jpg"
        path = self.root / rel
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(jpeg.tobytes())
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("%s: event %s snapshot not written: %s", row.camera_id, row.id, exc)
            tmp.unlink(missing_ok=True)
            return row.snapshot
        return str(rel)

    # --- retention ------------------------------------------------------------------------

    def trim_all(self) -> None:
        """Retention of metadata: whatever is older than a camera's oldest video goes."""
        for cam in self.catalog.cameras():
            try:
                oldest = self.db.oldest_video_us(cam.id)
                if oldest is not None:
                    self.trim(cam.id, oldest)
            except Exception:  # one camera's metadata must not hold up the others (or recording)
                log.exception("%s: metadata retention failed", cam.id)

    def trim(self, camera_id: str, before_us: int) -> None:
        """Metadata goes with its video: called with the start of the camera's oldest video."""
        for rel in self.db.delete_events_before(camera_id, before_us):
            try:
                (self.root / rel).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove snapshot %s: %s", rel, exc)
        self.tracks.delete_before(camera_id, before_us)
        self.motion.delete_before(camera_id, before_us)


def _restart_needed(old: CameraSettings, new: CameraSettings) -> bool:
    def key(s: CameraSettings) -> tuple:
        return (s.stream, s.fps, s.labels, s.min_score, s.refresh_us, s.motion_gate,
                s.key_frames_only)  # fmt: skip

    return key(old) != key(new)


def _dumps(msg: dict) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


__all__ = ["Analytics", "DetectorError", "zone_objects"]
