"""One thread per camera stream: open, demux, hand packets to sinks, reconnect with backoff."""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import av

from server.clock import Clock
from server.ingest.source import Source, SourceError, Timeouts, describe_error
from server.protocol.backoff import Backoff
from server.recording.packets import PacketSink

log = logging.getLogger(__name__)


class State(enum.StrEnum):
    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"  # was online; lost the source and is retrying
    ERROR = "error"  # never got a usable stream; retrying (the reason says why)
    STOPPED = "stopped"


RECONNECT_INITIAL_S = 0.1
RECONNECT_MAX_S = 0.5


def reconnect_backoff(max_s: float = RECONNECT_MAX_S) -> Backoff:
    """0.1 s doubling to ``max_s`` (0.5 s), with jitter. Small cap: a camera back from an outage
    must record again within a couple of seconds, and a refused connection costs us next to
    nothing; the jitter keeps the cameras behind one switch from reconnecting in lockstep."""
    max_s = max(max_s, 0.001)
    return Backoff(min(RECONNECT_INITIAL_S, max_s), max_s)


@dataclass(frozen=True, slots=True)
class StreamStatus:
    camera_id: str
    stream: str
    state: State
    reason: str = ""
    packets: int = 0
    bytes: int = 0
    reconnects: int = 0
    last_packet_us: int | None = None
    since_us: int = 0  # when ``state`` was entered
    transport: str = ""  # the RTSP transport of the session (auto: the one that worked)


StatusCallback = Callable[[StreamStatus], None]


class IngestWorker:
    """Pulls one stream forever until stopped. Counters are updated on the worker thread and
    read by others through ``status`` (a frozen snapshot, so no torn reads)."""

    def __init__(
        self,
        camera_id: str,
        stream: str,
        url: str,
        sinks: Sequence[PacketSink],
        clock: Clock,
        *,
        timeouts: Timeouts | None = None,
        backoff: Backoff | None = None,
        on_status: StatusCallback | None = None,
        transport: str = "auto",
    ) -> None:
        self.camera_id, self.stream, self.url = camera_id, stream, url
        self.transport = transport
        self._learned: str | None = None  # auto: the transport that worked last
        self.sinks = list(sinks)
        self.clock = clock
        self.timeouts = timeouts or Timeouts()
        self.backoff = backoff or reconnect_backoff()
        self.on_status = on_status
        self._stop = threading.Event()
        self._status = StreamStatus(camera_id, stream, State.CONNECTING, since_us=clock.now_us())
        self._thread = threading.Thread(
            target=self._run, name=f"ingest-{camera_id}-{stream}", daemon=True
        )

    @property
    def status(self) -> StreamStatus:
        return self._status

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to finish (segments are closed on it) and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout if timeout is not None else self.timeouts.read_s + 5)

    def _set_state(self, state: State, reason: str = "") -> None:
        st = self._status
        if st.state == state and st.reason == reason:
            return
        self._status = replace(st, state=state, reason=reason, since_us=self.clock.now_us())
        level = logging.WARNING if state in (State.OFFLINE, State.ERROR) else logging.INFO
        log.log(level, "%s/%s %s%s", self.camera_id, self.stream, state,
                f": {reason}" if reason else "")  # fmt: skip
        if self.on_status is not None:
            try:
                self.on_status(self._status)
            except Exception:
                log.exception("status callback failed")

    def _run(self) -> None:
        was_online = False
        while not self._stop.is_set():
            reason = self._session()
            if self._stop.is_set():
                break
            online_now = self._status.state == State.ONLINE
            if online_now:
                self.backoff.reset()
            was_online = was_online or online_now
            self._status = replace(self._status, reconnects=self._status.reconnects + 1)
            self._set_state(State.OFFLINE if was_online else State.ERROR, reason)
            if self._stop.wait(self.backoff.next()):
                break
        self._set_state(State.STOPPED)

    def _session(self) -> str:
        """One connection: returns why it ended."""
        if self._status.state != State.ONLINE and not self._status.reconnects:
            self._set_state(State.CONNECTING)
        source = self._open()
        if isinstance(source, str):
            return source
        if self._status.transport != source.transport:
            self._status = replace(self._status, transport=source.transport)
        reason = "stopped"
        connected = False
        packets = bytes_ = last_us = 0  # counted but not yet published in the status snapshot
        # sinks that take audio packets too (the recorder, the fan-out); the rest never see them
        audio_sinks = [s for s in self.sinks if hasattr(s, "on_audio")]
        try:
            for sink in self.sinks:
                sink.on_connect(source.info)
            connected = True
            for p in source.packets():
                if p.audio:
                    for sink in audio_sinks:
                        sink.on_audio(p)  # type: ignore[attr-defined]
                    continue
                if self._status.state != State.ONLINE:
                    self._set_state(State.ONLINE)
                for sink in self.sinks:
                    sink.on_packet(p)
                packets += 1
                bytes_ += p.size
                last_us = p.recv_us
                if packets >= 8:  # publishing allocates a snapshot: not on every packet
                    self._publish_counters(packets, bytes_, last_us)
                    packets = bytes_ = 0
            if not self._stop.is_set():
                reason = "stream ended"
        except (av.FFmpegError, OSError, EOFError, SourceError) as exc:
            reason = describe_error(exc)
        except Exception as exc:
            # a bug in a sink must not end this camera's thread for good: log it, reconnect
            log.exception("%s/%s: internal error", self.camera_id, self.stream)
            reason = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            if packets:
                self._publish_counters(packets, bytes_, last_us)
            if connected:
                for sink in self.sinks:
                    try:
                        sink.on_disconnect(reason)
                    except Exception:
                        log.exception("%s/%s: sink failed on disconnect", self.camera_id,
                                      self.stream)  # fmt: skip
            source.close()
        return reason

    def _candidates(self) -> list[str]:
        """``auto`` tries TCP, then UDP (a camera that refuses TCP or does not answer over
        it), the one that worked last first; anything else is used as it is."""
        if not self.url.startswith(("rtsp://", "rtsps://")):
            return ["tcp"]
        if self.transport != "auto":
            return [self.transport]
        order = ["tcp", "udp"]
        if self._learned in order:
            order.remove(self._learned)
            order.insert(0, self._learned)
        return order

    def _open(self) -> Source | str:
        """An opened source, or why none could be opened."""
        reasons = []
        for transport in self._candidates():
            if self._stop.is_set():
                return "stopped"
            try:
                source = Source(self.url, self.clock, self.timeouts, self._stop, transport)
            except SourceError as exc:
                reasons.append((transport, str(exc)))
            except (av.FFmpegError, OSError) as exc:
                reasons.append((transport, describe_error(exc)))
            else:
                if self.transport == "auto":
                    if self._learned != transport:
                        log.info("%s/%s: RTSP over %s", self.camera_id, self.stream, transport)
                    self._learned = transport
                return source
        if len(reasons) == 1:
            return reasons[0][1]
        return "; ".join(f"{t.upper()}: {r}" for t, r in reasons)

    def _publish_counters(self, packets: int, bytes_: int, last_us: int) -> None:
        st = self._status
        self._status = replace(
            st, packets=st.packets + packets, bytes=st.bytes + bytes_, last_packet_us=last_us
        )
