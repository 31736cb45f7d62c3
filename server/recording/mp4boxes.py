"""Reading the fragmented MP4 files we write, without decoding: box layout and fragment timing.

Recovery and ``check`` must rebuild a segment's fragment index from the file alone (the catalog
may lag the file by one fragment after a kill -9), so this reads just enough of ISO BMFF:
top-level boxes, the track timescale (``mdhd``), ``trex`` defaults, and per fragment the
``tfdt`` base time and ``trun`` sample durations.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

_HEADER = struct.Struct(">I4s")


@dataclass(frozen=True, slots=True)
class Box:
    type: str
    offset: int
    size: int
    header: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True, slots=True)
class ScannedFragment:
    offset: int
    bytes: int
    base_time: int  # tfdt, in track timescale units
    duration: int  # sum of sample durations, timescale units
    samples: int


@dataclass
class SegmentScan:
    """What a segment file holds: init size, complete fragments, and where good data ends."""

    init_bytes: int = 0
    timescale: int = 0
    fragments: list[ScannedFragment] = field(default_factory=list)
    complete_end: int = 0  # bytes up to the end of the last complete fragment (or init)
    file_bytes: int = 0
    problems: list[str] = field(default_factory=list)


def iter_boxes(data: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Boxes in ``data[start:end]``; stops at the first box that does not fit (truncated)."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = _HEADER.unpack_from(data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield Box(kind.decode("latin-1"), pos, size, header)
        pos += size


def _child(data: bytes, parent: Box, kind: str) -> Box | None:
    for box in iter_boxes(data, parent.offset + parent.header, parent.end):
        if box.type == kind:
            return box
    return None


def _path(data: bytes, parent: Box, *kinds: str) -> Box | None:
    box: Box | None = parent
    for kind in kinds:
        if box is None:
            return None
        box = _child(data, box, kind)
    return box


def _parse_moov(data: bytes, moov: Box) -> tuple[int, int]:
    """(timescale, trex default sample duration) of the first track."""
    mdhd = _path(data, moov, "trak", "mdia", "mdhd")
    if mdhd is None:
        raise ValueError("moov has no trak/mdia/mdhd")
    p = mdhd.offset + mdhd.header
    version = data[p]
    (timescale,) = struct.unpack_from(">I", data, p + (20 if version == 1 else 12))
    default_duration = 0
    trex = _path(data, moov, "mvex", "trex")
    if trex is not None:
        (default_duration,) = struct.unpack_from(">I", data, trex.offset + trex.header + 12)
    return timescale, default_duration


def _parse_moof(data: bytes, moof: Box, trex_duration: int) -> tuple[int, int, int]:
    """(base decode time, duration, sample count) of the fragment's video track.

    The video is track 1; a segment with audio has a second ``traf`` per fragment, which is
    not what the fragment index times."""
    trafs = [b for b in iter_boxes(data, moof.offset + moof.header, moof.end) if b.type == "traf"]
    if not trafs:
        raise ValueError("moof has no traf")
    parsed = [_parse_traf(data, traf, trex_duration) for traf in trafs]
    return next((p[1:] for p in parsed if p[0] == 1), parsed[0][1:])


def _parse_traf(data: bytes, traf: Box, trex_duration: int) -> tuple[int, int, int, int]:
    """(track id, base decode time, duration, sample count) of one track fragment."""
    default_duration = trex_duration
    track_id = base_time = 0
    duration = samples = 0
    for box in iter_boxes(data, traf.offset + traf.header, traf.end):
        p = box.offset + box.header
        (vflags,) = struct.unpack_from(">I", data, p)
        version, flags = vflags >> 24, vflags & 0xFFFFFF
        if box.type == "tfhd":
            (track_id,) = struct.unpack_from(">I", data, p + 4)
            q = p + 8  # version/flags, track_ID
            if flags & 0x01:
                q += 8
            if flags & 0x02:
                q += 4
            if flags & 0x08:
                (default_duration,) = struct.unpack_from(">I", data, q)
        elif box.type == "tfdt":
            fmt = ">Q" if version == 1 else ">I"
            (base_time,) = struct.unpack_from(fmt, data, p + 4)
        elif box.type == "trun":
            (count,) = struct.unpack_from(">I", data, p + 4)
            q = p + 8
            if flags & 0x01:
                q += 4
            if flags & 0x04:
                q += 4
            per_sample = 4 * sum(bool(flags & bit) for bit in (0x100, 0x200, 0x400, 0x800))
            if flags & 0x100:
                for i in range(count):
                    (d,) = struct.unpack_from(">I", data, q + i * per_sample)
                    duration += d
            else:
                duration += default_duration * count
            samples += count
    return track_id, base_time, duration, samples


def scan_segment_bytes(data: bytes) -> SegmentScan:
    """Scan a whole segment held in memory (segments are ~60 s, a few tens of MB at most)."""
    scan = SegmentScan(file_bytes=len(data))
    boxes = list(iter_boxes(data))
    moov = next((b for b in boxes if b.type == "moov"), None)
    first_moof = next((i for i, b in enumerate(boxes) if b.type == "moof"), len(boxes))
    if moov is None or boxes[0].type != "ftyp":
        scan.problems.append("no complete ftyp+moov init")
        return scan
    scan.init_bytes = scan.complete_end = boxes[first_moof - 1].end
    scan.timescale, trex_duration = _parse_moov(data, moov)
    i = first_moof
    while i < len(boxes):
        box = boxes[i]
        if box.type == "moof":
            if i + 1 >= len(boxes) or boxes[i + 1].type != "mdat":
                break  # a moof without its mdat: the fragment is incomplete
            mdat = boxes[i + 1]
            base, duration, samples = _parse_moof(data, box, trex_duration)
            scan.fragments.append(
                ScannedFragment(box.offset, mdat.end - box.offset, base, duration, samples)
            )
            scan.complete_end = mdat.end
            i += 2
        elif box.type in ("mfra", "free", "skip"):
            scan.complete_end = box.end
            i += 1
        else:
            scan.problems.append(f"unexpected {box.type!r} box at {box.offset}")
            break
    if scan.complete_end < len(data):
        scan.problems.append(f"{len(data) - scan.complete_end} trailing bytes after last fragment")
    return scan


def scan_segment(f: BinaryIO) -> SegmentScan:
    f.seek(0)
    return scan_segment_bytes(f.read())
