"""Routes of the analytics: events, their snapshots, tracks for playback overlays, area motion
search, zones and lines, and per-camera analytics settings."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
import pyarrow as pa
from aiohttp import web
from msgspec import Meta
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from server.api.auth import USER, Security, require
from server.api.bodies import decode_body, json_response
from server.api.errors import ApiError
from server.api.lookups import END, START
from server.api.routing import API, Media, Param, Route, RouteGroup
from server.auth import Permission, Role, can_see
from server.auth.audit import ARCHIVE_ACCESS, CONFIG_CHANGE
from server.catalog.analytics import AnalyticsCatalog, AnalyticsSettings, EventRow, ZoneRow
from server.protocol.models import (
    UNSET,
    AnalyticsPatch,
    AnalyticsStatus,
    Event,
    MotionRanges,
    MotionSearch,
    Range,
    TrackRow,
    Zone,
    ZoneInput,
)
from server.protocol.models import AnalyticsSettings as SettingsBody
from server.protocol.models.analytics import KINDS
from server.protocol.models.common import SLUG_PATTERN, CameraId, Slug

if TYPE_CHECKING:
    from server.analytics.service import Analytics

MAX_WINDOW_US = 400 * 86_400 * 1_000_000
MAX_TRACK_WINDOW_US = 3600 * 1_000_000  # one hour of boxes per request
SLUG = re.compile(SLUG_PATTERN)


MIN_SCORE = Param("min_score", Annotated[float, Meta(ge=0, le=1)])
ORDER = Param("order", Literal["asc", "desc"], description="by start time; default asc")
EVENT_LIMIT = Param("limit", Annotated[int, Meta(ge=1, le=2**62)], description="at most 5000")

# the stores name files by UTC hour: keep windows inside the calendar (year 9999)
MAX_TIME_US = 253_402_300_799_999_999


def _window(request: web.Request, limit_us: int = MAX_WINDOW_US) -> tuple[int, int]:
    start = min(START.read_int(request), MAX_TIME_US - 1)
    end = min(END.read_int(request), MAX_TIME_US)
    if end <= start:
        raise ApiError(400, "bad_parameter", "end_us must be after start_us")
    if end - start > limit_us:
        raise ApiError(400, "bad_parameter", f"window longer than {limit_us // 1_000_000} s")
    return start, end


def _list(request: web.Request, name: str) -> list[str] | None:
    values = [v for raw in request.query.getall(name, []) for v in raw.split(",") if v]
    return values or None


class AnalyticsRoutes(RouteGroup):
    def __init__(
        self,
        analytics: Analytics | None,
        security: Security,
        camera_exists,
        events: AnalyticsCatalog,
        data_root: Path,
    ) -> None:
        self._a = analytics
        self.sec = security
        self._camera_exists = camera_exists
        # events are read without analytics too: cameras raise their own (kind 'camera')
        self.events_db, self.root = events, data_root
        self._settings_lock = threading.Lock()

    @property
    def a(self) -> Analytics:
        """The routes exist on every recorder (one API document); without the 'ai' role they
        say so with a 503."""
        if self._a is None:
            raise ApiError(503, "unavailable", "analytics is not running on this recorder")
        return self._a

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
        min_score = MIN_SCORE.read(request, 0.0)
        limit = EVENT_LIMIT.read_int(request, default=500)
        order = ORDER.read(request, "asc")
        if cameras is None and not (user.role == Role.ADMIN or user.all_cameras):
            # the limit applies to what the user may see, not to everybody's events
            cameras = sorted(user.cameras)
            if not cameras:
                return web.json_response([])
        rows = await asyncio.to_thread(
            self.events_db.events,
            start,
            end,
            cameras=cameras,
            kinds=kinds,
            labels=_list(request, "label"),
            zone_id=request.query.get("zone"),
            min_score=min_score,
            limit=min(limit, 5000),
            newest_first=order == "desc",
        )
        return json_response([_event(e) for e in rows if can_see(user, e.camera_id)])

    async def _event(self, request: web.Request):
        try:
            event_id = int(request.match_info["event_id"])
        except ValueError:
            raise ApiError(400, "bad_parameter", "event id must be an integer") from None
        find = self.events_db.event
        row = await asyncio.to_thread(find, event_id) if event_id < 2**63 else None
        if row is None or not can_see(request[USER], row.camera_id):
            raise ApiError(404, "not_found", f"no event {event_id}")  # unseen ones do not exist
        require(request, Permission.ARCHIVE, row.camera_id)
        return row

    async def get_event(self, request: web.Request) -> web.Response:
        return json_response(_event(await self._event(request)))

    async def event_snapshot(self, request: web.Request) -> web.StreamResponse:
        row = await self._event(request)
        path = self.root / row.snapshot if row.snapshot else None
        if path is None or not await asyncio.to_thread(path.exists):
            raise ApiError(404, "not_found", f"event {row.id} has no snapshot")
        return web.FileResponse(path, headers={"Content-Type": "image/jpeg"})

    # --- tracks and search ----------------------------------------------------------------

    async def tracks(self, request: web.Request) -> web.StreamResponse:
        camera_id = request.query.get("camera")
        if not camera_id:
            raise ApiError(400, "missing_parameter", "query parameter 'camera' is required")
        if not SLUG.fullmatch(camera_id):
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
        return json_response(msgspec.convert(table.to_pylist(), list[TrackRow]))

    async def motion_search(self, request: web.Request) -> web.Response:
        body = await decode_body(request, MotionSearch, "bad_parameter")
        camera_id = body.camera
        require(request, Permission.ARCHIVE, camera_id)
        start = min(body.start_us, MAX_TIME_US - 1)
        end = min(body.end_us, MAX_TIME_US)
        if end <= start:
            raise ApiError(400, "bad_parameter", "end_us must be after start_us")
        x1, y1, x2, y2 = body.region
        gap = body.merge_gap_us

        def work() -> list[tuple[int, int]]:
            self.sec.record(request, ARCHIVE_ACCESS, camera_id, {"motion_search": [start, end]})
            return self.a.motion.search(camera_id, start, end, (x1, y1, x2, y2), gap)

        ranges = await asyncio.to_thread(work)
        return json_response(MotionRanges(camera_id, [Range(s, e) for s, e in ranges]))

    # --- zones and lines ------------------------------------------------------------------

    async def list_zones(self, request: web.Request) -> web.Response:
        camera_id = await self._camera(request, Permission.LIVE)
        rows = await asyncio.to_thread(self.a.db.zones, camera_id)
        return json_response([_zone(z) for z in rows])

    async def put_zone(self, request: web.Request) -> web.Response:
        camera_id = await self._camera(request, Permission.CONFIG)
        zone_id = request.match_info["zone_id"]
        if not SLUG.fullmatch(zone_id):
            raise ApiError(400, "bad_parameter", "zone id must match [a-z0-9_-]{1,64}")
        body = await decode_body(request, ZoneInput, "bad_parameter")
        zone = ZoneRow(
            camera_id,
            zone_id,
            body.kind,
            zone_id if body.name is UNSET else body.name,
            tuple((p[0], p[1]) for p in body.points),
            tuple(body.labels or ()),
            body.min_dwell_us,
            body.loiter_us,
        )

        def work() -> None:
            self.a.db.put_zone(zone, self.a.clock.now_us())
            self.sec.record(request, CONFIG_CHANGE, camera_id, {"zone": zone.to_json()})
            self.a.sync()

        await asyncio.to_thread(work)
        return json_response(_zone(zone))

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

    def _settings_body(self, s: AnalyticsSettings) -> SettingsBody:
        return SettingsBody(
            camera_id=s.camera_id,
            enabled=s.enabled,
            stream=s.stream,  # type: ignore[arg-type]
            fps=s.fps,
            labels=list(s.labels),
            min_score=s.min_score,
            status=msgspec.convert(self.a.status(s.camera_id), AnalyticsStatus),
        )

    async def get_settings(self, request: web.Request) -> web.Response:
        camera_id = await self._camera(request, Permission.LIVE)
        return json_response(self._settings_body(await self._settings(camera_id)))

    async def patch_settings(self, request: web.Request) -> web.Response:
        camera_id = await self._camera(request, Permission.CONFIG)
        patch = await decode_body(request, AnalyticsPatch, "bad_parameter")
        changes: dict = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not UNSET}
        if "labels" in changes:
            changes["labels"] = tuple(changes["labels"] or ())
        if "fps" in changes:
            changes["fps"] = float(changes["fps"])
        if "min_score" in changes:
            changes["min_score"] = float(changes["min_score"])
        streams = {s.name for s in await asyncio.to_thread(self.a.catalog.streams, camera_id)}

        def work() -> AnalyticsSettings:
            with self._settings_lock:  # read, merge and write as one: concurrent PATCHes add up
                s = self.a.settings_for(camera_id, "sub" in streams)
                new = AnalyticsSettings(**{**s.__dict__, **changes})
                self.a.db.set_settings(new, self.a.clock.now_us())
            self.sec.record(request, CONFIG_CHANGE, camera_id, {"analytics": changes})
            self.a.sync()
            return new

        return json_response(self._settings_body(await asyncio.to_thread(work)))

    CAMERA = f"{API}/cameras/{{camera_id}}"
    EVENT = f"{API}/events/{{event_id}}"
    CAMERA_ID = Param("camera_id", CameraId, where="path")
    ZONE_ID = Param("zone_id", Slug, where="path")
    EVENT_ID = Param("event_id", int, where="path")
    WINDOW = (START, END)
    ROUTES = (
        Route("GET", f"{API}/events", list_events,
              "Analytics events overlapping a window, filtered", returns=list[Event],
              errors=(503,), permission=Permission.ARCHIVE, params=(
                  *WINDOW,
                  Param("camera", str, description="camera id(s), comma separated"),
                  Param("kind", str, description=", ".join(KINDS)),
                  Param("label", str, description="label(s), comma separated"),
                  Param("zone", str, description="zone or line id"),
                  MIN_SCORE,
                  EVENT_LIMIT,
                  ORDER)),
        Route("GET", EVENT, get_event, "An event", params=(EVENT_ID,), returns=Event,
              errors=(400, 404, 503), permission=Permission.ARCHIVE),
        Route("GET", f"{EVENT}/snapshot", event_snapshot, "The event's best snapshot",
              params=(EVENT_ID,), errors=(400, 404, 503), permission=Permission.ARCHIVE,
              returns=Media.binary("image/jpeg", description="JPEG")),
        Route("GET", f"{API}/tracks", tracks,
              "Tracked boxes of a camera in a window (at most one hour)",
              errors=(503,), permission=Permission.ARCHIVE, params=(
                  Param("camera", str, required=True), *WINDOW,
                  Param("label", str, description="label(s), comma separated"),
                  Param("format", Literal["json", "arrow"])),
              returns=Media({"application/json": list[TrackRow],
                             "application/vnd.apache.arrow.stream": {"type": "string",
                                                                     "format": "binary"}},
                            "Rows by time (JSON) or an Arrow IPC stream")),
        Route("POST", f"{API}/search/motion", motion_search,
              "Time ranges with motion in a region of the picture", body=MotionSearch,
              returns=MotionRanges, errors=(503,), permission=Permission.ARCHIVE),
        Route("GET", f"{CAMERA}/zones", list_zones, "A camera's zones and lines",
              params=(CAMERA_ID,), returns=list[Zone], errors=(404, 503),
              permission=Permission.LIVE),
        Route("PUT", f"{CAMERA}/zones/{{zone_id}}", put_zone,
              "Create or replace a zone (polygon) or line (a -> b)",
              params=(CAMERA_ID, ZONE_ID), body=ZoneInput, returns=Zone, errors=(404, 503),
              permission=Permission.CONFIG),
        Route("DELETE", f"{CAMERA}/zones/{{zone_id}}", delete_zone, "Delete a zone or line",
              params=(CAMERA_ID, ZONE_ID), status=204, errors=(404, 503),
              permission=Permission.CONFIG),
        Route("GET", f"{CAMERA}/analytics", get_settings,
              "Analytics settings and status of a camera", params=(CAMERA_ID,),
              returns=SettingsBody, errors=(404, 503), permission=Permission.LIVE),
        Route("PATCH", f"{CAMERA}/analytics", patch_settings, "Change analytics settings",
              params=(CAMERA_ID,), body=AnalyticsPatch, returns=SettingsBody,
              errors=(404, 503), permission=Permission.CONFIG),
    )  # fmt: skip


def _event(row: EventRow) -> Event:
    return row.to_event()


def _zone(row: ZoneRow) -> Zone:
    return msgspec.convert(row.to_json(), Zone)


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
        shed = CounterMetricFamily(
            "vigia_analytics_packets_shed",
            "Packets left undecoded on purpose (key frames only, load shedding)",
            labels=cam,
        )
        for camera_id, pipe in self.a.cameras().items():
            shed.add_metric([camera_id], pipe.counters.shed_packets)
        yield from (analysed, detected, dropped, labels, shed)
        gov = self.a.governor
        yield GaugeMetricFamily(
            "vigia_analytics_shed_level",
            "Load shedding: 0 normal, 1 half rate, 2 key frames only, 3 sparse key frames",
            value=self.a.shed_level,
        )
        yield GaugeMetricFamily(
            "vigia_analytics_cpu_share",
            "Analytics' own CPU over the last window, share of all cores",
            value=gov.load.own if gov is not None else 0.0,
        )
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
