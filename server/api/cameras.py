"""Cameras: list, add, change, stop, test a URL, and a still of the latest key frame."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from server.api.auth import USER, Security, require
from server.api.bodies import decode_body, json_response
from server.api.errors import ApiError
from server.api.lookups import find_camera, stream_id, stream_param
from server.api.ptz import onvif_error
from server.api.routing import API, Media, Route, RouteGroup
from server.api.snapshot import jpeg_of_first_frame, probe_snapshot
from server.auth import Permission, can_see
from server.auth.audit import CONFIG_CHANGE
from server.catalog import Catalog
from server.catalog.catalog import CameraRow
from server.catalog.onvif import CameraOnvif, OnvifRow
from server.clock import Clock
from server.config import CameraConfig, ConfigError, parse_camera
from server.datadir import DataDir
from server.ingest.source import Source, SourceError, Timeouts, check_camera_url
from server.onvif import MediaProfile, OnvifDevice, OnvifError, pick_profiles
from server.onvif.device import with_credentials
from server.protocol.fragindex import decode_fragment_index
from server.protocol.models import (
    UNSET,
    AnalyticsStatus,
    Camera,
    CameraEventsStatus,
    CameraInput,
    CameraPatch,
    OnvifProfile,
    Probe,
    ProbeResult,
    Stream,
)
from server.protocol.models import OnvifDevice as OnvifDeviceBody
from server.recording.segmenter import PART_SUFFIX
from server.supervisor import IngestSupervisor, redact_url

if TYPE_CHECKING:
    from server.analytics.service import Analytics
    from server.onvif.events import CameraEvents

SNAPSHOT_WINDOW_US = 600_000_000  # the latest key frame is in the last ten minutes or nowhere


class CameraRoutes(RouteGroup):
    def __init__(
        self,
        catalog: Catalog,
        recorder: IngestSupervisor,
        data: DataDir,
        clock: Clock,
        security: Security,
        analytics: Analytics | None,
        sync: Callable[[], None],
        camera_events: CameraEvents | None = None,
    ) -> None:
        self.catalog, self.recorder, self.data, self.clock = catalog, recorder, data, clock
        self.sec, self.analytics, self.sync = security, analytics, sync
        self.camera_events = camera_events
        self.onvif = CameraOnvif(catalog)

    def _camera(self, cam: CameraRow) -> Camera:
        status = {(s.camera_id, s.stream): s for s in self.recorder.status()}
        streams = []
        for st in self.catalog.streams(cam.id):
            s = status.get((cam.id, st.name))
            streams.append(
                Stream(
                    name=st.name,  # type: ignore[arg-type]
                    url=redact_url(st.url),
                    record=st.record,
                    state=str(s.state) if s else "stopped",  # type: ignore[arg-type]
                    reason=s.reason if s else "",
                    packets=s.packets if s else 0,
                    bytes=s.bytes if s else 0,
                    reconnects=s.reconnects if s else 0,
                    last_packet_us=s.last_packet_us if s else None,
                    transport=st.transport,  # type: ignore[arg-type]
                    transport_in_use=(s.transport or None) if s and s.state == "online" else None,
                )
            )
        analytics = self.analytics.status(cam.id) if self.analytics else {"state": "disabled"}
        return Camera(
            id=cam.id,
            name=cam.name,
            enabled=cam.enabled,
            retention_days=cam.retention_days,
            source=cam.source,  # type: ignore[arg-type]
            streams=streams,
            analytics=msgspec.convert(analytics, AnalyticsStatus),
            onvif=self.onvif.addresses().get(cam.id),
            events=self._events_status(cam.id),
        )

    def _events_status(self, camera_id: str) -> CameraEventsStatus | None:
        subscriber = self.camera_events.status().get(camera_id) if self.camera_events else None
        if subscriber is None:
            return None
        return CameraEventsStatus(
            subscriber.state,  # type: ignore[arg-type]
            subscriber.reason,
            subscriber.events,
        )

    def _apply(self, cam: CameraConfig) -> None:
        self.catalog.upsert_camera(
            cam.id,
            cam.name,
            cam.streams(),
            enabled=cam.enabled,
            retention_days=cam.retention_days,
            source="api",
            now_us=self.clock.now_us(),
            transports=cam.transports(),
        )
        self.sync()

    async def list_cameras(self, request: web.Request) -> web.Response:
        user = request[USER]

        def work() -> list[Camera]:
            return [self._camera(c) for c in self.catalog.cameras() if can_see(user, c.id)]

        return json_response(await asyncio.to_thread(work))

    async def get_camera(self, request: web.Request) -> web.Response:
        camera_id = request.match_info["camera_id"]
        require(request, Permission.LIVE, camera_id)
        cam = await asyncio.to_thread(find_camera, self.catalog, camera_id)
        return json_response(await asyncio.to_thread(self._camera, cam))

    async def create_camera(self, request: web.Request) -> web.Response:
        require(request, Permission.CONFIG)
        body = await decode_body(request, CameraInput)
        fields = msgspec.structs.asdict(body)
        address, username, password = (fields.pop(k) for k in ("onvif", "username", "password"))
        onvif_row: OnvifRow | None = None
        if address is not None:
            # streams from the device's profiles: no URL typed (docs/design/cameras.md)
            device = await _onvif_probe(address, username, password)
            main, sub = _chosen(device)
            if fields["main"] is UNSET:
                fields["main"] = with_credentials(main.uri, username, password)
            if fields["sub"] is None and sub is not None:
                fields["sub"] = with_credentials(sub.uri, username, password)
            onvif_row = OnvifRow(
                body.id, address, username, password, main.token, sub.token if sub else None
            )
        elif fields["main"] is UNSET:
            raise ApiError(400, "bad_request", "main (a camera URL) or onvif is required")
        cam = _config(fields)

        def work() -> Camera:
            if any(c.id == cam.id for c in self.catalog.cameras()):
                raise ApiError(409, "exists", f"camera {cam.id!r} exists")
            self._apply(cam)
            if onvif_row is not None:
                self.onvif.put(onvif_row, now_us=self.clock.now_us())
            detail = {"op": "create", "name": cam.name}
            if onvif_row is not None:
                detail["onvif"] = onvif_row.address
            self.sec.record(request, CONFIG_CHANGE, cam.id, detail)
            return self._camera(find_camera(self.catalog, cam.id))

        return json_response(await asyncio.to_thread(work), status=201)

    async def update_camera(self, request: web.Request) -> web.Response:
        require(request, Permission.CONFIG)
        patch = await decode_body(request, CameraPatch)
        body = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not UNSET}
        camera_id = request.match_info["camera_id"]
        if "id" in body and body["id"] != camera_id:
            raise ApiError(400, "bad_request", "a camera's id cannot change")

        def work() -> Camera:
            row = find_camera(self.catalog, camera_id)
            streams = {s.name: s for s in self.catalog.streams(camera_id)}
            current = {
                "id": row.id,
                "name": row.name,
                "enabled": row.enabled,
                "retention_days": row.retention_days,
                "main": streams["main"].url if "main" in streams else "",
                "record_main": streams["main"].record if "main" in streams else True,
                "sub": streams["sub"].url if "sub" in streams else None,
                "record_sub": streams["sub"].record if "sub" in streams else True,
                "transport_main": streams["main"].transport if "main" in streams else "auto",
                "transport_sub": streams["sub"].transport if "sub" in streams else "auto",
            }
            self._apply(_config({**current, **body}))
            detail = {"op": "update", "f": sorted(body)}
            self.sec.record(request, CONFIG_CHANGE, camera_id, detail)
            return self._camera(find_camera(self.catalog, camera_id))

        return json_response(await asyncio.to_thread(work))

    async def delete_camera(self, request: web.Request) -> web.Response:
        """Stops pulling and recording; the recordings stay until retention removes them."""
        require(request, Permission.CONFIG)

        def work() -> None:
            cam = find_camera(self.catalog, request.match_info["camera_id"])
            self.catalog.set_camera_enabled(cam.id, False, now_us=self.clock.now_us())
            self.sync()
            self.sec.record(request, CONFIG_CHANGE, cam.id, {"op": "delete"})

        await asyncio.to_thread(work)
        return web.Response(status=204)

    async def probe_camera(self, request: web.Request) -> web.Response:
        require(request, Permission.CONFIG)
        body = await decode_body(request, Probe)
        if body.onvif is not UNSET:
            device = await _onvif_probe(body.onvif, body.username, body.password)
            main, _ = _chosen(device)
            codec = "hevc" if main.codec.upper() in ("H265", "HEVC") else "h264"
            found = ProbeResult(codec, main.width, main.height, main.fps, onvif=device)
            if not body.snapshot:
                return json_response(found)
            body.url = with_credentials(main.uri, body.username, body.password)
        url = body.url
        if url is UNSET:
            raise ApiError(400, "bad_request", "url or onvif is required")
        if "://" not in url:
            raise ApiError(400, "bad_request", "url must be a camera URL (rtsp://, http://, ...)")
        _check_url(url)
        clock = self.clock

        def work() -> ProbeResult:
            try:
                source = Source.probe(url, clock, Timeouts(5.0, 5.0))
            except SourceError as exc:
                raise ApiError(422, "probe_failed", str(exc)) from None
            try:
                info = source.info
                out = ProbeResult(info.codec, info.width, info.height, info.fps)  # type: ignore[arg-type]
                if body.onvif is not UNSET:
                    out.onvif = device
                if body.snapshot:
                    out.snapshot_jpeg = base64.b64encode(probe_snapshot(source)).decode()
                return out
            finally:
                source.close()

        return json_response(await asyncio.to_thread(work))

    async def snapshot(self, request: web.Request) -> web.Response:
        """JPEG of the latest key frame: the first frame of the newest indexed fragment."""
        camera_id = request.match_info["camera_id"]
        require(request, Permission.LIVE, camera_id)
        stream = request.query.get("stream", "sub")

        def work() -> bytes:
            sid = stream_id(self.catalog, camera_id, stream)
            now = self.clock.now_us()
            segs = self.catalog.segments(sid, start_us=now - SNAPSHOT_WINDOW_US)
            for seg in reversed(segs):
                init, frags = decode_fragment_index(seg.fragment_index, seg.start_us)
                if not frags:
                    continue
                path = self.data.root / seg.path
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

    CAMERA = f"{API}/cameras/{{camera_id}}"
    ROUTES = (
        Route("GET", f"{API}/cameras", list_cameras, "Cameras with stream status",
              returns=list[Camera]),
        Route("POST", f"{API}/cameras", create_camera, "Add a camera; recording starts at once",
              body=CameraInput, returns=Camera, status=201, errors=(409, 422, 502),
              permission=Permission.CONFIG),
        Route("POST", f"{API}/cameras/probe", probe_camera,
              "Test a URL: codec, size and rate, or why it fails", body=Probe,
              returns=ProbeResult, errors=(409, 422, 502), permission=Permission.CONFIG),
        Route("GET", CAMERA, get_camera, "A camera with stream status", returns=Camera,
              errors=(404,), permission=Permission.LIVE),
        Route("PATCH", CAMERA, update_camera, "Change a camera", body=CameraPatch,
              returns=Camera, errors=(404,), permission=Permission.CONFIG),
        Route("DELETE", CAMERA, delete_camera, "Stop the camera (recordings stay)", status=204,
              errors=(404,), permission=Permission.CONFIG),
        Route("GET", f"{CAMERA}/snapshot", snapshot, "JPEG of the latest key frame",
              params=(stream_param("sub"),), errors=(404,), permission=Permission.LIVE,
              returns=Media.binary("image/jpeg", description="The image")),
    )  # fmt: skip


async def _onvif_probe(address: str, username: str, password: str) -> OnvifDeviceBody:
    """Ask the device who it is and what it streams; its failures are 4xx/502, never 500."""
    try:
        async with OnvifDevice(address, username, password) as dev:
            info = await dev.device_info()
            profiles = await dev.profiles()
            main, sub = pick_profiles(profiles)
    except OnvifError as exc:
        raise onvif_error(exc) from None
    return OnvifDeviceBody(
        address=address,
        manufacturer=info.manufacturer,
        model=info.model,
        firmware=info.firmware,
        serial=info.serial,
        profiles=[OnvifProfile(**_fields(p)) for p in profiles],
        main=main.token,
        sub=sub.token if sub else None,
        ptz=any(p.ptz for p in profiles),
    )


def _fields(p: MediaProfile) -> dict:
    return {k: getattr(p, k) for k in MediaProfile.__slots__}


def _chosen(device: OnvifDeviceBody) -> tuple[OnvifProfile, OnvifProfile | None]:
    by_token = {p.token: p for p in device.profiles}
    return by_token[device.main], (by_token[device.sub] if device.sub else None)


def _config(body: dict) -> CameraConfig:
    """The checks a camera of the config file gets too (URL form, retention), and the API's
    own: only the schemes a camera uses (no local files through a request)."""
    try:
        cam = parse_camera(body, "camera")
    except ConfigError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    for url in (cam.main, cam.sub):
        if url:
            _check_url(url)
    return cam


def _check_url(url: str) -> None:
    try:
        check_camera_url(url)
    except SourceError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
