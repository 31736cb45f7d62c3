"""Export endpoints: start a job, follow it, download its files (video, manifest, signature,
public key), cancel it. The work is ``server.export``; this is its HTTP face."""

from __future__ import annotations

import asyncio

from aiohttp import web

from server.api.auth import USER, Security, require
from server.api.bodies import decode_body, json_response
from server.api.errors import ApiError
from server.api.routing import API, Media, Route, RouteGroup
from server.auth import Permission, Role, allowed
from server.auth.audit import EXPORT
from server.export.cutter import ExportError
from server.export.jobs import ExportJobs, ExportQuotaError, JobStatus
from server.protocol.models import Export, ExportCamera, ExportInput


def export_body(st: JobStatus) -> Export:
    return Export(
        id=st.id,
        state=st.state,
        progress=st.progress,
        error=st.error,
        files=list(st.files),
        cameras=[ExportCamera(c, s) for c, s in st.request.cameras],  # type: ignore[arg-type]
        start_us=st.request.start_us,
        end_us=st.request.end_us,
        format=st.request.fmt,  # type: ignore[arg-type]
        exact=st.request.exact,
        exported_by=st.request.exported_by,
        created_us=st.created_us,
        finished_us=st.finished_us,
    )


class ExportRoutes(RouteGroup):
    """``jobs`` is ``None`` in a process that makes no exports: its routes answer 503."""

    def __init__(self, jobs: ExportJobs | None, security: Security) -> None:
        self._jobs = jobs
        self.security = security

    @property
    def jobs(self) -> ExportJobs:
        if self._jobs is None:
            raise ApiError(503, "unavailable", "exports are not made by this recorder process")
        return self._jobs

    def _job(self, request: web.Request) -> JobStatus:
        try:
            st = self.jobs.status(request.match_info["export_id"])
        except KeyError:
            raise ApiError(404, "not_found", "no such export") from None
        user = request[USER]
        if not all(allowed(user, Permission.EXPORT, c) for c, _ in st.request.cameras):
            raise ApiError(403, "forbidden", f"{user.name} may not export these cameras")
        if st.owner != user.name and user.role != Role.ADMIN:
            # an export is its owner's (and the admins'): evidence is handed out by who made it
            raise ApiError(403, "forbidden", f"export {st.id} belongs to another user")
        return st

    def _audit(self, request: web.Request, st: JobStatus, op: str, **detail: object) -> None:
        cams = ",".join(c for c, _ in st.request.cameras)
        self.security.record(request, EXPORT, cams, {"op": op, "id": st.id, **detail})

    async def create(self, request: web.Request) -> web.Response:
        require(request, Permission.EXPORT)
        body = await decode_body(request, ExportInput)
        cams = [(c.camera, c.stream) for c in body.cameras]
        start, end, fmt, exact = body.start_us, body.end_us, body.format, body.exact
        for camera, _ in cams:
            require(request, Permission.EXPORT, camera)
        user = request[USER]
        jobs = self.jobs

        def work() -> JobStatus:
            try:
                job_id = jobs.submit(cams, start, end, fmt=fmt, exact=exact,
                                     exported_by=user.name)  # fmt: skip
            except ExportQuotaError as exc:
                raise ApiError(429, "quota", str(exc)) from None
            except ExportError as exc:
                raise ApiError(422, "export_refused", str(exc)) from None
            self.security.record(
                request,
                EXPORT,
                ",".join(c for c, _ in cams),
                {
                    "op": "create",
                    "id": job_id,
                    "start_us": start,
                    "end_us": end,
                    "format": fmt,
                    "exact": exact,
                },
            )
            return jobs.status(job_id)

        return json_response(export_body(await asyncio.to_thread(work)), status=202)

    async def get(self, request: web.Request) -> web.Response:
        return json_response(export_body(self._job(request)))

    async def delete(self, request: web.Request) -> web.Response:
        st = self._job(request)
        await asyncio.to_thread(self.jobs.cancel, st.id)
        await asyncio.to_thread(self.jobs.remove, st.id)
        await asyncio.to_thread(self._audit, request, st, "delete", owner=st.owner)
        return web.Response(status=204)

    async def file(self, request: web.Request) -> web.StreamResponse:
        st = self._job(request)
        name = request.match_info["name"]
        if str(st.state) != "done":
            raise ApiError(409, "not_ready", f"export is {st.state}")
        if name not in st.files:
            raise ApiError(404, "not_found", f"export has no file {name!r}")
        await asyncio.to_thread(self._audit, request, st, "download", file=name, owner=st.owner)
        return web.FileResponse(st.dir / name)

    EXPORT = f"{API}/exports/{{export_id}}"
    ROUTES = (
        Route("POST", f"{API}/exports", create,
              "Start an export job (signed manifest with SHA-256 per file)", body=ExportInput,
              returns=Export, status=202, errors=(422, 429, 503), permission=Permission.EXPORT),
        Route("GET", EXPORT, get, "An export job's state (its owner's and admins')",
              returns=Export, errors=(404, 503), permission=Permission.EXPORT),
        Route("DELETE", EXPORT, delete, "Cancel and delete an export (owner or admin)",
              status=204,
              errors=(404, 503), permission=Permission.EXPORT),
        Route("GET", f"{EXPORT}/files/{{name}}", file, "Download a file of a finished export",
              returns=Media.binary("application/octet-stream", description="The file"),
              errors=(404, 409, 503), permission=Permission.EXPORT),
    )  # fmt: skip
