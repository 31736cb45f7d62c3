"""Routes of ``/api/v1``. Handlers stay thin: the catalog and the recorder do the work, in
worker threads where it touches SQLite or files, so the event loop never waits on disk."""

from __future__ import annotations

import asyncio
import base64
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from server import __version__
from server.api.analytics import AnalyticsCollector, AnalyticsRoutes
from server.api.auth import USER, Security, require
from server.api.errors import ApiError, error_middleware, int_param, json_body
from server.api.exports import ExportRoutes
from server.api.layouts import LayoutRoutes
from server.api.metrics import Metrics
from server.api.openapi import openapi_document
from server.api.snapshot import jpeg_of_first_frame, probe_snapshot
from server.api.users import UserRoutes
from server.api.whep import WhepRoutes
from server.auth import Permission, can_see
from server.auth.audit import ARCHIVE_ACCESS, BOOKMARK_CHANGE, CONFIG_CHANGE
from server.catalog import Catalog, SegmentRow
from server.catalog.catalog import CameraRow
from server.catalog.layouts import Layouts
from server.clock import Clock
from server.config import CameraConfig, ConfigError, parse_camera
from server.datadir import DataDir
from server.export.jobs import ExportJobs
from server.ingest.source import Source, SourceError, Timeouts
from server.live.fanout import Fanout
from server.protocol.fragindex import decode_fragment_index
from server.recorder import Recorder, redact_url
from server.recording.segmenter import PART_SUFFIX
from server.web import add_routes as add_viewer_routes
from server.web import public_viewer
from server.webrtc.sessions import WebRtcSettings

if TYPE_CHECKING:
    from server.analytics.service import Analytics

API = "/api/v1"
MAX_WINDOW_US = 400 * 86_400 * 1_000_000  # a timeline query spans at most ~13 months
MAX_SEGMENTS = 5000


@dataclass
class ApiContext:
    catalog: Catalog
    recorder: Recorder
    data: DataDir
    clock: Clock
    server_id: str
    name: str
    security: Security
    exports: ExportJobs | None = None
    analytics: Analytics | None = None
    fanout: Fanout | None = None  # live packets in process: WebRTC viewers (WHEP)
    webrtc: WebRtcSettings | None = None

    def sync(self) -> None:
        self.recorder.sync()
        if self.analytics is not None:
            self.analytics.sync()


CTX = web.AppKey("ctx", ApiContext)


def make_app(ctx: ApiContext) -> web.Application:
    metrics = Metrics(ctx.recorder, ctx.catalog, ctx.data)
    sec = ctx.security
    app = web.Application(
        middlewares=[metrics.middleware, error_middleware, public_viewer(sec.middleware)],
        client_max_size=1024 * 1024,
    )
    app[CTX] = ctx
    r = app.router
    r.add_post(f"{API}/auth/login", sec.login)
    r.add_post(f"{API}/auth/logout", sec.logout)
    r.add_get(f"{API}/audit", sec.audit_log)
    UserRoutes(sec).add_to(r, API)
    if ctx.exports is not None:
        ExportRoutes(ctx.exports, sec).add_to(r, API)
        exports = ctx.exports

        async def close_exports(_app: web.Application) -> None:
            await asyncio.to_thread(exports.close)

        app.on_cleanup.append(close_exports)
    WhepRoutes.install(app, API, ctx, metrics.registry)
    add_viewer_routes(r)  # the web viewer at /
    LayoutRoutes(Layouts(ctx.catalog), sec, ctx.clock).add_to(r, API)
    camera_ids = ctx.catalog
    if ctx.analytics is not None:
        metrics.registry.register(AnalyticsCollector(ctx.analytics))
    AnalyticsRoutes(
        ctx.analytics, sec, lambda cid: any(c.id == cid for c in camera_ids.cameras())
    ).add_to(r, API)
    r.add_get("/healthz", healthz)
    r.add_get("/metrics", metrics.handle)
    r.add_get(f"{API}/cameras/{{camera_id}}/snapshot", snapshot)
    r.add_get(f"{API}/openapi.json", openapi)
    r.add_get(f"{API}/server", server_info)
    r.add_get(f"{API}/cameras", list_cameras)
    r.add_post(f"{API}/cameras", create_camera)
    r.add_post(f"{API}/cameras/probe", probe_camera)
    r.add_get(f"{API}/cameras/{{camera_id}}", get_camera)
    r.add_patch(f"{API}/cameras/{{camera_id}}", update_camera)
    r.add_delete(f"{API}/cameras/{{camera_id}}", delete_camera)
    r.add_get(f"{API}/cameras/{{camera_id}}/segments", list_segments)
    r.add_get(f"{API}/segments/{{segment_id}}/media", segment_media)
    r.add_get(f"{API}/recordings", recordings)
    r.add_get(f"{API}/bookmarks", list_bookmarks)
    r.add_post(f"{API}/bookmarks", create_bookmark)
    r.add_delete(f"{API}/bookmarks/{{bookmark_id}}", delete_bookmark)
    return app


def _ctx(request: web.Request) -> ApiContext:
    return request.app[CTX]


def _id_param(request: web.Request, key: str, what: str) -> int:
    """A row id from the path: 400 when not an integer, 404 when it cannot exist."""
    try:
        value = int(request.match_info[key])
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{what} id must be an integer") from None
    if not 0 <= value < 2**63:
        raise ApiError(404, "not_found", f"no {what} {value}")
    return value


def _require_camera(request: web.Request, permission: Permission) -> str:
    camera_id = request.match_info["camera_id"]
    require(request, permission, camera_id)
    return camera_id


async def healthz(request: web.Request) -> web.Response:
    statuses = _ctx(request).recorder.status()
    online = sum(1 for s in statuses if s.state == "online")
    return web.json_response({"status": "ok", "streams": len(statuses), "online": online})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def server_info(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    return web.json_response(
        {
            "id": ctx.server_id,
            "name": ctx.name,
            "version": __version__,
            "api": API,
            "time_us": ctx.clock.now_us(),
        }
    )


# --- cameras -------------------------------------------------------------------------------


def _camera_json(ctx: ApiContext, cam: CameraRow) -> dict:
    status = {(s.camera_id, s.stream): s for s in ctx.recorder.status()}
    streams = []
    for st in ctx.catalog.streams(cam.id):
        s = status.get((cam.id, st.name))
        streams.append(
            {
                "name": st.name,
                "url": redact_url(st.url),
                "record": st.record,
                "state": str(s.state) if s else "stopped",
                "reason": s.reason if s else "",
                "packets": s.packets if s else 0,
                "bytes": s.bytes if s else 0,
                "reconnects": s.reconnects if s else 0,
                "last_packet_us": s.last_packet_us if s else None,
            }
        )
    return {
        "id": cam.id,
        "name": cam.name,
        "enabled": cam.enabled,
        "retention_days": cam.retention_days,
        "source": cam.source,
        "streams": streams,
        "analytics": ctx.analytics.status(cam.id) if ctx.analytics else {"state": "disabled"},
    }


def _find_camera(ctx: ApiContext, camera_id: str) -> CameraRow:
    for cam in ctx.catalog.cameras():
        if cam.id == camera_id:
            return cam
    raise ApiError(404, "not_found", f"no camera {camera_id!r}")


async def list_cameras(request: web.Request) -> web.Response:
    ctx = _ctx(request)

    user = request[USER]

    def work() -> list[dict]:
        return [_camera_json(ctx, c) for c in ctx.catalog.cameras() if can_see(user, c.id)]

    return web.json_response(await asyncio.to_thread(work))


async def get_camera(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    _require_camera(request, Permission.LIVE)
    cam = await asyncio.to_thread(_find_camera, ctx, request.match_info["camera_id"])
    return web.json_response(await asyncio.to_thread(_camera_json, ctx, cam))


_CAMERA_FIELDS = {
    "id",
    "name",
    "main",
    "sub",
    "record_main",
    "record_sub",
    "retention_days",
    "enabled",
}


def _parse_camera_body(body: dict) -> CameraConfig:
    unknown = set(body) - _CAMERA_FIELDS
    if unknown:
        raise ApiError(400, "bad_request", f"unknown field(s): {', '.join(sorted(unknown))}")
    types = {
        "id": str,
        "name": str,
        "main": str,
        "sub": (str, type(None)),
        "record_main": bool,
        "record_sub": bool,
        "retention_days": (int, float, type(None)),
        "enabled": bool,
    }
    for key, value in body.items():
        if not isinstance(value, types[key]) or (key == "retention_days" and value is True):
            raise ApiError(400, "bad_request", f"field {key!r} has the wrong type")
    try:
        return parse_camera(body, "camera")
    except ConfigError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None


def _apply(ctx: ApiContext, cam: CameraConfig) -> None:
    ctx.catalog.upsert_camera(
        cam.id,
        cam.name,
        cam.streams(),
        enabled=cam.enabled,
        retention_days=cam.retention_days,
        source="api",
        now_us=ctx.clock.now_us(),
    )
    ctx.sync()


async def create_camera(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    require(request, Permission.CONFIG)
    cam = _parse_camera_body(await json_body(request))

    def work() -> dict:
        if any(c.id == cam.id for c in ctx.catalog.cameras()):
            raise ApiError(409, "exists", f"camera {cam.id!r} exists")
        _apply(ctx, cam)
        ctx.security.record(request, CONFIG_CHANGE, cam.id, {"op": "create", "name": cam.name})
        return _camera_json(ctx, _find_camera(ctx, cam.id))

    return web.json_response(await asyncio.to_thread(work), status=201)


async def update_camera(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    require(request, Permission.CONFIG)
    body = await json_body(request)
    camera_id = request.match_info["camera_id"]
    if "id" in body and body["id"] != camera_id:
        raise ApiError(400, "bad_request", "a camera's id cannot change")

    def work() -> dict:
        row = _find_camera(ctx, camera_id)
        streams = {s.name: s for s in ctx.catalog.streams(camera_id)}
        current = {
            "id": row.id,
            "name": row.name,
            "enabled": row.enabled,
            "retention_days": row.retention_days,
            "main": streams["main"].url if "main" in streams else "",
            "record_main": streams["main"].record if "main" in streams else True,
            "sub": streams["sub"].url if "sub" in streams else None,
            "record_sub": streams["sub"].record if "sub" in streams else True,
        }
        cam = _parse_camera_body({**current, **body})
        _apply(ctx, cam)
        ctx.security.record(request, CONFIG_CHANGE, camera_id, {"op": "update", "f": sorted(body)})
        return _camera_json(ctx, _find_camera(ctx, camera_id))

    return web.json_response(await asyncio.to_thread(work))


async def delete_camera(request: web.Request) -> web.Response:
    """Stops pulling and recording; the recordings stay until retention removes them."""
    ctx = _ctx(request)
    require(request, Permission.CONFIG)

    def work() -> None:
        cam = _find_camera(ctx, request.match_info["camera_id"])
        ctx.catalog.set_camera_enabled(cam.id, False, now_us=ctx.clock.now_us())
        ctx.sync()
        ctx.security.record(request, CONFIG_CHANGE, cam.id, {"op": "delete"})

    await asyncio.to_thread(work)
    return web.Response(status=204)


async def probe_camera(request: web.Request) -> web.Response:
    require(request, Permission.CONFIG)
    body = await json_body(request)
    url = body.get("url")
    if not isinstance(url, str) or "://" not in url or len(url) > 2048:
        raise ApiError(400, "bad_request", "url must be a camera URL (rtsp://, http://, ...)")
    if url.startswith("file:"):
        raise ApiError(400, "bad_request", "file:// URLs are not probed over the API")
    want_snapshot = body.get("snapshot", False)
    if not isinstance(want_snapshot, bool):
        raise ApiError(400, "bad_request", "snapshot must be true or false")
    ctx = _ctx(request)

    def work() -> dict:
        try:
            source = Source(url, ctx.clock, Timeouts(5.0, 5.0), threading.Event())
        except SourceError as exc:
            raise ApiError(422, "probe_failed", str(exc)) from None
        try:
            info = source.info
            out: dict = {
                "codec": info.codec,
                "width": info.width,
                "height": info.height,
                "fps": info.fps,
            }
            if want_snapshot:
                out["snapshot_jpeg"] = base64.b64encode(probe_snapshot(source)).decode()
            return out
        finally:
            source.close()

    return web.json_response(await asyncio.to_thread(work))


async def snapshot(request: web.Request) -> web.Response:
    """JPEG of the latest key frame: the first frame of the newest indexed fragment."""
    ctx = _ctx(request)
    _require_camera(request, Permission.LIVE)
    stream = request.query.get("stream", "sub")

    def work() -> bytes:
        sid = _stream_id(ctx, request.match_info["camera_id"], stream)
        now = ctx.clock.now_us()
        segs = ctx.catalog.segments(sid, start_us=now - 600_000_000)
        for seg in reversed(segs):
            init, frags = decode_fragment_index(seg.fragment_index, seg.start_us)
            if not frags:
                continue
            path = ctx.data.root / seg.path
            if seg.state == "open":
                path = path.with_name(path.name + PART_SUFFIX)
            try:
                with open(path, "rb") as f:
                    head = f.read(init)
                    f.seek(frags[-1].offset)
                    body = f.read(frags[-1].bytes)
            except FileNotFoundError:
                continue  # closed meanwhile: the next one back has it under its final name
            return jpeg_of_first_frame(head + body)
        raise ApiError(404, "no_video", "no recent video for this stream")

    return web.Response(body=await asyncio.to_thread(work), content_type="image/jpeg")


# --- recordings ----------------------------------------------------------------------------


def _window(request: web.Request) -> tuple[int, int]:
    start = int_param(request, "start_us")
    end = int_param(request, "end_us")
    if end <= start:
        raise ApiError(400, "bad_parameter", "end_us must be after start_us")
    if end - start > MAX_WINDOW_US:
        raise ApiError(400, "bad_parameter", "window too large")
    return start, end


def _stream_id(ctx: ApiContext, camera_id: str, stream: str) -> int:
    if stream not in ("main", "sub"):
        raise ApiError(400, "bad_parameter", "stream must be 'main' or 'sub'")
    _find_camera(ctx, camera_id)
    try:
        return ctx.catalog.stream_id(camera_id, stream)
    except Exception:
        raise ApiError(404, "not_found", f"camera {camera_id!r} has no {stream} stream") from None


def _segment_json(seg: SegmentRow) -> dict:
    init, frags = decode_fragment_index(seg.fragment_index, seg.start_us)
    return {
        "id": seg.id,
        "start_us": seg.start_us,
        "end_us": seg.end_us,
        "bytes": seg.bytes,
        "frames": seg.frames,
        "codec": seg.codec,
        "width": seg.width,
        "height": seg.height,
        "state": seg.state,
        "init_bytes": init,
        "fragments": [
            {
                "offset": f.offset,
                "bytes": f.bytes,
                "start_us": f.start_us,
                "duration_us": f.duration_us,
            }
            for f in frags
        ],
    }


async def list_segments(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    camera_id = _require_camera(request, Permission.ARCHIVE)
    start, end = _window(request)
    stream = request.query.get("stream", "main")

    def work() -> list[dict]:
        sid = _stream_id(ctx, camera_id, stream)
        segs = ctx.catalog.segments(sid, start_us=start, end_us=end)
        detail = {"stream": stream, "start_us": start, "end_us": end}
        ctx.security.record(request, ARCHIVE_ACCESS, camera_id, detail)
        if len(segs) > MAX_SEGMENTS:
            raise ApiError(400, "bad_parameter", "window holds too many segments; narrow it")
        return [_segment_json(s) for s in segs]

    return web.json_response(await asyncio.to_thread(work))


async def segment_media(request: web.Request) -> web.StreamResponse:
    """The segment file, with HTTP Range (aiohttp's FileResponse) so a client fetches the init
    and exactly the fragments it needs; an open segment is served as written so far."""
    ctx = _ctx(request)
    segment_id = _id_param(request, "segment_id", "segment")
    seg = await asyncio.to_thread(ctx.catalog.segment, segment_id)
    if seg is None:
        raise ApiError(404, "not_found", f"no segment {segment_id}")
    camera_id = await asyncio.to_thread(ctx.catalog.stream_camera, seg.stream_id)
    require(request, Permission.ARCHIVE, camera_id)
    path = ctx.data.root / seg.path
    if seg.state == "open":
        part = path.with_name(path.name + PART_SUFFIX)
        path = part if part.exists() else path
    if not Path(path).exists():
        raise ApiError(404, "not_found", f"segment {segment_id} has no file")
    return web.FileResponse(
        path, headers={"Content-Type": "video/mp4", "Cache-Control": "no-cache"}
    )


async def recordings(request: web.Request) -> web.Response:
    """Recorded ranges and gaps of one stream in a window, merged at the caller's resolution
    (a gap shorter than ``resolution_us`` is not worth a pixel on the caller's timeline)."""
    ctx = _ctx(request)
    start, end = _window(request)
    resolution = int_param(request, "resolution_us", default=1_000_000, minimum=0)
    camera_id = request.query.get("camera")
    if not camera_id:
        raise ApiError(400, "missing_parameter", "query parameter 'camera' is required")
    require(request, Permission.ARCHIVE, camera_id)
    stream = request.query.get("stream", "main")

    def work() -> dict:
        sid = _stream_id(ctx, camera_id, stream)
        ranges = ctx.catalog.recorded_ranges(sid, start, end, resolution)
        gaps, t = [], start
        for s, e in ranges:
            if s > t:
                gaps.append({"start_us": t, "end_us": s})
            t = max(t, e)
        if t < end:
            gaps.append({"start_us": t, "end_us": end})
        return {
            "camera": camera_id,
            "stream": stream,
            "start_us": start,
            "end_us": end,
            "ranges": [{"start_us": s, "end_us": e} for s, e in ranges],
            "gaps": gaps,
        }

    return web.json_response(await asyncio.to_thread(work))


# --- bookmarks -----------------------------------------------------------------------------


async def list_bookmarks(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    start, end = _window(request)
    camera_id = request.query.get("camera")
    user = require(request, Permission.ARCHIVE, camera_id)
    rows = await asyncio.to_thread(ctx.catalog.bookmarks, camera_id, start, end)
    return web.json_response([b for b in rows if can_see(user, b["camera_id"])])


async def create_bookmark(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    body = await json_body(request)
    allowed = {"camera", "start_us", "end_us", "name", "description", "locked"}
    if set(body) - allowed or not {"camera", "start_us", "end_us"} <= set(body):
        raise ApiError(
            400,
            "bad_request",
            f"fields: camera, start_us, end_us required; allowed {sorted(allowed)}",
        )
    ints = [body["start_us"], body["end_us"]]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62 for v in ints):
        raise ApiError(400, "bad_request", "start_us and end_us must be integers (µs)")
    if body["end_us"] < body["start_us"]:
        raise ApiError(400, "bad_request", "end_us must not be before start_us")
    name, description = body.get("name", ""), body.get("description", "")
    locked = body.get("locked", False)
    if not isinstance(name, str) or not isinstance(description, str) or len(name) > 200:
        raise ApiError(400, "bad_request", "name and description must be strings")
    if not isinstance(locked, bool) or not isinstance(body["camera"], str):
        raise ApiError(400, "bad_request", "locked must be a boolean, camera a string")
    user = require(request, Permission.BOOKMARKS, body["camera"])

    def work() -> dict:
        _find_camera(ctx, body["camera"])
        bid = ctx.catalog.add_bookmark(
            body["camera"],
            body["start_us"],
            body["end_us"],
            name=name,
            locked=locked,
            description=description,
            now_us=ctx.clock.now_us(),
            created_by=user.name,
        )
        ctx.security.record(request, BOOKMARK_CHANGE, body["camera"], {"op": "create", "id": bid})
        return ctx.catalog.bookmark(bid)

    return web.json_response(await asyncio.to_thread(work), status=201)


async def delete_bookmark(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    bid = _id_param(request, "bookmark_id", "bookmark")
    mark = await asyncio.to_thread(ctx.catalog.bookmark, bid)
    if mark is None:
        raise ApiError(404, "not_found", f"no bookmark {bid}")
    require(request, Permission.BOOKMARKS, mark["camera_id"])
    await asyncio.to_thread(ctx.catalog.delete_bookmark, bid)
    detail = {"op": "delete", "id": bid}
    await asyncio.to_thread(
        ctx.security.record, request, BOOKMARK_CHANGE, mark["camera_id"], detail
    )
    return web.Response(status=204)


__all__ = ["ApiContext", "make_app", "replace"]
