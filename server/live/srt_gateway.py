"""The SRT gateway: a child process of the recorder serving camera streams to SRT callers.

Run as ``python -m server.live.srt_gateway`` by ``server.live.srt.SrtOut``, configured by the
``VIGIA_SRT`` environment variable (JSON: listen, passphrase, latency_ms, max_viewers; not argv,
which every local user can read). It speaks libsrt (Debian's ``libsrt1.5``) through ctypes:
PyAV's FFmpeg has no SRT, and FFmpeg's own SRT listener neither shows us a caller's stream id
before accepting nor serves more than one stream per port. libsrt's listen callback does: each
handshake's stream id ``CAMERA/STREAM?token=TOKEN`` is put to the recorder (which owns the
tokens and rights, ``server/live/srt_wire.py``), and the caller is accepted or rejected with
SRT's 1401/1403/1404 reasons before any media flows. Accepted callers of a stream get its
packets, muxed into MPEG-TS per caller (PyAV, no re-encoding) from the recorder's fan-out, fed
through our stdin. docs/design/live.md, "SRT out", says why it is a child.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import itertools
import json
import logging
import os
import socket
import struct
import sys
import threading
import time
from fractions import Fraction

import av

from server.live.srt_wire import (
    CONNECT,
    DISCONNECT,
    FLAG_KEY,
    FRAME,
    KILL,
    PACKET,
    PACKET_KIND,
    VERDICT,
)

log = logging.getLogger("server.live.srt_gateway")

# libsrt's srt.h (1.4/1.5): options, states, epoll flags, error and reject codes
SRTO_SNDSYN, SRTO_RCVSYN, SRTO_PASSPHRASE = 1, 2, 26
SRTO_RCVLATENCY, SRTO_PEERLATENCY, SRTO_STREAMID = 43, 44, 46
SRTS_BROKEN = 6  # and above: broken, closing, closed, gone
SRT_EPOLL_IN, SRT_EPOLL_ERR = 0x1, 0x8
SRT_EASYNCSND = 6001
REJECT = {"unauthorized": 1401, "forbidden": 1403, "not_found": 1404, "busy": 1503}
# An access unit delimiter after each frame: a player's parser (FFmpeg's h264/hevc parsers)
# ends a frame when the next one starts; the delimiter starts it at once, not a frame later.
AUD = {"h264": b"\0\0\0\1\x09\xf0", "hevc": b"\0\0\0\1\x46\x01\x50"}
TS_CHUNK = 1316  # 7 TS packets: SRT's live payload size
TICKS = 90_000  # MPEG-TS clock
ASK_TIMEOUT_S = 3.0
SWEEP_S = 0.5

_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
)


class _EpollEvent(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_int)]


def load_libsrt() -> ctypes.CDLL:
    """libsrt, whichever TLS flavour the system has."""
    names = [ctypes.util.find_library(n) for n in ("srt", "srt-gnutls", "srt-openssl")]
    names += ["libsrt-gnutls.so.1.5", "libsrt.so.1.5", "libsrt-openssl.so.1.5"]
    for name in filter(None, names):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        _prototypes(lib)
        return lib
    raise OSError("libsrt not found (Debian: libsrt1.5-gnutls)")


def _prototypes(lib: ctypes.CDLL) -> None:
    i, p, pi = ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)
    for name, args in {
        "srt_startup": (),
        "srt_setloglevel": (i,),
        "srt_create_socket": (),
        "srt_setsockflag": (i, i, p, i),
        "srt_getsockflag": (i, i, p, pi),
        "srt_bind": (i, p, i),
        "srt_listen": (i, i),
        "srt_accept": (i, p, pi),
        "srt_listen_callback": (i, _CALLBACK, p),
        "srt_setrejectreason": (i, i),
        "srt_send": (i, ctypes.c_char_p, i),
        "srt_close": (i,),
        "srt_getsockstate": (i,),
        "srt_getsockname": (i, p, pi),
        "srt_getlasterror": (pi,),
        "srt_epoll_create": (),
        "srt_epoll_add_usock": (i, i, pi),
        "srt_epoll_uwait": (i, ctypes.POINTER(_EpollEvent), i, ctypes.c_int64),
    }.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = list(args), ctypes.c_int
    lib.srt_getlasterror_str.argtypes, lib.srt_getlasterror_str.restype = [], ctypes.c_char_p


def sockaddr(host: str, port: int) -> bytes:
    """A ``struct sockaddr_in``/``sockaddr_in6`` for ``host`` (a literal address)."""
    host = host.strip("[]") or "0.0.0.0"
    if ":" in host:
        addr = socket.inet_pton(socket.AF_INET6, host)
        return struct.pack("=H", socket.AF_INET6) + struct.pack(">HI", port, 0) + addr + bytes(4)
    addr = socket.inet_aton(host)
    return struct.pack("=H", socket.AF_INET) + struct.pack(">H", port) + addr + bytes(8)


def sockaddr_text(raw: bytes) -> str:
    family = struct.unpack_from("=H", raw)[0]
    port = struct.unpack_from(">H", raw, 2)[0]
    if family == socket.AF_INET6:
        return f"[{socket.inet_ntop(socket.AF_INET6, raw[8:24])}]:{port}"
    return f"{socket.inet_ntop(socket.AF_INET, raw[4:8])}:{port}"


class _Buffer(io.RawIOBase):
    """Where PyAV's MPEG-TS muxer writes; taken after each packet."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


class Viewer:
    """One accepted caller: its own MPEG-TS muxer, started at a key frame."""

    def __init__(self, lib: ctypes.CDLL, sock: int, slot: int, peer: str) -> None:
        self.lib, self.sock, self.slot, self.peer = lib, sock, slot, peer
        self.out = _Buffer()
        self.mux: av.container.OutputContainer | None = None
        self.stream = None
        self.codec = ""
        self.shift = 0  # added to dts/pts (90 kHz) so that they never go back across reconnects
        self.last_dts: int | None = None
        self.step = TICKS // 25
        self.waiting_key = True
        self.dead = False
        self.sent_packets = 0
        self.dropped = 0

    def feed(self, codec: str, tb: Fraction, key: bool, pts: int, dts: int, data: bytes) -> None:
        if self.dead:
            return
        if self.waiting_key and not key:
            self.dropped += 1
            return
        if self.mux is None:
            self.codec = codec
            # PES lengths written: a player's demuxer hands a frame on once it is complete
            # rather than when the next one starts (one frame interval less latency)
            options = {"flush_packets": "1", "omit_video_pes_length": "0"}
            self.mux = av.open(self.out, "w", format="mpegts", options=options)
            self.stream = self.mux.add_stream(codec)
            self.stream.time_base = Fraction(1, TICKS)
        elif codec != self.codec:
            self.close("the camera changed codec")
            return
        d90 = dts * tb.numerator * TICKS // tb.denominator
        p90 = pts * tb.numerator * TICKS // tb.denominator
        if self.last_dts is None:
            self.shift = TICKS - d90  # the first packet at 1 s: pts >= dts >= 0
        elif d90 + self.shift <= self.last_dts:  # a reconnection restarted the camera's clock
            self.shift = self.last_dts + self.step - d90
        elif d90 + self.shift - self.last_dts < TICKS:
            self.step = d90 + self.shift - self.last_dts
        pkt = av.Packet(data + AUD.get(codec, b""))
        pkt.dts, pkt.pts = d90 + self.shift, p90 + self.shift
        pkt.time_base = self.stream.time_base
        pkt.is_keyframe = key
        pkt.stream = self.stream
        try:
            self.mux.mux_one(pkt)
        except av.FFmpegError as exc:
            self.close(f"muxing failed: {exc}")
            return
        self.last_dts = pkt.dts
        self.waiting_key = False
        self._send()

    def _send(self) -> None:
        data, self.out.data = bytes(self.out.data), bytearray()
        for i in range(0, len(data), TS_CHUNK):
            chunk = data[i : i + TS_CHUNK]
            if self.lib.srt_send(self.sock, chunk, len(chunk)) < 0:
                code = self.lib.srt_getlasterror(None)
                if code == SRT_EASYNCSND:  # the caller does not keep up: start again at a key
                    self.waiting_key = True
                    self.dropped += 1
                    return
                self.close(self.lib.srt_getlasterror_str().decode(errors="replace"))
                return
        self.sent_packets += 1

    def gone(self) -> bool:
        return self.dead or self.lib.srt_getsockstate(self.sock) >= SRTS_BROKEN

    def close(self, reason: str) -> None:
        if not self.dead:
            self.dead = True
            log.info("SRT viewer %s of slot %d left: %s", self.peer, self.slot, reason)
            self.lib.srt_close(self.sock)  # the muxer goes with us (the feed may be in it)


class Gateway:
    def __init__(self, config: dict, stdin, stdout) -> None:
        self.lib = load_libsrt()
        self.config = config
        self.stdin, self.stdout = stdin, stdout
        self._out_lock = threading.Lock()
        self._lock = threading.Lock()
        self._asks: dict[int, list] = {}  # n -> [event, verdict]
        self._n = itertools.count(1)
        self._admitted: dict[int, tuple[int, str]] = {}  # socket -> (slot, peer)
        self.viewers: dict[int, tuple[Viewer, ...]] = {}  # slot -> viewers
        self.formats: dict[int, tuple[str, Fraction]] = {}
        self._callback = _CALLBACK(self._on_handshake)  # kept: libsrt holds the pointer
        self._stopping = False
        self.listener = -1

    def emit(self, message: dict) -> None:
        line = (json.dumps(message) + "\n").encode()
        with self._out_lock:
            self.stdout.write(line)
            self.stdout.flush()

    # --- listening ----------------------------------------------------------------------

    def listen(self) -> int:
        lib = self.lib
        if lib.srt_startup() < 0:
            raise OSError("srt_startup failed")
        lib.srt_setloglevel(3)  # LOG_ERR: refusals are ours to log, not libsrt's warnings
        host, _, port = self.config["listen"].rpartition(":")
        s = lib.srt_create_socket()
        self._flag(s, SRTO_RCVLATENCY, self.config["latency_ms"])
        self._flag(s, SRTO_PEERLATENCY, self.config["latency_ms"])
        passphrase = self.config.get("passphrase") or ""
        if passphrase:
            raw = passphrase.encode()
            if lib.srt_setsockflag(s, SRTO_PASSPHRASE, raw, len(raw)) < 0:
                raise OSError(f"passphrase refused: {self._error()}")
        addr = sockaddr(host, int(port))
        if lib.srt_bind(s, addr, len(addr)) < 0:
            raise OSError(f"cannot listen on {self.config['listen']}: {self._error()}")
        if lib.srt_listen_callback(s, self._callback, None) < 0 or lib.srt_listen(s, 16) < 0:
            raise OSError(f"cannot listen: {self._error()}")
        self.listener = s
        raw = ctypes.create_string_buffer(128)
        size = ctypes.c_int(128)
        lib.srt_getsockname(s, raw, ctypes.byref(size))
        return struct.unpack_from(">H", raw.raw, 2)[0]

    def _flag(self, sock: int, opt: int, value: int) -> None:
        v = ctypes.c_int(value)
        self.lib.srt_setsockflag(sock, opt, ctypes.byref(v), ctypes.sizeof(v))

    def _error(self) -> str:
        return self.lib.srt_getlasterror_str().decode(errors="replace")

    def _on_handshake(self, _opaque, sock, hsversion, peeraddr, streamid) -> int:
        """libsrt's listen callback (its receiving thread): ask the recorder, wait for it."""
        try:
            peer = sockaddr_text(ctypes.string_at(peeraddr, 28)) if peeraddr else "?"
            sid = (streamid or b"").decode(errors="replace")
            if hsversion < 5:  # HSv4 callers send no stream id
                self.lib.srt_setrejectreason(sock, REJECT["unauthorized"])
                return -1
            n = next(self._n)
            ask = [threading.Event(), None]
            with self._lock:
                self._asks[n] = ask
            self.emit({"ask": n, "sock": sock, "streamid": sid, "peer": peer})
            ask[0].wait(ASK_TIMEOUT_S)
            with self._lock:
                self._asks.pop(n, None)
                verdict = ask[1] or {"slot": None, "reason": "unauthorized"}
                slot = verdict.get("slot")
                if slot is not None:
                    self._admitted[sock] = (slot, peer)
            if slot is None:
                self.lib.srt_setrejectreason(sock, REJECT.get(verdict["reason"], 1401))
                return -1
            return 0
        except Exception:  # never let an exception cross into C
            log.exception("SRT handshake")
            return -1

    def accept_loop(self) -> None:
        lib = self.lib
        eid = lib.srt_epoll_create()
        events = ctypes.c_int(SRT_EPOLL_IN | SRT_EPOLL_ERR)
        lib.srt_epoll_add_usock(eid, self.listener, ctypes.byref(events))
        ready = (_EpollEvent * 8)()
        next_sweep = time.monotonic()
        while not self._stopping:
            n = lib.srt_epoll_uwait(eid, ready, 8, int(SWEEP_S * 1000))
            for i in range(max(n, 0)):
                if ready[i].fd == self.listener:
                    self._accept()
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + SWEEP_S
                self._sweep()

    def _accept(self) -> None:
        lib = self.lib
        raw = ctypes.create_string_buffer(128)
        size = ctypes.c_int(128)
        sock = lib.srt_accept(self.listener, raw, ctypes.byref(size))
        if sock < 0:
            return
        with self._lock:
            admitted = self._admitted.pop(sock, None)
            if admitted is None:
                lib.srt_close(sock)
                return
            slot, peer = admitted
            self._flag(sock, SRTO_SNDSYN, 0)  # never block the feed for one caller
            viewer = Viewer(lib, sock, slot, peer)
            before = self.viewers.get(slot, ())
            self.viewers[slot] = (*before, viewer)
        log.info("SRT viewer %s on slot %d", peer, slot)
        self.emit({"joined": sock})
        if not before:
            self.emit({"watch": slot})
        self.emit({"viewers": self.count()})

    def count(self) -> int:
        return sum(len(v) for v in self.viewers.values())

    def _sweep(self) -> None:
        changed = []
        with self._lock:
            for slot, viewers in list(self.viewers.items()):
                alive = tuple(v for v in viewers if not v.gone())
                if len(alive) != len(viewers):
                    for v in viewers:
                        if v not in alive:
                            v.close("connection closed")
                            self.emit({"left": v.sock})
                    self.viewers[slot] = alive
                    changed.append(slot)
                    if not alive:
                        del self.viewers[slot]
                        self.emit({"unwatch": slot})
        if changed:
            self.emit({"viewers": self.count()})

    # --- the feed -----------------------------------------------------------------------

    def read_loop(self) -> None:
        """Frames from the recorder until it closes our stdin (it stopped or died)."""
        read = self.stdin.read
        while True:
            head = read(FRAME.size)
            if len(head) < FRAME.size:
                return
            kind, slot, size = FRAME.unpack(head)
            body = read(size) if size else b""
            if len(body) < size:
                return
            if kind == PACKET_KIND:
                fmt = self.formats.get(slot)
                if fmt is None:
                    continue
                flags, pts, dts = PACKET.unpack_from(body)
                data = body[PACKET.size :]
                for v in self.viewers.get(slot, ()):
                    v.feed(fmt[0], fmt[1], bool(flags & FLAG_KEY), pts, dts, data)
            elif kind == VERDICT:
                verdict = json.loads(body)
                with self._lock:
                    ask = self._asks.get(verdict["n"])
                    if ask is not None:
                        ask[1] = verdict
                        ask[0].set()
            elif kind == CONNECT:
                info = json.loads(body)
                self.formats[slot] = (info["codec"], Fraction(*info["tb"]))
            elif kind == KILL:
                order = json.loads(body)
                for viewers in list(self.viewers.values()):
                    for v in viewers:
                        if v.sock == order["sock"]:
                            v.close(order.get("reason", "ended by the recorder"))
            elif kind == DISCONNECT:
                for v in self.viewers.get(slot, ()):
                    v.waiting_key = True  # the next connection starts at its first key frame

    def run(self) -> None:
        port = self.listen()
        self.emit({"ready": port})
        threading.Thread(target=self.accept_loop, name="srt-accept", daemon=True).start()
        try:
            self.read_loop()
        finally:
            self._stopping = True
            with self._lock:
                for viewers in self.viewers.values():
                    for v in viewers:
                        v.close("the recorder stopped")


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("VIGIA_SRT_LOG", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = json.loads(os.environ["VIGIA_SRT"])
    try:
        Gateway(config, sys.stdin.buffer, sys.stdout.buffer).run()
    except OSError as exc:
        log.error("%s", exc)
        sys.stdout.buffer.write((json.dumps({"error": str(exc)}) + "\n").encode())
        sys.stdout.buffer.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
