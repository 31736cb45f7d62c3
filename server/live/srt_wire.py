"""The pipe between the recorder and its SRT gateway child (docs/design/live.md, "SRT out").

Recorder -> gateway (the child's stdin), binary frames: ``<BHI`` (kind, slot, body length),
then the body. A slot is a camera stream, numbered by the recorder for the run.

* ``V`` verdict on a connection: JSON ``{"n", "slot", "reason"}``; ``slot`` null: refused.
* ``C`` the slot's stream (re)connected: JSON ``{"codec", "tb": [num, den]}``.
* ``P`` a packet: ``<Bqq`` (flags, pts, dts in the stream's time base), then Annex B bytes;
  flag bit 0: key frame, bit 1: the recorder dropped packets before it (a gap).
* ``D`` the slot's stream disconnected.
* ``K`` end a caller's connection: JSON ``{"sock", "reason"}`` (its token or right is gone).

Gateway -> recorder (the child's stdout): one JSON object a line: ``{"ready": port}``,
``{"ask": n, "sock", "streamid", "peer"}`` (a caller is handshaking), ``{"joined": sock}``
and ``{"left": sock}`` (an admitted caller connected, went), ``{"watch": slot}`` and
``{"unwatch": slot}`` (its first viewer came, its last left), ``{"viewers": count}``.
"""

from __future__ import annotations

import struct

FRAME = struct.Struct("<BHI")
PACKET = struct.Struct("<Bqq")
FLAG_KEY = 1
FLAG_GAP = 2

VERDICT, CONNECT, PACKET_KIND, DISCONNECT, KILL = b"V"[0], b"C"[0], b"P"[0], b"D"[0], b"K"[0]


def parse_streamid(streamid: str) -> tuple[str, str, str] | None:
    """``CAMERA/STREAM?token=TOKEN`` -> (camera, stream, token); None when malformed.

    Also accepts SRT's access-control syntax ``#!::r=CAMERA/STREAM,token=TOKEN`` that some
    players write."""
    if streamid.startswith("#!::"):
        fields = dict(
            kv.split("=", 1) for kv in streamid[4:].split(",") if "=" in kv
        )  # r=..., token=...
        resource, token = fields.get("r", ""), fields.get("token", "")
    else:
        resource, _, query = streamid.partition("?")
        params = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
        token = params.get("token", "")
    camera, _, stream = resource.partition("/")
    if not camera or stream not in ("main", "sub") or not token:
        return None
    return camera, stream, token
