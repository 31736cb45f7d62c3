"""Fragment index of a recorded segment: where each fMP4 fragment lies in the file and in time.

A segment file is ``init`` (ftyp + moov) followed by contiguous fragments (moof + mdat), each
starting on a key frame. Storing the init size plus each fragment's (size, duration) is enough
to rebuild every fragment's byte offset and start time from the segment's ``start_us``, and it
encodes compactly: unsigned LEB128 varints, ``init_bytes`` first, then one (bytes, duration_us)
pair per fragment. See docs/design/recording.md for a worked example.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Fragment:
    """One fragment of a segment: byte range in the file, and wall time range."""

    offset: int
    bytes: int
    start_us: int
    duration_us: int

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_us


def _put_varint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError(f"fragment index values are unsigned, got {value}")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _varints(data: bytes) -> Iterator[int]:
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 63:
                raise ValueError("fragment index: varint too long")
        else:
            yield value
            value = shift = 0
    if shift:
        raise ValueError("fragment index: truncated varint")


def encode_fragment_index(init_bytes: int, fragments: Iterable[tuple[int, int]]) -> bytes:
    """Encode ``init_bytes`` and (bytes, duration_us) per fragment, in file order."""
    out = bytearray()
    _put_varint(out, init_bytes)
    for size, duration_us in fragments:
        if size <= 0:
            raise ValueError(f"fragment size must be positive, got {size}")
        _put_varint(out, size)
        _put_varint(out, duration_us)
    return bytes(out)


def decode_fragment_index(data: bytes, start_us: int) -> tuple[int, list[Fragment]]:
    """Return (init_bytes, fragments) with absolute offsets and wall times."""
    values = list(_varints(data))
    if not values:
        raise ValueError("fragment index: empty")
    if len(values) % 2 != 1:
        raise ValueError("fragment index: odd number of fragment fields")
    init_bytes = values[0]
    offset, t = init_bytes, start_us
    fragments = []
    for i in range(1, len(values), 2):
        size, duration = values[i], values[i + 1]
        fragments.append(Fragment(offset, size, t, duration))
        offset += size
        t += duration
    return init_bytes, fragments
