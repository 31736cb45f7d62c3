"""Routes of the analytics: events, their snapshots, tracks for playback overlays, area motion
search, zones and lines, and per-camera analytics settings."""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from server.api.auth import USER, Security, require
from server.api.errors import ApiError, int_param, json_body
from server.auth import Permission, Role, can_see
from server.auth.audit import ARCHIVE_ACCESS, CONFIG_CHANGE
from server.catalog.analytics import AnalyticsSettings, ZoneRow

if TYPE_CHECKING:
    from server.analytics.service import Analytics

MAX_WINDOW_US = 400 * 86_400 * 1_000_000
MAX_TRACK_WINDOW_US = 3600 * 1_000_000  # one hour of boxes per request
SLUG = re.compile(r"^[a-z0-9_-]{1,64}$")
KINDS = ("object", "enter", "leave", "loiter", "line", "motion")


# the stores name files by UTC hour: keep windows inside the calendar (year 9999)
MAX_TIME_US = 253_402_300_799_999_999


def _window(request: web.Request, limit_us: int = MAX_WINDOW_US) -> tuple[int, int]:
    start = min(int_param(request, "start_us"), MAX_TIME_US - 1)
    end = min(int_param(request, "end_us"), MAX_TIME_US)
    if end <= start:
        raise ApiError(400, "bad_parameter", "end_us must be after start_us")
    if end - start > limit_us:
        raise ApiError(400, "bad_parameter", f"window longer than {limit_us // 1_000_000} s")
    return start, end


def _list(request: web.Request, name: str) -> list[str] | None:
    values = [v for raw in request.query.getall(name, []) for v in raw.split(",") if v]
    return values or None


def _float(value: object, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ApiError(400, "bad_parameter", f"{name} must be a number in [{lo}, {hi}]")
    return float(value)


def _points(value: object, count: int | None) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list) or (count is not None and len(value) != count):
        want = f"{count} points" if count else "a list of [x, y] points"
        raise ApiError(400, "bad_parameter", f"points must be {want}")
    out = []
    for p in value:
        if not isinstance(p, list) or len(p) != 2:
            raise ApiError(400, "bad_parameter", "each point is [x, y]")
        out.append((_float(p[0], "x", 0, 1), _float(p[1], "y", 0, 1)))
    if count is None and len(out) < 3:
        raise ApiError(400, "bad_parameter", "a zone needs at least 3 points")
    return tuple(out)


def _labels(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ApiError(400, "bad_parameter", "labels must be a list of strings")
    return tuple(value)


def _us(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(400, "bad_parameter", f"{name} must be a non-negative integer (µs)")
    return value


class AnalyticsRoutes:
    def __init__(self, analytics: Analytics | None, security: Security, camera_exists) -> None:
        self._a = analytics
        self.sec = security
        self._camera_exists = camera_exists
        self._settings_lock = threading.Lock()

    @property
    def a(self) -> Analytics:
        """The routes exist on every recorder (one API document); without the 'ai' role they
        say so with a 503."""
        if self._a is None:
            raise ApiError(503, "unavailable", "analytics is not running on this recorder")
        return self._a

    def add_to(self, r: web.UrlDispatcher, api: str) -> None:
        r.add_get(f"{api}/events", self.list_events)
        r.add_get(f"{api}/events/{{event_id}}", self.get_event)
        r.add_get(f"{api}/events/{{event_id}}/snapshot", self.event_snapshot)
        r.add_get(f"{api}/tracks", self.tracks)
        r.add_post(f"{api}/search/motion", self.motion_search)
        r.add_get(f"{api}/cameras/{{camera_id}}/zones", self.list_zones)
        r.add_put(f"{api}/cameras/{{camera_id}}/zones/{{zone_id}}", self.put_zone)
        r.add_delete(f"{api}/cameras/{{camera_id}}/zones/{{zone_id}}", self.delete_zone)
        r.add_get(f"{api}/cameras/{{camera_id}}/analytics", self.get_settings)
        r.add_patch(f"{api}/cameras/{{camera_id}}/analytics", self.patch_settings)

    async def _camera(self, request: web.Request, permission: Permission) -> str:
        camera_id = request.match_info["camera_id"]
        require(request, permission, camera_id)
        if not await asyncio.to_thread(self._camera_exists, camera_id):
            raise ApiError(404, "not_found", f"no camera {camera_id!r}")
        return camera_id

    # --- events ---------------------------------------------------------------------------

    async def list_events(self, request: web.Request) -> web.Response:
        start, end = _window(request)
        cameras = _list(request, "camera")
        user = require(request, Permission.ARCHIVE, cameras[0] if cameras else None)
        if cameras:
            for cam in cameras:
                require(request, Permission.ARCHIVE, cam)
        kinds = _list(request, "kind")
        if kinds and set(kinds) - set(KINDS):
            raise ApiError(400, "bad_parameter", f"kind must be among {', '.join(KINDS)}")
        try:
            min_score = float(request.query.get("min_score", "0") or 0)
        except ValueError:
            min_score = math.nan
        if not 0 <= min_score <= 1:
            raise ApiError(400, "bad_parameter", "min_score must be a number in [0, 1]")
        if cameras is None and not (user.role == Role.ADMIN or user.all_cameras):
            # the limit applies to what the user may see, not to everybody's events
            cameras = sorted(user.cameras)
            if not cameras:
                return web.json_response([])
        limit = int_param(request, "limit", default=500, minimum=1)
        rows = await asyncio.to_thread(
            self.a.db.events,
            start,
            end,
            cameras=cameras,
            kinds=kinds,
            labels=_list(request, "label"),
            zone_id=request.query.get("zone"),
            min_score=min_score,
            limit=min(limit, 5000),
            newest_first=request.query.get("order") == "desc",
        )
        return web.json_response([e.to_json() for e in rows if can_see(user, e.camera_id)])

    async def _event(self, request: web.Request):
        try:
            event_id = int(request.match_info["event_id"])
        except ValueError:
            raise ApiError(400, "bad_parameter", "event id must be an integer") from None
        row = await asyncio.to_thread(self.a.db.event, event_id) if event_id < 2**63 else None
        if row is None or not can_see(request[USER], row.camera_id):
            raise ApiError(404, "not_found", f"no event {event_id}")  # unseen ones do not exist
        require(request, Permission.ARCHIVE, row.camera_id)
        return row

    async def get_event(self, request: web.Request) -> web.Response:
        return web.json_response((await self._event(request)).to_json())

    async def event_snapshot(self, request: web.Request) -> web.StreamResponse:
        row = await self._event(request)
        path = self.a.root / row.snapshot if row.snapshot else None
        if path is None or not await asyncio.to_thread(path.exists):
            raise ApiError(404, "not_found", f"event {row.id} has no snapshot")
        return web.FileResponse(path, headers={"Content-Type": "image/jpeg"})

    # --- tracks and search ----------------------------------------------------------------

    async def tracks(self, request: web.Request) -> web.StreamResponse:
        camera_id = request.query.get("camera")
        if not camera_id:
            raise ApiError(400, "missing_parameter", "query parameter 'camera' is required")
        if not SLUG.match(camera_id):
            raise ApiError(400, "bad_parameter", "camera must be a camera id")
        require(request, Permission.ARCHIVE, camera_id)
        start, end = _window(request, MAX_TRACK_WINDOW_US)
        labels = _list(request, "label")
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "arrow"):
            raise ApiError(400, "bad_parameter", "format must be 'json' or 'arrow'")

        def work() -> pa.Table:
            self.sec.record(request, ARCHIVE_ACCESS, camera_id, {"tracks": [start, end]})
            return self.a.tracks.read(camera_id, start, end, labels)

        table = await asyncio.to_thread(work)
        if fmt == "arrow":
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            return web.Response(
                body=sink.getvalue().to_pybytes(),
                content_type="application/vnd.apache.arrow.stream",
            )
        return web.json_response(table.to_pylist())

    async def motion_search(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        camera_id = body.get("camera")
        if not isinstance(camera_id, str) or not SLUG.match(camera_id):
            raise ApiError(400, "bad_parameter", "camera (a camera id) is required")
        require(request, Permission.ARCHIVE, camera_id)
        start = min(_us(body.get("start_us"), "start_us"), MAX_TIME_US - 1)
        end = min(_us(body.get("end_us"), "end_us"), MAX_TIME_US)
        if end <= start:
            raise ApiError(400, "bad_parameter", "end_us must be after start_us")
        region = body.get("region", [0, 0, 1, 1])
        if not isinstance(region, list) or len(region) != 4:
            raise ApiError(400, "bad_parameter", "region is [x1, y1, x2, y2], normalised")
        x1, y1, x2, y2 = (_float(v, "region", 0, 1) for v in region)
        if x2 <= x1 or y2 <= y1:
            raise ApiError(400, "bad_parameter", "region must have x2 > x1 and y2 > y1")
        gap = _us(body.get("merge_gap_us", 1_000_000), "merge_gap_us")

        def work() -> list[tuple[int, int]]:
            self.sec.record(request, ARCHIVE_ACCESS, camera_id, {"motion_search": [start, end]})
            return self.a.motion.search(camera_id, start, end, (x1, y1, x2, y2), gap)

        ranges = await asyncio.to_thread(work)
        return web.json_response(
            {
                "camera": camera_id,
                "ranges": [{"start_us": s, "end_us": e} for s, e in ranges],
            }
        )

    # --- zones and lines ------------------------------------------------------------------

    async def list_zones(self, request: web.Request) -> web.Response:
        camera_id = await self._camera(request, Permission.LIVE)
        rows = await asyncio.to_thread(self.a.db.zones, camera_id)
        return web.json_response([z.to_json() for z in rows])

    async def put_zone(self, request: web.Request) -> web.Response:
        camera_id = await self._camera(request, Permission.CONFIG)
        zone_id = request.match_info["zone_id"]
        if not SLUG.match(zone_id):
            raise ApiError(400, "bad_parameter", "zone id must match [a-z0-9_-]{1,64}")
        body = await json_body(request)
        unknown = set(body) - {"kind", "name", "points", "labels", "min_dwell_us", "loiter_us"}
        if unknown:
            raise ApiError(400, "bad_parameter", f"unknown field(s) {', '.join(sorted(unknown))}")
        kind = body.get("kind", "zone")
        if kind not in ("zone", "line"):
            raise ApiError(400, "bad_parameter", "kind must be 'zone' or 'line'")
        name = body.get("name", zone_id)
        if not isinstance(name, str) or len(name) > 200:
            raise ApiError(400, "bad_parameter", "name must be a string")
        zone = ZoneRow(
            camera_id,
            zone_id,
            kind,
            name,
            _points(body.get("points"), 2 if kind == "line" else None),
            _labels(body.get("labels")),
            _us(body.get("min_dwell_us", 0), "min_dwell_us"),
            _us(body.get("loiter_us", 0), "loiter_us"),
        )

        def work() -> None:
            self.a.db.put_zone(zone, self.a.clock.now_us())
            self.sec.record(request, CONFIG_CHANGE, camera_id, {"zone": zone.to_json()})
            self.a.sync()

        await asyncio.to_thread(work)
        return web.json_response(zone.to_json())

    async def delete_zone(self, request: web.Request) -> web.Response:
        camera_id = await self._camera(request, Permission.CONFIG)
        zone_id = request.match_info["zone_id"]

        def work() -> bool:
            gone = self.a.db.delete_zone(camera_id, zone_id)
            if gone:
                self.sec.record(request, CONFIG_CHANGE, camera_id, {"zone_deleted": zone_id})
                self.a.sync()
            return gone

        if not await asyncio.to_thread(work):
            raise ApiError(404, "not_found", f"camera {camera_id!r} has no zone {zone_id!r}")
        return web.Response(status=204)

    # --- settings -------------------------------------------------------------------------

    async def _settings(self, camera_id: str) -> AnalyticsSettings:
        streams = {s.name for s in await asyncio.to_thread(self.a.catalog.streams, camera_id)}
        return await asyncio.to_thread(self.a.settings_for, camera_id, "sub" in streams)

    def _settings_json(self, s: AnalyticsSettings) -> dict:
        return {
            "camera_id": s.camera_id,
            "enabled": s.enabled,
            "stream": s.stream,
            "fps": s.fps,
            "labels": list(s.labels),
            "min_score": s.min_score,
            "status": self.a.status(s.camera_id),
        }

    async def get_settings(self, request: web.Request) -> web.Response:
        camera_id = await self._camera(request, Permission.LIVE)
        return web.json_response(self._settings_json(await self._settings(camera_id)))

    async def patch_settings(self, request: web.Request) -> web.Response:
        camera_id = await self._camera(request, Permission.CONFIG)
        body = await json_body(request)
        unknown = set(body) - {"enabled", "stream", "fps", "labels", "min_score"}
        if unknown:
            raise ApiError(400, "bad_parameter", f"unknown field(s) {', '.join(sorted(unknown))}")
        changes: dict = {}
        if "enabled" in body:
            if not isinstance(body["enabled"], bool):
                raise ApiError(400, "bad_parameter", "enabled must be true or false")
            changes["enabled"] = body["enabled"]
        if "stream" in body:
            if body["stream"] not in ("main", "sub"):
                raise ApiError(400, "bad_parameter", "stream must be 'main' or 'sub'")
            changes["stream"] = body["stream"]
        if "fps" in body:
            changes["fps"] = _float(body["fps"], "fps", 0.1, 30)
        if "labels" in body:
            changes["labels"] = _labels(body["labels"])
        if "min_score" in body:
            changes["min_score"] = _float(body["min_score"], "min_score", 0.01, 0.99)
        streams = {s.name for s in await asyncio.to_thread(self.a.catalog.streams, camera_id)}

        def work() -> AnalyticsSettings:
            with self._settings_lock:  # read, merge and write as one: concurrent PATCHes add up
                s = self.a.settings_for(camera_id, "sub" in streams)
                new = AnalyticsSettings(**{**s.__dict__, **changes})
                self.a.db.set_settings(new, self.a.clock.now_us())
            self.sec.record(request, CONFIG_CHANGE, camera_id, {"analytics": changes})
            self.a.sync()
            return new

        return web.json_response(self._settings_json(await asyncio.to_thread(work)))


class AnalyticsCollector(Collector):
    """Analysed, dropped and detected frames, detections by label and inference time, read
    from the pipelines' counters at scrape time."""

    def __init__(self, analytics: Analytics) -> None:
        self.a = analytics

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        cam = ["camera"]
        analysed = CounterMetricFamily(
            "vigia_analytics_frames_analysed",
            "Frames analysed (motion, and detection when due)",
            labels=cam,
        )
        detected = CounterMetricFamily(
            "vigia_analytics_frames_detected", "Frames run through the detector", labels=cam
        )
        dropped = CounterMetricFamily(
            "vigia_analytics_frames_dropped",
            "Frames skipped because analytics was behind",
            labels=cam,
        )
        labels = CounterMetricFamily(
            "vigia_analytics_detections", "Detections by label", labels=["camera", "label"]
        )
        for camera_id, pipe in self.a.cameras().items():
            c = pipe.counters
            analysed.add_metric([camera_id], c.analysed)
            detected.add_metric([camera_id], c.detected)
            dropped.add_metric([camera_id], c.dropped_frames + c.dropped_packets)
            for label, n in sorted(c.detections.copy().items()):  # grows on another thread
                labels.add_metric([camera_id, label], n)
        yield from (analysed, detected, dropped, labels)
        times = sorted(list(self.a.service.inference_ms))
        p50 = times[len(times) // 2] if times else 0.0
        yield GaugeMetricFamily(
            "vigia_analytics_inference_ms", "Median detector time per batch (recent)", value=p50
        )
        yield GaugeMetricFamily(
            "vigia_analytics_detector_ok",
            "1 when the detection model is loaded",
            value=1.0 if self.a.service.can_detect else 0.0,
        )
