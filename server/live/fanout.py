"""In-process fan-out of each camera stream's packets (analytics decoding, WebRTC viewers).

The recorder gives every stream a ``Fanout.sink``; consumers ``subscribe`` to the streams they
want. The per-packet cost with nobody listening is one attribute read. Consumers run on the
stream's ingest thread and must return at once: copy ``bytes(packet.packet)`` immediately
(the recorder rewrites the packet after them) and hand the copy to their own thread or loop.

Key frames reach consumers with their parameter sets in band, as on the NATS live subjects, so
a consumer can start decoding (or a browser can start playing) at any key frame: sources whose
key frames lack them, or carry only some (cameras that send SPS/PPS only in the SDP, or repeat
only the PPS), get the last complete set seen in band, or the stream's extradata's; the rule is
``server.recording.h26x.fill_parameter_sets``, the same as the live sink's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import av

from server.recording.h26x import codec_family, extradata_parameter_sets, fill_parameter_sets
from server.recording.packets import IngestPacket, PacketSink, StreamInfo

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FanoutStats:
    packets: int = 0  # handed to at least one consumer
    params_added: int = 0  # key frames that got parameter sets from us
    consumer_errors: int = 0


class _Stream:
    """One camera stream: its consumers (an immutable tuple, swapped under the lock, so the
    ingest thread reads it without locking) and what is known of the current connection."""

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.consumers: tuple[PacketSink, ...] = ()
        self.info: StreamInfo | None = None
        self.connected = False
        self.codec = "h264"
        self.params = b""  # the last complete parameter sets of this connection (or extradata's)
        self.stats = FanoutStats()

    def remove(self, consumer: PacketSink) -> None:
        with self.lock:
            self.consumers = tuple(c for c in self.consumers if c is not consumer)


class _FanoutSink:
    """The ``PacketSink`` the recorder calls for one stream."""

    def __init__(self, stream: _Stream) -> None:
        self._s = stream

    def on_connect(self, info: StreamInfo) -> None:
        s = self._s
        with s.lock:
            s.info, s.connected = info, True
            s.codec = codec_family(info.codec)
            s.params = extradata_parameter_sets(s.codec, info.extradata)
            consumers = s.consumers
        for c in consumers:
            self._call(c, "on_connect", info)

    def on_packet(self, packet: IngestPacket) -> None:
        s = self._s
        consumers = s.consumers
        if not consumers:
            return
        if packet.key:
            packet = self._with_parameter_sets(packet)
        s.stats.packets += 1
        for c in consumers:
            self._call(c, "on_packet", packet)

    def on_disconnect(self, reason: str) -> None:
        s = self._s
        with s.lock:
            s.connected = False
            consumers = s.consumers
        for c in consumers:
            self._call(c, "on_disconnect", reason)

    def _call(self, consumer: PacketSink, method: str, arg: object) -> None:
        try:
            getattr(consumer, method)(arg)
        except Exception:
            s = self._s
            s.stats.consumer_errors += 1
            log.exception("%s/%s: fan-out consumer %r failed; unsubscribed", *s.key, consumer)
            s.remove(consumer)

    def _with_parameter_sets(self, p: IngestPacket) -> IngestPacket:
        s = self._s
        data = bytes(p.packet)
        fill = fill_parameter_sets(s.codec, data, s.params)
        s.params = fill.known
        if not fill.insert:
            return p  # complete already, or nothing known: the consumer's decoder will say so
        fixed = av.Packet(fill.apply(data))
        fixed.pts, fixed.dts = p.packet.pts, p.packet.dts
        if p.packet.time_base is not None:
            fixed.time_base = p.packet.time_base
        s.stats.params_added += 1
        return IngestPacket(fixed, p.dts, p.pts, True, p.recv_us, fixed.size)


class Fanout:
    """Every stream's packets to whoever subscribed, in process."""

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._lock = threading.Lock()

    def _stream(self, camera_id: str, stream: str) -> _Stream:
        key = (camera_id, stream)
        with self._lock:
            s = self._streams.get(key)
            if s is None:
                s = self._streams[key] = _Stream(key)
            return s

    def sink(self, camera_id: str, stream: str) -> PacketSink:
        """The sink for one stream (given to the recorder; one per running worker)."""
        return _FanoutSink(self._stream(camera_id, stream))

    def subscribe(self, camera_id: str, stream: str, consumer: PacketSink) -> Callable[[], None]:
        """Start delivering a stream to ``consumer``; returns the unsubscribe function.

        A consumer that subscribes while the stream is connected gets ``on_connect`` with its
        ``StreamInfo`` at once (before any packet). A consumer that raises is unsubscribed.
        """
        s = self._stream(camera_id, stream)
        with s.lock:  # the ingest thread's on_connect cannot slip in between
            if s.connected and s.info is not None:
                consumer.on_connect(s.info)
            s.consumers = (*s.consumers, consumer)
        return lambda: s.remove(consumer)

    def info(self, camera_id: str, stream: str) -> StreamInfo | None:
        """The stream's ``StreamInfo`` while it is connected, else ``None``."""
        with self._lock:
            s = self._streams.get((camera_id, stream))
        return s.info if s is not None and s.connected else None

    def stats(self, camera_id: str, stream: str) -> FanoutStats:
        with self._lock:
            s = self._streams.get((camera_id, stream))
        return FanoutStats() if s is None else s.stats
