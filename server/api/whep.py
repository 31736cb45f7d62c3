"""WHEP (WebRTC-HTTP Egress Protocol, RFC 9725) routes: an SDP offer in, the answer out.

``POST /api/v1/cameras/{id}/whep?stream=main|sub`` with ``Content-Type: application/sdp``
answers 201 with the SDP answer (all ICE candidates included: no trickle) and a ``Location``
for the session; ``DELETE`` on that location ends it. Rights as for every camera route: the
``live`` permission on the camera.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from server.api.auth import require
from server.api.errors import ApiError
from server.auth import Permission
from server.catalog import Catalog
from server.webrtc.offer import MAX_OFFER_BYTES, OfferError
from server.webrtc.sessions import WebRtcSettings, WhepSessions

if TYPE_CHECKING:
    from server.api.app import ApiContext

SESSION_PATH = "/api/v1/whep"


class WhepRoutes:
    """The routes; ``sessions`` is ``None`` where this process has no live fan-out (then every
    offer gets 503), so the routes and their documentation are the same everywhere."""

    def __init__(self, sessions: WhepSessions | None, catalog: Catalog) -> None:
        self.sessions = sessions
        self.catalog = catalog

    @classmethod
    def install(
        cls, app: web.Application, api: str, ctx: ApiContext, registry: CollectorRegistry
    ) -> WhepRoutes:
        """Routes, metrics and shutdown hook for ``ctx`` (sessions only with a fan-out)."""
        sessions = None
        if ctx.fanout is not None:
            recorder = ctx.recorder
            sessions = WhepSessions(
                ctx.fanout,
                ctx.security.tokens,
                ctx.clock,
                lambda: [(st.camera_id, st.stream) for st in recorder.status()],
                ctx.webrtc or WebRtcSettings(),
            )
        routes = cls(sessions, ctx.catalog)
        routes.add_to(app, api)
        registry.register(WhepCollector(sessions))
        return routes

    def add_to(self, app: web.Application, api: str) -> None:
        app.router.add_post(f"{api}/cameras/{{camera_id}}/whep", self.offer)
        app.router.add_delete(f"{SESSION_PATH}/{{session_id}}", self.delete)
        if self.sessions is not None:
            sessions = self.sessions

            async def close_sessions(_app: web.Application) -> None:
                await sessions.close_all()

            app.on_shutdown.append(close_sessions)  # before the loop stops serving

    async def offer(self, request: web.Request) -> web.Response:
        camera_id = request.match_info["camera_id"]
        require(request, Permission.LIVE, camera_id)
        stream = request.query.get("stream", "main")
        if stream not in ("main", "sub"):
            raise ApiError(400, "bad_parameter", "stream must be 'main' or 'sub'")
        if request.content_type != "application/sdp":
            raise ApiError(415, "unsupported_media_type", "send the offer as application/sdp")
        if (request.content_length or 0) > MAX_OFFER_BYTES:
            raise ApiError(400, "bad_sdp", "the SDP offer is too large")
        body = await request.read()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "bad_sdp", "the SDP offer is not UTF-8 text") from None
        known = await asyncio.to_thread(self._has_stream, camera_id, stream)
        if not known:
            raise ApiError(404, "not_found", f"no camera {camera_id!r} with a {stream} stream")
        if self.sessions is None:
            raise ApiError(503, "no_live", "this recorder process serves no live video")
        header = request.headers.get("Authorization", "")
        token = header[7:].strip()
        try:
            session = await self.sessions.create(camera_id, stream, text, token)
        except OfferError as exc:
            raise ApiError(exc.status, exc.code, str(exc)) from None
        return web.Response(
            status=201,
            text=self.sessions.answer(session),
            content_type="application/sdp",
            headers={"Location": f"{SESSION_PATH}/{session.id}"},
        )

    async def delete(self, request: web.Request) -> web.Response:
        session_id = request.match_info["session_id"]
        session = self.sessions.sessions.get(session_id) if self.sessions else None
        if session is None or self.sessions is None:
            raise ApiError(404, "not_found", "no such WHEP session")
        require(request, Permission.LIVE, session.camera_id)
        await self.sessions.close(session_id, "deleted by the viewer")
        return web.Response(status=200)

    def _has_stream(self, camera_id: str, stream: str) -> bool:
        if not any(c.id == camera_id and c.enabled for c in self.catalog.cameras()):
            return False
        return any(s.name == stream for s in self.catalog.streams(camera_id))


class WhepCollector(Collector):
    """WebRTC figures for ``/metrics``, read at scrape time."""

    def __init__(self, sessions: WhepSessions | None) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self.sessions
        yield GaugeMetricFamily(
            "vigia_webrtc_sessions", "WHEP sessions open", value=len(s.sessions) if s else 0
        )
        yield CounterMetricFamily(
            "vigia_webrtc_bytes_sent", "Video bytes handed to WebRTC senders",
            value=s.bytes_sent() if s else 0,
        )  # fmt: skip
        yield CounterMetricFamily(
            "vigia_webrtc_keyframe_waits",
            "Times a viewer waited for a key frame (start, overflow, reconnect)",
            value=s.keyframe_waits() if s else 0,
        )
