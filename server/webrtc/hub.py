"""One camera stream's packets from the ingest thread to the viewers' tracks on the loop.

The hub is the stream's single fan-out consumer, however many viewers watch: it copies each
packet once on the ingest thread and crosses to the event loop with ``call_soon_threadsafe``;
there every viewer's track gets the same bytes. It also turns the stream's media timestamps
into one continuous timeline (µs) across reconnects, which becomes the RTP timestamps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from server.live.fanout import Fanout
from server.protocol.timeutil import US_PER_SECOND, rescale
from server.recording.packets import IngestPacket, StreamInfo
from server.webrtc.track import PacketTrack

log = logging.getLogger(__name__)

MAX_JUMP_US = 10 * US_PER_SECOND  # a bigger timestamp step starts a new run
DEFAULT_FRAME_US = 40_000


class StreamHub:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, fanout: Fanout, camera_id: str, stream: str
    ) -> None:
        self.loop = loop
        self.camera_id, self.stream = camera_id, stream
        self.tracks: set[PacketTrack] = set()
        self._num, self._den = US_PER_SECOND, 1
        self._base: int | None = None  # media pts origin of the current run
        self._offset_us = 0
        self._last_us: int | None = None
        self._closed = False
        self._unsubscribe: Callable[[], None] = fanout.subscribe(camera_id, stream, self)

    def close(self) -> None:
        self._closed = True
        self._unsubscribe()
        self.tracks.clear()

    # --- PacketSink, on the ingest thread -------------------------------------------------

    def on_connect(self, info: StreamInfo) -> None:
        self._call(self._connected, info)

    def on_packet(self, packet: IngestPacket) -> None:
        self._call(self._dispatch, bytes(packet.packet), packet.pts, packet.key, packet.recv_us)

    def on_disconnect(self, reason: str) -> None:
        pass  # the next connection's on_connect says what changed

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        if self._closed:
            return
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the server is going down
            self._closed = True

    # --- on the loop ----------------------------------------------------------------------

    def _connected(self, info: StreamInfo) -> None:
        self._num = info.time_base.numerator * US_PER_SECOND
        self._den = info.time_base.denominator
        self._base = None
        for t in self.tracks:
            t.resync()  # a new connection may start mid-GOP

    def _dispatch(self, data: bytes, pts: int, key: bool, recv_us: int) -> None:
        if self._closed:
            return
        ts_us = self._timestamp(pts)
        for t in self.tracks:
            t.push(data, ts_us, key, recv_us)

    def _timestamp(self, pts: int) -> int:
        if self._base is not None:
            ts = self._offset_us + rescale(pts - self._base, self._num, self._den)
            if self._last_us is None or -MAX_JUMP_US < ts - self._last_us < MAX_JUMP_US:
                self._last_us = ts
                return ts
        # a new run: continue one frame after the last timestamp
        self._base = pts
        self._offset_us = 0 if self._last_us is None else self._last_us + DEFAULT_FRAME_US
        self._last_us = self._offset_us
        return self._offset_us
