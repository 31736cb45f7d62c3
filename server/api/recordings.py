"""Recordings: segments with their fragment index, segment files (HTTP Range), and recorded
ranges and gaps for the timeline."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from server.api.auth import Security, require
from server.api.bodies import json_response
from server.api.errors import ApiError
from server.api.lookups import WINDOW, id_param, stream_id, stream_param, window
from server.api.routing import API, Media, Param, Route, RouteGroup
from server.auth import Permission
from server.auth.audit import ARCHIVE_ACCESS
from server.catalog import Catalog, SegmentRow
from server.datadir import DataDir
from server.protocol.fragindex import decode_fragment_index
from server.protocol.models import Fragment, Range, Recordings, Segment
from server.protocol.models.common import MicrosParam
from server.recording.segmenter import PART_SUFFIX

MAX_SEGMENTS = 5000
RESOLUTION = Param("resolution_us", MicrosParam, description="gaps shorter than this merge")


def segment_body(seg: SegmentRow) -> Segment:
    init, frags = decode_fragment_index(seg.fragment_index, seg.start_us)
    return Segment(
        id=seg.id,
        start_us=seg.start_us,
        end_us=seg.end_us,
        bytes=seg.bytes,
        frames=seg.frames,
        codec=seg.codec,  # type: ignore[arg-type]
        width=seg.width,
        height=seg.height,
        state=seg.state,  # type: ignore[arg-type]
        init_bytes=init,
        fragments=[Fragment(f.offset, f.bytes, f.start_us, f.duration_us) for f in frags],
    )


class RecordingRoutes(RouteGroup):
    def __init__(self, catalog: Catalog, data: DataDir, security: Security) -> None:
        self.catalog, self.data, self.sec = catalog, data, security

    async def list_segments(self, request: web.Request) -> web.Response:
        camera_id = request.match_info["camera_id"]
        require(request, Permission.ARCHIVE, camera_id)
        start, end = window(request)
        stream = request.query.get("stream", "main")

        def work() -> list[Segment]:
            sid = stream_id(self.catalog, camera_id, stream)
            segs = self.catalog.segments(sid, start_us=start, end_us=end)
            detail = {"stream": stream, "start_us": start, "end_us": end}
            self.sec.record(request, ARCHIVE_ACCESS, camera_id, detail)
            if len(segs) > MAX_SEGMENTS:
                raise ApiError(400, "bad_parameter", "window holds too many segments; narrow it")
            return [segment_body(s) for s in segs]

        return json_response(await asyncio.to_thread(work))

    async def segment_media(self, request: web.Request) -> web.StreamResponse:
        """The segment file, with HTTP Range (aiohttp's FileResponse) so a client fetches the
        init and exactly the fragments it needs; an open segment is served as written so far."""
        segment_id = id_param(request, "segment_id", "segment")
        seg = await asyncio.to_thread(self.catalog.segment, segment_id)
        if seg is None:
            raise ApiError(404, "not_found", f"no segment {segment_id}")
        camera_id = await asyncio.to_thread(self.catalog.stream_camera, seg.stream_id)
        require(request, Permission.ARCHIVE, camera_id)
        path = self.data.root / seg.path
        if seg.state == "open":
            part = path.with_name(path.name + PART_SUFFIX)
            path = part if part.exists() else path
        if not Path(path).exists():
            raise ApiError(404, "not_found", f"segment {segment_id} has no file")
        return web.FileResponse(
            path, headers={"Content-Type": "video/mp4", "Cache-Control": "no-cache"}
        )

    async def recordings(self, request: web.Request) -> web.Response:
        """Recorded ranges and gaps of one stream in a window, merged at the caller's
        resolution (a gap shorter than ``resolution_us`` is not worth a pixel on the caller's
        timeline)."""
        start, end = window(request)
        resolution = RESOLUTION.read_int(request, default=1_000_000)
        camera_id = request.query.get("camera")
        if not camera_id:
            raise ApiError(400, "missing_parameter", "query parameter 'camera' is required")
        require(request, Permission.ARCHIVE, camera_id)
        stream = request.query.get("stream", "main")

        def work() -> Recordings:
            sid = stream_id(self.catalog, camera_id, stream)
            ranges = self.catalog.recorded_ranges(sid, start, end, resolution)
            gaps, t = [], start
            for s, e in ranges:
                if s > t:
                    gaps.append(Range(t, s))
                t = max(t, e)
            if t < end:
                gaps.append(Range(t, end))
            found = [Range(s, e) for s, e in ranges]
            return Recordings(camera_id, stream, start, end, found, gaps)  # type: ignore[arg-type]

        return json_response(await asyncio.to_thread(work))

    ROUTES = (
        Route("GET", f"{API}/cameras/{{camera_id}}/segments", list_segments,
              "Segments with their fragment index", params=(*WINDOW, stream_param("main")),
              returns=list[Segment], errors=(404,), permission=Permission.ARCHIVE),
        Route("GET", f"{API}/segments/{{segment_id}}/media", segment_media,
              "The segment's fMP4 file; HTTP Range supported",
              params=(Param("segment_id", int, where="path"),), errors=(400, 404),
              permission=Permission.ARCHIVE,
              returns=Media.binary("video/mp4", description="The file"),
              more={206: Media.binary("video/mp4", description="The requested byte range")}),
        Route("GET", f"{API}/recordings", recordings,
              "Recorded ranges and gaps of a stream, for the timeline",
              params=(Param("camera", str, required=True), *WINDOW, stream_param("main"),
                      RESOLUTION),
              returns=Recordings, errors=(404,), permission=Permission.ARCHIVE),
    )  # fmt: skip
