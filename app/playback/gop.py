"""One fragment (a GOP) demuxed from memory and decoded lazily, with wall times per frame.

A fragment starts on a key frame and is decodable alone given the segment's init, so the
player concatenates init + fragment bytes and lets PyAV's mp4 demuxer read them from a BytesIO.
All presentation times are known from the packets before anything is decoded, so the frame for
an instant is found first and then decoded up to (and no further than) it.

Wall time of a frame = the fragment's start (from the fragment index, which carries the
recorder's drift correction) + media time since the fragment's first decode time.
"""

from __future__ import annotations

import bisect
import io
import logging
from collections.abc import Callable

import av

from app.frames import VideoFrame, frame_from_av
from app.playback.fetcher import Position

log = logging.getLogger(__name__)


class GopError(Exception):
    """The fragment's bytes could not be demuxed or decoded."""


class Gop:
    """Frames of one fragment in presentation order, decoded on demand. One thread at a time."""

    def __init__(
        self, pos: Position, init: bytes, data: bytes, *, stream: str = "main", threads: int = 0
    ) -> None:
        self.pos = pos
        self.stream = stream
        frag = pos.fragment
        self.start_us, self.end_us = frag.start_us, frag.end_us
        try:
            self._container = av.open(io.BytesIO(init + data), format="mp4")
            vs = self._container.streams.video[0]
            packets = [p for p in self._container.demux(vs) if p.size and p.dts is not None]
        except av.FFmpegError as exc:
            raise GopError(f"segment {pos.segment.id} fragment {pos.index}: {exc}") from exc
        if not packets:
            raise GopError(f"segment {pos.segment.id} fragment {pos.index}: no packets")
        ctx = vs.codec_context
        if threads:
            ctx.thread_type = "FRAME"
            ctx.thread_count = threads
        self._ctx = ctx
        self._packets = packets
        tb = vs.time_base
        base = packets[0].dts
        num, den = tb.numerator * 1_000_000, tb.denominator
        pts = sorted(p.pts if p.pts is not None else p.dts for p in packets)
        self._pts = pts
        # wall time of each frame, presentation order
        self.walls: list[int] = [self.start_us + (p - base) * num // den for p in pts]
        self._index_of_pts = {p: i for i, p in enumerate(pts)}
        self._frames: list[VideoFrame | None] = [None] * len(pts)
        self._sent = 0
        self._flushed = False
        self.decoded = 0

    def __len__(self) -> int:
        return len(self.walls)

    def index_at(self, t_us: int) -> int:
        """Index of the last frame whose wall time is <= ``t_us`` (0 when before the first)."""
        return max(0, bisect.bisect_right(self.walls, t_us) - 1)

    def frame(self, i: int, on_key: Callable[[VideoFrame], None] | None = None) -> VideoFrame:
        """Frame ``i`` (presentation order), decoding forward as far as needed.

        ``on_key`` is called with the key frame (frame 0) as soon as it is decoded, if it is not
        the frame asked for: the quick first image of a seek.
        """
        while self._frames[i] is None:
            if self._sent < len(self._packets):
                pkt = self._packets[self._sent]
                self._sent += 1
                out = self._decode(pkt)
            elif not self._flushed:
                self._flushed = True
                out = self._decode(None)
            else:
                raise GopError(f"segment {self.pos.segment.id}: frame {i} never came out")
            for f in out:
                j = self._index_of_pts.get(f.pts)
                if j is None or self._frames[j] is not None:
                    continue
                vf = frame_from_av(f, self.walls[j], j, "software", self.stream)
                vf.key = j == 0
                self._frames[j] = vf
                self.decoded += 1
                if j == 0 and i != 0 and on_key is not None:
                    on_key(vf)
        frame = self._frames[i]
        assert frame is not None
        return frame

    def _decode(self, pkt: av.Packet | None) -> list[av.VideoFrame]:
        try:
            return self._ctx.decode(pkt)
        except av.FFmpegError as exc:
            log.warning("segment %s fragment %s: %s", self.pos.segment.id, self.pos.index, exc)
            return []

    def key_frame(self) -> VideoFrame:
        return self.frame(0)

    def drop_frames(self) -> None:
        """Free decoded pictures (a GOP kept only for its timing)."""
        self._frames = [None] * len(self._frames)
        self._sent, self._flushed = 0, False
        self._ctx.flush_buffers()

    def close(self) -> None:
        self._container.close()
