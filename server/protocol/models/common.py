"""Constrained scalar types shared by the bodies (and by the query parameters' schemas)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

CAMERA_ID_PATTERN = "^[a-z0-9][a-z0-9_-]{0,63}(?!\\n)$"
SLUG_PATTERN = "^[a-z0-9_-]{1,64}(?!\\n)$"
MAX_US = 2**62  # far beyond any clock; keeps sums of times inside int64

CameraId = Annotated[str, Meta(pattern=CAMERA_ID_PATTERN, description="a camera id")]
Slug = Annotated[str, Meta(pattern=SLUG_PATTERN)]
Micros = Annotated[int, Meta(ge=0, description="µs since the Unix epoch, UTC")]
MicrosIn = Annotated[int, Meta(ge=0, lt=MAX_US, description="µs since the Unix epoch, UTC")]
MicrosParam = Annotated[int, Meta(ge=0, le=MAX_US, description="µs since the Unix epoch, UTC")]
Duration = Annotated[int, Meta(ge=0, le=MAX_US, description="µs")]
Unit = Annotated[float, Meta(ge=0, le=1)]
StreamName = Literal["main", "sub"]
Role = Literal["admin", "operator", "viewer"]
Label = Annotated[str, Meta(min_length=1)]

__all__ = [
    "CAMERA_ID_PATTERN",
    "MAX_US",
    "SLUG_PATTERN",
    "UNSET",
    "CameraId",
    "Duration",
    "Label",
    "Micros",
    "MicrosIn",
    "MicrosParam",
    "Role",
    "Slug",
    "StreamName",
    "Unit",
    "UnsetType",
]
