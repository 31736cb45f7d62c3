"""Live packets from the ingest threads to NATS, never making an ingest thread wait.

``LiveSink`` runs on a stream's ingest thread, before the recorder (which rewrites the
``av.Packet`` in place afterwards): it turns the packet into a finished message at once,
header and bytes, and hands it over. ``LivePublisher`` owns one nats-py connection on an
asyncio loop (its own thread, or the caller's loop) and a bounded queue per subject.

Drop policy, when a subject's queue is full or NATS is unreachable: drop everything queued
(the oldest) and then every new packet up to the next key frame, which goes out with the gap
flag. A decoder cannot use P-frames whose references were lost, so dropping single packets
(oldest or newest) would only corrupt the picture until the next key frame anyway while still
adding latency; starting over at a key frame gives the viewer the newest picture that decodes
cleanly. Subscribers see the loss as a jump in ``seq``. A slow *subscriber* never reaches us:
NATS core has no back-pressure to publishers, the server cuts slow consumers off instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError

from server.clock import Clock, SystemClock
from server.ingest.worker import StreamStatus
from server.live.nats_server import NatsCredentials
from server.protocol.live import (
    FLAG_DISCONTINUITY,
    FLAG_GAP,
    FLAG_KEY,
    LiveCodec,
    camera_status_subject,
    encode_live_header,
    event_stream_name,
    live_subject,
    status_subject,
)
from server.protocol.timeutil import US_PER_SECOND, rescale
from server.recording.h26x import extradata_parameter_sets, fill_parameter_sets
from server.recording.packets import IngestPacket, StreamInfo

log = logging.getLogger(__name__)

_FLAGS_OFFSET = 6  # byte of the live header holding the flags


class LiveOutlet(Protocol):
    """Where a ``LiveSink`` hands finished messages; must return at once, from any thread."""

    def offer(self, subject: str, payload: bytes, key: bool, recv_us: int) -> None: ...


# --- the sink, on the ingest thread ---------------------------------------------------------


@dataclass(slots=True)
class SinkStats:
    offered: int = 0
    skipped: int = 0  # before the first key frame of a connection: useless to a viewer
    params_added: int = 0  # key frames that lacked parameter sets and got them from us
    params_missing: int = 0  # key frames without parameter sets that we could not supply
    errors: int = 0


class LiveSink:
    """A ``PacketSink`` that publishes one camera stream's packets as live messages.

    Wall times follow the recorder's model: per run (a connection, or a stretch without a
    timestamp jump), ``offset = min(recv_us - media_us)`` so far, the least-delayed packet's
    view of the stream's origin; ``dts_us = offset + media_us``, never less than the previous
    ``dts_us`` of this stream plus 1 (also across reconnects), and ``pts_us`` keeps its distance
    to it.
    Never raises: a live-view problem must not end the stream's recording.
    """

    def __init__(
        self, outlet: LiveOutlet, subject: str, *, max_jump_us: int = 10 * US_PER_SECOND
    ) -> None:
        self.outlet = outlet
        self.subject = subject
        self.max_jump_us = max_jump_us
        self.stats = SinkStats()
        self._seq = 0
        self._last_dts_us: int | None = None
        self._connected = False
        self._reset(None)

    def _reset(self, info: StreamInfo | None) -> None:
        self._info = info
        self._codec = LiveCodec.from_name(info.codec) if info else LiveCodec.H264
        self._num = info.time_base.numerator * US_PER_SECOND if info else US_PER_SECOND
        self._den = info.time_base.denominator if info else 1
        self._max_jump_ticks = self.max_jump_us * self._den // self._num
        self._fps_ticks = (
            max(1, round(self._den / (info.fps * self._num / US_PER_SECOND)))
            if info and info.fps
            else 0
        )
        # the last complete parameter sets of this connection: in band, else the extradata's
        self._params = (
            extradata_parameter_sets(self._codec.codec_name, info.extradata) if info else b""
        )
        self._base_dts: int | None = None  # media origin of the current run
        self._offset_us = 0
        self._prev_dts: int | None = None
        self._frame_ticks = 0
        self._waiting_key = True
        self._flags = FLAG_DISCONTINUITY

    # --- PacketSink ---------------------------------------------------------------------

    def on_connect(self, info: StreamInfo) -> None:
        try:
            self._reset(info)
            self._connected = True
        except Exception:
            self._connected = False
            self._error("on_connect")

    def on_packet(self, packet: IngestPacket) -> None:
        if not self._connected:
            return
        try:
            self._on_packet(packet)
        except Exception:
            self._error("on_packet")

    def on_disconnect(self, reason: str) -> None:
        self._connected = False

    # --- internals ----------------------------------------------------------------------

    def _error(self, where: str) -> None:
        self.stats.errors += 1
        if self.stats.errors == 1 or self.stats.errors % 1000 == 0:
            log.exception("%s: live %s failed (%d errors)", self.subject, where, self.stats.errors)

    def _us(self, ticks: int) -> int:
        return rescale(ticks, self._num, self._den)

    def _on_packet(self, p: IngestPacket) -> None:
        if self._prev_dts is not None:
            step = p.dts - self._prev_dts
            if not -self._max_jump_ticks <= step <= self._max_jump_ticks:
                self._base_dts = None  # a new run: timestamps restart from this packet
                self._flags |= FLAG_DISCONTINUITY
            elif step > 0:
                self._frame_ticks = step
        self._prev_dts = p.dts
        if self._waiting_key:
            if not p.key:
                self.stats.skipped += 1
                return
            self._waiting_key = False
        if self._base_dts is None:
            self._base_dts = p.dts
            self._offset_us = p.recv_us
        media_us = self._us(p.dts - self._base_dts)
        self._offset_us = min(self._offset_us, p.recv_us - media_us)
        dts_us = self._offset_us + media_us
        if self._last_dts_us is not None and dts_us <= self._last_dts_us:
            dts_us = self._last_dts_us + 1  # strictly increasing: clients may remux
        pts_us = dts_us + self._us(p.pts - p.dts)
        ticks = p.packet.duration or self._frame_ticks or self._fps_ticks
        flags = self._flags | (FLAG_KEY if p.key else 0)
        header = encode_live_header(
            flags=flags,
            codec=self._codec,
            seq=self._seq,
            pts_us=pts_us,
            dts_us=dts_us,
            duration_us=max(0, self._us(ticks)),
        )
        if p.key:
            data = bytes(p.packet)
            at, params = self._missing_parameter_sets(data)
            parts = (header, data[:at], params, data[at:]) if params else (header, data)
            payload = b"".join(parts)
        else:
            payload = b"".join((header, memoryview(p.packet)))
        self.outlet.offer(self.subject, payload, p.key, p.recv_us)
        self._seq += 1
        self._last_dts_us = dts_us
        self._flags = 0
        self.stats.offered += 1

    def _missing_parameter_sets(self, data: bytes) -> tuple[int, bytes]:
        """(where to insert, what) so that a key frame carries its parameter sets."""
        fill = fill_parameter_sets(self._codec.codec_name, data, self._params)
        self._params = fill.known
        if fill.insert:
            self.stats.params_added += 1
        elif not fill.complete:
            self.stats.params_missing += 1
            if self.stats.params_missing == 1:
                log.warning("%s: key frame without parameter sets, none known", self.subject)
        return fill.at, fill.insert


# --- the publisher, on its asyncio loop -----------------------------------------------------


@dataclass(slots=True)
class ChannelStats:
    queued: int = 0
    published: int = 0
    published_bytes: int = 0
    dropped: int = 0  # packets that never went out (overflow, waiting for a key frame, errors)
    overflows: int = 0  # times the queue was full and was emptied
    latency_us_last: int = 0  # from receipt on the ingest thread to handed to nats-py
    latency_us_max: int = 0


class Channel:
    """One subject's bounded queue and drop policy (see the module docstring).

    Plain logic, driven on the publisher's loop, so the policy can be tested without NATS.
    """

    def __init__(self, subject: str, max_packets: int, max_bytes: int) -> None:
        self.subject = subject
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self.stats = ChannelStats()
        self.queue: deque[tuple[bytes, bool, int]] = deque()
        self.bytes = 0
        self.resync = False  # dropping until the next key frame
        self.waiter: asyncio.Future[None] | None = None

    def push(self, payload: bytes, key: bool, recv_us: int) -> bool:
        """Queue a message; False when the policy drops it."""
        if self.queue and (
            len(self.queue) >= self.max_packets or self.bytes + len(payload) > self.max_bytes
        ):
            self.stats.overflows += 1
            self._drop_queued()
        if self.resync:
            if not key:
                self.stats.dropped += 1
                return False
            self.resync = False
            flags = payload[_FLAGS_OFFSET] | FLAG_GAP
            payload = b"".join((payload[:_FLAGS_OFFSET], bytes((flags,)), payload[7:]))
        self.queue.append((payload, key, recv_us))
        self.bytes += len(payload)
        self.stats.queued = len(self.queue)
        return True

    def pop(self) -> tuple[bytes, bool, int] | None:
        if not self.queue:
            return None
        item = self.queue.popleft()
        self.bytes -= len(item[0])
        self.stats.queued = len(self.queue)
        return item

    def failed(self) -> None:
        """The message just popped could not be published: what follows depends on it."""
        self.stats.dropped += 1
        self._drop_queued()

    def _drop_queued(self) -> None:
        self.stats.dropped += len(self.queue)
        self.queue.clear()
        self.bytes = 0
        self.stats.queued = 0
        self.resync = True


def stream_status_message(st: StreamStatus) -> dict[str, Any]:
    """The JSON body of a status message for one stream (``vigia.<sid>.status``)."""
    return {
        "type": "stream",
        "camera": st.camera_id,
        "stream": st.stream,
        "state": str(st.state),
        "reason": st.reason,
        "since_us": st.since_us,
    }


class LivePublisher:
    """One NATS connection for all live subjects of this recorder.

    Either ``start()`` (own loop on its own thread; ``close()`` ends it) or
    ``await start_async()`` on the caller's running loop (``await aclose()``). Recording never
    depends on NATS: if the server is unreachable, the connection is retried in the background
    and packets are dropped (and counted) meanwhile.
    """

    def __init__(
        self,
        url: str,
        server_id: str,
        credentials: NatsCredentials | None = None,
        *,
        token: str | None = None,
        name: str = "vigia-server",
        clock: Clock | None = None,
        max_queue_packets: int = 50,
        max_queue_bytes: int = 8 * 1024 * 1024,
        reconnect_wait_s: float = 0.5,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.server_id = server_id
        self.credentials = credentials
        self.token = token
        self.name = name
        self.clock = clock or SystemClock()
        self.max_queue_packets = max_queue_packets
        self.max_queue_bytes = max_queue_bytes
        self.reconnect_wait_s = reconnect_wait_s
        # called on the loop after every (re)connect: status messages sent while NATS was away
        # are lost, so this is where the service publishes a fresh snapshot
        self.on_connected = on_connected
        self.status_subject = status_subject(server_id)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc: NatsClient | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._channels: dict[str, Channel] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = threading.Event()
        self._closing = False
        self._errors = 0
        self.dropped_not_running = 0  # offered before start or after close

    # --- lifecycle ----------------------------------------------------------------------

    def start(self, wait_s: float | None = 5.0) -> bool:
        """Run on a loop of our own thread; True once connected (waits up to ``wait_s``)."""
        if self._loop is not None:
            raise RuntimeError("LivePublisher already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run_loop, args=(loop,), name="live-publisher", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._begin(), loop).result()
        return self._connected.wait(wait_s) if wait_s else self._connected.is_set()

    async def start_async(self) -> None:
        """Run on the caller's loop (returns at once; connecting goes on in the background)."""
        if self._loop is not None:
            raise RuntimeError("LivePublisher already started")
        self._loop = asyncio.get_running_loop()
        await self._begin()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def close(self, timeout: float = 5.0) -> None:
        """Flush what nats-py holds (briefly) and disconnect; for ``start()``ed publishers."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("close() from the publisher's own loop: use aclose()")
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.aclose(timeout), loop).result(timeout + 1)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    async def aclose(self, timeout: float = 5.0) -> None:
        self._closing = True
        if self._connect_task is not None:
            self._connect_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        nc, self._nc = self._nc, None
        self._connected.clear()
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                if nc.is_connected:
                    await asyncio.wait_for(nc.flush(), timeout)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), timeout)

    # --- thread-safe API ----------------------------------------------------------------

    def sink(self, camera: str, stream: str) -> LiveSink:
        """A sink for one camera stream, publishing on its live subject."""
        return LiveSink(self, live_subject(self.server_id, camera, stream))

    def offer(self, subject: str, payload: bytes, key: bool, recv_us: int) -> None:
        """Queue a finished message for ``subject``; returns at once, from any thread."""
        loop = self._loop
        if loop is None or self._closing:
            self.dropped_not_running += 1
            return
        try:
            loop.call_soon_threadsafe(self._push, subject, payload, key, recv_us)
        except RuntimeError:  # the loop is closed
            self.dropped_not_running += 1

    def publish_status(self, status: Mapping[str, Any]) -> None:
        """A JSON message on ``vigia.<sid>.status`` (e.g. ``stream_status_message(...)``)."""
        payload = json.dumps(dict(status), separators=(",", ":"), sort_keys=True).encode()
        now = self.clock.now_us()
        self.offer(self.status_subject, payload, True, now)
        camera = status.get("camera")
        if isinstance(camera, str):  # also per camera: restricted users are granted only theirs
            self.offer(camera_status_subject(self.server_id, camera), payload, True, now)

    def stats(self) -> dict[str, ChannelStats]:
        """Per subject counters (copies; safe to read from any thread)."""
        return {s: replace(ch.stats) for s, ch in list(self._channels.items())}

    # --- on the loop --------------------------------------------------------------------

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _begin(self) -> None:
        self._connect_task = asyncio.get_running_loop().create_task(self._connect())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        auth: dict[str, Any] = {}
        if self.credentials is not None:
            auth = self.credentials.connect_kwargs()
        elif self.token is not None:
            auth = {"token": self.token}
        try:
            self._nc = await nats.connect(
                self.url,
                name=self.name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,  # also keeps the first connect trying
                reconnect_time_wait=self.reconnect_wait_s,  # type: ignore[arg-type]
                connect_timeout=5,
                flush_timeout=2.0,  # a stalled socket must not hold drainers forever
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                **auth,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. a bad URL: retrying would not help
            log.error("live: cannot connect to NATS at %s: %s", self.url, exc)
            return
        if self._closing:
            await self._nc.close()
            return
        log.info("live: connected to NATS at %s", self.url)
        await self._ensure_event_stream()
        self._connected.set()
        self._call_on_connected()

    async def _ensure_event_stream(self) -> None:
        """Events are kept in JetStream (docs/design/live.md), so a workstation that was away
        can catch up; live video is not (it is recorded)."""
        assert self._nc is not None
        config = StreamConfig(
            name=event_stream_name(self.server_id),
            subjects=[f"vigia.{self.server_id}.events.>"],
            max_age=30 * 86_400,  # seconds: a month of events
        )
        try:
            js = self._nc.jetstream()
            try:
                await js.add_stream(config)
            except BadRequestError:
                await js.update_stream(config)  # exists with other settings: bring it up to date
        except Exception as exc:  # JetStream off on an external server: live video still works
            log.warning("live: no JetStream stream for events: %s", exc)

    def _call_on_connected(self) -> None:
        if self.on_connected is not None:
            try:
                self.on_connected()
            except Exception:
                log.exception("live: on_connected callback failed")

    async def _on_error(self, exc: Exception) -> None:
        self._errors += 1
        level = logging.WARNING if self._errors == 1 or self._errors % 100 == 0 else logging.DEBUG
        log.log(level, "live: NATS error (%d so far): %s", self._errors, exc or type(exc).__name__)

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("live: disconnected from NATS; dropping live packets until back")

    async def _on_reconnected(self) -> None:
        self._errors = 0
        log.info("live: reconnected to NATS")
        self._call_on_connected()

    def _push(self, subject: str, payload: bytes, key: bool, recv_us: int) -> None:
        if self._closing:
            return
        ch = self._channels.get(subject)
        if ch is None:
            ch = self._channels[subject] = Channel(
                subject, self.max_queue_packets, self.max_queue_bytes
            )
            self._spawn(self._drain(ch))
        if ch.push(payload, key, recv_us) and ch.waiter is not None and not ch.waiter.done():
            ch.waiter.set_result(None)

    async def _drain(self, ch: Channel) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            item = ch.pop()
            if item is None:
                ch.waiter = loop.create_future()
                await ch.waiter
                ch.waiter = None
                continue
            payload, _, recv_us = item
            nc = self._nc
            if nc is None or not nc.is_connected:
                ch.failed()  # stale video is useless once NATS is back: resume at a key frame
                continue
            try:
                await nc.publish(ch.subject, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ch.failed()
                await self._on_error(exc)
                continue
            st = ch.stats
            st.published += 1
            st.published_bytes += len(payload)
            st.latency_us_last = latency = self.clock.now_us() - recv_us
            st.latency_us_max = max(st.latency_us_max, latency)
