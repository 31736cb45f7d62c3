"""The wire contract's pure codecs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.protocol.fragindex import decode_fragment_index, encode_fragment_index
from server.protocol.timeutil import rescale, us_to_iso


@given(
    init=st.integers(0, 2**40),
    frags=st.lists(st.tuples(st.integers(1, 2**40), st.integers(0, 2**40)), max_size=50),
    start=st.integers(1, 2**62),
)
def test_fragment_index_round_trip(init: int, frags: list[tuple[int, int]], start: int) -> None:
    init2, decoded = decode_fragment_index(encode_fragment_index(init, frags), start)
    assert init2 == init
    assert [(f.bytes, f.duration_us) for f in decoded] == frags
    offset, t = init, start
    for f in decoded:
        assert (f.offset, f.start_us) == (offset, t)
        offset += f.bytes
        t = f.end_us


@pytest.mark.parametrize(
    "blob", [b"", b"\x80", b"\x05\x01", b"\xff" * 10 + b"\x01"], ids=["empty", "cut", "odd", "long"]
)
def test_fragment_index_rejects_malformed(blob: bytes) -> None:
    with pytest.raises(ValueError):
        decode_fragment_index(blob, 1)


def test_fragment_index_rejects_negative_and_empty_fragments() -> None:
    with pytest.raises(ValueError):
        encode_fragment_index(-1, [])
    with pytest.raises(ValueError):
        encode_fragment_index(10, [(0, 1000)])


def test_rescale_rounds_to_nearest_in_integers() -> None:
    assert rescale(3003, 1_000_000, 90_000) == 33367  # 33366.67 µs
    assert rescale(1, 1, 2) == 1
    assert rescale(2**62, 1_000_000, 90_000) == (2**62 * 1_000_000 + 45_000) // 90_000


def test_us_to_iso() -> None:
    assert us_to_iso(1_700_000_000_123_456) == "2023-11-14T22:13:20.123+00:00"
