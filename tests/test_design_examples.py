"""The worked examples of docs/design/recording.md must stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from server.protocol.fragindex import decode_fragment_index, encode_fragment_index
from server.recording.timing import SegmentClock

DOC = Path(__file__).resolve().parent.parent / "docs" / "design" / "recording.md"


def _field(text: str, name: str) -> list[str]:
    m = re.search(rf"^{re.escape(name)}\s+(.+)$", text, re.MULTILINE)
    assert m, f"{name!r} missing from the worked example"
    return m.group(1).split()


def test_fragment_index_example_encodes_byte_for_byte() -> None:
    text = DOC.read_text()
    start_us = int(_field(text, "segment start_us")[0])
    init = int(_field(text, "init_bytes")[0])
    frags = [
        (int(m.group(1)), int(m.group(2)))
        for m in re.finditer(r"^fragment\s+(\d+) bytes (\d+) us$", text, re.MULTILINE)
    ]
    assert len(frags) == 3
    expected = bytes.fromhex("".join(_field(text, "encoded")))
    assert encode_fragment_index(init, frags) == expected
    init2, decoded = decode_fragment_index(expected, start_us)
    assert init2 == init
    assert [f.offset for f in decoded] == [int(x) for x in _field(text, "decoded offsets")]
    assert [f.start_us for f in decoded] == [int(x) for x in _field(text, "decoded starts_us")]


def test_drift_bound_example() -> None:
    text = DOC.read_text()
    start = int(_field(text, "chained start_us")[0])
    media = int(_field(text, "media duration_us")[0])
    est = int(_field(text, "min(receive - media)")[0])
    clock = SegmentClock.chained_after(start, recv_us=est, media_elapsed_us=0)
    assert est - start == int(_field(text, "error_us")[0])
    assert media * 500 // 1_000_000 == int(_field(text, "bound_us")[0])
    assert clock.wall_duration_us(media, 500) == int(_field(text, "wall duration_us")[0])
