"""WHEP (WebRTC-HTTP Egress Protocol, RFC 9725) routes: an SDP offer in, the answer out.

``POST /api/v1/cameras/{id}/whep?stream=main|sub`` with ``Content-Type: application/sdp``
answers 201 with the SDP answer (all ICE candidates included: no trickle) and a ``Location``
for the session; ``DELETE`` on that location ends it. Rights as for every camera route: the
``live`` permission on the camera.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from server.api.auth import require
from server.api.errors import ApiError
from server.api.lookups import stream_param
from server.api.routing import API, Media, Route, RouteGroup
from server.auth import Permission
from server.catalog import Catalog
from server.live.srt import SrtOut
from server.webrtc.offer import MAX_OFFER_BYTES, OfferError
from server.webrtc.sessions import WhepSessions

SESSION_PATH = f"{API}/whep"
SDP = Media.text("application/sdp", description="The SDP offer")


class WhepRoutes(RouteGroup):
    """The routes; ``sessions`` is ``None`` where this process has no live fan-out (then every
    offer gets 503), so the routes and their documentation are the same everywhere."""

    def __init__(self, sessions: WhepSessions | None, catalog: Catalog) -> None:
        self.sessions = sessions
        self.catalog = catalog

    async def close(self) -> None:
        """Ends every session: on shutdown, before the loop stops serving."""
        if self.sessions is not None:
            await self.sessions.close_all()

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

    ROUTES = (
        Route("POST", f"{API}/cameras/{{camera_id}}/whep", offer,
              "WHEP: an SDP offer in, the answer out; live H.264, never re-encoded",
              params=(stream_param("main"),), body=SDP, status=201,
              returns=Media.text("application/sdp",
                                 description="The SDP answer (all ICE candidates included)")
              .with_headers(Location="The session, for DELETE"),
              errors=(404, 415, 503), permission=Permission.LIVE),
        Route("DELETE", f"{SESSION_PATH}/{{session_id}}", delete, "End a WHEP session",
              errors=(404,), permission=Permission.LIVE),
    )  # fmt: skip


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


class SrtCollector(Collector):
    """SRT live out figures for ``/metrics`` (docs/design/live.md), read at scrape time."""

    def __init__(self, srt: SrtOut) -> None:
        self.srt = srt

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        st = self.srt.stats
        yield GaugeMetricFamily("vigia_srt_viewers", "SRT callers being served", value=st.viewers)
        yield CounterMetricFamily("vigia_srt_accepted", "SRT callers admitted", value=st.accepted)
        yield CounterMetricFamily(
            "vigia_srt_refused", "SRT callers refused (token, right, stream)", value=st.refused
        )
        yield CounterMetricFamily(
            "vigia_srt_dropped", "Packets not handed to the SRT gateway (backlog)", value=st.dropped
        )
