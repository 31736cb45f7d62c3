"""Passthrough fragmented-MP4 writer: PyAV's mp4 muxer into a file we own, byte for byte.

PyAV (FFmpeg's movenc) does the muxing. It writes through ``_TrackingSink``, which sends each
chunk straight to the file descriptor and watches the top-level box boundaries go by, so the
writer knows the moment a fragment (moof + mdat) is complete and where it lies, without
re-reading the file. ``flush_packets`` makes FFmpeg hand bytes over per packet rather than
holding them in its 32 KiB buffer, so a complete fragment is on its way to disk at once.
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

log = logging.getLogger(__name__)

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+skip_trailer"


@dataclass(frozen=True, slots=True)
class WrittenFragment:
    offset: int
    bytes: int
    base_time: int  # in the track timescale
    duration: int
    samples: int


class _TrackingSink:
    """File-like object for PyAV: writes to ``fd`` and tracks top-level boxes as they pass."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.position = 0
        self.init_bytes = 0
        self.timescale = 0
        self._trex_duration = 0
        self._init = bytearray()  # ftyp + moov, kept to read the timescale
        self._header = bytearray()  # partial box header
        self._box: Box | None = None  # box being written
        self._keep: bytearray | None = None  # bytes of the box kept for parsing (moov, moof)
        self._moof: tuple[int, bytes] | None = None
        self.completed: list[WrittenFragment] = []
        self.complete_end = 0  # file offset up to which all boxes are complete fragments/init

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.write(self.fd, view[written:])
        self._track(view)
        self.position += len(view)
        return len(view)

    def _track(self, view: memoryview) -> None:
        pos, n = 0, len(view)
        while pos < n:
            if self._box is None:
                need = 8 - len(self._header)
                take = min(need, n - pos)
                self._header += view[pos : pos + take]
                pos += take
                if len(self._header) < 8:
                    return
                size, kind = struct.unpack(">I4s", self._header)
                if size < 8:  # size 0/1 (to end of file, 64-bit) are never written by movenc here
                    raise ValueError(f"unsupported box size {size} in muxer output")
                start = self.position + pos - 8
                self._box = Box(kind.decode("latin-1"), start, size, 8)
                self._keep = bytearray(self._header) if self._box.type in ("moov", "moof") else None
                self._header.clear()
                self._remaining = size - 8
            take = min(self._remaining, n - pos)
            if self._keep is not None:
                self._keep += view[pos : pos + take]
            pos += take
            self._remaining -= take
            if self._remaining == 0:
                self._finish_box()

    def _finish_box(self) -> None:
        box, kept = self._box, self._keep
        assert box is not None
        self._box = self._keep = None
        if box.type == "moov" and kept is not None:
            self.timescale, self._trex_duration = _parse_moov(
                bytes(kept), Box("moov", 0, box.size, 8)
            )
            self.init_bytes = self.complete_end = box.end
        elif box.type == "moof" and kept is not None:
            self._moof = (box.offset, bytes(kept))
        elif box.type == "mdat" and self._moof is not None:
            offset, moof = self._moof
            self._moof = None
            base, duration, samples = _parse_moof(
                moof, Box("moof", 0, len(moof), 8), self._trex_duration
            )
            self.completed.append(
                WrittenFragment(offset, box.end - offset, base, duration, samples)
            )
            self.complete_end = box.end
        elif box.type == "ftyp" or (self._moof is None and self.complete_end == box.offset):
            self.complete_end = box.end


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
    ) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.sink = _TrackingSink(self._fd)
        try:
            self._container = av.open(
                self.sink,
                "w",
                format="mp4",
                options={"movflags": MOVFLAGS, "flush_packets": "1"},
            )
            self.stream = self._container.add_stream(codec)
            ctx = self.stream.codec_context
            ctx.width, ctx.height = width, height
            if extradata:
                ctx.extradata = extradata
            self.stream.time_base = time_base
        except BaseException:
            os.close(self._fd)
            raise
        self._closed = False

    def mux(self, packet: av.Packet) -> list[WrittenFragment]:
        """Mux one packet; return the fragments this write completed (usually none)."""
        packet.stream = self.stream
        self._container.mux(packet)
        return self.take_completed()

    def take_completed(self) -> list[WrittenFragment]:
        done = self.sink.completed
        if done:
            self.sink.completed = []
        return done

    def close(self) -> list[WrittenFragment]:
        """Flush the last fragment, fsync and close. Returns the fragments completed by it."""
        if self._closed:
            return []
        self._closed = True
        try:
            self._container.close()
            os.fsync(self._fd)
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
        finally:
            os.close(self._fd)
