"""What ingest hands to its sinks: the packet, its timestamps, and when it arrived."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import av


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What is known of a source once it is open."""

    codec: str  # 'h264' or 'hevc'
    width: int
    height: int
    time_base: Fraction
    extradata: bytes | None
    fps: float | None


@dataclass(slots=True)
class IngestPacket:
    """One compressed video packet in Annex B form, with parameter sets in band at key frames.

    ``dts``/``pts`` are in ``StreamInfo.time_base`` and keep increasing across reconnect-free
    reads (file sources add the loop length on each loop). ``recv_us`` is our clock's wall
    time when the packet was read. The last sink (the recorder) may modify ``packet``.
    """

    packet: av.Packet
    dts: int
    pts: int
    key: bool
    recv_us: int
    size: int


class PacketSink(Protocol):
    """Receives a stream's packets, on the stream's ingest thread."""

    def on_connect(self, info: StreamInfo) -> None: ...

    def on_packet(self, packet: IngestPacket) -> None: ...

    def on_disconnect(self, reason: str) -> None: ...
