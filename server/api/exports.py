"""Export endpoints: start a job, follow it, download its files (video, manifest, signature,
public key), cancel it. The work is ``server.export``; this is its HTTP face."""

from __future__ import annotations

import asyncio

from aiohttp import web

from server.api.auth import USER, Security, require
from server.api.errors import ApiError, json_body
from server.auth import Permission, allowed
from server.auth.audit import EXPORT
from server.export.cutter import ExportError
from server.export.jobs import ExportJobs, JobStatus


def _status_json(st: JobStatus) -> dict:
    return {
        "id": st.id,
        "state": str(st.state),
        "progress": st.progress,
        "error": st.error,
        "files": list(st.files),
        "cameras": [{"camera": c, "stream": s} for c, s in st.request.cameras],
        "start_us": st.request.start_us,
        "end_us": st.request.end_us,
        "format": st.request.fmt,
        "exact": st.request.exact,
        "exported_by": st.request.exported_by,
        "created_us": st.created_us,
        "finished_us": st.finished_us,
    }


def _parse(body: dict) -> tuple[list[tuple[str, str]], int, int, str, bool]:
    allowed_keys = {"cameras", "start_us", "end_us", "format", "exact"}
    if set(body) - allowed_keys or not {"cameras", "start_us", "end_us"} <= set(body):
        raise ApiError(400, "bad_request", "fields: cameras, start_us, end_us [, format, exact]")
    cams = body["cameras"]
    if not isinstance(cams, list) or not 1 <= len(cams) <= 64:
        raise ApiError(400, "bad_request", "cameras must be a list of 1 to 64 entries")
    out = []
    for c in cams:
        if (
            not isinstance(c, dict)
            or not isinstance(c.get("camera"), str)
            or set(c) - {"camera", "stream"}
        ):
            raise ApiError(400, "bad_request", "each camera is {camera, stream?}")
        stream = c.get("stream", "main")
        if stream not in ("main", "sub"):
            raise ApiError(400, "bad_request", "stream must be 'main' or 'sub'")
        out.append((c["camera"], stream))
    start, end = body["start_us"], body["end_us"]
    ints = (start, end)
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62 for v in ints):
        raise ApiError(400, "bad_request", "start_us and end_us must be integers (µs)")
    if end <= start:
        raise ApiError(400, "bad_request", "end_us must be after start_us")
    fmt, exact = body.get("format", "mp4"), body.get("exact", False)
    if fmt not in ("mp4", "mkv") or not isinstance(exact, bool):
        raise ApiError(400, "bad_request", "format is 'mp4' or 'mkv'; exact a boolean")
    return out, start, end, fmt, exact


class ExportRoutes:
    def __init__(self, jobs: ExportJobs, security: Security) -> None:
        self.jobs = jobs
        self.security = security

    def add_to(self, router: web.UrlDispatcher, api: str) -> None:
        router.add_post(f"{api}/exports", self.create)
        router.add_get(f"{api}/exports/{{export_id}}", self.get)
        router.add_delete(f"{api}/exports/{{export_id}}", self.delete)
        router.add_get(f"{api}/exports/{{export_id}}/files/{{name}}", self.file)

    def _job(self, request: web.Request) -> JobStatus:
        try:
            st = self.jobs.status(request.match_info["export_id"])
        except KeyError:
            raise ApiError(404, "not_found", "no such export") from None
        user = request[USER]
        if not all(allowed(user, Permission.EXPORT, c) for c, _ in st.request.cameras):
            raise ApiError(403, "forbidden", f"{user.name} may not export these cameras")
        return st

    async def create(self, request: web.Request) -> web.Response:
        require(request, Permission.EXPORT)
        cams, start, end, fmt, exact = _parse(await json_body(request))
        for camera, _ in cams:
            require(request, Permission.EXPORT, camera)
        user = request[USER]

        def work() -> JobStatus:
            try:
                job_id = self.jobs.submit(cams, start, end, fmt=fmt, exact=exact,
                                          exported_by=user.name)  # fmt: skip
            except ExportError as exc:
                raise ApiError(422, "export_refused", str(exc)) from None
            self.security.record(
                request,
                EXPORT,
                ",".join(c for c, _ in cams),
                {"id": job_id, "start_us": start, "end_us": end, "format": fmt, "exact": exact},
            )
            return self.jobs.status(job_id)

        return web.json_response(_status_json(await asyncio.to_thread(work)), status=202)

    async def get(self, request: web.Request) -> web.Response:
        return web.json_response(_status_json(self._job(request)))

    async def delete(self, request: web.Request) -> web.Response:
        st = self._job(request)
        await asyncio.to_thread(self.jobs.cancel, st.id)
        await asyncio.to_thread(self.jobs.remove, st.id)
        return web.Response(status=204)

    async def file(self, request: web.Request) -> web.StreamResponse:
        st = self._job(request)
        name = request.match_info["name"]
        if str(st.state) != "done":
            raise ApiError(409, "not_ready", f"export is {st.state}")
        if name not in st.files:
            raise ApiError(404, "not_found", f"export has no file {name!r}")
        return web.FileResponse(st.dir / name)
