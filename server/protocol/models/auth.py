"""Login, sessions, user administration and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from server.protocol.models.common import Micros, Role

CameraList = Annotated[list[str] | None, Meta(description="null: every camera")]


class Login(msgspec.Struct):
    name: str
    password: str


class NatsGrant(msgspec.Struct):
    """Subscribe-only NATS credentials for the cameras the user sees."""

    url: str
    port: int
    user: str
    password: str


class Session(msgspec.Struct):
    token: str
    expires_us: Micros
    user: str
    role: Role
    nats: NatsGrant | UnsetType = UNSET


class User(msgspec.Struct):
    name: str
    role: Role
    cameras: CameraList
    disabled: bool


class UserInput(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    password: str
    role: Role = "viewer"
    cameras: CameraList = None


class UserPatch(msgspec.Struct, forbid_unknown_fields=True):
    password: str | UnsetType = UNSET
    role: Role | UnsetType = UNSET
    cameras: CameraList | UnsetType = UNSET
    disabled: bool | UnsetType = UNSET


class AuditEntry(msgspec.Struct):
    id: int
    ts_us: Micros
    user: str
    action: str
    target: str
    detail: dict[str, Any]
    remote: str
