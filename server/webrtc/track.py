"""A video track that hands aiortc the camera's H.264 packets as they are, never re-encoded.

aiortc's ``RTCRtpSender`` packetizes what ``recv()`` returns: an ``av.VideoFrame`` goes through
its encoder, an ``av.Packet`` (with ``pts`` and ``time_base``) is only split into RTP payloads
(``H264Encoder.pack``). So the track yields ``av.Packet``s made from the recorder's packets.

Each viewer has a small bounded queue, filled on the event loop by the stream's hub. A viewer
starts at a key frame (a decoder cannot use anything before it); when its queue overflows
(a slow network path, a stalled peer) everything queued is dropped and it waits for the next
key frame again, for the same reason the NATS live channels do: dropping single P-frames would
only corrupt the picture until the next key frame while keeping the latency.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.clock import Clock

US_TIME_BASE = Fraction(1, 1_000_000)


@dataclass(slots=True)
class TrackStats:
    packets: int = 0  # handed to aiortc
    bytes: int = 0
    keyframe_waits: int = 0  # times the viewer had to wait for a key frame (start, overflow)
    dropped: int = 0  # packets never sent (waiting for a key frame, overflow)
    overflows: int = 0
    first_packet_us: int | None = None  # when the first (key) frame went to aiortc
    latency_us_last: int = 0  # ingest receipt to handed to aiortc


class PacketTrack(MediaStreamTrack):
    """One viewer's video track; ``push`` is called on the event loop, never from a thread."""

    kind = "video"

    def __init__(self, clock: Clock, max_packets: int = 60) -> None:
        super().__init__()
        self.clock = clock
        self.max_packets = max_packets
        self.stats = TrackStats(keyframe_waits=1)  # a new viewer waits for the next key frame
        self._queue: deque[tuple[bytes, int, int]] = deque()
        self._waiting_key = True
        self._waiter: asyncio.Future[None] | None = None

    def push(self, data: bytes, ts_us: int, key: bool, recv_us: int) -> None:
        if self.readyState != "live":
            return
        if len(self._queue) >= self.max_packets:
            self.stats.overflows += 1
            self.stats.dropped += len(self._queue)
            self._queue.clear()
            self.resync()
        if self._waiting_key:
            if not key:
                self.stats.dropped += 1
                return
            self._waiting_key = False
        self._queue.append((data, ts_us, recv_us))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def resync(self) -> None:
        """Start again at the next key frame (after an overflow or a new connection)."""
        if not self._waiting_key:
            self._waiting_key = True
            self.stats.keyframe_waits += 1

    async def recv(self) -> av.Packet:  # type: ignore[override]
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data, ts_us, recv_us = self._queue.popleft()
        packet = av.Packet(data)
        packet.pts = packet.dts = ts_us
        packet.time_base = US_TIME_BASE
        st = self.stats
        now = self.clock.now_us()
        if st.first_packet_us is None:
            st.first_packet_us = now
        st.packets += 1
        st.bytes += len(data)
        st.latency_us_last = now - recv_us
        return packet

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)  # recv() sees the track ended
