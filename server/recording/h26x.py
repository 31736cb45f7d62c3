"""H.264/H.265 parameter sets: find them, read them from avcC/hvcC, make key frames carry them.

The one codec module of the recorder: the segment writer (a new segment takes a key frame's
parameter sets as its decoder configuration, and a change of them forces a new segment, since a
player could not decode the new frames with the old ``avcC``/``hvcC``), the live publisher and
the in-process fan-out (every key frame they hand on carries its parameter sets, so a viewer
can start at any key frame) and the export cutter (back to the camera's parameter sets after an
exact export's re-encoded first GOP). The workstation only decodes what it is sent, so this
stays on the recorder's side. Packets reach the recorder in Annex B form; MP4 and avcC/hvcC
extradata use length-prefixed NAL units, converted here.

Pure functions over bytes, except ``picture_size``, which decodes one frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

START_CODE = b"\x00\x00\x00\x01"
_PARAMS = {"h264": frozenset({7, 8}), "hevc": frozenset({32, 33, 34})}  # (VPS,) SPS, PPS
_AUD = {"h264": 9, "hevc": 35}  # access unit delimiter: parameter sets go after it


def codec_family(name: str) -> str:
    """``'hevc'`` for H.265 (``'hevc'``, ``'h265'``), else ``'h264'``: every function here takes
    any codec name and reads it so."""
    return "hevc" if name.lower() in ("hevc", "h265") else "h264"


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


def iter_length_prefixed(data: bytes, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each NAL unit in length-prefixed form (MP4 samples), ``size``-byte
    lengths; a length running past the end stops the walk."""
    pos = 0
    while pos + size < len(data):
        n = int.from_bytes(data[pos : pos + size], "big")
        start = pos + size
        if n == 0 or start + n > len(data):
            return
        yield start, start + n
        pos = start + n


def annexb(nals: Iterable[bytes]) -> bytes:
    return b"".join(START_CODE + n for n in nals)


def length_prefixed(nals: Iterable[bytes], size: int) -> bytes:
    return b"".join(len(n).to_bytes(size, "big") + n for n in nals)


def annexb_to_length_prefixed(data: bytes, size: int) -> bytes:
    return length_prefixed((data[s:e] for s, e in iter_nals(data)), size)


def length_prefixed_to_annexb(data: bytes, size: int) -> bytes:
    return annexb(data[s:e] for s, e in iter_length_prefixed(data, size))


def nal_type(codec: str, first_byte: int) -> int:
    return (first_byte >> 1) & 0x3F if codec_family(codec) == "hevc" else first_byte & 0x1F


def is_slice(codec: str, kind: int) -> bool:
    """Coded picture data (H.264: non-IDR and IDR slices; H.265: every VCL type)."""
    return kind < 32 if codec_family(codec) == "hevc" else kind in (1, 5)


def parameter_sets(codec: str, data: bytes) -> bytes:
    """The parameter-set NALs at the head of an Annex B key frame (empty when it has none).

    Whatever is there, complete or not: the segment writer compares it with the current
    segment's configuration. ``fill_parameter_sets`` is for making a key frame decodable.
    """
    wanted = _PARAMS[codec_family(codec)]
    out = bytearray()
    for start, end in iter_nals(data):
        kind = nal_type(codec, data[start])
        if kind in wanted:
            out += START_CODE
            out += data[start:end]
        elif is_slice(codec, kind):
            break  # slice data follows the parameter sets; do not scan the big payload
    return bytes(out)


def nal_length_size(codec: str, extradata: bytes) -> int | None:
    """NAL length field size of avcC/hvcC extradata; None when it is not in that form."""
    if not extradata or extradata[0] != 1:
        return None
    if codec_family(codec) == "hevc":
        return (extradata[21] & 3) + 1 if len(extradata) > 22 else None
    return (extradata[4] & 3) + 1 if len(extradata) > 6 else None


def config_nals(codec: str, extradata: bytes) -> list[bytes]:
    """The NAL units stored in avcC/hvcC extradata; ValueError when it is truncated or not in
    that form."""
    if not extradata or extradata[0] != 1:
        raise ValueError("not avcC/hvcC extradata")
    out: list[bytes] = []
    try:
        if codec_family(codec) == "hevc":
            arrays, pos = extradata[22], 23
            for _ in range(arrays):  # each: type byte, NAL count, NALs
                count = int.from_bytes(extradata[pos + 1 : pos + 3], "big")
                pos = _read_nals(extradata, pos + 3, count, out)
        else:
            pos = 5
            for mask in (0x1F, 0xFF):  # the SPS count (low 5 bits), then the PPS count
                pos = _read_nals(extradata, pos + 1, extradata[pos] & mask, out)
    except IndexError:
        raise ValueError("truncated avcC/hvcC extradata") from None
    return out


def _read_nals(ed: bytes, pos: int, count: int, out: list[bytes]) -> int:
    for _ in range(count):
        n = int.from_bytes(ed[pos : pos + 2], "big")
        if pos + 2 + n > len(ed):
            raise IndexError(pos)
        out.append(ed[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return pos


def extradata_parameter_sets(codec: str, extradata: bytes | None) -> bytes:
    """A stream's parameter sets as Annex B, from extradata in Annex B or avcC/hvcC form
    (empty when there are none or the extradata is damaged)."""
    if not extradata:
        return b""
    if extradata.startswith((b"\x00\x00\x01", START_CODE)):
        nals = [extradata[s:e] for s, e in iter_nals(extradata)]
    else:
        try:
            nals = config_nals(codec, extradata)
        except ValueError:
            return b""
    wanted = _PARAMS[codec_family(codec)]
    return annexb(n for n in nals if n and nal_type(codec, n[0]) in wanted)


class ParameterSetFill(NamedTuple):
    """What ``fill_parameter_sets`` found: insert ``insert`` at ``at`` (nothing when empty)."""

    at: int
    insert: bytes
    known: bytes  # the complete set to remember for the next key frame
    complete: bool  # the key frame carried a complete set itself

    def apply(self, data: bytes) -> bytes:
        return b"".join((data[: self.at], self.insert, data[self.at :])) if self.insert else data


def fill_parameter_sets(codec: str, key_frame: bytes, known: bytes) -> ParameterSetFill:
    """Make an Annex B key frame carry a complete set of parameter sets.

    ``known`` is the last complete set of the stream (from earlier key frames, or the
    extradata's). A key frame with a complete set (H.264: SPS and PPS; H.265: VPS, SPS and PPS)
    is left as it is and its set becomes the known one. Any other key frame gets the whole known
    set inserted after its access unit delimiter (or at the start); its own partial set, later
    in the frame, still takes precedence for the decoder. Only complete sets are remembered.

    Why "complete" and not "any parameter set": a key frame that carries only its PPS (cameras
    that repeat the SPS less often) cannot be decoded by a viewer who joins there, and
    remembering that lone PPS would drop the SPS that later key frames need. The live publisher
    always did this; the fan-out used to accept any parameter set, so its consumers (analytics,
    WebRTC) could be handed such a frame. One rule now serves both, and the export cutter.
    """
    codec = codec_family(codec)
    wanted = _PARAMS[codec]
    found: set[int] = set()
    params = bytearray()
    at = 0
    for i, (start, end) in enumerate(iter_nals(key_frame)):
        kind = nal_type(codec, key_frame[start])
        if kind in wanted:
            found.add(kind)
            params += START_CODE
            params += key_frame[start:end]
        elif i == 0 and kind == _AUD[codec]:
            at = end  # parameter sets go after the access unit delimiter
        elif is_slice(codec, kind):
            break  # slice data follows; do not scan the big payload
    if wanted <= found:
        return ParameterSetFill(0, b"", bytes(params), True)
    return ParameterSetFill(at, known, known, False)


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
