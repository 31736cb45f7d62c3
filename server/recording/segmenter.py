"""Turns one stream's packets into segments on disk and rows in the catalog.

Runs on the stream's ingest thread: a packet is muxed as soon as it arrives, each completed
fragment is indexed in the catalog at once (open segments are visible while recording), and a
segment is closed on the first key frame after its rotation time or when the codec parameters
change. Closing is: flush, fsync, rename ``.part`` away, fsync the directory, then mark the row
closed. See docs/design/recording.md.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import av

from server.catalog import Catalog, SegmentRow
from server.protocol.files import file_sha256, makedirs_durable, rename_durable
from server.protocol.fragindex import encode_fragment_index
from server.protocol.timeutil import US_PER_SECOND, rescale
from server.recording.audio import AudioSync, SegmentAudio
from server.recording.fmp4 import Fmp4Writer, WrittenFragment
from server.recording.h26x import parameter_sets, picture_size
from server.recording.packets import IngestPacket, StreamInfo
from server.recording.timing import (
    SegmentClock,
    fragment_durations_us,
    next_rotation_us,
    ticks_to_us,
)

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    segment_us: int = 60 * US_PER_SECOND
    max_drift_ppm: int = 500
    # a timestamp jump larger than this (either way) starts a new run
    max_jump_us: int = 10 * US_PER_SECOND


@dataclass(slots=True)
class RecorderStats:
    segments_closed: int = 0
    fragments: int = 0
    bytes_written: int = 0
    packets_recorded: int = 0
    packets_skipped: int = 0  # before the first key frame of a run, or while a write fails
    timestamp_fixes: int = 0
    audio_packets: int = 0  # audio packets recorded (converted ones: as received)
    audio_skipped: int = 0  # before a segment's first frame, out of order, or unconvertible
    error: str | None = None


def segment_relpath(camera_id: str, stream: str, start_us: int) -> str:
    day = datetime.fromtimestamp(start_us / US_PER_SECOND, tz=UTC)
    return f"recordings/{camera_id}/{stream}/{day:%Y/%m/%d}/{start_us}.mp4"


@dataclass(slots=True)
class _OpenSegment:
    writer: Fmp4Writer
    row: SegmentRow
    clock: SegmentClock
    first_dts: int
    params: bytes
    rotate_at_us: int
    boundaries: list[int] = field(default_factory=list)  # fragment starts (ticks), then the end
    sizes: list[int] = field(default_factory=list)
    timescale: int = 0
    audio: SegmentAudio | None = None


class SegmentWriter:
    """Records one camera stream. All methods run on that stream's ingest thread."""

    def __init__(
        self,
        catalog: Catalog,
        data_dir: Path,
        camera_id: str,
        stream: str,
        settings: RecordingSettings | None = None,
    ) -> None:
        self.catalog = catalog
        self.data_dir = data_dir
        self.camera_id = camera_id
        self.stream = stream
        self.stream_id = catalog.stream_id(camera_id, stream)
        self.settings = settings or RecordingSettings()
        self.stats = RecorderStats()
        self._offset_us = zlib.crc32(f"{camera_id}/{stream}".encode()) % self.settings.segment_us
        self._info: StreamInfo | None = None
        self._size_params: bytes | None = None  # parameter sets that ``_size`` belongs to
        self._size: tuple[int, int] | None = None
        self._run_id: int | None = None
        self._seg: _OpenSegment | None = None
        self._prev_dts: int | None = None
        self._frame_ticks = 0  # last positive DTS step, the estimate of a frame's duration
        self._audio_sync: AudioSync | None = None  # per connection, when the source has audio
        self._chain_end_us: int | None = None  # end of the run's last closed segment
        self._pending_discards: list[int] = []  # rows of discarded segments still to delete
        self._floor_us = 0  # end of the last segment written: the next may not start earlier
        self._us_num, self._us_den, self._max_jump_ticks = US_PER_SECOND, 1, 0  # on_connect

    # --- PacketSink ------------------------------------------------------------------------

    def on_connect(self, info: StreamInfo) -> None:
        self._info = info
        # per-packet conversions in plain integers, computed once per connection
        self._us_num = info.time_base.numerator * US_PER_SECOND
        self._us_den = info.time_base.denominator
        self._max_jump_ticks = self.settings.max_jump_us * self._us_den // self._us_num
        self._size_params = None
        self._size = None
        self._run_id = None
        self._prev_dts = None
        self._frame_ticks = 0
        self._audio_sync = (
            None if info.audio is None
            else AudioSync(info.audio.time_base, f"{self.camera_id}/{self.stream}")
        )  # fmt: skip

    def on_packet(self, p: IngestPacket) -> None:
        try:
            self._on_packet(p)
        except sqlite3.Error as exc:
            # the catalog cannot be written (disk full, I/O error): keep writing video; rows
            # catch up on the next fragment, or start-up recovery rebuilds them from the files
            self._record_error(f"catalog write failed: {exc}")

    def _on_packet(self, p: IngestPacket) -> None:
        info = self._info
        assert info is not None, "on_connect first"
        if self._prev_dts is not None and self._discontinuity(p, info):
            self._end_run("timestamp discontinuity", p.recv_us)
            self._prev_dts = None
        seg = self._seg
        if seg is None:
            if not p.key:
                self.stats.packets_skipped += 1
                return
            seg = self._open_segment(p, info)
            if seg is None:
                return
        elif p.key and self._must_rotate(seg, p, info):
            self._close_segment(seg)
            seg = self._open_segment(p, info, chained=True)
            if seg is None:
                return
        self._mux(seg, p, info)

    def on_audio(self, p: IngestPacket) -> None:
        """An audio packet: muxed into the open segment, on the video's media clock.

        Audio never opens, rotates or closes a segment, and a packet that cannot be placed is
        dropped (counted), so audio cannot delay or lose video."""
        seg = self._seg
        sync = self._audio_sync
        if sync is None or not sync.audio(p) or seg is None or seg.audio is None or not seg.row.id:
            self.stats.audio_skipped += 1
            return
        try:
            packets = seg.audio.packets(p)
            fragments: list[WrittenFragment] = []
            for pkt in packets:
                fragments += seg.writer.mux_audio(pkt)
        except (OSError, av.FFmpegError) as exc:
            self._fail_segment(seg, exc)
            return
        try:
            if fragments:
                self._index(seg, fragments, final=False, persist=True)
        except sqlite3.Error as exc:
            self._record_error(f"catalog write failed: {exc}")

    def on_disconnect(self, reason: str) -> None:
        try:
            if self._info is not None:
                self._end_run(reason, None)
        except sqlite3.Error as exc:
            self._record_error(f"catalog write failed: {exc}")
        finally:
            self._seg = None
            self._run_id = None
            self._chain_end_us = None
            self._info = None

    # --- internals -------------------------------------------------------------------------

    def _discontinuity(self, p: IngestPacket, info: StreamInfo) -> bool:
        assert self._prev_dts is not None
        step = p.dts - self._prev_dts
        if -self._max_jump_ticks <= step <= self._max_jump_ticks:
            return False
        log.warning(
            "%s/%s: timestamps jumped by %.3f s; starting a new run",
            self.camera_id, self.stream, self._media_us(step, info) / US_PER_SECOND,
        )  # fmt: skip
        return True

    def _must_rotate(self, seg: _OpenSegment, p: IngestPacket, info: StreamInfo) -> bool:
        elapsed = self._media_us(p.dts - seg.first_dts, info)
        if seg.clock.start_us + elapsed >= seg.rotate_at_us:
            return True
        params = parameter_sets(info.codec, bytes(p.packet))
        if params and params != seg.params:
            log.info("%s/%s: codec parameters changed; new segment", self.camera_id, self.stream)
            return True
        return False

    @staticmethod
    def _media_us(ticks: int, info: StreamInfo) -> int:
        tb = info.time_base
        return rescale(ticks, tb.numerator * US_PER_SECOND, tb.denominator)

    def _open_segment(
        self, p: IngestPacket, info: StreamInfo, *, chained: bool = False
    ) -> _OpenSegment | None:
        if chained and self._chain_end_us is not None:
            clock = SegmentClock.chained_after(self._chain_end_us, p.recv_us, 0)
        else:
            floor = max(self.catalog.last_end_us(self.stream_id) or 0, self._floor_us)
            clock = SegmentClock.first_of_run(p.recv_us, floor)
        self._seg = None
        if self._run_id is None:
            self._run_id = self.catalog.begin_run(self.stream_id, clock.start_us)
        params = parameter_sets(info.codec, bytes(p.packet)) or info.extradata or b""
        self._retry_discards()
        relpath = self._free_relpath(clock.start_us)
        final = self.data_dir / relpath
        part = final.with_name(final.name + PART_SUFFIX)
        try:
            makedirs_durable(final.parent)
            width, height = self._picture_size(info, params, p)
            writer = Fmp4Writer(part, info.codec, width, height, params, info.time_base, info.audio)
        except (OSError, av.FFmpegError) as exc:
            reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else exc
            self._record_error(f"cannot create segments: {reason}")
            return None
        row = SegmentRow(
            id=0, stream_id=self.stream_id, run_id=self._run_id, start_us=clock.start_us,
            end_us=clock.start_us, media_duration_us=0, path=relpath, bytes=0, frames=0,
            codec=info.codec, width=width, height=height,
            fragment_index=encode_fragment_index(0, []), state="open",
        )  # fmt: skip
        seg = _OpenSegment(
            writer=writer,
            row=row,
            clock=clock,
            first_dts=p.dts,
            params=params,
            rotate_at_us=next_rotation_us(
                clock.start_us, self.settings.segment_us, self._offset_us
            ),
        )
        if info.audio is not None and writer.audio_stream is not None:
            seg.audio = SegmentAudio(
                info.audio, writer.audio_stream, p.dts, info.time_base, self.settings.max_jump_us,
                self.stats,
            )  # fmt: skip
        self._seg = seg
        return seg

    def _mux(self, seg: _OpenSegment, p: IngestPacket, info: StreamInfo) -> None:
        pkt = p.packet
        if self._prev_dts is not None:
            step = p.dts - self._prev_dts
            if step > 0:
                self._frame_ticks = step
            elif step <= 0:
                # non-increasing DTS would make the muxer refuse the packet: nudge it forward
                self.stats.timestamp_fixes += 1
                p.pts += 1 - step
                p.dts = self._prev_dts + 1
        self._prev_dts = p.dts
        pkt.dts = p.dts - seg.first_dts
        pkt.pts = max(p.pts - seg.first_dts, pkt.dts)
        if not pkt.duration:
            pkt.duration = self._frame_ticks
        seg.clock.observe(p.recv_us, pkt.dts * self._us_num // self._us_den)
        try:
            fragments = seg.writer.mux(pkt, p.key)
        except (OSError, av.FFmpegError) as exc:
            self._fail_segment(seg, exc)
            return
        if seg.row.id == 0:
            # the init (ftyp+moov) is written with the first packet; now the row can exist
            seg.timescale = seg.writer.scan.timescale
            seg.row = _replace_row(seg.row, fragment_index=encode_fragment_index(
                seg.writer.scan.init_bytes, []), bytes=seg.writer.scan.init_bytes)  # fmt: skip
            seg.row = _replace_row(seg.row, id=self.catalog.insert_segment(seg.row))
        self.stats.packets_recorded += 1
        if fragments:
            self._index(seg, fragments, final=False, persist=True)

    def _index(
        self, seg: _OpenSegment, fragments: list[WrittenFragment], *, final: bool, persist: bool
    ) -> None:
        for f in fragments:
            if not seg.boundaries:
                seg.boundaries.append(f.base_time)
            seg.boundaries.append(f.base_time + f.duration)
            seg.sizes.append(f.bytes)
            self.stats.fragments += 1
            self.stats.bytes_written += f.bytes
        origin = seg.boundaries[0] if seg.boundaries else 0
        ticks = [b - origin for b in seg.boundaries]
        media_us = ticks_to_us(ticks[-1], seg.timescale) if ticks else 0
        wall_us = (
            seg.clock.wall_duration_us(media_us, self.settings.max_drift_ppm) if final else media_us
        )
        durations = fragment_durations_us(ticks, seg.timescale, wall_us)
        frames = seg.row.frames + sum(f.samples for f in fragments)
        row = _replace_row(
            seg.row,
            start_us=seg.clock.start_us,
            end_us=seg.clock.start_us + sum(durations),
            media_duration_us=media_us,
            bytes=seg.writer.scan.init_bytes + sum(seg.sizes),
            frames=frames,
            fragment_index=encode_fragment_index(
                seg.writer.scan.init_bytes, zip(seg.sizes, durations, strict=True)
            ),
            state="closed" if final else "open",
        )
        seg.row = row  # memory first: it stays right even when the catalog cannot be written
        if persist:
            self._update_row(row)

    def _update_row(self, row: SegmentRow) -> None:
        self.catalog.update_segment(
            row.id, start_us=row.start_us, end_us=row.end_us,
            media_duration_us=row.media_duration_us, bytes_=row.bytes, frames=row.frames,
            fragment_index=row.fragment_index, state=row.state, sha256=row.sha256,
        )  # fmt: skip

    def _close_segment(self, seg: _OpenSegment) -> None:
        """Finish ``seg``: last fragment, fsync, rename, directory fsync, then the row.

        Its end is what the file's own sample durations say (see the design doc's caveats).
        """
        self._seg = None
        try:
            if seg.audio is not None and seg.row.id:
                for pkt in seg.audio.flush():
                    seg.writer.mux_audio(pkt)  # before the close, which completes the fragment
            fragments = seg.writer.close()
        except (OSError, av.FFmpegError) as exc:
            self._fail_segment(seg, exc)
            return
        if seg.row.id == 0:  # nothing was ever muxed
            seg.writer.path.unlink(missing_ok=True)
            return
        self._index(seg, fragments, final=True, persist=False)
        if not seg.sizes:
            self._discard(seg)
            return
        final = self.data_dir / seg.row.path
        rename_durable(seg.writer.path, final)
        # once, while the file is in the page cache: the archive and its audits compare to it
        seg.row = _replace_row(seg.row, sha256=file_sha256(final))
        self._floor_us = max(self._floor_us, seg.row.end_us)
        self._update_row(seg.row)
        self._chain_end_us = seg.row.end_us
        self.stats.segments_closed += 1
        self.stats.error = None
        log.debug("%s/%s: closed %s", self.camera_id, self.stream, seg.row.path)

    def _picture_size(self, info: StreamInfo, params: bytes, p: IngestPacket) -> tuple[int, int]:
        """The source's size, unless the parameter sets changed since it was opened."""
        if self._size_params is None:
            self._size_params = params  # the sets the source was opened with
        if params != self._size_params:
            size = picture_size(info.codec, bytes(p.packet))
            if size is not None:
                self._size, self._size_params = size, params
        return self._size or (info.width, info.height)

    def _free_relpath(self, start_us: int) -> str:
        """The segment's path; suffixed in the rare case that a row or file already has it
        (a segment that failed at its first fragment and starts where the next one does)."""
        relpath = segment_relpath(self.camera_id, self.stream, start_us)
        n = 0
        candidate = relpath
        while self.catalog.segment_by_path(candidate) is not None or (
            (self.data_dir / candidate).exists()
            or (self.data_dir / (candidate + PART_SUFFIX)).exists()
        ):
            n += 1
            candidate = relpath.removesuffix(".mp4") + f"-{n}.mp4"
        return candidate

    def _discard(self, seg: _OpenSegment) -> None:
        seg.writer.path.unlink(missing_ok=True)
        if seg.row.id:
            self._pending_discards.append(seg.row.id)
            self._retry_discards()

    def _retry_discards(self) -> None:
        """Delete rows of discarded segments; kept for later if the catalog cannot be written."""
        while self._pending_discards:
            self.catalog.delete_segment(self._pending_discards[0])
            self._pending_discards.pop(0)

    def _fail_segment(self, seg: _OpenSegment, exc: Exception) -> None:
        """A write failed (disk full, I/O error): keep every complete fragment, drop the rest."""
        self._seg = None
        seg.writer.abandon()
        leftover = seg.writer.take_completed()  # completed in the write call that then failed
        if leftover and seg.row.id:
            self._index(seg, leftover, final=False, persist=False)
        good_end = seg.writer.scan.complete_end
        reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)
        self._record_error(f"cannot write recordings: {reason}")
        if not seg.sizes or seg.row.id == 0:
            self._discard(seg)
            return
        self._floor_us = max(self._floor_us, seg.row.end_us)
        # what was lost is not in the file: the next segment must not chain onto this one's
        # end (its frames would be shifted back by the lost time) but start from receive times
        self._chain_end_us = None
        try:
            os.truncate(seg.writer.path, good_end)
            seg.row = _replace_row(seg.row, state="closed")
            rename_durable(seg.writer.path, self.data_dir / seg.row.path)
            self._update_row(seg.row)
        except OSError as exc2:
            # leave the .part and open row for start-up recovery / check to finish
            log.error("%s: could not finalise after write error: %s", seg.row.path, exc2)

    def _record_error(self, message: str) -> None:
        if self.stats.error != message:
            log.error("%s/%s: %s", self.camera_id, self.stream, message)
        self.stats.error = message
        self.stats.packets_skipped += 1

    def _end_run(self, reason: str, at_us: int | None) -> None:
        if self._seg is not None:
            self._close_segment(self._seg)
        if self._run_id is not None:
            end = self.catalog.last_end_us(self.stream_id) or at_us or 0
            self.catalog.end_run(self._run_id, end, reason)
        self._run_id = None
        self._chain_end_us = None

    def close(self, reason: str = "shutdown") -> None:
        self.on_disconnect(reason)


def _replace_row(row: SegmentRow, **changes: object) -> SegmentRow:
    from dataclasses import replace

    return replace(row, **changes)
