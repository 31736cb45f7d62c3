"""Passthrough fragmented-MP4 writer: PyAV's mp4 muxer, and the fragments it completes.

PyAV (FFmpeg's movenc) does the muxing and writes the file natively. After each key frame the
writer reads back the box headers FFmpeg has just written, so it knows the moment a fragment
(moof + mdat) is complete and where it lies: the catalog indexes it at once.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from server.recording.mp4boxes import Box, _parse_moof, _parse_moov
from server.recording.packets import AudioInfo

log = logging.getLogger(__name__)

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+skip_trailer"
# With an audio track:
# * FFmpeg's interleaving would hold a video packet until the audio track catches up (up to
#   10 s when the camera's audio stops): every packet goes to the muxer at once instead;
#   movenc keeps each fragment's samples per track anyway;
# * the audio track starts a little after the video (its first packet after the first key
#   frame): ``frag_discont`` without negative-timestamp shifting puts that start in the
#   first fragment's ``tfdt``, where by default movenc would move the first audio sample to
#   time 0 (early by up to a packet's duration).
AUDIO_OPTIONS = {
    "movflags": MOVFLAGS + "+frag_discont",
    "avoid_negative_ts": "disabled",
    "max_interleave_delta": "1",
}
# MP4 takes AAC and Opus as they are; G.711 is not allowed in MP4 by FFmpeg, so it is converted
AUDIO_AS_IS = frozenset({"aac", "opus"})


@dataclass(frozen=True, slots=True)
class WrittenFragment:
    offset: int
    bytes: int
    base_time: int  # in the track timescale
    duration: int
    samples: int


class _FileScanner:
    """Finds the boxes FFmpeg has finished writing to the segment file, by reading them back.

    movenc writes a whole fragment (moof + mdat) at once, when the key frame that starts the
    next one is muxed (or at close), and ``flush_packets`` pushes it to the file before
    ``mux`` returns. So the writer scans after key frames only: a few ``pread``s of box
    headers and the small moof per GOP, instead of a Python callback on every write.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.init_bytes = 0
        self.timescale = 0
        self._trex_duration = 0
        self.completed: list[WrittenFragment] = []
        self.complete_end = 0  # file offset up to which all boxes are complete fragments/init

    def _header(self, pos: int, size: int) -> tuple[int, bytes, int] | None:
        """(box size, type, header size) of the box at ``pos``, None if not all written."""
        if pos + 8 > size:
            return None
        head = os.pread(self.fd, 16, pos)
        box_size, kind = struct.unpack_from(">I4s", head)
        if box_size == 1:
            if len(head) < 16:
                return None
            (box_size,) = struct.unpack_from(">Q", head, 8)
            return box_size, kind, 16
        if box_size < 8:
            raise ValueError(f"unexpected box size {box_size} at {pos} in muxer output")
        return box_size, kind, 8

    def scan(self) -> None:
        size = os.fstat(self.fd).st_size
        pos = self.complete_end
        while (h := self._header(pos, size)) is not None:
            box_size, kind, header = h
            end = pos + box_size
            if end > size:
                return
            if kind == b"moof":
                m = self._header(end, size)
                if m is None or end + m[0] > size:
                    return  # the mdat is not all there yet
                if m[1] != b"mdat":
                    raise ValueError(f"moof at {pos} is followed by {m[1]!r}, not mdat")
                moof = os.pread(self.fd, box_size, pos)
                base, duration, samples = _parse_moof(
                    moof, Box("moof", 0, box_size, header), self._trex_duration
                )
                mdat_end = end + m[0]
                self.completed.append(WrittenFragment(pos, mdat_end - pos, base, duration, samples))
                end = mdat_end
            elif kind == b"moov":
                moov = os.pread(self.fd, box_size, pos)
                self.timescale, self._trex_duration = _parse_moov(
                    moov, Box("moov", 0, box_size, header)
                )
                self.init_bytes = end
            self.complete_end = pos = end


class Fmp4Writer:
    """Writes one segment file: created with O_EXCL, fsynced on close. Not thread-safe."""

    def __init__(
        self,
        path: Path,
        codec: str,
        width: int,
        height: int,
        extradata: bytes | None,
        time_base: Fraction,
        audio: AudioInfo | None = None,
    ) -> None:
        """``audio``: a second track beside the video (track 1, always first): the source's
        AAC/Opus as they are (copied from ``audio.template``), or AAC encoded by the caller
        through ``audio_stream.encode`` (G.711)."""
        self.path = path
        # O_EXCL: never clobber a file; FFmpeg then opens the (empty) file by name and writes
        # it natively, with no Python in its write path. Our descriptor reads it back and
        # fsyncs it.
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.scan = _FileScanner(self._fd)
        options = {"movflags": MOVFLAGS, "flush_packets": "1"}
        if audio is not None:
            options.update(AUDIO_OPTIONS)
        self.audio_stream: av.audio.stream.AudioStream | None = None
        self._scan_due = True
        try:
            self._container = av.open(f"file:{path}", "w", format="mp4", options=options)
            self.stream = self._container.add_stream(codec)
            ctx = self.stream.codec_context
            ctx.width, ctx.height = width, height
            if extradata:
                ctx.extradata = extradata
            self.stream.time_base = time_base
            if audio is not None:
                self.audio_stream = self._add_audio(audio)
        except BaseException:
            os.close(self._fd)
            raise
        self._closed = False

    def _add_audio(self, audio: AudioInfo) -> av.audio.stream.AudioStream:
        if audio.codec in AUDIO_AS_IS and audio.template is not None:
            stream = self._container.add_stream_from_template(audio.template)
        else:  # converted to AAC: the caller encodes with this stream's encoder
            stream = self._container.add_stream("aac", rate=audio.sample_rate)
            stream.codec_context.layout = "mono" if audio.channels == 1 else "stereo"
            stream.codec_context.bit_rate = 32_000 * min(2, audio.channels)
        stream.time_base = audio.time_base
        return stream

    def mux(self, packet: av.Packet, key: bool) -> list[WrittenFragment]:
        """Mux one video packet; return the fragments this write completed (usually none)."""
        packet.stream = self.stream
        if key or not self.scan.init_bytes:
            self._scan_due = True  # fragments are completed by key frames (and the first packet)
        self._container.mux_one(packet)
        return self._scan()

    def mux_audio(self, packet: av.Packet) -> list[WrittenFragment]:
        """Mux one packet of the audio track; return the fragments completed meanwhile."""
        assert self.audio_stream is not None, "no audio track"
        packet.stream = self.audio_stream
        self._container.mux_one(packet)
        return self._scan()

    def _scan(self) -> list[WrittenFragment]:
        if self._scan_due:
            had_init = self.scan.init_bytes
            self.scan.scan()
            # with an audio track, the key frame that completes a fragment reaches the muxer
            # with the next packet of either track: scan until that fragment is there
            if self.audio_stream is None or self.scan.completed or not had_init:
                self._scan_due = False
        return self.take_completed()

    def take_completed(self) -> list[WrittenFragment]:
        done = self.scan.completed
        if done:
            self.scan.completed = []
        return done

    def close(self) -> list[WrittenFragment]:
        """Flush the last fragment, fsync and close. Returns the fragments completed by it."""
        if self._closed:
            return []
        self._closed = True
        try:
            self._container.close()
            os.fsync(self._fd)
            self.scan.scan()
        finally:
            os.close(self._fd)
        return self.take_completed()

    def abandon(self) -> None:
        """Close the descriptor without writing more (after a write error such as ENOSPC)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except (OSError, av.FFmpegError) as exc:
            log.debug("closing abandoned muxer for %s: %s", self.path, exc)
        try:
            self.scan.scan()  # what is complete on disk is what will be kept
        except (OSError, ValueError) as exc:
            log.debug("scanning abandoned %s: %s", self.path, exc)
        finally:
            os.close(self._fd)
