"""Cut a time range of recorded streams into one standard MP4 or MKV file per camera.

Recorded segments are remuxed, never transcoded: the fragment index picks, in each segment that
overlaps the range, just the fragments (GOPs) that overlap it, and PyAV demuxes the segment's
init followed by those fragments as if they were one file (``_FragmentReader``). Packets are
restamped from their wall times (segment ``start_us`` + media time since the segment's first
frame, scaled by the segment's drift correction, ``(end_us - start_us) / media_duration_us``),
so consecutive segments join seamlessly (a run's segments are chained exactly) and a gap in the
recording stays a gap in the timestamps. Output times start at 0 at the first frame.

A plain export starts at the key frame at or before ``start_us`` (up to a GOP early). An *exact*
export decodes that first GOP and re-encodes the frames from ``start_us`` up to the next key
frame (libx264 / libx265, near-lossless), then copies from that key frame on. The junction:
the re-encoded frames carry the encoder's parameter sets in band, so the first copied key frame
gets the camera's parameter sets in band too (added when the camera did not send them), and the
MP4 track is tagged ``avc3``/``hev1`` (parameter sets may change in band) rather than
``avc1``/``hvc1``. The export ends with the last frame whose decode time is before ``end_us``
(streams with B-frames may keep one or two reordered frames past it, never lose one before).
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av

from server.catalog import Catalog, SegmentRow
from server.catalog.catalog import CatalogError
from server.datadir import DataDir
from server.protocol.fragindex import decode_fragment_index
from server.protocol.timeutil import US_PER_SECOND, rescale, us_to_iso
from server.recording.h26x import (
    annexb_to_length_prefixed,
    extradata_parameter_sets,
    fill_parameter_sets,
    length_prefixed_to_annexb,
    nal_length_size,
)

log = logging.getLogger(__name__)

US = Fraction(1, US_PER_SECOND)
FORMATS = {"mp4": "mp4", "mkv": "matroska"}
# fragmented segments in, plain MP4 out: moov up front so players and browsers start at once
_MUXER_OPTIONS = {"mp4": {"movflags": "+faststart"}, "mkv": {}}
_ENCODERS = {
    "h264": ("libx264", {"preset": "veryfast", "crf": "17", "x264-params": "scenecut=0"}),
    "hevc": (
        "libx265",
        {"preset": "veryfast", "crf": "19",
         "x265-params": "scenecut=0:repeat-headers=1:log-level=error"},
    ),
}  # fmt: skip
_IN_BAND_TAGS = {"h264": "avc3", "hevc": "hev1"}
_READ_BUFFER = 1 << 20


class ExportError(RuntimeError):
    """An export that cannot be made; the message is meant for the person who asked."""


class ExportCancelled(ExportError):
    pass


@dataclass(frozen=True, slots=True)
class ExportedFile:
    """One file written: which stream it shows and the wall time of its first and last frame."""

    path: Path
    camera: str
    stream: str
    start_us: int  # wall time of the first frame (output time 0)
    end_us: int  # wall time at which the last frame ends
    frames: int
    reencoded_frames: int


class RemoteSegments(Protocol):
    """Segments whose local copy is gone but that are kept elsewhere (the archive's bucket,
    docs/design/archive.md): an export reads just the bytes it needs from there."""

    def remote_segments(
        self, camera_id: str, stream: str, start_us: int, end_us: int, stream_id: int
    ) -> list[SegmentRow]:
        """Closed segments overlapping [start_us, end_us) with no local row; ``path`` is the
        key that ``read_remote`` takes."""
        ...

    def read_remote(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` of ``key``; raises ExportError when unreadable."""
        ...


@dataclass(frozen=True, slots=True)
class _Piece:
    """The part of one segment that the export needs: its init and the overlapping fragments."""

    segment: SegmentRow
    chunks: tuple[tuple[int, int], ...]  # (file offset, length): init, then fragments
    start_us: int  # wall time of the first chosen fragment
    end_us: int
    remote: bool = False  # only in the archive: read through ``RemoteSegments``


def _plan(catalog: Catalog, camera: str, stream: str, start_us: int, end_us: int,
          remote: RemoteSegments | None = None) -> list[_Piece]:  # fmt: skip
    """The pieces of ``camera/stream`` overlapping [start_us, end_us), oldest first: local
    segments, and those only in the archive when ``remote`` is given."""
    try:
        stream_id = catalog.stream_id(camera, stream)
    except CatalogError:
        if all(c.id != camera for c in catalog.cameras()):
            raise ExportError(f"unknown camera {camera!r}") from None
        raise ExportError(f"camera {camera!r} has no stream {stream!r}") from None
    segs = [(s, False) for s in catalog.segments(stream_id, start_us=start_us, end_us=end_us)]
    if remote is not None:
        segs += [(s, True) for s in remote.remote_segments(camera, stream, start_us, end_us,
                                                           stream_id)]  # fmt: skip
        segs.sort(key=lambda sr: (sr[0].start_us, sr[0].id))
    pieces = []
    for seg, is_remote in segs:
        init, frags = decode_fragment_index(seg.fragment_index, seg.start_us)
        chosen = [f for f in frags if f.end_us > start_us and f.start_us < end_us]
        if init and chosen:
            chunks = ((0, init), *((f.offset, f.bytes) for f in chosen))
            pieces.append(_Piece(seg, chunks, chosen[0].start_us, chosen[-1].end_us, is_remote))
    if not pieces:
        raise ExportError(
            f"no recording of {camera}/{stream} between {us_to_iso(start_us)} and "
            f"{us_to_iso(end_us)}"
        )
    return pieces


def check_request(
    catalog: Catalog, cameras: Sequence[tuple[str, str]], start_us: int, end_us: int, fmt: str,
    remote: RemoteSegments | None = None,
) -> None:  # fmt: skip
    """Raise ExportError for a request that cannot succeed (for the API's immediate 4xx)."""
    _validate(cameras, start_us, end_us, fmt)
    for camera, stream in cameras:
        _plan(catalog, camera, stream, start_us, end_us, remote)


def _validate(cameras: Sequence[tuple[str, str]], start_us: int, end_us: int, fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {sorted(FORMATS)}, not {fmt!r}")
    if end_us <= start_us:
        raise ExportError("the end of the range must be after its start")
    if not cameras:
        raise ExportError("no camera to export")
    if len(set(cameras)) != len(cameras):
        raise ExportError("a camera stream is listed twice")


class _FragmentReader:
    """A segment's init followed by some of its fragments, read as one contiguous MP4 file.

    Fragments carry their own decode time (``tfdt``), so the demuxer places them right even
    with the fragments before them left out. An open segment is read from its ``.part`` file,
    and only as far as the catalog has indexed it.
    """

    def __init__(self, data_root: Path, seg: SegmentRow, chunks: Sequence[tuple[int, int]]):
        self._fd = -1
        final = data_root / seg.path
        names = [final.with_name(final.name + ".part"), final] if seg.state == "open" else [final]
        for i, name in enumerate(names):
            try:
                self._fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
                break
            except FileNotFoundError:
                if i == len(names) - 1:
                    raise ExportError(
                        f"recording file {seg.path} is missing (deleted by retention?)"
                    ) from None
        self._starts, self._chunks, pos = [], list(chunks), 0
        for _, length in self._chunks:
            self._starts.append(pos)
            pos += length
        self._size, self._pos = pos, 0

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self._size - self._pos
        out = bytearray()
        while n > 0 and self._pos < self._size:
            i = bisect.bisect_right(self._starts, self._pos) - 1
            offset, length = self._chunks[i]
            within = self._pos - self._starts[i]
            data = os.pread(self._fd, min(n, length - within), offset + within)
            if not data:
                raise ExportError("recording file is shorter than its catalog row says")
            out += data
            self._pos += len(data)
            n -= len(data)
        return bytes(out)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _RemoteFragmentReader(_FragmentReader):
    """The same view of a segment that is only in the archive: each run of adjacent chunks
    (the init, then the chosen fragments, usually one run) is one ranged GET, fetched when
    first read, so an export downloads what it cuts and no more."""

    def __init__(self, remote: RemoteSegments, seg: SegmentRow,
                 chunks: Sequence[tuple[int, int]]) -> None:  # fmt: skip
        self._fd = -1
        self._remote, self._key = remote, seg.path
        self._chunks, self._starts, pos = list(chunks), [], 0
        for _, length in self._chunks:
            self._starts.append(pos)
            pos += length
        self._size, self._pos = pos, 0
        self._runs: list[list[int]] = []  # [file offset, length] of adjacent chunks
        self._run_of: list[int] = []
        for offset, length in self._chunks:
            if self._runs and self._runs[-1][0] + self._runs[-1][1] == offset:
                self._runs[-1][1] += length
            else:
                self._runs.append([offset, length])
            self._run_of.append(len(self._runs) - 1)
        self._fetched: dict[int, bytes] = {}

    def _run_bytes(self, i: int) -> bytes:
        if i not in self._fetched:
            offset, length = self._runs[i]
            data = self._remote.read_remote(self._key, offset, length)
            if len(data) != length:
                raise ExportError(f"archived recording {self._key} is shorter than its index")
            self._fetched = {i: data}  # runs are read in order: keep one
        return self._fetched[i]

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self._size - self._pos
        out = bytearray()
        while n > 0 and self._pos < self._size:
            i = bisect.bisect_right(self._starts, self._pos) - 1
            offset, length = self._chunks[i]
            run = self._run_of[i]
            within = self._pos - self._starts[i]
            at = offset - self._runs[run][0] + within
            data = self._run_bytes(run)[at : at + min(n, length - within)]
            out += data
            self._pos += len(data)
            n -= len(data)
        return bytes(out)


class _Output:
    """One output file: written under a temporary name, renamed into place when complete."""

    def __init__(self, final: Path, fmt: str, template: av.VideoStream, in_band_params: bool,
                 audio: av.AudioStream | None = None) -> None:  # fmt: skip
        self.final = final
        self.tmp = final.with_name(f".{final.name}.tmp")
        self.fmt = fmt
        self.container = av.open(
            f"file:{self.tmp}", "w", format=FORMATS[fmt], options=_MUXER_OPTIONS[fmt]
        )
        self.stream = self.container.add_stream_from_template(template)
        if fmt == "mp4":
            self.stream.time_base = Fraction(1, 90_000)
            codec = template.codec_context.name
            if in_band_params and codec in _IN_BAND_TAGS:
                self.stream.codec_tag = _IN_BAND_TAGS[codec]
        # the recording's audio track, copied as it is (docs/design/recording.md, "Audio")
        self.audio = None if audio is None else self.container.add_stream_from_template(audio)
        self.audio_codec = None if audio is None else audio.codec_context.name
        self.last_audio_us: int | None = None
        self.origin_us: int | None = None
        self.last_dts_us: int | None = None
        self.end_us = 0
        self.frames = 0
        self.reencoded = 0

    def mux(self, pkt: av.Packet, pts_us: int, dts_us: int, duration_us: int) -> None:
        """Mux ``pkt`` at wall times ``pts_us``/``dts_us``; output time 0 is the first frame."""
        if self.origin_us is None:
            self.origin_us = pts_us
        if self.last_dts_us is not None and dts_us <= self.last_dts_us:
            # never from a recorder's segments; only a re-encode junction with B-frames could
            log.debug("export %s: nudging a non-increasing DTS", self.final.name)
            dts_us = self.last_dts_us + 1000
            pts_us = max(pts_us, dts_us)
        self.last_dts_us = dts_us
        self.end_us = max(self.end_us, pts_us + duration_us)
        pkt.stream = self.stream
        pkt.time_base = US
        pkt.pts, pkt.dts = pts_us - self.origin_us, dts_us - self.origin_us
        pkt.duration = duration_us
        self.container.mux_one(pkt)
        self.frames += 1

    def mux_audio(self, pkt: av.Packet, pts_us: int, duration_us: int) -> None:
        """Mux an audio packet at wall time ``pts_us``, unless it precedes the first frame or
        repeats a time already written (the overlap at a segment boundary)."""
        if self.audio is None or self.origin_us is None or pts_us < self.origin_us:
            return
        if self.last_audio_us is not None and pts_us <= self.last_audio_us:
            return
        self.last_audio_us = pts_us
        pkt.stream = self.audio
        pkt.time_base = US
        pkt.pts = pkt.dts = pts_us - self.origin_us
        pkt.duration = duration_us
        self.container.mux_one(pkt)

    def finish(self) -> None:
        self.container.close()
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.final)

    def abandon(self) -> None:
        try:
            self.container.close()
        except (OSError, av.FFmpegError) as exc:
            log.debug("closing abandoned export %s: %s", self.tmp, exc)
        self.tmp.unlink(missing_ok=True)


def _profile_option(codec: str, profile: str | None) -> dict[str, str]:
    """The camera's profile for the encoder, so the junction changes as little as it can."""
    name = (profile or "").lower().replace("constrained ", "")
    known = {"baseline", "main", "high"} if codec == "h264" else {"main", "main 10"}
    return {"profile": name.replace(" ", "")} if name in known else {}


class _Reencoder:
    """Decodes the first GOP and re-encodes its frames from ``start_us`` (exact exports).

    Encoder timestamps are wall µs, so its packets need no further mapping.
    """

    def __init__(self, codec: str, decoder: av.VideoCodecContext, nal_size: int | None,
                 wall: Callable[[int], int], start_us: int, end_us: int) -> None:  # fmt: skip
        self.codec, self.decoder, self.nal_size = codec, decoder, nal_size
        self.wall, self.start_us, self.end_us = wall, start_us, end_us
        self.encoder: av.VideoCodecContext | None = None
        self.fed = 0
        self._frame_us = 0

    def feed(self, pkt: av.Packet | None) -> list[tuple[av.Packet, int]]:
        """Decode ``pkt`` (None: drain); return (packet, duration_us) ready to mux."""
        if pkt is not None:
            self.fed += 1
        out = []
        for frame in self.decoder.decode(pkt):
            t = None if frame.pts is None else self.wall(frame.pts)
            if t is not None and self.start_us <= t < self.end_us:
                out += self._encode(frame, t)
        return out

    def flush(self) -> list[tuple[av.Packet, int]]:
        out = self.feed(None)
        if self.encoder is not None:
            out += [self._to_container(p) for p in self.encoder.encode(None)]
        return out

    def _encode(self, frame: av.VideoFrame, t_us: int) -> list[tuple[av.Packet, int]]:
        if self.encoder is None:
            name, options = _ENCODERS[self.codec]
            enc = av.CodecContext.create(name, "w")
            enc.width, enc.height = frame.width, frame.height
            enc.pix_fmt = frame.format.name
            enc.time_base = US
            rate = self.decoder.framerate or Fraction(25)
            enc.framerate = rate
            self._frame_us = rescale(US_PER_SECOND, rate.denominator, rate.numerator)
            enc.gop_size = 100_000  # one key frame: the GOP ends where the copy begins
            enc.max_b_frames = 0  # decode order = presentation order: a clean junction
            enc.options = {**options, **_profile_option(self.codec, self.decoder.profile)}
            self.encoder = enc
        frame.pts, frame.time_base = t_us, US
        frame.pict_type = av.video.frame.PictureType.NONE
        return [self._to_container(p) for p in self.encoder.encode(frame)]

    def _to_container(self, p: av.Packet) -> tuple[av.Packet, int]:
        """Annex B from the encoder to the container's length-prefixed NAL units."""
        data = bytes(p)
        if self.nal_size is not None:
            data = annexb_to_length_prefixed(data, self.nal_size)
        out = av.Packet(data)
        out.pts, out.dts, out.time_base = p.pts, p.dts, US
        out.is_keyframe = p.is_keyframe
        return out, self._frame_us


class _StreamCutter:
    """Cuts one camera stream: the pieces in order, into one file (more on a codec change)."""

    def __init__(self, data_root: Path, camera: str, stream: str, out_dir: Path, fmt: str,
                 start_us: int, end_us: int, exact: bool, tick: Callable[[int], None],
                 remote: RemoteSegments | None = None) -> None:  # fmt: skip
        self.data_root, self.camera, self.stream = data_root, camera, stream
        self.remote = remote
        self.out_dir, self.fmt = out_dir, fmt
        self.start_us, self.end_us, self.exact = start_us, end_us, exact
        self.tick = tick
        self.out: _Output | None = None
        self.done: list[ExportedFile] = []
        self._params: tuple[str, int, int, bytes] | None = None
        self._reinject = False  # the next copied key frame follows re-encoded frames

    def run(self, pieces: Sequence[_Piece]) -> list[ExportedFile]:
        try:
            for piece in pieces:
                if not self._cut_piece(piece):
                    break
            self._finish_current()
        except BaseException:
            if self.out is not None:
                self.out.abandon()
            for f in self.done:
                f.path.unlink(missing_ok=True)
            raise
        return self.done

    def _finish_current(self) -> None:
        out, self.out = self.out, None
        if out is None:
            return
        if out.frames == 0 or out.origin_us is None:
            out.abandon()
            return
        out.finish()
        self.done.append(ExportedFile(out.final, self.camera, self.stream, out.origin_us,
                                      out.end_us, out.frames, out.reencoded))  # fmt: skip

    def _open_output(self, ist: av.VideoStream, in_band_params: bool,
                     ast: av.AudioStream | None) -> _Output:  # fmt: skip
        n = len(self.done)
        part = f"-{n + 1}" if n else ""
        name = self.out_dir / f"{self.camera}-{self.stream}{part}.{self.fmt}"
        self.out = _Output(name, self.fmt, ist, in_band_params, ast)
        return self.out

    def _cut_piece(self, piece: _Piece) -> bool:
        """Copy one piece; False once the end of the range is reached."""
        seg = piece.segment
        if piece.remote:
            assert self.remote is not None
            reader: _FragmentReader = _RemoteFragmentReader(self.remote, seg, piece.chunks)
        else:
            reader = _FragmentReader(self.data_root, seg, piece.chunks)
        try:
            with av.open(reader, "r", format="mp4", buffer_size=_READ_BUFFER) as inp:
                ast = inp.streams.audio[0] if inp.streams.audio else None
                return self._copy(seg, inp, inp.streams.video[0], ast)
        except av.FFmpegError as exc:
            raise ExportError(f"cannot export from recording {seg.path}: {exc}") from exc
        finally:
            reader.close()

    def _copy(self, seg: SegmentRow, inp: av.container.InputContainer,
              ist: av.VideoStream, ast: av.AudioStream | None) -> bool:  # fmt: skip
        cc = ist.codec_context
        codec = "hevc" if cc.name == "hevc" else "h264"
        extradata = bytes(cc.extradata or b"")
        params = (codec, cc.width, cc.height, extradata)
        if params != self._params:
            self._finish_current()  # a codec parameter change: players need a new file
            self._params = params
        nal_size = nal_length_size(codec, extradata)
        tb_num, tb_den = ist.time_base.numerator * US_PER_SECOND, ist.time_base.denominator
        wall_num, wall_den = seg.duration_us, seg.media_duration_us or seg.duration_us or 1

        def wall(ticks: int) -> int:
            return seg.start_us + rescale(rescale(ticks, tb_num, tb_den), wall_num, wall_den)

        # the audio track: on the same media clock as the video, so the same wall mapping
        atb = ast.time_base if ast is not None else Fraction(1, 1)
        atb_num, atb_den = atb.numerator * US_PER_SECOND, atb.denominator

        def audio_wall(ticks: int) -> int:
            return seg.start_us + rescale(rescale(ticks, atb_num, atb_den), wall_num, wall_den)

        audio_index = -1 if ast is None else ast.index
        video_done = False  # past the end: only the audio up to the end is still wanted
        reenc: _Reencoder | None = None
        for pkt in inp.demux(ist, ast) if ast is not None else inp.demux(ist):
            if pkt.dts is None or pkt.pts is None:
                continue  # the demuxer's end-of-stream marker
            if pkt.stream_index == audio_index:
                out = self.out
                t = audio_wall(pkt.pts)
                if t >= self.end_us:
                    if video_done:
                        return False
                elif out is not None and out.audio_codec == ast.codec_context.name:
                    d = rescale(rescale(pkt.duration or 0, atb_num, atb_den), wall_num, wall_den)
                    out.mux_audio(pkt, t, d)
                continue
            if video_done:
                continue
            pts_us, dts_us = wall(pkt.pts), wall(pkt.dts)
            if dts_us >= self.end_us:
                self._flush(reenc)
                reenc = None
                if self.out is None or self.out.audio is None:
                    return False
                video_done = True  # the audio of the last fragment may come after its video
                continue
            if pkt.is_keyframe:
                self.tick(dts_us)
            if self.out is None:
                if not pkt.is_keyframe:
                    continue  # never the case: fragments start on a key frame
                first = not self.done
                if self.exact and first and pts_us < self.start_us and reenc is None:
                    reenc = _Reencoder(codec, cc, nal_size, wall, self.start_us, self.end_us)
                    self._open_output(ist, True, ast)
                else:
                    self._open_output(ist, False, ast)
            out = self.out
            assert out is not None
            if reenc is not None:
                if not pkt.is_keyframe or reenc.fed == 0:
                    for p, d in reenc.feed(pkt):
                        out.mux(p, p.pts, p.dts, d)
                        out.reencoded += 1
                    continue
                self._flush(reenc)  # the next key frame: copy from here on
                reenc = None
            if self._reinject and pkt.is_keyframe:
                self._reinject = False
                if nal_size:  # back to the camera's parameter sets after the encoder's
                    frame = length_prefixed_to_annexb(bytes(pkt), nal_size)
                    known = extradata_parameter_sets(codec, extradata)
                    fill = fill_parameter_sets(codec, frame, known)
                    if fill.insert:
                        fixed = annexb_to_length_prefixed(fill.apply(frame), nal_size)
                        pkt = _copy_packet(pkt, fixed)
            duration_us = rescale(rescale(pkt.duration or 0, tb_num, tb_den), wall_num, wall_den)
            out.mux(pkt, pts_us, dts_us, duration_us)
        self._flush(reenc)
        return not video_done

    def _flush(self, reenc: _Reencoder | None) -> None:
        if reenc is None or self.out is None:
            return
        for p, d in reenc.flush():
            self.out.mux(p, p.pts, p.dts, d)
            self.out.reencoded += 1
        self._reinject = True


def _copy_packet(pkt: av.Packet, data: bytes) -> av.Packet:
    new = av.Packet(data)
    new.pts, new.dts, new.duration, new.time_base = pkt.pts, pkt.dts, pkt.duration, pkt.time_base
    new.is_keyframe = pkt.is_keyframe
    return new


def cut_range(
    catalog: Catalog,
    data_dir: DataDir | Path,
    cameras: Sequence[tuple[str, str]],
    start_us: int,
    end_us: int,
    out_dir: Path,
    fmt: str = "mp4",
    exact: bool = False,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
    remote: RemoteSegments | None = None,
) -> list[ExportedFile]:
    """Export [start_us, end_us) of each (camera, stream) into ``out_dir``; see the module doc.

    Every camera is planned before anything is written, so an unknown camera or an empty range
    fails at once. On an error or a cancellation the files already written are removed.
    With ``remote``, footage whose local copy is gone is read from there (the archive).
    """
    _validate(cameras, start_us, end_us, fmt)
    root = data_dir.root if isinstance(data_dir, DataDir) else Path(data_dir)
    plans = [_plan(catalog, cam, stream, start_us, end_us, remote) for cam, stream in cameras]
    out_dir.mkdir(parents=True, exist_ok=True)
    done: list[ExportedFile] = []
    began = time.monotonic()
    try:
        for i, ((camera, stream), pieces) in enumerate(zip(cameras, plans, strict=True)):
            lo = max(start_us, pieces[0].start_us)
            span = max(1, min(end_us, pieces[-1].end_us) - lo)

            def tick(t_us: int, i: int = i, lo: int = lo, span: int = span) -> None:
                if cancel is not None and cancel.is_set():
                    raise ExportCancelled("export cancelled")
                if progress is not None:
                    progress((i + min(1.0, max(0.0, (t_us - lo) / span))) / len(cameras))

            cutter = _StreamCutter(root, camera, stream, out_dir, fmt, start_us, end_us, exact,
                                   tick, remote)  # fmt: skip
            done += cutter.run(pieces)
    except BaseException:
        for f in done:
            f.path.unlink(missing_ok=True)
        raise
    if progress is not None:
        progress(1.0)
    took = time.monotonic() - began
    video_s = sum(f.end_us - f.start_us for f in done) / US_PER_SECOND
    log.info(
        "exported %d file(s), %.1f s of video, in %.2f s (%.0fx real time)",
        len(done), video_s, took, video_s / took if took > 0 else float("inf"),
    )  # fmt: skip
    return done


def export_range(
    catalog: Catalog,
    data_dir: DataDir | Path,
    cameras: Sequence[tuple[str, str]],
    start_us: int,
    end_us: int,
    out_dir: Path,
    fmt: str = "mp4",
    exact: bool = False,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[Path]:
    """The paths of :func:`cut_range`'s files: one per camera (more on a codec change)."""
    files = cut_range(catalog, data_dir, cameras, start_us, end_us, out_dir, fmt, exact,
                      progress, cancel)  # fmt: skip
    return [f.path for f in files]
