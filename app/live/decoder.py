"""A video decoder that prefers hardware and falls back to software without losing the stream.

Hardware decoders fail in more ways than software: the device may be absent (no driver, no
permission), the codec profile unsupported, or the first frames may fail although the device
opened. So a hardware decoder is on probation until it has produced frames: meanwhile the
packets since the last key frame are kept (references only), and on a failure they are fed
again to the next candidate (finally software), so the picture goes on from the same key frame.
A failure after probation costs the rest of the GOP: the next decoder starts at the next key
frame. Which decoder is in use is ``Decoder.kind``; every attempt that was given up is kept in
``Decoder.attempts`` with its reason, for the UI and the logs.

Hardware frames are downloaded to system memory by PyAV (NV12 for cuda, vaapi, qsv); nothing
here converts to RGB.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import av
import av.codec.hwaccel as hwaccel

log = logging.getLogger(__name__)

SOFTWARE = "software"
HWACCEL_ORDER: tuple[str, ...] = ("cuda", "vaapi", "qsv", "d3d11va", "videotoolbox")
KINDS: tuple[str, ...] = (*HWACCEL_ORDER, SOFTWARE)
CODECS: tuple[str, ...] = ("h264", "hevc")
# A hardware decoder that swallows this many packets without a frame counts as failed.
_PROBATION_PACKETS = 8
_PROBATION_FRAMES = 2
_MAX_KEPT_PACKETS = 600  # a very long GOP is not kept whole: then fallback waits for a key


@dataclass(frozen=True, slots=True)
class DecoderAttempt:
    """A decoder kind that was tried and left, and why."""

    kind: str
    reason: str


def default_threads(role: str) -> int:
    """Software decoder threads: a few for a main stream, one for a sub-stream.

    Frame threading delays output by ``threads - 1`` frames, which a live wall pays in latency;
    sub-streams are small enough for one thread, main streams get at most three.
    """
    return 1 if role == "sub" else max(1, min(3, os.cpu_count() or 1))


def _candidates(prefer: Sequence[str] | None) -> list[str]:
    order = list(HWACCEL_ORDER) if prefer is None else list(prefer)
    unknown = [k for k in order if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown decoder kind(s) {unknown}; choose from {list(KINDS)}")
    if SOFTWARE not in order:
        order.append(SOFTWARE)  # the last resort is always there
    seen: set[str] = set()
    return [k for k in order if not (k in seen or seen.add(k))]


class Decoder:
    """One stream's decoder; feed packets in decode order with ``decode``.

    Not thread-safe: one decoder thread owns it.
    """

    def __init__(self, codec: str, prefer: Sequence[str] | None = None, threads: int = 1) -> None:
        if codec not in CODECS:
            raise ValueError(f"unsupported codec {codec!r}; choose from {list(CODECS)}")
        self.codec = codec
        self.threads = max(1, int(threads))
        self.attempts: list[DecoderAttempt] = []
        self.kind = SOFTWARE
        self._pending = _candidates(prefer)
        self._ctx: av.CodecContext | None = None
        self._proven = False
        # (packet, pts_us) since the last key frame, while on probation
        self._kept: list[tuple[bytes | memoryview, int | None]] = []
        self._kept_from_key = False
        self._fed_unproven = 0
        self._frames_unproven = 0
        self._await_key = False
        self._open_next()

    # --- opening -------------------------------------------------------------------------

    def _open_next(self) -> None:
        built = set(hwaccel.hwdevices_available())
        while self._pending:
            kind = self._pending.pop(0)
            if kind == SOFTWARE:
                ctx = av.CodecContext.create(self.codec, "r")
                ctx.thread_type = "AUTO"
                ctx.thread_count = self.threads
                self._use(ctx, kind)
                return
            if kind not in built:
                self._give_up(kind, "not built into this FFmpeg")
                continue
            try:
                accel = hwaccel.HWAccel(kind, allow_software_fallback=False)
                ctx = av.CodecContext.create(self.codec, "r", hwaccel=accel)
            except Exception as exc:
                self._give_up(kind, f"cannot open the device: {exc}")
                continue
            if not ctx.is_hwaccel:
                self._give_up(kind, f"no {kind} decoder configuration for {self.codec}")
                continue
            self._use(ctx, kind)
            return
        raise RuntimeError("no decoder left to try")  # unreachable: software is always last

    def _use(self, ctx: av.CodecContext, kind: str) -> None:
        self._ctx = ctx
        self.kind = kind
        self._proven = kind == SOFTWARE
        self._fed_unproven = self._frames_unproven = 0
        log.debug("%s decoder: %s", self.codec, kind)

    def _give_up(self, kind: str, reason: str) -> None:
        self.attempts.append(DecoderAttempt(kind, reason))
        log.info("%s decoder %s unusable: %s", self.codec, kind, reason)

    @property
    def fallback_reason(self) -> str | None:
        """Why the preferred decoder is not the one in use (None when it is)."""
        return self.attempts[-1].reason if self.attempts else None

    # --- decoding ------------------------------------------------------------------------

    def decode(self, data: bytes | memoryview, key: bool, pts_us: int | None = None) -> list:
        """Frames (``av.VideoFrame``) this packet completes; their ``pts`` is ``pts_us``.

        Raises ``av.FFmpegError`` for data that the software decoder rejects (the caller
        resynchronises at the next key frame); hardware failures are handled here.
        """
        if self._await_key:
            if not key:
                return []
            self._await_key = False
        if not self._proven:
            if key:
                self._kept, self._kept_from_key = [], True
            if len(self._kept) < _MAX_KEPT_PACKETS:
                self._kept.append((data, pts_us))
            else:
                self._kept_from_key = False
        batch: list[tuple[bytes | memoryview, int | None]] = [(data, pts_us)]
        while True:
            try:
                frames = self._run(batch)
            except av.FFmpegError as exc:
                if self.kind == SOFTWARE:
                    raise
                reason = f"failed while decoding: {exc}"
            else:
                if self._proven:
                    return frames
                self._fed_unproven += len(batch)
                self._frames_unproven += len(frames)
                if self._frames_unproven >= _PROBATION_FRAMES:
                    self._proven, self._kept = True, []
                    return frames
                if self._fed_unproven < _PROBATION_PACKETS:
                    return frames
                reason = f"no frame from {self._fed_unproven} packets"
            replay = list(self._kept) if self._kept_from_key and not self._proven else None
            self._give_up(self.kind, reason)
            self._open_next()
            if replay is None:
                self._await_key = True
                return []
            batch = replay  # the key frame and what followed go to the next decoder

    def _run(self, batch: list[tuple[bytes | memoryview, int | None]]) -> list:
        ctx = self._ctx
        assert ctx is not None
        frames: list = []
        for data, pts_us in batch:
            packet = owned_packet(data)
            if pts_us is not None:
                packet.pts = packet.dts = pts_us
            frames.extend(ctx.decode(packet))
        return frames

    def close(self) -> None:
        self._ctx = None
        self._kept = []


def open_decoder(
    codec: str,
    prefer: Sequence[str] | None = None,
    *,
    role: str = "main",
    threads: int | None = None,
) -> Decoder:
    """A decoder for ``codec`` ('h264'|'hevc'), trying ``prefer`` in order, then software.

    ``prefer`` None means every hardware kind in ``HWACCEL_ORDER`` that this FFmpeg has;
    ``['software']`` forces software; a list naming an absent device falls back and says so in
    ``Decoder.attempts``. ``role`` ('main'|'sub') picks the software thread count.
    """
    return Decoder(codec, prefer, default_threads(role) if threads is None else threads)


def owned_packet(data: bytes | memoryview) -> av.Packet:
    """A packet whose bytes FFmpeg allocated and owns.

    ``av.Packet(data)`` wraps the Python buffer and frees it through a callback that needs the
    GIL. A frame-threaded decoder's worker threads may drop such a packet while another thread
    closes the decoder holding the GIL (``avcodec_free_context`` joins the workers): a deadlock
    seen in the tests. One copy of a compressed packet is cheap; a frozen wall is not.
    """
    packet = av.Packet(len(data))
    memoryview(packet)[:] = data
    return packet
