"""Cameras, their streams and the URL probe."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from server.protocol.models.analytics import AnalyticsStatus
from server.protocol.models.common import CameraId, Micros, StreamName
from server.protocol.models.ptz import OnvifAddress, OnvifDevice

RetentionDays = Annotated[float, Meta(gt=0, description="days; null: only the volume limits")]
SourceUrl = Annotated[str, Meta(description="rtsp://, rtsps://, http(s)://, file://")]
Transport = Annotated[
    Literal["auto", "tcp", "udp", "multicast", "http"],
    Meta(description="RTSP transport; auto: TCP, then UDP if TCP fails"),
]


class Stream(msgspec.Struct):
    name: StreamName
    url: Annotated[str, Meta(description="password replaced by ***")]
    record: bool
    state: Literal["connecting", "online", "offline", "error", "stopped"]
    reason: str
    packets: int
    bytes: int
    reconnects: int
    last_packet_us: Micros | None
    transport: Transport = "auto"
    transport_in_use: Annotated[
        str | None, Meta(description="tcp, udp, ... of the session; null when not connected")
    ] = None


class CameraEventsStatus(msgspec.Struct):
    """The camera's own events (ONVIF pull point; docs/design/cameras.md)."""

    state: Literal["starting", "subscribed", "retrying", "unsupported"]
    reason: Annotated[str, Meta(description="why not subscribed, in the device's words")] = ""
    events: Annotated[int, Meta(description="event phases stored since the recorder started")] = 0


class Camera(msgspec.Struct):
    id: CameraId
    name: str
    enabled: bool
    retention_days: float | None
    source: Literal["config", "api"]
    streams: list[Stream]
    analytics: AnalyticsStatus
    onvif: Annotated[str | None, Meta(description="ONVIF device address, if added by it")] = None
    events: (
        Annotated[CameraEventsStatus, Meta(description="its own events; null: not subscribed")]
        | None
    ) = None


class CameraInput(msgspec.Struct, forbid_unknown_fields=True):
    """A new camera; recording starts at once unless ``enabled`` is false."""

    id: CameraId
    name: str
    main: Annotated[SourceUrl, Meta(description="required unless onvif is given")] | UnsetType = (
        UNSET
    )
    sub: SourceUrl | None = None
    onvif: (
        Annotated[
            OnvifAddress, Meta(description="streams from the device's best main and sub profiles")
        ]
        | None
    ) = None
    username: Annotated[str, Meta(max_length=256, description="the ONVIF device's")] = ""
    password: Annotated[str, Meta(max_length=256, description="the ONVIF device's")] = ""
    record_main: bool = True
    record_sub: bool = True
    retention_days: RetentionDays | None = None
    enabled: bool = True
    transport_main: Transport = "auto"
    transport_sub: Transport = "auto"


class CameraPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change; ``id``, when given, must be the camera's own."""

    id: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    main: SourceUrl | UnsetType = UNSET
    sub: SourceUrl | UnsetType | None = UNSET
    record_main: bool | UnsetType = UNSET
    record_sub: bool | UnsetType = UNSET
    retention_days: RetentionDays | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET
    transport_main: Transport | UnsetType = UNSET
    transport_sub: Transport | UnsetType = UNSET


class Probe(msgspec.Struct):
    """A camera URL to test, or an ONVIF device address (with its credentials) to ask."""

    url: Annotated[str, Meta(max_length=2048, description="the camera URL to test")] | (
        UnsetType
    ) = UNSET
    onvif: OnvifAddress | UnsetType = UNSET
    username: Annotated[str, Meta(max_length=256)] = ""
    password: Annotated[str, Meta(max_length=256)] = ""
    snapshot: Annotated[bool, Meta(description="also a JPEG of the first picture")] = False


class ProbeResult(msgspec.Struct):
    codec: Literal["h264", "hevc"]
    width: int
    height: int
    fps: float | None
    snapshot_jpeg: Annotated[str, Meta(description="base64 JPEG, when asked for")] | UnsetType = (
        UNSET
    )
    onvif: Annotated[OnvifDevice, Meta(description="the device, when probed by address")] | (
        UnsetType
    ) = UNSET
