"""Analytics: events, tracked boxes, motion search, zones and lines, per-camera settings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from server.protocol.models.common import (
    CameraId,
    Duration,
    Label,
    Micros,
    Slug,
    StreamName,
    Unit,
)
from server.protocol.models.recordings import Range

# 'camera': raised by the camera itself (ONVIF events: motion, tamper, inputs, its analytics)
KINDS = ("object", "enter", "leave", "loiter", "line", "motion", "camera")
EventKind = Literal["object", "enter", "leave", "loiter", "line", "motion", "camera"]
# what a 'camera' event is about (its label; docs/design/cameras.md)
CAMERA_LABELS = ("motion", "tamper", "input", "relay", "analytics")
Point = Annotated[list[Unit], Meta(min_length=2, max_length=2, description="[x, y], 0..1")]


class AnalyticsStatus(msgspec.Struct):
    state: Literal["disabled", "starting", "waiting", "running", "error"]
    reason: str | UnsetType = UNSET
    stream: StreamName | UnsetType = UNSET
    fps: float | UnsetType = UNSET
    analysed: int | UnsetType = UNSET
    detected: int | UnsetType = UNSET
    dropped_frames: int | UnsetType = UNSET
    dropped_packets: int | UnsetType = UNSET
    last_ts_us: int | UnsetType | None = UNSET
    provider: str | UnsetType = UNSET
    model: str | UnsetType = UNSET
    key_frames_only: Annotated[
        bool | UnsetType, Meta(description="main stream of a camera without a sub stream")
    ] = UNSET
    load: Annotated[
        Literal["normal", "half_rate", "key_frames", "sparse_key_frames"] | UnsetType,
        Meta(description="load shedding: analytics analyses less while the machine is busy"),
    ] = UNSET
    shed_packets: Annotated[
        int | UnsetType, Meta(description="packets left undecoded: key frames only, shedding")
    ] = UNSET


class Event(msgspec.Struct):
    id: int
    camera_id: CameraId
    kind: EventKind
    label: str
    score: Annotated[float, Meta(description="0..1")]
    start_us: Micros
    end_us: Annotated[Micros | None, Meta(description="null while it goes on")]
    track_id: int | None = None
    zone_id: str | None = None
    direction: Literal["left_to_right", "right_to_left"] | None = None
    box: (
        Annotated[list[float], Meta(min_length=4, max_length=4, description="x1, y1, x2, y2")]
        | None
    ) = None
    path: list[Any] = []
    snapshot: Annotated[bool, Meta(description="GET .../snapshot has a JPEG")] = False
    topic: Annotated[str, Meta(description="kind 'camera': the device's ONVIF topic")] | None = None
    source: (
        Annotated[str, Meta(description="kind 'camera': what raised it ('InputToken=1')")] | None
    ) = None


class TrackRow(msgspec.Struct):
    ts_us: Micros
    track_id: int
    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float


class MotionSearch(msgspec.Struct):
    camera: CameraId
    start_us: Micros
    end_us: Micros
    region: Annotated[
        list[Unit],
        Meta(min_length=4, max_length=4, description="x1, y1, x2, y2 normalised"),
    ] = msgspec.field(default_factory=lambda: [0.0, 0.0, 1.0, 1.0])
    merge_gap_us: Micros = 1_000_000

    def __post_init__(self) -> None:
        x1, y1, x2, y2 = self.region
        if x2 <= x1 or y2 <= y1:
            raise ValueError("region must have x2 > x1 and y2 > y1")


class MotionRanges(msgspec.Struct):
    camera: CameraId
    ranges: list[Range]


class Zone(msgspec.Struct):
    camera_id: CameraId
    id: Slug
    kind: Literal["zone", "line"]
    name: str
    points: list[Point]
    labels: list[Label]
    min_dwell_us: int = 0
    loiter_us: int = 0


class ZoneInput(msgspec.Struct, forbid_unknown_fields=True):
    """A zone (polygon, at least 3 points) or a line (exactly 2 points, a -> b)."""

    points: Annotated[list[Point], Meta(min_length=2)]
    kind: Literal["zone", "line"] = "zone"
    name: Annotated[str, Meta(max_length=200)] | UnsetType = UNSET
    labels: list[Label] | None = None
    min_dwell_us: Duration = 0
    loiter_us: Duration = 0

    def __post_init__(self) -> None:
        if self.kind == "line" and len(self.points) != 2:
            raise ValueError("a line has exactly 2 points")
        if self.kind == "line" and self.points[0] == self.points[1]:
            raise ValueError("a line needs two different end points")
        if self.kind == "zone" and len(self.points) < 3:
            raise ValueError("a zone needs at least 3 points")


class AnalyticsSettings(msgspec.Struct):
    camera_id: CameraId
    enabled: bool
    stream: StreamName
    fps: float
    labels: list[str]
    min_score: float
    status: AnalyticsStatus


class AnalyticsPatch(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool | UnsetType = UNSET
    stream: StreamName | UnsetType = UNSET
    fps: Annotated[float, Meta(ge=0.1, le=30)] | UnsetType = UNSET
    labels: list[Label] | UnsetType | None = UNSET
    min_score: Annotated[float, Meta(ge=0.01, le=0.99)] | UnsetType = UNSET
