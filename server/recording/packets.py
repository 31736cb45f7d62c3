"""What ingest hands to its sinks: the packet, its timestamps, and when it arrived."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

import av


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """A source's audio track, recorded beside the video (docs/design/recording.md, Audio)."""

    codec: str  # FFmpeg's name: 'aac', 'opus', 'pcm_alaw' or 'pcm_mulaw'
    sample_rate: int
    channels: int
    time_base: Fraction
    extradata: bytes | None
    # the source's stream, whose codec parameters the segment's audio track copies exactly
    # (valid while the source is open, i.e. on the ingest thread between connect and disconnect)
    template: av.audio.stream.AudioStream | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What is known of a source once it is open."""

    codec: str  # 'h264' or 'hevc'
    width: int
    height: int
    time_base: Fraction
    extradata: bytes | None
    fps: float | None
    audio: AudioInfo | None = None  # the source's audio track, when it has one we record


@dataclass(slots=True)
class IngestPacket:
    """One compressed video packet in Annex B form, with parameter sets in band at key frames,
    or (``audio``) one packet of the source's audio track.

    ``dts``/``pts`` are in ``StreamInfo.time_base`` (audio: ``AudioInfo.time_base``, on the
    same media clock: FFmpeg aligns an RTSP session's streams with the RTCP sender reports)
    and keep increasing across reconnect-free reads (file sources add the loop length on each
    loop). ``recv_us`` is our clock's wall
    time when the packet was read. The last sink (the recorder) may modify ``packet``.
    """

    packet: av.Packet
    dts: int
    pts: int
    key: bool
    recv_us: int
    size: int
    audio: bool = False


class PacketSink(Protocol):
    """Receives a stream's packets, on the stream's ingest thread."""

    def on_connect(self, info: StreamInfo) -> None: ...

    def on_packet(self, packet: IngestPacket) -> None: ...

    def on_disconnect(self, reason: str) -> None: ...


class AudioSink(Protocol):
    """A sink that also takes the stream's audio packets (``IngestPacket.audio``); sinks
    without ``on_audio`` never see them."""

    def on_audio(self, packet: IngestPacket) -> None: ...
