"""The archive to object storage (docs/design/archive.md): its health, and each camera's
policy ('all', 'events', 'none'; or the ``[archive] mode`` default) and ``archive_days``."""

from __future__ import annotations

import asyncio

from aiohttp import web

from server.api.auth import Security, require
from server.api.bodies import decode_body, json_response
from server.api.errors import ApiError
from server.api.lookups import find_camera
from server.api.routing import API, Param, Route, RouteGroup
from server.archive import Archiver
from server.auth import Permission
from server.auth.audit import CONFIG_CHANGE
from server.catalog import Catalog
from server.protocol.models import ArchivePolicy, ArchivePolicyInput, ArchiveStatus
from server.protocol.models.common import CameraId


class ArchiveRoutes(RouteGroup):
    def __init__(self, archiver: Archiver | None, catalog: Catalog, security: Security) -> None:
        self.archiver, self.catalog, self.sec = archiver, catalog, security

    def _archiver(self) -> Archiver:
        if self.archiver is None:
            raise ApiError(503, "unavailable", "no [archive] configured on this recorder")
        return self.archiver

    async def status(self, request: web.Request) -> web.Response:
        require(request, Permission.CONFIG)
        return json_response(await asyncio.to_thread(self._archiver().status))

    def _policy(self, archiver: Archiver, camera_id: str) -> ArchivePolicy:
        find_camera(self.catalog, camera_id)
        mode = archiver.ledger.camera_mode(camera_id)
        days = archiver.ledger.camera_days(camera_id)
        effective_days = days if days is not None else archiver.cfg.archive_days
        effective = mode or archiver.cfg.mode
        return ArchivePolicy(camera_id, mode, effective, days, effective_days)  # type: ignore[arg-type]

    async def get_policy(self, request: web.Request) -> web.Response:
        camera_id = request.match_info["camera_id"]
        require(request, Permission.CONFIG, camera_id)
        archiver = self._archiver()
        return json_response(await asyncio.to_thread(self._policy, archiver, camera_id))

    async def put_policy(self, request: web.Request) -> web.Response:
        camera_id = request.match_info["camera_id"]
        require(request, Permission.CONFIG, camera_id)
        body = await decode_body(request, ArchivePolicyInput)
        archiver = self._archiver()

        def work() -> ArchivePolicy:
            find_camera(self.catalog, camera_id)
            archiver.set_camera_mode(camera_id, body.mode)
            archiver.set_camera_days(camera_id, body.archive_days)
            detail = {"archive_mode": body.mode, "archive_days": body.archive_days}
            self.sec.record(request, CONFIG_CHANGE, camera_id, detail)
            return self._policy(archiver, camera_id)

        return json_response(await asyncio.to_thread(work))

    ROUTES = (
        Route("GET", f"{API}/archive", status, "Replication to object storage: health, backlog",
              returns=ArchiveStatus, errors=(503,), permission=Permission.CONFIG),
        Route("GET", f"{API}/cameras/{{camera_id}}/archive", get_policy,
              "A camera's archive policy", params=(Param("camera_id", CameraId, where="path"),),
              returns=ArchivePolicy, errors=(404, 503), permission=Permission.CONFIG),
        Route("PUT", f"{API}/cameras/{{camera_id}}/archive", put_policy,
              "Set a camera's archive policy ('all', 'events', 'none', or null: the default) and"
              " its archive_days",
              params=(Param("camera_id", CameraId, where="path"),), body=ArchivePolicyInput,
              returns=ArchivePolicy, errors=(400, 404, 503), permission=Permission.CONFIG),
    )  # fmt: skip
