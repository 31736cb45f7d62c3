"""Just enough H.264/H.265 Annex B parsing to find parameter sets in key frames.

Packets reach the recorder in Annex B form with parameter sets in band at key frames. A new
segment takes them as its decoder configuration, and a change of them forces a new segment
(a player could not decode the new frames with the old ``avcC``/``hvcC``).
"""

from __future__ import annotations

from collections.abc import Iterator

_H264_PARAMS = frozenset({7, 8})  # SPS, PPS
_HEVC_PARAMS = frozenset({32, 33, 34})  # VPS, SPS, PPS


def iter_nals(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each NAL unit payload in an Annex B byte string."""
    find = data.find
    i = find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        j = find(b"\x00\x00\x01", start)
        end = len(data) if j < 0 else j
        # a 4-byte start code leaves a trailing zero on the previous NAL
        if j >= 0 and data[end - 1] == 0:
            end -= 1
        if end > start:
            yield start, end
        i = j


def nal_type(codec: str, first_byte: int) -> int:
    return (first_byte >> 1) & 0x3F if codec == "hevc" else first_byte & 0x1F


def parameter_sets(codec: str, data: bytes) -> bytes:
    """The parameter-set NALs of a key frame, as Annex B (empty when it carries none)."""
    wanted = _HEVC_PARAMS if codec == "hevc" else _H264_PARAMS
    out = bytearray()
    for start, end in iter_nals(data):
        kind = nal_type(codec, data[start])
        if kind in wanted:
            out += b"\x00\x00\x00\x01"
            out += data[start:end]
        elif _is_slice(codec, kind):
            break  # slice data follows the parameter sets; do not scan the big payload
    return bytes(out)


def _is_slice(codec: str, kind: int) -> bool:
    return kind < 32 if codec == "hevc" else kind in (1, 5)


def picture_size(codec: str, keyframe: bytes) -> tuple[int, int] | None:
    """Width and height coded in a key frame's parameter sets, by decoding that one frame.

    Only called when the parameter sets change mid-stream (rare), so a decode is cheaper
    than keeping an SPS parser of our own.
    """
    import av  # deferred: the rest of this module is pure byte scanning

    ctx = av.CodecContext.create(codec, "r")
    try:
        frames = ctx.decode(av.Packet(keyframe)) + ctx.decode(None)
    except av.FFmpegError:
        return None
    return (frames[0].width, frames[0].height) if frames else None
