"""SRT live out: camera streams to SRT callers, through a gateway child (docs/design/live.md).

``SrtOut`` runs ``server.live.srt_gateway`` (libsrt) as a child process and is its only source
of truth: it answers each caller's handshake (the stream id's token, the user's live right on
the camera, the stream's existence) and feeds the child the packets of the streams someone
watches, from the in-process fan-out (never a second camera connection). The ingest thread only
copies the packet and appends it to a bounded queue; a writer thread moves the queue into the
child's stdin, so a slow or stuck child costs SRT viewers pictures, never a recorded frame:
past ``MAX_QUEUED_BYTES`` a stream drops to its next key frame, as the NATS publisher does.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from time import monotonic

from server.auth import Permission, Tokens, allowed
from server.catalog import Catalog
from server.live.fanout import Fanout
from server.live.srt_wire import (
    CONNECT,
    DISCONNECT,
    FLAG_GAP,
    FLAG_KEY,
    FRAME,
    KILL,
    PACKET,
    PACKET_KIND,
    VERDICT,
    parse_streamid,
)
from server.recording.packets import IngestPacket, StreamInfo

log = logging.getLogger(__name__)

MAX_QUEUED_BYTES = 16 << 20  # the child's backlog, all streams together
READY_TIMEOUT_S = 10.0
RECHECK_S = 5.0  # an admitted caller's token and right are checked again this often
PENDING_S = 30.0  # an admitted handshake that never became a connection is forgotten


@dataclass(slots=True)
class _Caller:
    token: str
    camera: str
    peer: str
    since: float


@dataclass(slots=True)
class SrtStats:
    viewers: int = 0
    accepted: int = 0
    refused: int = 0
    dropped: int = 0  # packets not handed to the child (its backlog was full)


class _Feed:
    """The fan-out consumer of one watched stream (runs on its ingest thread)."""

    def __init__(self, out: SrtOut, slot: int) -> None:
        self.out, self.slot = out, slot
        self.waiting_key = True
        self.gap = False

    def on_connect(self, info: StreamInfo) -> None:
        tb = info.time_base
        body = {"codec": info.codec, "tb": [tb.numerator, tb.denominator]}
        self.out.put(self.slot, CONNECT, json.dumps(body).encode(), control=True)
        self.waiting_key = True

    def on_packet(self, packet: IngestPacket) -> None:
        if self.waiting_key and not packet.key:
            return
        flags = (FLAG_KEY if packet.key else 0) | (FLAG_GAP if self.gap else 0)
        body = PACKET.pack(flags, packet.pts, packet.dts) + bytes(packet.packet)
        if self.out.put(self.slot, PACKET_KIND, body):
            self.waiting_key = self.gap = False
        else:
            self.waiting_key = self.gap = True

    def on_disconnect(self, reason: str) -> None:
        self.out.put(self.slot, DISCONNECT, b"", control=True)
        self.waiting_key = True


class SrtOut:
    """The SRT listener on ``[srt] listen`` and what feeds it."""

    def __init__(
        self,
        listen: str,
        fanout: Fanout,
        tokens: Tokens,
        catalog: Catalog,
        *,
        passphrase: str = "",
        latency_ms: int = 40,
        max_viewers: int = 64,
    ) -> None:
        self.listen, self.fanout, self.tokens, self.catalog = listen, fanout, tokens, catalog
        self.passphrase, self.latency_ms, self.max_viewers = passphrase, latency_ms, max_viewers
        self.port: int | None = None
        self.stats = SrtStats()
        self._proc: subprocess.Popen[bytes] | None = None
        self._slots: dict[tuple[str, str], int] = {}
        self._keys: dict[int, tuple[str, str]] = {}
        self._unsubscribe: dict[int, object] = {}
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._closed = False
        self._stop = threading.Event()
        self._callers: dict[int, _Caller] = {}  # admitted callers by their SRT socket
        self._joined: set[int] = set()
        self._callers_lock = threading.Lock()

    # --- life ---------------------------------------------------------------------------

    def start(self) -> int | None:
        """Start the gateway; the bound port, or None (logged) when SRT cannot be served."""
        config = {
            "listen": self.listen,
            "passphrase": self.passphrase,
            "latency_ms": self.latency_ms,
        }
        env = {**os.environ, "VIGIA_SRT": json.dumps(config)}
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "server.live.srt_gateway"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            log.error("SRT out disabled: %s", exc)
            return None
        threading.Thread(target=self._read_child, name="srt-control", daemon=True).start()
        threading.Thread(target=self._write_child, name="srt-feed", daemon=True).start()
        threading.Thread(target=self._recheck_loop, name="srt-recheck", daemon=True).start()
        if not self._ready.wait(READY_TIMEOUT_S) or self.port is None:
            log.error("SRT out disabled: the gateway did not start on %s", self.listen)
            self.stop()
            return None
        log.info("SRT live out on %s (port %d)", self.listen, self.port)
        return self.port

    def stop(self) -> None:
        """Close the child's stdin (it closes its callers and exits) and wait for it."""
        self._stop.set()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for unsubscribe in self._unsubscribe.values():
            unsubscribe()  # type: ignore[operator]
        self._unsubscribe.clear()
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    # --- the feed -----------------------------------------------------------------------

    def put(self, slot: int, kind: int, body: bytes, *, control: bool = False) -> bool:
        """Queue a frame for the child (any thread, never blocks); False: dropped."""
        frame = FRAME.pack(kind, slot, len(body)) + body
        with self._cond:
            if self._closed:
                return False
            if not control and self._queued + len(frame) > MAX_QUEUED_BYTES:
                self.stats.dropped += 1
                return False
            self._queue.append(frame)
            self._queued += len(frame)
            self._cond.notify()
        return True

    def _write_child(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        pipe = self._proc.stdin
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                frames = list(self._queue)
                self._queue.clear()
                self._queued = 0
            try:
                pipe.write(b"".join(frames))
                pipe.flush()
            except (OSError, ValueError):  # the child is gone
                log.error("SRT gateway stopped taking packets")
                return

    # --- the child's questions --------------------------------------------------------------

    def _read_child(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                message = json.loads(line)
                self._handle(message)
            except Exception:  # one bad line must not end the control channel
                log.exception("SRT gateway message %r", line[:200])
        self._ready.set()
        if not self._closed:
            log.error("SRT gateway exited (%s)", self._proc.poll())

    def _handle(self, message: dict) -> None:
        if "ask" in message:
            streamid = message.get("streamid", "")
            slot, reason = self.admit(streamid)
            peer = message.get("peer", "?")
            if slot is None:
                self.stats.refused += 1
                log.warning("SRT caller %s refused: %s", peer, reason)
            else:
                self.stats.accepted += 1
                camera, stream = self._keys[slot]
                log.info("SRT caller %s: %s/%s", peer, camera, stream)
                token = parse_streamid(streamid)[2]  # type: ignore[index]
                with self._callers_lock:
                    self._callers[message["sock"]] = _Caller(token, camera, peer, monotonic())
            verdict = {"n": message["ask"], "slot": slot, "reason": reason}
            self.put(0, VERDICT, json.dumps(verdict).encode(), control=True)
        elif "watch" in message:
            slot = message["watch"]
            camera, stream = self._keys[slot]
            self._unsubscribe[slot] = self.fanout.subscribe(camera, stream, _Feed(self, slot))
        elif "joined" in message:
            with self._callers_lock:
                self._joined.add(message["joined"])
        elif "left" in message:
            with self._callers_lock:
                self._joined.discard(message["left"])
                self._callers.pop(message["left"], None)
        elif "unwatch" in message:
            unsubscribe = self._unsubscribe.pop(message["unwatch"], None)
            if unsubscribe is not None:
                unsubscribe()  # type: ignore[operator]
        elif "viewers" in message:
            self.stats.viewers = message["viewers"]
        elif "ready" in message:
            self.port = int(message["ready"])
            self._ready.set()
        elif "error" in message:
            log.error("SRT out: %s", message["error"])
            self._ready.set()

    def _recheck_loop(self) -> None:
        """End the connections whose token expired or was revoked, or whose user lost the
        camera's live right (a rights change, a disabled account), within ``RECHECK_S``."""
        while not self._stop.wait(RECHECK_S):
            with self._callers_lock:
                now = monotonic()
                for sock in [s for s, c in self._callers.items() if s not in self._joined
                             and now - c.since > PENDING_S]:  # fmt: skip
                    del self._callers[sock]
                callers = [(s, c) for s, c in self._callers.items() if s in self._joined]
            for sock, caller in callers:
                try:
                    user = self.tokens.resolve(caller.token)
                except Exception:  # a busy catalog: try again next time
                    log.exception("SRT: cannot check %s's token again", caller.peer)
                    continue
                if user is None or not allowed(user, Permission.LIVE, caller.camera):
                    why = "token gone" if user is None else "live right gone"
                    log.warning("SRT caller %s on %s ended: %s", caller.peer, caller.camera, why)
                    body = json.dumps({"sock": sock, "reason": why}).encode()
                    self.put(0, KILL, body, control=True)
                    with self._callers_lock:
                        self._callers.pop(sock, None)

    def admit(self, streamid: str) -> tuple[int | None, str]:
        """(slot, "") for a stream id that may watch, else (None, SRT reject reason name)."""
        parsed = parse_streamid(streamid)
        if parsed is None:
            return None, "not_found"
        camera, stream, token = parsed
        user = self.tokens.resolve(token)
        if user is None:
            return None, "unauthorized"
        if not allowed(user, Permission.LIVE, camera):
            return None, "forbidden"
        if not any(c.id == camera and c.enabled for c in self.catalog.cameras()):
            return None, "not_found"
        if not any(s.name == stream for s in self.catalog.streams(camera)):
            return None, "not_found"
        if self.stats.viewers >= self.max_viewers:
            return None, "busy"
        key = (camera, stream)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = len(self._slots)
            self._keys[slot] = key
        return slot, ""
