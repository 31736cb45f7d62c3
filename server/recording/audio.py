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
from typing import Protocol

import av
import numpy as np

from server.protocol.timeutil import US_PER_SECOND, rescale
from server.recording.fmp4 import AUDIO_AS_IS
from server.recording.packets import AudioInfo, IngestPacket


class AudioCounts(Protocol):
    """The counters of the segment writer's stats this module keeps (``RecorderStats``)."""

    audio_packets: int
    audio_skipped: int


log = logging.getLogger(__name__)


SETTLE_US = 10 * US_PER_SECOND  # no realignment seen by then: the streams were aligned already
JUMP_US = 2_000  # an audio timestamp this far from where the previous packet ended: a jump


class AudioSync:
    """Whether a session's audio timestamps are on the video's clock yet.

    Until the RTCP sender reports of both streams have come, FFmpeg times each stream of an
    RTSP session from its own first packet, so the audio may be off by the difference; when
    the second stream's first report comes, that stream's timestamps jump into place. Audio
    packets have exact durations, so a jump in the audio shows; when the video is the stream
    that jumps, the audio never does, and it is recorded after ``SETTLE_US`` (a jump in the
    video is not looked for: frame times jitter, and a false alarm would let misplaced audio
    in).
    """

    def __init__(self, time_base: Fraction, camera: str) -> None:
        self.synced = False
        self.camera = camera
        self._tolerance = rescale(JUMP_US, time_base.denominator, time_base.numerator * 10**6)
        self._settle = rescale(SETTLE_US, time_base.denominator, time_base.numerator * 10**6)
        self._first: int | None = None
        self._last: int | None = None  # the previous audio packet's dts
        self._duration = 0  # its duration, or else the step before it
        self._step = 0

    def _aligned(self, why: str) -> None:
        self.synced = True
        log.info("%s: audio on the video's clock (%s)", self.camera, why)

    def audio(self, p: IngestPacket) -> bool:
        """Account for an audio packet; True when it can be recorded."""
        if self.synced:
            return True
        dts = p.dts
        if self._first is None:
            self._first = dts
        if self._last is not None:
            step = dts - self._last
            expected = self._duration or self._step
            if expected and abs(step - expected) > self._tolerance:
                self._aligned("audio timestamps realigned")
            self._step = step
        if not self.synced and dts - self._first >= self._settle:
            self._aligned("no realignment seen")
        self._last, self._duration = dts, p.packet.duration or 0
        return self.synced


class SegmentAudio:
    """Turns one stream's audio packets into packets of one segment's audio track."""

    def __init__(
        self,
        info: AudioInfo,
        stream: av.audio.stream.AudioStream,
        video_origin_dts: int,
        video_time_base: Fraction,
        max_jump_us: int,
        stats: AudioCounts,
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
            dec.layout = "mono"  # G.711 is mono
            self._decoder = dec
            self._frame_size = 1024  # AAC's
            self._pcm = np.zeros(0, np.float32)  # decoded samples not yet encoded
            self._pcm_start = 0  # the time of the first of them (ticks from the segment start)
            self._max_gap = info.sample_rate  # a second: longer gaps are left as gaps
            self._tolerance = info.sample_rate // 200  # 5 ms

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
        out = []
        try:
            if self._pcm.size:  # the last, partial frame: padded with silence
                pad = np.zeros(self._frame_size - self._pcm.size, np.float32)
                self._pcm = np.concatenate([self._pcm, pad])
                out += self._encode_frames()
            out += [q for q in self.stream.encode(None) if q.dts is not None and q.dts >= 0]
        except av.FFmpegError as exc:
            log.debug("audio encoder flush failed: %s", exc)
        return out

    def _convert(self, pkt: av.Packet, rel: int) -> list[av.Packet]:
        """G.711 to AAC, sample-exact on the source's timeline: the samples are queued at their
        timestamps (a gap is filled with silence, an overlap cut) and encoded in frames of the
        encoder's size, each stamped with its first sample's time (the time base is 1/sample
        rate, as the source's). The encoder's priming packet (negative time) is dropped."""
        assert self._decoder is not None
        pkt.pts = pkt.dts = rel
        try:
            for frame in self._decoder.decode(pkt):
                samples = frame.to_ndarray().reshape(-1, frame.samples)[0]
                if samples.dtype == np.int16:
                    samples = samples.astype(np.float32) / 32768
                self._queue(rel, samples.astype(np.float32, copy=False))
                rel += frame.samples
            return self._encode_frames()
        except av.FFmpegError as exc:
            self.stats.audio_skipped += 1
            log.debug("audio conversion failed: %s", exc)
            return []

    def _queue(self, rel: int, samples: np.ndarray) -> None:
        end = self._pcm_start + self._pcm.size
        gap = rel - end
        if not self._pcm.size or gap > self._max_gap:
            # nothing queued, or a gap too long to fill: start over at this packet's time
            self._pcm_start, self._pcm = rel, samples
            return
        # within the tolerance, the samples are taken as they come: a camera's timestamps
        # jitter by a millisecond or two, and filling or cutting that would click
        if gap > self._tolerance:
            samples = np.concatenate([np.zeros(gap, np.float32), samples])
        elif gap < -self._tolerance:
            samples = samples[-gap:]
        self._pcm = np.concatenate([self._pcm, samples])

    def _encode_frames(self) -> list[av.Packet]:
        out = []
        n = self._frame_size
        while self._pcm.size >= n:
            chunk, self._pcm = self._pcm[:n], self._pcm[n:]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, n), format="fltp", layout="mono")
            frame.sample_rate = self.info.sample_rate
            frame.pts, frame.time_base = self._pcm_start, self.info.time_base
            self._pcm_start += n
            out += [q for q in self.stream.encode(frame) if q.dts is not None and q.dts >= 0]
        return out
