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
from server.archive import Archiver, StoreError
from server.auth import Permission
from server.auth.audit import ARCHIVE_ACCESS
from server.catalog import Catalog, SegmentRow
from server.datadir import DataDir
from server.protocol.fragindex import decode_fragment_index
from server.protocol.models import Fragment, Location, Range, Recordings, Segment
from server.protocol.models.common import MicrosParam
from server.recording.segmenter import PART_SUFFIX

MAX_SEGMENTS = 5000
RESOLUTION = Param("resolution_us", MicrosParam, description="gaps shorter than this merge")


def segment_body(seg: SegmentRow, location: str = "local") -> Segment:
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
        location=location,  # type: ignore[arg-type]
    )


def merge_locations(
    rows: list[tuple[int, int, str]], start: int, end: int, resolution: int
) -> tuple[list[Range], list[Location]]:
    """Segments with their location -> recorded ranges, and ranges split where the location
    changes (each merged across gaps shorter than ``resolution``)."""
    ranges: list[list[int]] = []
    places: list[list] = []
    for a, b, where in rows:
        a, b = max(a, start), min(b, end)
        if ranges and a - ranges[-1][1] <= resolution:
            ranges[-1][1] = max(ranges[-1][1], b)
        else:
            ranges.append([a, b])
        if places and places[-1][2] == where and a - places[-1][1] <= resolution:
            places[-1][1] = max(places[-1][1], b)
        else:
            places.append([a, b, where])
    return [Range(a, b) for a, b in ranges], [Location(a, b, w) for a, b, w in places]


class RecordingRoutes(RouteGroup):
    def __init__(
        self, catalog: Catalog, data: DataDir, security: Security, archive: Archiver | None = None
    ) -> None:
        self.catalog, self.data, self.sec = catalog, data, security
        self.archive = archive  # footage whose local copy is gone plays from there

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
            if self.archive is None:
                return [segment_body(s) for s in segs]
            ledger = self.archive.ledger
            both = ledger.archived_ids([s.id for s in segs])
            out = [segment_body(s, "both" if s.id in both else "local") for s in segs]
            gone = ledger.archive_only(camera_id, stream, start, end, sid)
            out += [segment_body(s, "archived") for s in gone]
            return sorted(out, key=lambda b: (b.start_us, b.id))

        return json_response(await asyncio.to_thread(work))

    async def segment_media(self, request: web.Request) -> web.StreamResponse:
        """The segment file, with HTTP Range (aiohttp's FileResponse) so a client fetches the
        init and exactly the fragments it needs; an open segment is served as written so far."""
        segment_id = id_param(request, "segment_id", "segment")
        seg = await asyncio.to_thread(self.catalog.segment, segment_id)
        copy = await asyncio.to_thread(self._archived_copy, segment_id, seg)
        if copy is not None:
            require(request, Permission.ARCHIVE, copy[0])
            return await self._from_archive(request, copy[1])
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

    def _archived_copy(self, segment_id: int, seg: SegmentRow | None) -> tuple[str, str] | None:
        """(camera, object key) when the segment is archived and its local file is gone."""
        if self.archive is None:
            return None
        if seg is not None and (seg.state == "open" or (self.data.root / seg.path).exists()):
            return None
        found = self.archive.ledger.archived(segment_id)
        return (found.camera_id, found.key) if found else None

    async def _from_archive(self, request: web.Request, key: str) -> web.StreamResponse:
        """The object, proxied with the client's Range: the workstation plays, scrubs and
        exports footage whose local copy is gone as if it were local."""
        assert self.archive is not None
        store = self.archive.store
        try:
            answer = await asyncio.to_thread(store.open, key, request.headers.get("Range"))
        except StoreError as exc:
            if exc.code == "InvalidRange":
                raise ApiError(416, "bad_range", "range not satisfiable") from None
            raise ApiError(502, "archive_unavailable", f"archive: {exc}") from None
        headers = {
            "Content-Type": "video/mp4", "Cache-Control": "no-cache", "Accept-Ranges": "bytes",
            "Content-Length": str(answer["ContentLength"]),
        }  # fmt: skip
        if answer.get("ContentRange"):
            headers["Content-Range"] = answer["ContentRange"]
        response = web.StreamResponse(status=206 if "Content-Range" in headers else 200,
                                      headers=headers)  # fmt: skip
        body = answer["Body"]
        try:
            await response.prepare(request)
            while chunk := await asyncio.to_thread(body.read, 256 * 1024):
                await response.write(chunk)
        finally:
            body.close()
        await response.write_eof()
        return response

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
            locations: list[Location] = []
            if self.archive is None:
                ranges = self.catalog.recorded_ranges(sid, start, end, resolution)
            else:
                rows = self.archive.ledger.locations(sid, camera_id, stream, start, end)
                merged, locations = merge_locations(rows, start, end, resolution)
                ranges = [(r.start_us, r.end_us) for r in merged]
            gaps, t = [], start
            for s, e in ranges:
                if s > t:
                    gaps.append(Range(t, s))
                t = max(t, e)
            if t < end:
                gaps.append(Range(t, end))
            found = [Range(s, e) for s, e in ranges]
            return Recordings(camera_id, stream, start, end, found, gaps, locations)  # type: ignore[arg-type]

        return json_response(await asyncio.to_thread(work))

    ROUTES = (
        Route("GET", f"{API}/cameras/{{camera_id}}/segments", list_segments,
              "Segments with their fragment index", params=(*WINDOW, stream_param("main")),
              returns=list[Segment], errors=(404,), permission=Permission.ARCHIVE),
        Route("GET", f"{API}/segments/{{segment_id}}/media", segment_media,
              "The segment's fMP4 file; HTTP Range supported",
              params=(Param("segment_id", int, where="path"),), errors=(400, 404, 416, 502),
              permission=Permission.ARCHIVE,
              returns=Media.binary("video/mp4", description="The file"),
              more={206: Media.binary("video/mp4", description="The requested byte range")}),
        Route("GET", f"{API}/recordings", recordings,
              "Recorded ranges and gaps of a stream, for the timeline",
              params=(Param("camera", str, required=True), *WINDOW, stream_param("main"),
                      RESOLUTION),
              returns=Recordings, errors=(404,), permission=Permission.ARCHIVE),
    )  # fmt: skip
