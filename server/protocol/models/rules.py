"""Rules, alarms and notification deliveries (docs/design/rules.md).

A rule is a trigger, filters, an arming schedule, a cooldown and actions. The recorder checks
the parts a type cannot (cameras, zones and labels that exist, a schedule that parses) when a
rule is written, and answers 400 with the reason.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from server.protocol.models.common import CAMERA_ID_PATTERN, CameraId, Label, Micros, Slug

TriggerKind = Literal[
    "enter",  # an object entered a zone
    "leave",
    "loiter",
    "line",  # an object crossed a line
    "object",  # an object was seen (anywhere)
    "motion",
    "camera",  # an event the camera raised itself (ONVIF); labels: motion, tamper, input, ...
    "camera_offline",
    "camera_back",
    "recording_error",
    "disk_trouble",  # the recording volume full, unfreeable or failing (recorder-wide)
    "archive_trouble",  # the archive store failing (recorder-wide)
    "manual",  # POST /rules/{id}/trigger from a workstation
]
AlarmState = Literal["new", "acknowledged", "closed"]
Priority = Annotated[int, Meta(ge=1, le=5, description="1 most urgent .. 5 least")]
Seconds = Annotated[float, Meta(ge=0, le=86_400)]
# "mon-fri 08:00-18:00", "sat,sun 00:00-24:00", "daily 22:00-06:00" (crosses midnight)
# a camera id, or empty: the camera of the event
ActionCamera = Annotated[
    str,
    Meta(pattern=f"^$|{CAMERA_ID_PATTERN}", description="a camera id; empty: the event's camera"),
]
ScheduleRange = Annotated[
    str, Meta(min_length=1, max_length=64, description="'<days> HH:MM-HH:MM', local time")
]


class Filters(msgspec.Struct, forbid_unknown_fields=True):
    """What an event must match; an empty list matches anything."""

    cameras: list[CameraId] = []
    labels: list[Label] = []
    zones: list[Slug] = []  # zone or line ids (of any of the cameras)
    min_score: Annotated[float, Meta(ge=0, le=1)] = 0.0


class AlarmAction(msgspec.Struct, tag="alarm", forbid_unknown_fields=True):
    priority: Priority = 3


class BookmarkAction(msgspec.Struct, tag="bookmark", forbid_unknown_fields=True):
    """Bookmark (and lock, so retention keeps it) the footage around the event."""

    pre_s: Seconds = 10.0
    post_s: Seconds = 30.0
    lock: bool = True


class MqttAction(msgspec.Struct, tag="mqtt", forbid_unknown_fields=True):
    """Publish the alarm on ``<prefix>/alarms`` (events go to ``<prefix>/events`` anyway)."""

    topic: Annotated[str, Meta(max_length=200)] = ""  # under the prefix; empty: "alarms"


class WebhookAction(msgspec.Struct, tag="webhook", forbid_unknown_fields=True):
    url: Annotated[str, Meta(pattern="^https?://", max_length=2000)]
    secret: Annotated[str, Meta(max_length=200)] = ""  # HMAC-SHA256 key of X-Vigia-Signature
    timeout_s: Annotated[float, Meta(gt=0, le=60)] = 5.0
    retries: Annotated[int, Meta(ge=0, le=20)] = 3
    # the body's signed links to the snapshot and clip stay good this long
    links_ttl_s: Annotated[float, Meta(gt=0, le=7 * 86_400)] = 3600.0


class EmailAction(msgspec.Struct, tag="email", forbid_unknown_fields=True):
    to: Annotated[list[Annotated[str, Meta(pattern="^[^@\\s]+@[^@\\s]+$")]], Meta(min_length=1)]
    subject: Annotated[str, Meta(max_length=200)] = ""  # empty: made from the event


class PtzPresetAction(msgspec.Struct, tag="ptz_preset", forbid_unknown_fields=True):
    """Turn a PTZ camera to a preset (its token or name)."""

    preset: Annotated[str, Meta(min_length=1, max_length=100)]
    camera: ActionCamera = ""


class OutputAction(msgspec.Struct, tag="output", forbid_unknown_fields=True):
    """Switch a camera's relay output (a siren, a light)."""

    output: Annotated[str, Meta(max_length=100)] = ""  # its token; empty: the first one
    active: bool = True
    revert_s: Seconds = 0.0  # > 0: switched back after this long
    camera: ActionCamera = ""


Action = (
    AlarmAction
    | BookmarkAction
    | MqttAction
    | WebhookAction
    | EmailAction
    | PtzPresetAction
    | OutputAction
)


class RuleInput(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=100)]
    trigger: TriggerKind
    actions: Annotated[list[Action], Meta(min_length=1)]
    filters: Filters = msgspec.field(default_factory=Filters)
    schedule: list[ScheduleRange] = []  # empty: always armed (unless the group is disarmed)
    group: Annotated[str, Meta(max_length=64)] = ""  # camera group for manual arm/disarm
    cooldown_s: Seconds = 30.0
    enabled: bool = True


class Rule(RuleInput, kw_only=True):
    id: int
    updated_us: Micros


class Arming(msgspec.Struct, forbid_unknown_fields=True):
    """Manual arm/disarm of a camera group (its rules are silent while disarmed)."""

    group: str
    armed: bool
    updated_us: Micros = 0
    updated_by: str = ""


class ArmingInput(msgspec.Struct, forbid_unknown_fields=True):
    armed: bool


class ManualTrigger(msgspec.Struct, forbid_unknown_fields=True):
    camera: CameraId
    comment: Annotated[str, Meta(max_length=1000)] = ""


class ManualRule(msgspec.Struct):
    """A manual rule as operators see it: enough to fire it from a workstation."""

    id: int
    name: str
    group: str
    cameras: list[str]  # the cameras it is for; empty: any


class Alarm(msgspec.Struct):
    """One alarm; published on ``vigia.<sid>.alarms.<camera>`` at every change."""

    id: int
    rule_id: int
    rule: str
    camera: str
    priority: int
    state: AlarmState
    ts_us: Micros  # when the triggering event happened
    trigger: str
    event: dict[str, Any]  # the triggering event as published (kind, label, zone_id, ...)
    snapshot: str | None = None  # event snapshot, under the data dir
    updated_us: Micros = 0
    by: str = ""  # who acknowledged or closed it
    comment: str = ""


class AlarmPatch(msgspec.Struct, forbid_unknown_fields=True):
    state: Literal["acknowledged", "closed"]
    comment: Annotated[str, Meta(max_length=1000)] = ""


class Delivery(msgspec.Struct):
    """A notification that could not be delivered after its retries."""

    id: int
    rule_id: int
    alarm_id: int | None
    kind: Literal["webhook", "email", "mqtt", "ptz_preset", "output"]
    target: str
    attempts: int
    error: str
    ts_us: Micros


__all__ = [
    "Action",
    "Alarm",
    "AlarmAction",
    "AlarmPatch",
    "AlarmState",
    "Arming",
    "ArmingInput",
    "BookmarkAction",
    "Delivery",
    "EmailAction",
    "Filters",
    "ManualRule",
    "ManualTrigger",
    "MqttAction",
    "OutputAction",
    "PtzPresetAction",
    "Rule",
    "RuleInput",
    "TriggerKind",
    "WebhookAction",
]
