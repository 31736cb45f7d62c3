"""ONVIF devices (probe by address, discovery), PTZ commands and relay outputs
(docs/design/cameras.md)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

OnvifAddress = Annotated[
    str,
    Meta(
        max_length=2048,
        description="the device service, http://HOST:PORT/onvif/device_service",
    ),
]
Speed = Annotated[float, Meta(ge=-1, le=1, description="ONVIF generic space, -1..1")]
Zoom = Annotated[float, Meta(ge=-1, le=1, description="ONVIF generic space, -1..1")]


class OnvifProfile(msgspec.Struct):
    """A media profile of the device and the stream it serves."""

    token: str
    name: str
    codec: Annotated[str, Meta(description="ONVIF encoding name: H264, H265, JPEG, ...")]
    width: int
    height: int
    fps: float | None
    uri: Annotated[str, Meta(description="the RTSP address the device gives")]
    ptz: bool


class OnvifDevice(msgspec.Struct):
    """What a device says about itself, and the profiles chosen for a camera's streams."""

    address: OnvifAddress
    manufacturer: str
    model: str
    firmware: str
    serial: str
    profiles: list[OnvifProfile]
    main: Annotated[str, Meta(description="token of the profile recorded as main")]
    sub: Annotated[str | None, Meta(description="token of the profile used as sub")]
    ptz: bool


class PtzState(msgspec.Struct):
    """What a camera's PTZ can do, and who holds control."""

    continuous: bool
    relative: bool
    absolute: bool
    home: bool
    presets: Annotated[int, Meta(description="the most presets the device keeps")]
    missing: Annotated[list[str], Meta(description="the commands above it lacks")]
    holder: Annotated[str | None, Meta(description="user steering it now")]
    held_until_us: int | None


class PtzMove(msgspec.Struct, forbid_unknown_fields=True):
    """Continuous move at these velocities until stopped (or ``timeout_s``)."""

    pan: Speed = 0.0
    tilt: Speed = 0.0
    zoom: Zoom = 0.0
    timeout_s: Annotated[float, Meta(gt=0, le=60)] | None = None


class PtzVector(msgspec.Struct, forbid_unknown_fields=True):
    """A relative (translation) or absolute (position) move, ONVIF generic spaces."""

    pan: Speed = 0.0
    tilt: Speed = 0.0
    zoom: Zoom = 0.0


class PtzPreset(msgspec.Struct):
    token: str
    name: str


class PtzPresetInput(msgspec.Struct, forbid_unknown_fields=True):
    """Save the present position under this name."""

    name: Annotated[str, Meta(min_length=1, max_length=64)]


class DiscoveredDevice(msgspec.Struct):
    """An ONVIF device that answered a WS-Discovery probe; what it says of itself in its
    scopes (empty where it says nothing: its credentials tell more, through the probe)."""

    address: OnvifAddress
    endpoint: Annotated[str, Meta(description="its WS-Discovery endpoint, urn:uuid:...")]
    name: str
    manufacturer: str
    model: str
    mac: str
    seen_from: Annotated[str, Meta(description="the IP address the answer came from")]
    scopes: list[str]
    camera_id: Annotated[str | None, Meta(description="the camera added from it, if any")]


class RelayOutput(msgspec.Struct):
    """A relay output of the camera (a siren, a light, a door strike)."""

    token: Annotated[str, Meta(description="the device's name for it")]
    mode: Annotated[str, Meta(description="Bistable (stays as set) or Monostable")]
    idle_state: Annotated[str, Meta(description="open or closed: the contact when inactive")]
    delay_s: Annotated[float | None, Meta(description="Monostable: how long it stays active")]


class RelayOutputState(msgspec.Struct, forbid_unknown_fields=True):
    active: bool
