"""The recorder itself: liveness, identity and clock, metrics, this API's document; and the
web viewer's files (public: the page is how one logs in)."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Callable
from typing import Annotated, Literal

from aiohttp import web
from msgspec import Meta

import server.web as viewer
from server import __version__
from server.api.bodies import json_response
from server.api.errors import ApiError
from server.api.routing import API, Handler, Media, Param, Route, RouteGroup
from server.archive import Archiver
from server.clock import Clock
from server.protocol.models import Health, Server, Site
from server.supervisor import IngestSupervisor

STORAGE_STATES = ("ok", "full", "unfreeable", "error")


def _loopback(remote: str | None) -> bool:
    try:
        addr = ipaddress.ip_address((remote or "").split("%")[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket
    return addr.is_loopback


ViewerFile = Annotated[Literal["index.html", "app.js", "style.css"], Meta(description="a file")]


class ServerRoutes(RouteGroup):
    def __init__(
        self,
        recorder: IngestSupervisor,
        clock: Clock,
        server_id: str,
        name: str,
        metrics: Handler,
        document: Callable[[], dict],
        metrics_token: str = "",
        live_connected: Callable[[], bool] | None = None,
        storage_state: Callable[[], str] | None = None,
        archiver: Archiver | None = None,
        site: Callable[[], Site] | None = None,
    ) -> None:
        self.recorder, self.clock, self.archiver = recorder, clock, archiver
        self._site = site
        self.server_id, self.name = server_id, name
        self._metrics, self._document = metrics, document
        self._metrics_token = metrics_token
        self._live_connected, self._storage_state = live_connected, storage_state

    async def healthz(self, request: web.Request) -> web.Response:
        statuses = self.recorder.status()
        online = sum(1 for s in statuses if s.state == "online")
        live = "off"
        if self._live_connected is not None:
            live = "connected" if self._live_connected() else "disconnected"
        storage = self._storage_state() if self._storage_state is not None else "unknown"
        if storage not in STORAGE_STATES:
            storage = "error"
        degraded = live == "disconnected" or storage not in ("ok", "unknown")
        health = Health("degraded" if degraded else "ok", len(statuses), online, live, storage)
        return json_response(health)  # type: ignore[arg-type]

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        """Behind the scrape token (``[server] metrics_token``), or for loopback clients only
        when there is none: the metrics list cameras and volumes (issue 19)."""
        if self._metrics_token:
            header = request.headers.get("Authorization", "")
            given = header[7:].strip() if header[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(given.encode(), self._metrics_token.encode()):
                raise ApiError(401, "unauthorized", "/metrics needs the scrape token")
        elif not _loopback(request.remote):
            raise ApiError(
                403, "forbidden", "/metrics answers loopback clients only; set a metrics_token"
            )
        return await self._metrics(request)

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(self._document())

    async def server_info(self, request: web.Request) -> web.Response:
        now = self.clock.now_us()
        archive = None
        if self.archiver is not None:
            archive = await asyncio.to_thread(self.archiver.status)
        return json_response(Server(self.server_id, self.name, __version__, API, now, archive))

    async def site(self, request: web.Request) -> web.Response:
        assert self._site is not None  # make_app gives a site of one at least
        return json_response(self._site())

    ROUTES = (
        Route("GET", "/healthz", healthz, "Liveness and stream counts", returns=Health,
              permission="public"),
        Route("GET", "/metrics", metrics,
              "Prometheus metrics (the scrape token, or loopback clients only)",
              permission="public",
              returns=Media.text("text/plain", description="Prometheus text format")),
        Route("GET", f"{API}/openapi.json", openapi, "This document", permission="public",
              returns=Media({"application/json": {"type": "object"}})),
        Route("GET", f"{API}/server", server_info, "Recorder identity and clock",
              returns=Server),
        Route("GET", f"{API}/site", site,
              "The site: its recorders (up or down), the cluster's nodes and JetStream quorum",
              returns=Site),
    )  # fmt: skip


class ViewerRoutes(RouteGroup):
    async def index(self, request: web.Request) -> web.Response:
        return await viewer.index(request)

    async def asset(self, request: web.Request) -> web.Response:
        return await viewer.asset(request)

    ROUTES = (
        Route("GET", "/", index, "The web viewer (login, cameras, live)", permission="public",
              returns=Media.text("text/html", description="The web viewer")),
        Route("GET", "/web/{name}", asset, "A file of the web viewer", permission="public",
              params=(Param("name", ViewerFile, where="path"),), errors=(404,),
              returns=Media.text("*/*", description="The file")),
    )  # fmt: skip
