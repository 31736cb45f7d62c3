"""Opening a camera stream with PyAV and reading its video packets in Annex B form.

``rtsp://`` (over TCP, UDP, multicast or HTTP tunnelling), ``rtsps://`` and ``http(s)://``
are read as they come; ``file://`` plays a local file in a loop at real-time pace with
ever-increasing timestamps, standing in for a live camera (the demo). MP4/MKV inputs carry
AVCC packets, so an ``*_mp4toannexb`` bitstream filter puts every source into the same form:
parameter sets in band at each key frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from urllib.parse import unquote, urlsplit

import av

from server.clock import Clock
from server.recording.packets import AudioInfo, IngestPacket, StreamInfo

log = logging.getLogger(__name__)

CODECS = {"h264": "h264", "hevc": "hevc", "h265": "hevc"}
# audio tracks that are recorded (AAC and Opus as they are, G.711 converted to AAC): see
# docs/design/recording.md, "Audio"
AUDIO_CODECS = frozenset({"aac", "opus", "pcm_alaw", "pcm_mulaw"})
# our transport names -> FFmpeg's rtsp_transport (docs/design/cameras.md)
RTSP_TRANSPORTS = {"tcp": "tcp", "udp": "udp", "multicast": "udp_multicast", "http": "http"}

# What cameras speak. Compared lower-cased: FFmpeg takes ``FILE:`` for ``file:``.
CAMERA_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https"})
# A local clip played as a camera: only from the config file (the demo, tests), never the API.
LOCAL_SCHEMES = frozenset({"file"})
# FFmpeg's protocol_whitelist per scheme: the protocols a demuxer may open underneath (RTSP
# opens TCP, or RTP over UDP; HTTP opens TCP or TLS), so that no wrapper (``async:``,
# ``cache:``, ``subfile:``, ``concat:``) or nested URL can reach local files or other hosts'
# protocols (docs/design/recording.md).
PROTOCOL_WHITELIST = {
    "rtsp": "rtsp,tcp,udp,rtp,http",  # http: RTSP tunnelled in HTTP (transport "http")
    "rtsps": "rtsps,rtsp,tcp,tls,udp,rtp,http,https",
    "rtmp": "rtmp,tcp",
    "rtmps": "rtmps,rtmp,tcp,tls",
    "http": "http,tcp",
    "https": "https,http,tcp,tls",
    "file": "file",
}
# One answer for every failed probe: an error text would tell an open port from a closed one.
PROBE_FAILED = "no H.264 or H.265 video could be read from this URL (details in the server log)"


def redact(url: str) -> str:
    """The URL without its password, for logs and for viewers. The credentials end at the
    *last* ``@`` of the authority: a password may contain ``@`` (unencoded, as cameras'
    set-up pages often take it)."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    creds, at, host = rest[:end].rpartition("@")
    if not at:
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}{rest[end:]}"


def check_camera_url(url: str, *, allow_local: bool = False) -> str:
    """The URL's scheme, lower-cased, when a camera uses it; SourceError otherwise.

    ``allow_local``: ``file:`` too (the config file's demo and test cameras). The API calls
    this with the default, so no request names a local file."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    allowed = CAMERA_SCHEMES | (LOCAL_SCHEMES if allow_local else frozenset())
    if scheme not in allowed:
        raise SourceError(
            f"unsupported URL scheme {scheme or url[:16]!r}: use {', '.join(sorted(allowed))}"
        )
    return scheme


class SourceError(Exception):
    """A source cannot be used; the message is meant for the operator's status display."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    open_s: float = 10.0
    read_s: float = 5.0


def describe_error(exc: BaseException) -> str:
    """A short, operator-facing reason for an FFmpeg/OS error."""
    if isinstance(exc, SourceError):
        return str(exc)
    if isinstance(exc, av.error.ExitError | TimeoutError):
        return "timed out"
    if isinstance(exc, av.FFmpegError):
        text = exc.strerror or type(exc).__name__
        # e.g. "Server returned 404 Not Found" / "Connection refused"
        return text.strip()
    if isinstance(exc, EOFError):
        return "stream ended"
    return f"{type(exc).__name__}: {exc}"


class Source:
    """An opened stream. ``packets()`` runs on the ingest thread and stops when ``stop`` is set."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        timeouts: Timeouts,
        stop: threading.Event,
        transport: str = "tcp",
    ) -> None:
        """``transport``: RTSP lower transport, one of ``RTSP_TRANSPORTS`` (RTSP URLs only)."""
        self.url = url
        self.transport = transport
        self.clock = clock
        self.stop = stop
        parts = urlsplit(url)
        scheme = check_camera_url(url, allow_local=True)
        self.is_file = scheme == "file"
        options: dict[str, str] = {"protocol_whitelist": PROTOCOL_WHITELIST[scheme]}
        # PyAV's own timeout calls back into Python, taking the GIL, on every socket read:
        # where FFmpeg has a socket timeout option, use that instead.
        pyav_timeout: tuple[float, float] | None = None
        if scheme in ("rtsp", "rtsps"):
            options["rtsp_transport"] = RTSP_TRANSPORTS[transport]
            options["timeout"] = str(int(timeouts.read_s * 1_000_000))  # connect and each read
            # Stream parameters come from the SDP and the first key frame; FFmpeg's default
            # probing (5 MB, ~20 frames for a frame rate estimate) only delays the start.
            options["analyzeduration"] = "500000"
            options["probesize"] = "262144"
        elif not self.is_file:
            options["rw_timeout"] = str(int(timeouts.read_s * 1_000_000))
            pyav_timeout = (timeouts.open_s, timeouts.read_s)
        target = unquote(parts.path) if self.is_file else url
        self.container = self._open(target, options, pyav_timeout)
        if (
            scheme in ("rtsp", "rtsps")
            and self.container.streams.audio
            and any(not v.codec_context.width for v in self.container.streams.video)
        ):
            # The audio track's packets flow from the first instant and end the short probe
            # before the video's first key frame has come (when the SDP carries no parameter
            # sets, the picture size is in that key frame): probe once more, for longer.
            self.container.close()
            longer = {**options, "analyzeduration": str(int(timeouts.read_s * 1_000_000)),
                      "probesize": str(5 << 20)}  # fmt: skip
            self.container = self._open(target, longer, pyav_timeout)
        try:
            self.stream, self.info = self._select_stream()
            # a looped file stands in for a camera's video only (the demo); live sources
            # bring their audio track along
            self.audio_stream = None if self.is_file else self._select_audio()
            if self.audio_stream is not None:
                ctx = self.audio_stream.codec_context
                self.info = replace(self.info, audio=AudioInfo(
                    codec=ctx.name, sample_rate=ctx.sample_rate, channels=ctx.channels or 1,
                    time_base=self.audio_stream.time_base or Fraction(1, ctx.sample_rate),
                    extradata=bytes(ctx.extradata) if ctx.extradata else None,
                    template=self.audio_stream,
                ))  # fmt: skip
            self._bsf = None
            if (
                self.stream.codec_context.extradata
                and self.stream.codec_context.extradata[:1] == b"\x01"
            ):
                # AVCC/HVCC framing (MP4/MKV): convert so every source looks the same
                name = "hevc_mp4toannexb" if self.info.codec == "hevc" else "h264_mp4toannexb"
                self._bsf = av.BitStreamFilterContext(name, self.stream)
        except BaseException:
            self.container.close()
            raise

    @staticmethod
    def _open(
        target: str, options: dict[str, str], timeout: tuple[float, float] | None
    ) -> av.container.InputContainer:
        try:
            return av.open(
                target,
                options=options,
                # probing decodes a frame or two: one thread, not a pool idling all day
                stream_options=[{"threads": "1"}],
                timeout=timeout,
            )
        except av.FFmpegError as exc:
            raise SourceError(describe_error(exc)) from exc

    @classmethod
    def probe(cls, url: str, clock: Clock, timeouts: Timeouts) -> Source:
        """Open ``url`` for a probe from the API: local files refused, and every failure the
        same ``PROBE_FAILED`` (the reason goes to the log only)."""
        try:
            check_camera_url(url)
            return cls(url, clock, timeouts, threading.Event())
        except (SourceError, av.FFmpegError, OSError) as exc:
            log.info("probe of %s failed: %s", redact(url), describe_error(exc))
            raise SourceError(PROBE_FAILED) from exc

    def _select_stream(self) -> tuple[av.video.stream.VideoStream, StreamInfo]:
        if not self.container.streams.video:
            kinds = sorted({s.type for s in self.container.streams}) or ["nothing"]
            raise SourceError(f"no video stream (source has {', '.join(kinds)})")
        stream = self.container.streams.video[0]
        ctx = stream.codec_context
        codec = CODECS.get(ctx.name)
        if codec is None:
            raise SourceError(f"unsupported video codec {ctx.name!r} (H.264 or H.265 only)")
        if not ctx.width or not ctx.height:
            raise SourceError("video stream without a picture size (no SPS received)")
        rate = stream.average_rate or stream.guessed_rate
        info = StreamInfo(
            codec=codec,
            width=ctx.width,
            height=ctx.height,
            time_base=stream.time_base or Fraction(1, 90_000),
            extradata=bytes(ctx.extradata) if ctx.extradata else None,
            fps=float(rate) if rate else None,
        )
        return stream, info

    def _select_audio(self) -> av.audio.stream.AudioStream | None:
        """The first audio track in a codec we record, if any (others are left aside)."""
        for stream in self.container.streams.audio:
            ctx = stream.codec_context
            if ctx.name in AUDIO_CODECS and ctx.sample_rate:
                return stream
            log.info("%s: audio track in %s not recorded", redact(self.url), ctx.name)
        return None

    def close(self) -> None:
        self.container.close()

    def packets(self) -> Iterator[IngestPacket]:
        if self.is_file:
            yield from self._file_packets()
            return
        untimed: av.Packet | None = None
        now_us = self.clock.now_us
        stop = self.stop.is_set
        audio = self.audio_stream
        streams = (self.stream,) if audio is None else (self.stream, audio)
        audio_index = -1 if audio is None else audio.index
        for pkt in self.container.demux(*streams):  # the per-packet path: keep it lean
            if stop():
                return
            dts, pts = pkt.dts, pkt.pts
            if pkt.stream_index == audio_index:
                if dts is None:
                    dts = pts
                if dts is not None and pkt.size:
                    yield IngestPacket(pkt, dts, dts if pts is None else pts, True, now_us(),
                                       pkt.size, True)  # fmt: skip
                continue
            if dts is None:
                if pts is None:
                    # Over RTSP the session's first packet, often its key frame, can come
                    # without timestamps. Dropping it would delay recording by a whole GOP:
                    # place it one frame before the next packet instead.
                    if pkt.is_keyframe and pkt.size:
                        untimed = pkt
                    continue
                dts = pts
            elif pts is None:
                pts = dts
            size = pkt.size
            if not size:
                continue
            if untimed is not None:
                untimed.dts = untimed.pts = t = dts - self._frame_ticks()
                yield IngestPacket(untimed, t, t, True, now_us(), untimed.size)
                untimed = None
            yield IngestPacket(pkt, dts, pts, pkt.is_keyframe, now_us(), size)

    def _frame_ticks(self) -> int:
        """One frame interval in the stream's time base (40 ms when the rate is unknown)."""
        fps = self.info.fps or 25.0
        return max(1, round(1 / (fps * float(self.info.time_base))))

    def _wrap(self, pkt: av.Packet, offset: int) -> list[IngestPacket] | None:
        if pkt.dts is None and pkt.pts is None:
            return None
        if pkt.size == 0:
            return None
        recv_us = self.clock.now_us()
        packets = self._bsf.filter(pkt) if self._bsf is not None else [pkt]
        out = []
        for p in packets:
            dts = p.dts if p.dts is not None else p.pts
            pts = p.pts if p.pts is not None else dts
            out.append(IngestPacket(p, dts + offset, pts + offset, p.is_keyframe, recv_us, p.size))
        return out

    def _file_packets(self) -> Iterator[IngestPacket]:
        """Loop the file forever at real-time pace, as a live camera would deliver it."""
        tb = self.stream.time_base
        offset = 0
        first_dts: int | None = None
        t0 = time.monotonic()
        while not self.stop.is_set():
            end_dts = None
            for pkt in self.container.demux(self.stream):
                if pkt.dts is None:
                    continue  # the flush packet at EOF
                if first_dts is None:
                    first_dts = pkt.dts
                media_s = float((pkt.dts + offset - first_dts) * tb)
                delay = t0 + media_s - time.monotonic()
                if delay > 0 and self.stop.wait(delay):
                    return
                end_dts = pkt.dts + (pkt.duration or 0)
                out = self._wrap(pkt, offset)
                if out is not None:
                    yield from out
            if end_dts is None or first_dts is None:
                raise SourceError("file has no video packets")
            offset += end_dts - first_dts
            self.container.seek(0, stream=self.stream)
            if self._bsf is not None:
                self._bsf.flush()
