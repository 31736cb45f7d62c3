"""Live video over NATS: subject names and the binary packet header.

Every live message is one compressed packet in decode order: a fixed 40-byte little-endian
header, then the raw Annex B bytes. Key frames carry their parameter sets in band, so a viewer
can start decoding at any key frame without asking for anything else. Times are integer µs since
the Unix epoch (UTC), computed like the recorder's wall times. No JSON or base64 on this path:
a packet is copied once into the message and the header costs a single ``struct`` call.

Layout (``<4sBBBBQqqQ``, 40 bytes)::

    offset  size  field         meaning
    0       4     magic         b"VGLP"
    4       1     version       1
    5       1     header_size   40; readers skip anything a newer version appends
    6       1     flags         bit 0 key frame, bit 1 discontinuity (first packet after a
                                (re)connect: timestamps restart), bit 2 gap (the publisher
                                dropped packets before this key frame); others reserved, 0
    7       1     codec         1 = H.264, 2 = H.265/HEVC
    8       8     seq           u64, +1 per packet published on the subject; a jump = loss
    16      8     pts_us        i64, presentation time, µs since the epoch
    24      8     dts_us        i64, decode time, µs since the epoch; never decreases
    32      8     duration_us   u64, 0 when unknown
    40      …     payload       the packet, Annex B

Subjects (``<sid>`` is the recorder's server id, ``<camera>`` a camera id)::

    vigia.<sid>.live.<camera>.<main|sub>   live packets (this header)
    vigia.<sid>.ai.<camera>                detections of each analysed frame
    vigia.<sid>.events.<camera>            event start/update/end (JetStream)
    vigia.<sid>.status                     camera online/offline/error changes (JSON)
    vigia.<sid>.alarms.<camera>            an alarm at each change of its state (JSON)
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass

LIVE_MAGIC = b"VGLP"
LIVE_VERSION = 1
_HEADER = struct.Struct("<4sBBBBQqqQ")
LIVE_HEADER_SIZE = _HEADER.size  # 40

FLAG_KEY = 0x01
FLAG_DISCONTINUITY = 0x02
FLAG_GAP = 0x04
_KNOWN_FLAGS = FLAG_KEY | FLAG_DISCONTINUITY | FLAG_GAP

_U64_MAX = (1 << 64) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1

STREAMS = ("main", "sub")
# A subject token: no separators, wildcards or whitespace (NATS would misroute them).
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


class LiveCodec(enum.IntEnum):
    H264 = 1
    HEVC = 2

    @classmethod
    def from_name(cls, name: str) -> LiveCodec:
        """``'h264'`` or ``'hevc'``/``'h265'`` (PyAV's codec names)."""
        try:
            return _CODEC_NAMES[name.lower()]
        except KeyError:
            raise ValueError(f"no live codec id for {name!r}") from None

    @property
    def codec_name(self) -> str:
        """The name ``av.CodecContext.create`` takes."""
        return "hevc" if self is LiveCodec.HEVC else "h264"


_CODEC_NAMES = {"h264": LiveCodec.H264, "hevc": LiveCodec.HEVC, "h265": LiveCodec.HEVC}


# --- subjects ------------------------------------------------------------------------------


def _token(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ValueError(f"{kind} {value!r} cannot be a NATS subject token")
    return value


def live_subject(sid: str, camera: str, stream: str) -> str:
    """``vigia.<sid>.live.<camera>.<main|sub>``."""
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {STREAMS}, got {stream!r}")
    return f"vigia.{_token('server id', sid)}.live.{_token('camera id', camera)}.{stream}"


def live_wildcard(sid: str) -> str:
    """Every live subject of one recorder (for monitoring, not for viewers)."""
    return f"vigia.{_token('server id', sid)}.live.>"


def parse_live_subject(subject: str) -> tuple[str, str, str]:
    """(sid, camera, stream) of a live subject; ValueError when it is not one."""
    parts = subject.split(".")
    if (
        len(parts) != 5
        or parts[0] != "vigia"
        or parts[2] != "live"
        or parts[4] not in STREAMS
        or not all(_TOKEN.fullmatch(p) for p in (parts[1], parts[3]))
    ):
        raise ValueError(f"not a live subject: {subject!r}")
    return parts[1], parts[3], parts[4]


def event_stream_name(sid: str) -> str:
    """The JetStream stream that keeps ``vigia.<sid>.events.>`` (stream names allow no dots)."""
    return f"VIGIA_EVENTS_{_token('server id', sid)}"


def status_subject(sid: str) -> str:
    """``vigia.<sid>.status``."""
    return f"vigia.{_token('server id', sid)}.status"


def camera_status_subject(sid: str, camera: str) -> str:
    """``vigia.<sid>.status.<camera>``: the same status messages, one subject per camera, so a
    user restricted to some cameras is granted only theirs (docs/design/auth.md)."""
    return f"vigia.{_token('server id', sid)}.status.{_token('camera id', camera)}"


def status_wildcard(sid: str) -> str:
    """``vigia.<sid>.status.>``: every camera's status subject (what a workstation reads)."""
    return f"vigia.{_token('server id', sid)}.status.>"


def ai_subject(sid: str, camera: str) -> str:
    """``vigia.<sid>.ai.<camera>``."""
    return f"vigia.{_token('server id', sid)}.ai.{_token('camera id', camera)}"


def events_subject(sid: str, camera: str) -> str:
    """``vigia.<sid>.events.<camera>``."""
    return f"vigia.{_token('server id', sid)}.events.{_token('camera id', camera)}"


def alarms_subject(sid: str, camera: str) -> str:
    """``vigia.<sid>.alarms.<camera>``: an alarm at every change (docs/design/rules.md)."""
    return f"vigia.{_token('server id', sid)}.alarms.{_token('camera id', camera or '_')}"


# --- packet header -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveHeader:
    flags: int
    codec: LiveCodec
    seq: int
    pts_us: int
    dts_us: int
    duration_us: int
    version: int = LIVE_VERSION

    @property
    def key(self) -> bool:
        return bool(self.flags & FLAG_KEY)

    @property
    def discontinuity(self) -> bool:
        return bool(self.flags & FLAG_DISCONTINUITY)

    @property
    def gap(self) -> bool:
        return bool(self.flags & FLAG_GAP)


def encode_live_header(
    *, flags: int, codec: LiveCodec, seq: int, pts_us: int, dts_us: int, duration_us: int
) -> bytes:
    """The 40-byte header alone (the publisher joins it to the packet without another copy)."""
    if flags & ~_KNOWN_FLAGS or not 0 <= flags <= 0xFF:
        raise ValueError(f"unknown live flags {flags:#x}")
    if not 0 <= seq <= _U64_MAX or not 0 <= duration_us <= _U64_MAX:
        raise ValueError("seq and duration_us must fit an unsigned 64-bit integer")
    if not (_I64_MIN <= pts_us <= _I64_MAX and _I64_MIN <= dts_us <= _I64_MAX):
        raise ValueError("pts_us and dts_us must fit a signed 64-bit integer")
    return _HEADER.pack(
        LIVE_MAGIC,
        LIVE_VERSION,
        LIVE_HEADER_SIZE,
        flags,
        LiveCodec(codec),
        seq,
        pts_us,
        dts_us,
        duration_us,
    )


def encode_live_packet(
    payload: bytes | bytearray | memoryview,
    *,
    flags: int,
    codec: LiveCodec,
    seq: int,
    pts_us: int,
    dts_us: int,
    duration_us: int = 0,
) -> bytes:
    """Header + packet, as one NATS message payload."""
    if not len(payload):
        raise ValueError("empty live packet")
    header = encode_live_header(
        flags=flags, codec=codec, seq=seq, pts_us=pts_us, dts_us=dts_us, duration_us=duration_us
    )
    return b"".join((header, payload))


def decode_live_packet(data: bytes | bytearray | memoryview) -> tuple[LiveHeader, memoryview]:
    """(header, payload view) of one live message; ValueError when it is not a valid one.

    The payload is a view into ``data`` (no copy): keep ``data`` alive while using it.
    """
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    if len(view) < 6:
        raise ValueError(f"live packet too short ({len(view)} bytes)")
    if view[:4] != LIVE_MAGIC:
        raise ValueError(f"not a live packet (magic {bytes(view[:4])!r})")
    version, header_size = view[4], view[5]
    if version != LIVE_VERSION:
        raise ValueError(f"unsupported live packet version {version}")
    if header_size < LIVE_HEADER_SIZE:
        raise ValueError(f"live header size {header_size} < {LIVE_HEADER_SIZE}")
    if len(view) <= header_size:
        raise ValueError(f"live packet of {len(view)} bytes has no payload")
    _, _, _, flags, codec_id, seq, pts_us, dts_us, duration_us = _HEADER.unpack_from(view)
    try:
        codec = LiveCodec(codec_id)
    except ValueError:
        raise ValueError(f"unknown live codec id {codec_id}") from None
    header = LiveHeader(flags, codec, seq, pts_us, dts_us, duration_us, version)
    return header, view[header_size:]
