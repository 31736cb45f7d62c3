"""ONVIF notifications read as Vigia camera events (docs/design/cameras.md, "Camera events").

A NotificationMessage carries a topic (``tns1:RuleEngine/CellMotionDetector/Motion``) and a
``tt:Message`` with a time, a property operation and name/value items: ``Source`` says what
raised it (an input token, a video source, a rule), ``Data`` what it says (``IsMotion=true``).
Vendors spell the same thing differently, so the topic is read by its last words, prefixes
dropped, into one of a few labels a rule or a search can name; topics that are none of them
(processor load, storage failure, configuration changes) are not events here.

Most of these are *properties*: the device says "Initialized" with the state it has when the
subscription starts, then "Changed" at each change. A property whose data is a boolean is an
event lasting from true to false; anything else (a line crossing, an object counted) is an
instant event.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.onvif.device import Items, Notification
from server.protocol.models.analytics import CAMERA_LABELS

__all__ = ["CAMERA_LABELS", "CameraNotification", "label_of", "read_notification"]

# data items that hold a property's state, by the names vendors use (tried in this order;
# 'Value' last: Axis and others name a boolean property's data so)
STATE_ITEMS = ("State", "IsMotion", "IsTamper", "LogicalState", "IsInside", "Active", "Value")
TRUE, FALSE = ("true", "1", "active", "on"), ("false", "0", "inactive", "off")
MAX_SOURCE = 200

TAMPER_WORDS = (
    "tamper", "globalscenechange", "imagetooblurry", "imagetoodark", "imagetoobright",
    "signaltoobright", "scenechange", "defocus",
)  # fmt: skip
ANALYTICS_ROOTS = ("ruleengine", "videoanalytics", "audioanalytics")


@dataclass(frozen=True, slots=True)
class CameraNotification:
    topic: str  # as the device wrote it
    label: str  # one of CAMERA_LABELS
    source: str | None  # 'InputToken=DI_0' (the Source items), None when there are none
    state: bool | None  # a property's state; None: an instant event
    operation: str  # 'Initialized', 'Changed', 'Deleted', or '' when the device does not say
    utc_us: int | None  # the device's time of it, µs UTC; None when unreadable

    @property
    def key(self) -> tuple[str, str | None]:
        """What pairs the start and the end of one lasting event."""
        return (self.topic, self.source)


def _words(topic: str) -> list[str]:
    """``tns1:Device/tnsaxis:IO/Port`` -> ['device', 'io', 'port']."""
    return [seg.rsplit(":", 1)[-1].strip().lower() for seg in topic.split("/") if seg.strip()]


def label_of(topic: str) -> str | None:
    """The camera-event label of a topic, or None for topics that are not events here."""
    words = _words(topic)
    if not words:
        return None
    if any(w in word for word in words for w in TAMPER_WORDS):
        return "tamper"
    if any("motion" in word or word == "pir" for word in words):
        return "motion"
    if words[0] == "device" or words[0] == "io":
        if any("input" in word or word == "port" for word in words):
            return "input"
        if any("relay" in word or "output" in word for word in words):
            return "relay"
        return None
    if words[0] in ANALYTICS_ROOTS:
        return "analytics"
    return None


def _state(data: Items) -> bool | None:
    """The boolean of the first state item (names compared without case); None when there is
    none, so that an item such as ``ObjectId=1`` is never taken for a state."""
    values = {name.lower(): value for name, value in data}
    for name in STATE_ITEMS:
        value = values.get(name.lower())
        if value is None:
            continue
        v = value.strip().lower()
        if v in TRUE:
            return True
        if v in FALSE:
            return False
    return None


def read_notification(n: Notification) -> CameraNotification | None:
    """A notification as a camera event, or None when its topic is not one of ours."""
    label = label_of(n.topic)
    if label is None:
        return None
    source = ",".join(f"{k}={v}" for k, v in n.source) or None
    if source is not None and len(source) > MAX_SOURCE:
        source = source[: MAX_SOURCE - 1] + "…"
    return CameraNotification(
        topic=n.topic,
        label=label,
        source=source,
        state=_state(n.data),
        operation=n.operation,
        utc_us=int(n.utc.timestamp() * 1_000_000) if n.utc is not None else None,
    )
