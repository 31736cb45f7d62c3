"""Segments with their fragment index, recorded ranges for the timeline, and bookmarks."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from server.protocol.models.common import Micros, MicrosIn, StreamName


class Fragment(msgspec.Struct):
    offset: int
    bytes: int
    start_us: Micros
    duration_us: int


class Segment(msgspec.Struct):
    id: int
    start_us: Micros
    end_us: Micros
    bytes: int
    frames: int
    codec: Literal["h264", "hevc"]
    width: int
    height: int
    state: Literal["open", "closed"]
    init_bytes: int
    fragments: list[Fragment]
    # where the file is: 'local', 'archived' (object storage only; the media route proxies
    # it) or 'both' (docs/design/archive.md)
    location: Literal["local", "archived", "both"] = "local"


class Range(msgspec.Struct):
    start_us: Micros
    end_us: Micros


class Location(msgspec.Struct):
    """A recorded range and where its footage is (docs/design/archive.md)."""

    start_us: Micros
    end_us: Micros
    where: Literal["local", "archived", "both"]


class Recordings(msgspec.Struct):
    camera: str
    stream: StreamName
    start_us: Micros
    end_us: Micros
    ranges: list[Range]
    gaps: list[Range]
    locations: list[Location] = []  # with an archive: ranges split by where the footage is


class Bookmark(msgspec.Struct):
    id: int
    camera_id: str
    start_us: Micros
    end_us: Micros
    name: str
    description: str
    locked: bool
    created_us: Micros
    created_by: str


MAX_DESCRIPTION = 4096
"""Characters in a bookmark's description."""
MAX_LOCK_US = 7 * 24 * 3600 * 1_000_000
"""Longest locked window: a lock keeps footage from retention, so it must not cover all time."""


class BookmarkInput(msgspec.Struct, forbid_unknown_fields=True):
    camera: str
    start_us: MicrosIn
    end_us: MicrosIn
    name: Annotated[str, Meta(max_length=200)] = ""
    description: Annotated[str, Meta(max_length=MAX_DESCRIPTION)] = ""
    locked: Annotated[
        bool,
        Meta(description="retention keeps what it touches; a locked window spans at most 7 days"),
    ] = False

    def __post_init__(self) -> None:
        if self.end_us < self.start_us:
            raise ValueError("end_us must not be before start_us")
        if self.locked and self.end_us - self.start_us > MAX_LOCK_US:
            raise ValueError("a locked bookmark spans at most 7 days (evidence, not a hold)")


class BookmarkPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change. Locking is for anyone with the bookmark right on the camera;
    unlocking, and changing a locked bookmark, for admins only; changing an unlocked one for
    its owner and admins (docs/design/auth.md)."""

    name: Annotated[str, Meta(max_length=200)] | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=MAX_DESCRIPTION)] | UnsetType = UNSET
    locked: bool | UnsetType = UNSET
