"""One live tile: NATS subscription → bounded queue → decoder thread → latest-wins frame slot.

The subscription callback runs on the ``AsyncRunner`` loop and only parses the 40-byte header
and appends to a queue, so a slow decoder never blocks network I/O. The decoder thread takes
everything queued at once, decodes it in order (P-frames need their references) and shows only
the newest frame of the batch: a tile that fell behind catches up at decode speed instead of
painting old pictures.

Continuity: a sequence jump, the gap or discontinuity flag, a queue overflow or a decode error
make the stream wait for its next key frame (parameter sets are in band there), so a damaged
picture is never shown.

Stream choice: ``set_view_size`` picks the sub-stream below ``main_min_height`` pixels and the
main stream above. A switch subscribes to the new stream and keeps decoding and showing the
old one until the new one's first key frame is decoded; only then is the old one dropped, so
the view never goes blank.

Overload: when more than ``overload_backlog_us`` of packets are queued, the queue overflows,
or decoding a frame takes longer than the frame interval, the tile decodes key frames only and
says why (``TileStats.overload_reason``). It returns to full decoding at a key frame once it
has kept up for ``recover_s`` and a key frame decodes in under half a frame interval (key
frames cost more than the others, so full decoding then fits).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import av

from app.frames import frame_from_av
from app.live.decoder import Decoder, open_decoder
from app.live.slot import FrameSlot
from app.loop import AsyncRunner
from app.signals import Signal
from server.protocol.live import LiveCodec, LiveHeader, decode_live_packet, live_subject
from server.protocol.timeutil import now_us

log = logging.getLogger(__name__)

STREAM_MODES = ("main", "sub", "auto")
_EWMA = 0.1  # weight of the newest sample in the decode-time and frame-interval averages
_MIN_FRAMES_FOR_SLOWNESS = 25  # judge decode speed only after this many frames
_MIN_STEP_US = 2_000  # pts steps below this are not a frame rate (see _decode_one)


@dataclass(frozen=True, slots=True)
class TileConfig:
    main_min_height: int = 400  # view height (px) from which the main stream is shown
    down_ratio: float = 0.9  # back to sub below main_min_height * down_ratio (no flapping)
    queue_limit: int = 250  # packets; on overflow the queue is dropped and we resync
    overload_backlog_us: int = 1_000_000  # more queued than this (about a GOP): key frames only
    recover_s: float = 3.0  # keep up this long before decoding everything again
    switch_timeout_s: float = 5.0  # give up a stream switch whose stream shows no key frame
    # overloaded when decoding a frame takes longer than this many frame intervals (wall time,
    # so a starved decoder thread counts too); inf turns the rule off (benchmarks at max rate)
    slow_decode_ratio: float = 1.0


@dataclass(frozen=True, slots=True)
class TileStats:
    camera_id: str
    stream: str  # the stream being shown
    switching_to: str | None
    decoder: str  # 'software' or the hardware device type of the shown stream
    decoder_fallback: str | None  # why the preferred decoder is not in use
    fps: float  # frames decoded per second, last ~2 s
    frames_decoded: int
    frames_shown: int
    frames_dropped: int  # packets not decoded: overflow, resync, key-frames-only skipping
    keyframes_only: bool
    overloaded: bool
    overload_reason: str | None
    latency_us: int | None  # now − pts_us of the shown frame (wall clock)
    queued: int
    errors: int
    paused: bool


@dataclass(eq=False)
class _Pipe:
    """One subscribed stream of the tile."""

    stream: str
    subject: str
    started_ns: int = field(default_factory=time.monotonic_ns)
    sub: Any = None  # nats Subscription, set on the loop
    closed: bool = False
    decoder: Decoder | None = None
    codec: LiveCodec | None = None
    await_key: bool = True
    last_seq: int | None = None
    last_pts_us: int | None = None
    interval_us: float = 0.0  # EWMA of the packet pts spacing
    decode_us: float = 0.0  # EWMA of the decode time per packet
    decoded: int = 0
    latest: Any = None  # newest av.VideoFrame of the batch being processed
    rx_pts_us: int | None = None  # newest packet pts received (written on the loop thread)


class LiveTile:
    """Live video of one camera for one view; start with ``start()``, end with ``stop()``.

    ``session_or_nats`` is a ``Session`` (its ``nats`` client is used) or a connected
    nats-py client, or None for a tile fed by the caller through ``feed`` (benchmarks).
    """

    def __init__(
        self,
        session_or_nats: Any,
        runner: AsyncRunner | None,
        server_id: str,
        camera_id: str,
        stream: str = "auto",
        decoder_prefer: Sequence[str] | None = None,
        *,
        streams: Sequence[str] = ("main", "sub"),
        config: TileConfig | None = None,
    ) -> None:
        if stream not in STREAM_MODES:
            raise ValueError(f"stream must be one of {STREAM_MODES}, got {stream!r}")
        live_subject(server_id, camera_id, "main")  # validates the ids
        if not streams or any(s not in ("main", "sub") for s in streams):
            raise ValueError(f"streams must name 'main' and/or 'sub', got {streams!r}")
        if session_or_nats is not None and runner is None:
            raise ValueError("a NATS-fed tile needs the AsyncRunner its connection lives on")
        self._source = session_or_nats
        self._runner = runner
        self.server_id, self.camera_id = server_id, camera_id
        self.mode = stream
        self._streams = tuple(streams)
        self._prefer = list(decoder_prefer) if decoder_prefer is not None else None
        self.config = config or TileConfig()
        self.slot = FrameSlot(f"{camera_id}")
        self.changed: Signal[TileStats] = Signal(f"tile {camera_id}.changed")
        self._initial = self._pick(stream, None)

        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[_Pipe, LiveHeader, memoryview]] = deque()
        self._overflow = False
        self._stopping = False
        self._paused = False
        self._thread: threading.Thread | None = None
        self._active: _Pipe | None = None
        self._pending: _Pipe | None = None

        self._keyframes_only = False
        self._overload_reason: str | None = None
        self._overload_since_ns = 0
        self._last_backlog_ns = 0
        self._frame_seq = 0
        self._decoded = 0
        self._shown = 0
        self._dropped = 0
        self._errors = 0
        self._bad_packets = 0
        self._shown_pts_us: int | None = None
        self._fps_times: deque[int] = deque(maxlen=256)

    # --- life ----------------------------------------------------------------------------

    def start(self) -> LiveTile:
        if self._thread is not None:
            return self
        self._active = self._new_pipe(self._initial)
        self._thread = threading.Thread(
            target=self._run, name=f"tile-{self.camera_id}", daemon=True
        )
        self._thread.start()
        self._subscribe(self._active)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Unsubscribe, end the decoder thread and wait for it."""
        with self._cond:
            self._stopping = True
            pipes = [p for p in (self._active, self._pending) if p is not None]
            self._queue.clear()
            self._cond.notify_all()
        waits = [self._unsubscribe(p) for p in pipes]
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning(
                    "tile %s: decoder thread did not stop in %.1f s", self.camera_id, timeout
                )
        for fut in waits:
            if fut is not None and not (self._runner and self._runner.in_loop()):
                try:
                    fut.result(timeout)
                except Exception:
                    log.debug("tile %s: unsubscribe failed", self.camera_id, exc_info=True)
        if self._thread is not None and self._thread.is_alive():
            return  # it may be inside a decoder: the decoders go with the thread's objects
        for p in pipes:
            if p.decoder is not None:
                p.decoder.close()

    def __enter__(self) -> LiveTile:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pause(self) -> None:
        """Stop decoding (packets keep queueing): for a hidden view, or to test overload."""
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    # --- stream choice -------------------------------------------------------------------

    def _pick(self, mode: str, height: int | None) -> str:
        if mode != "auto":
            want = mode
        elif height is None:
            want = "sub"
        else:
            shown = self._active.stream if self._active is not None else None
            limit = self.config.main_min_height
            if shown == "main":
                limit = int(limit * self.config.down_ratio)
            want = "main" if height >= limit else "sub"
        return want if want in self._streams else self._streams[0]

    def set_view_size(self, width: int, height: int) -> None:
        """The view's size in device pixels; in 'auto' mode this chooses the stream."""
        if self.mode == "auto":
            self._switch_to(self._pick("auto", height))

    def set_stream(self, mode: str) -> None:
        """'main', 'sub' or 'auto' (by view size, from the next ``set_view_size``)."""
        if mode not in STREAM_MODES:
            raise ValueError(f"stream must be one of {STREAM_MODES}, got {mode!r}")
        self.mode = mode
        if mode != "auto":
            self._switch_to(self._pick(mode, None))

    def _switch_to(self, want: str) -> None:
        cancel: _Pipe | None = None
        new: _Pipe | None = None
        with self._cond:
            if self._thread is None:
                self._initial = want
                return
            active, pending = self._active, self._pending
            if self._stopping or active is None or (pending and pending.stream == want):
                return
            if pending is not None:
                cancel, self._pending = pending, None
                cancel.closed = True
            if active.stream != want:
                new = self._pending = self._new_pipe(want)
        if cancel is not None:
            self._unsubscribe(cancel)
        if new is not None:
            log.debug("tile %s: switching to %s", self.camera_id, want)
            self._subscribe(new)
        if cancel is not None or new is not None:
            self.changed.emit(self.stats())

    # --- NATS side (loop thread) ---------------------------------------------------------

    def _new_pipe(self, stream: str) -> _Pipe:
        return _Pipe(stream, live_subject(self.server_id, self.camera_id, stream))

    def _subscribe(self, pipe: _Pipe) -> None:
        source = self._source
        if source is None or self._runner is None:
            return

        async def on_msg(msg: Any) -> None:
            self._offer(pipe, msg.data)

        async def subscribe() -> None:
            sub = await _subscribe(source, pipe.subject, on_msg)
            if pipe.closed:  # stopped or cancelled while subscribing
                await sub.unsubscribe()
            else:
                pipe.sub = sub

        def done(fut: Any) -> None:
            if fut.exception() is not None:
                log.warning(
                    "tile %s: cannot subscribe to %s: %s",
                    self.camera_id,
                    pipe.subject,
                    fut.exception(),
                )

        self._runner.submit(subscribe()).add_done_callback(done)

    def _unsubscribe(self, pipe: _Pipe) -> Any:
        pipe.closed = True
        if self._runner is None or self._source is None:
            return None

        async def unsubscribe() -> None:
            sub, pipe.sub = pipe.sub, None
            if sub is not None:
                await sub.unsubscribe()

        return self._runner.submit(unsubscribe())

    def _offer(self, pipe: _Pipe, data: bytes | bytearray | memoryview) -> None:
        """Queue one live message; never blocks (runs on the network loop)."""
        if pipe.closed:
            return
        try:
            header, payload = decode_live_packet(data)
        except ValueError as exc:
            self._bad_packets += 1
            log.debug("tile %s: bad live packet: %s", self.camera_id, exc)
            return
        pipe.rx_pts_us = header.pts_us
        with self._cond:
            if len(self._queue) >= self.config.queue_limit:
                self._dropped += len(self._queue)
                self._queue.clear()
                self._overflow = True
            self._queue.append((pipe, header, payload))
            self._cond.notify()

    def feed(self, data: bytes | bytearray | memoryview, stream: str | None = None) -> None:
        """Queue a live message as if it came from the subscription (for caller-fed tiles)."""
        pipe = self._active
        pending = self._pending
        if stream is not None and pending is not None and pending.stream == stream:
            pipe = pending
        if pipe is None or (stream is not None and pipe.stream != stream):
            return
        self._offer(pipe, data)

    # --- decoder thread ------------------------------------------------------------------

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                if not self._stopping and (self._paused or not self._queue):
                    cond.wait(0.5)
                if self._stopping:
                    return
                batch, overflow = None, False
                if not self._paused and self._queue:
                    batch = list(self._queue)
                    self._queue.clear()
                    overflow, self._overflow = self._overflow, False
            try:
                if batch:
                    self._process(batch, overflow)
                self._check_switch_timeout()
            except Exception:  # a bug here must not silently freeze the tile
                log.exception("tile %s: decoder thread error", self.camera_id)
                self._errors += 1

    def _process(self, batch: list[tuple[_Pipe, LiveHeader, memoryview]], overflow: bool) -> None:
        now_ns = time.monotonic_ns()
        backlog = _backlog_us(batch)
        if backlog > self.config.overload_backlog_us // 4 or overflow:
            self._last_backlog_ns = now_ns
        if not self._keyframes_only:
            if overflow:
                self._enter_overload(f"queue overflow ({self.config.queue_limit} packets)")
            elif backlog > self.config.overload_backlog_us:
                self._enter_overload(f"{backlog / 1e6:.1f} s of video queued")
        for pipe, header, payload in batch:
            if not pipe.closed:
                self._decode_one(pipe, header, payload)
        active, pending = self._active, self._pending
        if pending is not None and pending.latest is not None and not pending.closed:
            self._show(pending)
            self._finish_switch(pending)
        elif active is not None and active.latest is not None:
            self._show(active)
        for pipe in (active, pending):
            if pipe is not None:
                pipe.latest = None

    def _decode_one(self, pipe: _Pipe, header: LiveHeader, payload: memoryview) -> None:
        if pipe.last_seq is not None and header.seq != pipe.last_seq + 1:
            pipe.await_key = True  # lost packets: references are gone
        if pipe.last_pts_us is not None:
            step = header.pts_us - pipe.last_pts_us
            # a step under 2 ms (500 fps) is late packets arriving in a burst, not the camera's
            # rate: counted, a burst made the frame interval look tiny and any decode "slow"
            if _MIN_STEP_US <= step < 1_000_000:
                pipe.interval_us += _EWMA * (step - pipe.interval_us) if pipe.interval_us else step
        pipe.last_seq, pipe.last_pts_us = header.seq, header.pts_us
        if header.discontinuity or header.gap:
            pipe.await_key = True
        if pipe.decoder is not None and (header.discontinuity or header.codec != pipe.codec):
            pipe.decoder.close()  # a new camera session may have new parameters
            pipe.decoder = None
        if (pipe.await_key or self._keyframes_only) and not header.key:
            self._dropped += 1
            return
        pipe.await_key = False
        new_decoder = pipe.decoder is None
        if new_decoder:
            pipe.decoder = open_decoder(header.codec.codec_name, self._prefer, role=pipe.stream)
            pipe.codec = header.codec
        decoder = pipe.decoder
        assert decoder is not None
        kind = decoder.kind
        t0 = time.perf_counter_ns()
        try:
            frames = decoder.decode(payload, header.key, header.pts_us)
        except av.FFmpegError as exc:
            self._errors += 1
            pipe.await_key = True
            log.debug("tile %s/%s: decode error: %s", self.camera_id, pipe.stream, exc)
            return
        spent_us = (time.perf_counter_ns() - t0) / 1000
        pipe.decode_us += _EWMA * (spent_us - pipe.decode_us) if pipe.decode_us else spent_us
        if new_decoder or decoder.kind != kind:
            self.changed.emit(self.stats())
        if frames:
            pipe.latest = frames[-1]
            pipe.decoded += len(frames)
            self._decoded += len(frames)
            now = time.monotonic_ns()
            for _ in frames:
                self._fps_times.append(now)
        if pipe is self._active:
            self._judge_speed(pipe, header.key)

    def _judge_speed(self, pipe: _Pipe, key: bool) -> None:
        interval = pipe.interval_us
        if not interval:
            return
        if not self._keyframes_only:
            limit = interval * self.config.slow_decode_ratio
            if pipe.decoded >= _MIN_FRAMES_FOR_SLOWNESS and pipe.decode_us > limit:
                self._enter_overload(
                    f"decoding takes {pipe.decode_us / 1000:.1f} ms a frame, "
                    f"frames come every {interval / 1000:.1f} ms"
                )
            return
        if not key:
            return
        now = time.monotonic_ns()
        recover_ns = int(self.config.recover_s * 1e9)
        if (
            now - self._overload_since_ns >= recover_ns
            and now - self._last_backlog_ns >= recover_ns
            and pipe.decode_us < 0.5 * interval
        ):
            self._keyframes_only = False
            self._overload_reason = None
            log.info("tile %s: keeping up again, decoding every frame", self.camera_id)
            self.changed.emit(self.stats())

    def _enter_overload(self, reason: str) -> None:
        self._keyframes_only = True
        self._overload_reason = reason
        self._overload_since_ns = time.monotonic_ns()
        self._last_backlog_ns = self._overload_since_ns
        log.info("tile %s: overloaded (%s), decoding key frames only", self.camera_id, reason)
        self.changed.emit(self.stats())

    def _show(self, pipe: _Pipe) -> None:
        av_frame = pipe.latest
        assert pipe.decoder is not None
        self._frame_seq += 1
        pts_us = av_frame.pts if av_frame.pts is not None else pipe.last_pts_us or 0
        frame = frame_from_av(av_frame, pts_us, self._frame_seq, pipe.decoder.kind, pipe.stream)
        # the newest packet of this stream the tile had when it chose this frame: how far the
        # tile itself is behind, whatever arrives while it decodes
        frame.extra["newest_pts_us"] = pipe.last_pts_us
        self._shown_pts_us = pts_us
        self._shown += 1
        self.slot.put(frame)

    def _finish_switch(self, new: _Pipe) -> None:
        with self._cond:
            old, self._active, self._pending = self._active, new, None
            if old is not None:
                old.closed = True
        if old is not None:
            self._unsubscribe(old)
            if old.decoder is not None:
                old.decoder.close()
        log.debug("tile %s: now showing %s", self.camera_id, new.stream)
        self.changed.emit(self.stats())

    def _check_switch_timeout(self) -> None:
        pending = self._pending
        if pending is None or pending.closed:
            return
        if time.monotonic_ns() - pending.started_ns < self.config.switch_timeout_s * 1e9:
            return
        with self._cond:
            if self._pending is not pending:
                return
            self._pending = None
        log.warning(
            "tile %s: no key frame on %s within %.1f s; staying on the current stream",
            self.camera_id,
            pending.stream,
            self.config.switch_timeout_s,
        )
        self._unsubscribe(pending)
        self.changed.emit(self.stats())

    # --- read side -----------------------------------------------------------------------

    @property
    def stream(self) -> str:
        """The stream being shown."""
        active = self._active
        return active.stream if active is not None else self._initial

    @property
    def queued(self) -> int:
        """Packets waiting for the decoder thread."""
        return len(self._queue)

    @property
    def decoder_kind(self) -> str | None:
        active = self._active
        return active.decoder.kind if active is not None and active.decoder else None

    @property
    def subscribed_streams(self) -> list[str]:
        return [p.stream for p in (self._active, self._pending) if p is not None and not p.closed]

    def newest_received_pts_us(self, stream: str | None = None) -> int | None:
        """pts_us of the newest packet received on ``stream`` (default: the shown one)."""
        for pipe in (self._active, self._pending):
            if pipe is not None and (stream is None or pipe.stream == stream):
                return pipe.rx_pts_us
        return None

    def frame_interval_us(self) -> int | None:
        """The shown stream's frame interval, from packet timestamps."""
        active = self._active
        return int(active.interval_us) if active is not None and active.interval_us else None

    def stats(self) -> TileStats:
        active, pending = self._active, self._pending
        decoder = active.decoder if active is not None else None
        times = self._fps_times
        fps = 0.0
        if len(times) >= 2:
            now = time.monotonic_ns()
            recent = [t for t in times if now - t <= 2_000_000_000]
            if len(recent) >= 2:
                fps = (len(recent) - 1) / max((recent[-1] - recent[0]) / 1e9, 1e-6)
        shown = self._shown_pts_us
        return TileStats(
            camera_id=self.camera_id,
            stream=self.stream,
            switching_to=pending.stream if pending is not None and not pending.closed else None,
            decoder=decoder.kind if decoder is not None else "none",
            decoder_fallback=decoder.fallback_reason if decoder is not None else None,
            fps=round(fps, 2),
            frames_decoded=self._decoded,
            frames_shown=self._shown,
            frames_dropped=self._dropped,
            keyframes_only=self._keyframes_only,
            overloaded=self._keyframes_only,
            overload_reason=self._overload_reason,
            latency_us=now_us() - shown if shown is not None else None,
            queued=len(self._queue),
            errors=self._errors,
            paused=self._paused,
        )


async def _subscribe(source: Any, subject: str, callback: Any) -> Any:
    """Subscribe through a ``Session`` (which re-subscribes after reconnects) or a nats client."""
    if hasattr(source, "nats") and hasattr(source, "subscribe"):
        return await source.subscribe(subject, callback)
    return await source.subscribe(subject, cb=callback)


def _backlog_us(batch: list[tuple[_Pipe, LiveHeader, memoryview]]) -> int:
    """The longest span of video queued for one stream in ``batch``."""
    first: dict[int, int] = {}
    worst = 0
    for pipe, header, _ in batch:
        start = first.setdefault(id(pipe), header.pts_us)
        worst = max(worst, header.pts_us - start)
    return worst
