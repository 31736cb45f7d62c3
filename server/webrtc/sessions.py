"""WHEP sessions: one aiortc peer connection per viewer, fed from the stream's hub.

A session ends when the viewer leaves (connection failed or closed, or never connected), on
``DELETE``, when its bearer token expires or is revoked or its user loses the right to watch the
camera, when the stream stops running (camera removed or disabled), and at shutdown. The token
and stream checks run on a timer (``check_interval_s``), off the loop for SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from server.auth import Permission, Tokens, User, allowed
from server.clock import Clock
from server.live.fanout import Fanout
from server.webrtc.hub import StreamHub
from server.webrtc.offer import OfferError, parse_offer
from server.webrtc.track import PacketTrack

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebRtcSettings:
    """``ice_servers``: STUN/TURN URLs (``stun:host:port``, ``turn:host``); none by default, so
    no third party learns of our viewers (aiortc's own default names a public STUN server)."""

    ice_servers: tuple[str, ...] = ()
    turn_username: str | None = None
    turn_password: str | None = None
    max_sessions: int = 64
    max_sessions_per_user: int = 8  # so one viewer cannot take every slot (issue 19)
    check_interval_s: float = 2.0
    # a viewer that never completes ICE/DTLS is dropped: on a LAN that takes well under a
    # second, and an unconnected session holds a slot
    connect_timeout_s: float = 10.0

    def rtc_configuration(self) -> RTCConfiguration:
        servers = [
            RTCIceServer(urls=url, username=self.turn_username, credential=self.turn_password)
            if url.startswith("turn")
            else RTCIceServer(urls=url)
            for url in self.ice_servers
        ]
        return RTCConfiguration(iceServers=servers)


@dataclass
class WhepSession:
    id: str
    camera_id: str
    stream: str
    token: str
    pc: RTCPeerConnection
    track: PacketTrack
    created_us: int
    user: str = ""  # whose session it is: the per-user limit
    connected: bool = False
    closed: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class WhepTotals:
    """Counters over the server's life (sessions' own counters are added at scrape time)."""

    sessions_started: int = 0
    bytes_sent: int = 0
    keyframe_waits: int = 0
    closed_by: dict[str, int] = field(default_factory=dict)


def _h264_preferences() -> list:
    caps = RTCRtpSender.getCapabilities("video").codecs
    h264 = [c for c in caps if c.mimeType.lower() == "video/h264"]
    return h264 + [c for c in caps if c.mimeType.lower() == "video/rtx"]


class WhepSessions:
    """The live WHEP sessions of this recorder; used on one event loop."""

    def __init__(
        self,
        fanout: Fanout,
        tokens: Tokens,
        clock: Clock,
        running_streams: Callable[[], Iterable[tuple[str, str]]],
        settings: WebRtcSettings | None = None,
    ) -> None:
        self.fanout = fanout
        self.tokens = tokens
        self.clock = clock
        self.running_streams = running_streams
        self.settings = settings or WebRtcSettings()
        self.sessions: dict[str, WhepSession] = {}
        self.totals = WhepTotals()
        self._hubs: dict[tuple[str, str], StreamHub] = {}
        self._watchdog: asyncio.Task[None] | None = None

    # --- creating and ending sessions ---------------------------------------------------

    async def create(self, camera_id: str, stream: str, offer_sdp: str, token: str) -> WhepSession:
        """A session for an offer, or ``OfferError`` (4xx/5xx) with nothing left behind."""
        offer = parse_offer(offer_sdp)
        info = self.fanout.info(camera_id, stream)
        if info is None:
            raise OfferError(503, "offline", f"{camera_id}/{stream} is not online right now")
        if info.codec != "h264":
            raise OfferError(
                415,
                "unsupported_codec",
                f"{camera_id}/{stream} sends {info.codec.upper()}; WebRTC here sends H.264 "
                "only (aiortc has no H.265 packetizer): watch the sub stream if it is H.264, "
                "or use the workstation",
            )
        if "H264" not in offer.video_codecs:
            raise OfferError(415, "unsupported_codec", "the offer has no H.264 for video")
        if len(self.sessions) >= self.settings.max_sessions:
            raise OfferError(503, "too_many_sessions", "too many WebRTC viewers on this recorder")
        owner = await asyncio.to_thread(self.tokens.resolve, token)
        user = owner.name if owner is not None else ""
        if sum(1 for s in self.sessions.values() if s.user == user) >= (
            self.settings.max_sessions_per_user
        ):
            raise OfferError(
                429, "too_many_sessions",
                f"at most {self.settings.max_sessions_per_user} WebRTC views per user: "
                "close one first",
            )  # fmt: skip
        self._ensure_watchdog()
        pc = RTCPeerConnection(self.settings.rtc_configuration())
        track = PacketTrack(self.clock)
        session = WhepSession(
            secrets.token_urlsafe(16),
            camera_id,
            stream,
            token,
            pc,
            track,
            self.clock.now_us(),
            user,
        )
        try:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(_h264_preferences())
            await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except BaseException as exc:  # cancelled (shutdown) too: never leave sockets open
            track.stop()
            await pc.close()
            if not isinstance(exc, Exception):
                raise
            raise OfferError(400, "bad_sdp", f"the offer cannot be answered: {exc}") from None
        self.sessions[session.id] = session
        self.totals.sessions_started += 1
        self._hub(camera_id, stream).tracks.add(track)

        @pc.on("connectionstatechange")
        async def _state() -> None:
            state = pc.connectionState
            if state == "connected":
                session.connected = True
            elif state in ("failed", "closed"):
                await self.close(session.id, f"connection {state}")

        asyncio.get_running_loop().call_later(
            self.settings.connect_timeout_s, self._connect_deadline, session
        )
        log.info("whep %s: %s/%s started", session.id[:8], camera_id, stream)
        return session

    def answer(self, session: WhepSession) -> str:
        assert session.pc.localDescription is not None
        return session.pc.localDescription.sdp

    async def close(self, session_id: str, reason: str) -> bool:
        """End a session; False when there is none by that id."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        session.closed = True
        key = (session.camera_id, session.stream)
        hub = self._hubs.get(key)
        if hub is not None:
            hub.tracks.discard(session.track)
            if not hub.tracks:
                hub.close()  # nobody watches: the ingest thread stops copying packets
                del self._hubs[key]
        st = session.track.stats
        self.totals.bytes_sent += st.bytes
        self.totals.keyframe_waits += st.keyframe_waits
        self.totals.closed_by[reason] = self.totals.closed_by.get(reason, 0) + 1
        session.track.stop()
        await session.pc.close()
        session.done.set()
        log.info("whep %s: closed (%s), %d packets", session_id[:8], reason, st.packets)
        return True

    async def recheck_user(self, user: str) -> int:
        """Re-check every session of ``user`` now (their rights, password or account just
        changed): ends those the user may no longer watch, without waiting for the periodic
        check. Returns how many ended. For the users API."""
        mine = [s for s in self.sessions.values() if s.user == user]
        tokens = {s.token for s in mine}
        users = await asyncio.to_thread(lambda: {t: self.tokens.resolve(t) for t in tokens})
        ended = 0
        for s in mine:
            owner = users.get(s.token)
            if owner is None or not allowed(owner, Permission.LIVE, s.camera_id):
                ended += await self.close(s.id, "rights changed")
        return ended

    async def close_all(self, reason: str = "shutdown") -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        await asyncio.gather(*(self.close(sid, reason) for sid in list(self.sessions)))

    # --- figures ------------------------------------------------------------------------

    def bytes_sent(self) -> int:
        # called from the metrics thread: iterate over a copy
        live = sum(s.track.stats.bytes for s in list(self.sessions.values()))
        return self.totals.bytes_sent + live

    def keyframe_waits(self) -> int:
        live = sum(s.track.stats.keyframe_waits for s in list(self.sessions.values()))
        return self.totals.keyframe_waits + live

    # --- internals ----------------------------------------------------------------------

    def _hub(self, camera_id: str, stream: str) -> StreamHub:
        key = (camera_id, stream)
        hub = self._hubs.get(key)
        if hub is None:
            loop = asyncio.get_running_loop()
            hub = self._hubs[key] = StreamHub(loop, self.fanout, camera_id, stream)
        return hub

    def _connect_deadline(self, session: WhepSession) -> None:
        if not session.connected and not session.closed:
            asyncio.get_running_loop().create_task(self.close(session.id, "never connected"))

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.check_interval_s)
            if not self.sessions:
                continue
            try:
                await self.check()
            except Exception:
                log.exception("whep: session check failed")

    async def check(self) -> None:
        """End the sessions whose token or right is gone, or whose stream no longer runs."""
        sessions = list(self.sessions.values())
        tokens = {s.token for s in sessions}

        def work() -> tuple[dict[str, User | None], set[tuple[str, str]]]:
            return {t: self.tokens.resolve(t) for t in tokens}, set(self.running_streams())

        users, running = await asyncio.to_thread(work)
        for s in sessions:
            user = users.get(s.token)
            if user is None:
                reason = "token expired or revoked"
            elif not allowed(user, Permission.LIVE, s.camera_id):
                reason = "right withdrawn"
            elif (s.camera_id, s.stream) not in running:
                reason = "stream stopped"
            else:
                continue
            await self.close(s.id, reason)
