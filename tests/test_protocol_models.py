"""The API's body types on their own: strict decoding with errors that name the field, and the
rules across fields that a schema cannot say (both found by the fuzz run as 500s before)."""

from __future__ import annotations

import msgspec
import pytest

from server.analytics.pipeline import make_tracker
from server.protocol.models import (
    UNSET,
    AnalyticsPatch,
    BookmarkInput,
    CameraInput,
    CameraPatch,
    ExportInput,
    ZoneInput,
)


def decode(raw: bytes, kind: type):
    return msgspec.json.decode(raw, type=kind)


def test_decoding_is_strict_and_names_the_field() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"got `str` - at `\$\.retention_days`"):
        decode(b'{"id": "a", "name": "A", "main": "rtsp://h/", "retention_days": "30"}',
               CameraInput)  # fmt: skip
    with pytest.raises(msgspec.ValidationError, match=r"Expected `bool`.*\$\.enabled"):
        decode(b'{"enabled": "false"}', CameraPatch)
    with pytest.raises(msgspec.ValidationError, match=r"unknown field `bogus`"):
        decode(b'{"bogus": 1}', CameraPatch)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.id"):
        decode(b'{"id": "UPPER", "name": "A", "main": "rtsp://h/"}', CameraInput)


def test_a_patch_tells_absent_from_null() -> None:
    patch = decode(b'{"sub": null}', CameraPatch)
    assert patch.sub is None and patch.name is UNSET


@pytest.mark.parametrize(
    ("raw", "kind", "message"),
    [
        (b'{"camera": "a", "start_us": 20, "end_us": 10}', BookmarkInput, "not be before"),
        (b'{"cameras": [{"camera": "a"}], "start_us": 5, "end_us": 5}', ExportInput, "after"),
        (b'{"kind": "line", "points": [[0.5, 0.5], [0.5, 0.5]]}', ZoneInput, "different"),
        (b'{"kind": "line", "points": [[0, 0], [1, 1], [0, 1]]}', ZoneInput, "exactly 2"),
        (b'{"points": [[0, 0], [1, 1]]}', ZoneInput, "at least 3"),
        (b'{"points": [[0, 0], [1, 1.5], [0, 1]]}', ZoneInput, r"<= 1"),
    ],
)
def test_rules_across_fields(raw: bytes, kind: type, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        decode(raw, kind)


def test_the_lowest_min_score_the_api_allows_makes_a_tracker() -> None:
    low = decode(b'{"min_score": 0.01}', AnalyticsPatch).min_score
    assert make_tracker(low).high_threshold == low
