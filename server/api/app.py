"""The API's application: ``make_app`` builds each route group from the services it needs and
registers the groups' route tables; the work is in the groups (``cameras.py``,
``recordings.py``, ...), the document in ``openapi.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from aiohttp import web

from server import __version__
from server.api.analytics import AnalyticsCollector, AnalyticsRoutes
from server.api.archive import ArchiveRoutes
from server.api.auth import AuthRoutes, Security
from server.api.bookmarks import BookmarkRoutes
from server.api.cameras import CameraRoutes
from server.api.discovery import DiscoveryRoutes
from server.api.errors import error_middleware
from server.api.exports import ExportRoutes
from server.api.layouts import LayoutRoutes
from server.api.metrics import ArchiveCollector, Metrics
from server.api.openapi import openapi_document
from server.api.ptz import PtzRoutes
from server.api.recordings import RecordingRoutes
from server.api.routing import API, RouteGroup
from server.api.rules import RuleRoutes
from server.api.server import ServerRoutes, ViewerRoutes
from server.api.users import UserRoutes
from server.api.whep import SrtCollector, WhepCollector, WhepRoutes
from server.catalog import Catalog
from server.catalog.analytics import AnalyticsCatalog
from server.catalog.layouts import Layouts
from server.clock import Clock
from server.config import OnvifConfig
from server.datadir import DataDir
from server.export.jobs import ExportJobs
from server.live.fanout import Fanout
from server.live.srt import SrtOut
from server.protocol.models import Site
from server.site.member import Me, SiteMember
from server.supervisor import IngestSupervisor
from server.web import public_viewer
from server.webrtc.sessions import WebRtcSettings, WhepSessions

if TYPE_CHECKING:
    from server.analytics.service import Analytics
    from server.archive import Archiver
    from server.onvif.events import CameraEvents
    from server.rules.engine import RulesEngine


@dataclass
class ApiContext:
    """The services the API serves; ``None`` for those this process does not run (their
    routes answer 503, so every recorder has the same routes and document)."""

    catalog: Catalog
    recorder: IngestSupervisor
    data: DataDir
    clock: Clock
    server_id: str
    name: str
    security: Security
    exports: ExportJobs | None = None
    analytics: Analytics | None = None
    fanout: Fanout | None = None  # live packets in process: WebRTC viewers (WHEP)
    webrtc: WebRtcSettings | None = None
    onvif: OnvifConfig = field(default_factory=OnvifConfig)  # discovery interfaces
    rules: RulesEngine | None = None  # rules and alarms (docs/design/rules.md)
    metrics_token: str = ""  # /metrics: this bearer token, or loopback clients when empty
    allowed_hosts: tuple[str, ...] = ()  # the web viewer's Host names beyond the machine's
    live_connected: Callable[[], bool] | None = None  # None: no live distribution here
    storage_state: Callable[[], str] | None = None  # the volume guard's state
    srt: SrtOut | None = None  # SRT live out, for /metrics
    archiver: Archiver | None = None  # replication to object storage (docs/design/archive.md)
    site: Callable[[], Site] | None = None  # the site's state (docs/design/site.md)
    camera_events: CameraEvents | None = None  # the cameras' own events (docs/design/cameras.md)

    def sync(self) -> None:
        self.recorder.sync()
        if self.analytics is not None:
            self.analytics.sync()


def _lone_site(ctx: ApiContext) -> Callable[[], Site]:
    """A process given no site state answers as a site of one (what a recorder without
    ``[site]`` is)."""
    me = Me(ctx.server_id, ctx.name, "", __version__)
    cameras = ctx.recorder.status
    return SiteMember("", me, ctx.clock, lambda: len({s.camera_id for s in cameras()}),
                      nats_url=None).health  # fmt: skip


def make_app(ctx: ApiContext) -> web.Application:
    metrics = Metrics(ctx.recorder, ctx.catalog, ctx.data)
    sec = ctx.security
    app = web.Application(
        middlewares=[
            metrics.middleware,
            error_middleware,
            public_viewer(sec.middleware, ctx.allowed_hosts),
        ],
        client_max_size=1024 * 1024,
    )
    catalog = ctx.catalog
    whep = WhepRoutes(_whep_sessions(ctx), catalog)
    ptz = PtzRoutes(catalog, ctx.clock, sec)
    groups: list[RouteGroup] = [
        ServerRoutes(ctx.recorder, ctx.clock, ctx.server_id, ctx.name, metrics.handle,
                     openapi_document, ctx.metrics_token, ctx.live_connected,
                     ctx.storage_state, ctx.archiver, ctx.site or _lone_site(ctx)),
        ViewerRoutes(),
        AuthRoutes(sec),
        UserRoutes(sec),
        CameraRoutes(catalog, ctx.recorder, ctx.data, ctx.clock, sec, ctx.analytics, ctx.sync,
                     ctx.camera_events),
        ptz,
        DiscoveryRoutes(catalog, ctx.onvif),
        RecordingRoutes(catalog, ctx.data, sec, ctx.archiver),
        BookmarkRoutes(catalog, ctx.clock, sec),
        ExportRoutes(ctx.exports, sec),
        LayoutRoutes(Layouts(catalog), sec, ctx.clock),
        AnalyticsRoutes(
            ctx.analytics, sec, lambda cid: any(c.id == cid for c in catalog.cameras()),
            AnalyticsCatalog(catalog), ctx.data.root,
        ),
        whep,
        RuleRoutes(ctx.rules, catalog, sec, _known_labels(ctx)),
        ArchiveRoutes(ctx.archiver, catalog, sec),
    ]  # fmt: skip
    for group in groups:
        group.add_to(app.router)
    if whep.sessions is not None:
        sec.rights_watchers.append(whep.sessions.recheck_user)
    metrics.registry.register(WhepCollector(whep.sessions))
    if ctx.analytics is not None:
        metrics.registry.register(AnalyticsCollector(ctx.analytics))
    if ctx.archiver is not None:
        metrics.registry.register(ArchiveCollector(ctx.archiver))
    if ctx.srt is not None:
        metrics.registry.register(SrtCollector(ctx.srt))

    async def close_sessions(_app: web.Application) -> None:
        if whep.sessions is not None and whep.sessions.recheck_user in sec.rights_watchers:
            sec.rights_watchers.remove(whep.sessions.recheck_user)  # an app made again
        await whep.close()
        await ptz.close()

    app.on_shutdown.append(close_sessions)  # before the loop stops serving
    if ctx.exports is not None:
        exports = ctx.exports

        async def close_exports(_app: web.Application) -> None:
            await asyncio.to_thread(exports.close)

        app.on_cleanup.append(close_exports)
    return app


def _known_labels(ctx: ApiContext) -> Callable[[], frozenset[str] | None]:
    """The detector's labels once its model is loaded (rules naming others are refused)."""

    def labels() -> frozenset[str] | None:
        info = ctx.analytics.service.info if ctx.analytics is not None else None
        return frozenset(info.labels) | {"motion"} if info is not None else None

    return labels


def _whep_sessions(ctx: ApiContext) -> WhepSessions | None:
    """WebRTC sessions where this process has the live fan-out."""
    if ctx.fanout is None:
        return None
    recorder = ctx.recorder
    return WhepSessions(
        ctx.fanout,
        ctx.security.tokens,
        ctx.clock,
        lambda: [(st.camera_id, st.stream) for st in recorder.status()],
        ctx.webrtc or WebRtcSettings(),
    )


__all__ = ["API", "ApiContext", "make_app", "replace"]
