"""A segment's audio track: the camera's audio packets placed on the video's media clock.

Over RTSP, FFmpeg puts every stream of a session on one media clock (aligned with the RTCP
sender reports), so an audio packet's time relative to the segment's first video frame is its
timestamp minus that frame's, each in its own time base. AAC and Opus are muxed as they are;
G.711 (not allowed in MP4 by FFmpeg) is decoded and encoded to AAC, keeping its timestamps.
See docs/design/recording.md, "Audio".
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import TYPE_CHECKING

import av

from server.protocol.timeutil import US_PER_SECOND, rescale
from server.recording.fmp4 import AUDIO_AS_IS
from server.recording.packets import AudioInfo, IngestPacket

if TYPE_CHECKING:
    from server.recording.segmenter import RecorderStats

log = logging.getLogger(__name__)


class SegmentAudio:
    """Turns one stream's audio packets into packets of one segment's audio track."""

    def __init__(
        self,
        info: AudioInfo,
        stream: av.audio.stream.AudioStream,
        video_origin_dts: int,
        video_time_base: Fraction,
        max_jump_us: int,
        stats: RecorderStats,
    ) -> None:
        self.info, self.stream, self.stats = info, stream, stats
        tb = info.time_base
        # the segment's media time 0 (its first video frame), in audio ticks
        self.origin = rescale(
            video_origin_dts,
            video_time_base.numerator * tb.denominator,
            video_time_base.denominator * tb.numerator,
        )
        self.max_ticks = rescale(max_jump_us, tb.denominator, tb.numerator * US_PER_SECOND)
        self.last = -1  # dts of the last packet muxed, in ticks from the segment's start
        self.step = 0  # the last positive dts step: a packet's duration when it has none
        self._decoder: av.AudioCodecContext | None = None
        if info.codec not in AUDIO_AS_IS:
            dec = av.CodecContext.create(info.codec, "r")
            dec.sample_rate = info.sample_rate
            dec.layout = "mono" if info.channels == 1 else "stereo"
            self._decoder = dec

    def packets(self, p: IngestPacket) -> list[av.Packet]:
        """The packets to mux for ``p`` (none when it cannot be placed in this segment)."""
        rel = p.dts - self.origin
        jumped = self.last >= 0 and rel - self.last > self.max_ticks
        if rel < 0 or rel <= self.last or jumped:
            # before the segment's first frame (it belongs to the previous one), repeated, or
            # a jump (the video side ends the run on its own jump)
            self.stats.audio_skipped += 1
            return []
        if self.last >= 0:
            self.step = rel - self.last
        self.last = rel
        pkt = p.packet
        self.stats.audio_packets += 1
        if self._decoder is not None:
            return self._convert(pkt, rel)
        pkt.dts = rel
        pkt.pts = rel + max(0, p.pts - p.dts)
        if not pkt.duration:
            pkt.duration = self.step
        return [pkt]

    def flush(self) -> list[av.Packet]:
        """What the AAC encoder still holds when the segment closes (converted audio only)."""
        if self._decoder is None:
            return []
        try:
            return [q for q in self.stream.encode(None) if q.dts is not None and q.dts >= 0]
        except av.FFmpegError as exc:
            log.debug("audio encoder flush failed: %s", exc)
            return []

    def _convert(self, pkt: av.Packet, rel: int) -> list[av.Packet]:
        """G.711 to AAC; the encoder's own timestamps (its time base is 1/sample rate, as the
        source's) follow the frames', less its priming packet, which is dropped."""
        assert self._decoder is not None
        pkt.pts = pkt.dts = rel
        out = []
        try:
            for frame in self._decoder.decode(pkt):
                frame.pts, frame.time_base = rel, self.info.time_base
                for q in self.stream.encode(frame):
                    if q.dts is not None and q.dts >= 0:
                        out.append(q)
        except av.FFmpegError as exc:
            self.stats.audio_skipped += 1
            log.debug("audio conversion failed: %s", exc)
        return out
