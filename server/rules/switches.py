"""MQTT switches and Home Assistant discovery (docs/design/rules.md).

Switches, as Home Assistant users know them from Frigate (``<p>`` is ``[mqtt] topic_prefix``):

- ``<p>/<camera>/detection/set`` ``ON``/``OFF``: the camera's analytics (what
  ``PATCH /cameras/{id}/analytics`` ``enabled`` does); ``.../detection/state`` says which, retained.
- ``<p>/<camera>/recording/set``: whether the camera's streams are recorded (``record_main`` and
  ``record_sub`` of ``PATCH /cameras/{id}``); ``.../recording/state``.
- ``<p>/_arming/<group>/set``: arm or disarm a camera group of the rules (``PUT /arming/{group}``;
  the group ``""`` is ``_``); ``.../state``. The leading ``_`` keeps it apart from camera ids.

Every change is written where the API writes it and audited (by ``mqtt``); states are read
again every ``POLL_S``, so a change through the API shows on MQTT too.

Discovery: for every camera, retained ``<d>/<component>/<sid>_<camera>/<object>/config``
messages (``[mqtt] discovery_prefix``, ``homeassistant``) describe a device with its switches,
an object count sensor per label and the latest snapshot as an image, all with
``<p>/available`` as availability, so the cameras appear in Home Assistant without YAML.
The node id names the camera, so per-camera MQTT logins can be granted just their own. A camera
deleted (disabled) loses its entities: its configs are published empty.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.auth.audit import CONFIG_CHANGE, Audit
from server.catalog import Catalog
from server.catalog.analytics import AnalyticsSettings
from server.clock import Clock
from server.rules.store import RulesStore

if TYPE_CHECKING:
    from server.analytics.service import Analytics

log = logging.getLogger(__name__)

POLL_S = 2.0
ON, OFF = "ON", "OFF"
GROUP_TOPIC = re.compile(r"^[a-z0-9_-]{1,64}$")  # groups that can be a topic level
NO_GROUP = "_"
DEFAULT_LABELS = ("person",)


@dataclass(frozen=True, slots=True)
class Applied:
    state_topic: str  # under the prefix
    state: str  # ON / OFF


def _group_topic(group: str) -> str | None:
    if group == "":
        return NO_GROUP
    return group if GROUP_TOPIC.fullmatch(group) and group != NO_GROUP else None


class Switches:
    """Reads and sets what the MQTT switches show; every method blocks (call it in a thread)."""

    def __init__(
        self,
        catalog: Catalog,
        store: RulesStore,
        audit: Audit,
        clock: Clock,
        *,
        analytics: Analytics | None = None,
        sync_recording: Callable[[], None] = lambda: None,
        on_arming: Callable[[], None] = lambda: None,
    ) -> None:
        self.catalog, self.store, self.audit, self.clock = catalog, store, audit, clock
        self.analytics = analytics
        self.sync_recording, self.on_arming = sync_recording, on_arming

    # --- reading --------------------------------------------------------------------------

    def _settings(self, camera: str) -> AnalyticsSettings | None:
        if self.analytics is None:
            return None
        streams = {s.name for s in self.catalog.streams(camera)}
        return self.analytics.settings_for(camera, "sub" in streams)

    def _groups(self) -> list[str]:
        groups = set(self.store.arming()) | {r.group for r in self.store.rules()}
        return sorted(g for g in groups if _group_topic(g) is not None)

    def _cameras(self) -> list[Any]:
        """The cameras in use (``DELETE /cameras/{id}`` only disables one: its entities go)."""
        return [c for c in self.catalog.cameras() if c.enabled]

    def states(self) -> dict[str, str]:
        """Topic (under the prefix) -> ON/OFF, for every switch."""
        out: dict[str, str] = {}
        for cam in self._cameras():
            s = self._settings(cam.id)
            if s is not None:
                out[f"{cam.id}/detection/state"] = ON if s.enabled else OFF
            streams = self.catalog.streams(cam.id)
            out[f"{cam.id}/recording/state"] = ON if any(st.record for st in streams) else OFF
        arming = self.store.arming()
        for g in self._groups():
            armed = arming[g].armed if g in arming else True
            out[f"_arming/{_group_topic(g)}/state"] = ON if armed else OFF
        return out

    # --- setting --------------------------------------------------------------------------

    def apply(self, topic: str, payload: bytes) -> Applied | None:
        """``topic`` under the prefix, ending in ``/set``; None for what is not a switch."""
        value = payload.decode(errors="replace").strip().upper()
        if value not in (ON, OFF):
            log.info("MQTT %s: %r is neither ON nor OFF", topic, payload[:20])
            return None
        on = value == ON
        parts = topic.split("/")
        if len(parts) != 3 or parts[2] != "set":
            return None
        if parts[0] == "_arming":
            return self._arm(parts[1], on)
        cam, what = parts[0], parts[1]
        if not any(c.id == cam for c in self._cameras()):
            log.info("MQTT %s: no camera %r", topic, cam)
            return None
        if what == "detection":
            return self._detection(cam, on)
        if what == "recording":
            return self._recording(cam, on)
        return None

    def _detection(self, cam: str, on: bool) -> Applied | None:
        s = self._settings(cam)
        if s is None or self.analytics is None:
            return None
        if s.enabled != on:
            new = AnalyticsSettings(**{**s.__dict__, "enabled": on})
            self.analytics.db.set_settings(new, self.clock.now_us())
            self.audit.record("mqtt", CONFIG_CHANGE, cam, {"analytics": {"enabled": on}})
            self.analytics.sync()
        return Applied(f"{cam}/detection/state", ON if on else OFF)

    def _recording(self, cam: str, on: bool) -> Applied:
        row = next(c for c in self.catalog.cameras() if c.id == cam)
        streams = self.catalog.streams(cam)
        if any(st.record != on for st in streams):
            self.catalog.upsert_camera(
                cam, row.name, {st.name: (st.url, on) for st in streams}, enabled=row.enabled,
                retention_days=row.retention_days, source=row.source,
                now_us=self.clock.now_us(), transports={st.name: st.transport for st in streams},
            )  # fmt: skip
            self.audit.record("mqtt", CONFIG_CHANGE, cam, {"op": "update", "record": on})
            self.sync_recording()
        return Applied(f"{cam}/recording/state", ON if on else OFF)

    def _arm(self, level: str, on: bool) -> Applied | None:
        group = "" if level == NO_GROUP else level
        if _group_topic(group) != level or group not in self._groups():
            return None
        self.store.set_armed(group, on, self.clock.now_us(), "mqtt")
        self.audit.record("mqtt", "arming-change", group, {"armed": on})
        self.on_arming()
        return Applied(f"_arming/{level}/state", ON if on else OFF)

    # --- Home Assistant discovery ---------------------------------------------------------

    def discovery(self, prefix: str, ha: str, server_id: str) -> dict[str, bytes]:
        """Retained discovery configs: topic -> JSON."""
        out: dict[str, bytes] = {}
        avail = {"availability_topic": f"{prefix}/available"}
        for cam in self._cameras():
            node = f"{server_id}_{cam.id}"
            device = {"identifiers": [f"vigia_{node}"], "name": cam.name, "manufacturer": "Vigia",
                      "model": "camera"}  # fmt: skip

            def put(component: str, obj: str, body: dict[str, Any], node: str = node,
                    device: dict = device) -> None:  # fmt: skip
                body = {**body, **avail, "unique_id": f"vigia_{node}_{obj}", "device": device}
                out[f"{ha}/{component}/{node}/{obj}/config"] = json.dumps(body).encode()

            settings = self._settings(cam.id)
            for what in ("detection", "recording") if settings is not None else ("recording",):
                put("switch", what, {
                    "name": what.capitalize(),
                    "command_topic": f"{prefix}/{cam.id}/{what}/set",
                    "state_topic": f"{prefix}/{cam.id}/{what}/state",
                    "payload_on": ON, "payload_off": OFF,
                })  # fmt: skip
            labels = (settings.labels if settings is not None else ()) or DEFAULT_LABELS
            for label in labels:
                put("sensor", f"{label}_count", {
                    "name": f"{label.capitalize()} count",
                    "state_topic": f"{prefix}/{cam.id}/{label}",
                    "state_class": "measurement",
                })  # fmt: skip
                put("image", f"{label}_snapshot", {
                    "name": f"{label.capitalize()} snapshot",
                    "image_topic": f"{prefix}/{cam.id}/{label}/snapshot",
                    "content_type": "image/jpeg",
                })  # fmt: skip
        for g in self._groups():
            level = _group_topic(g)
            node = f"{server_id}_arming"
            body = {
                "name": f"Armed {g or 'rules without a group'}",
                "command_topic": f"{prefix}/_arming/{level}/set",
                "state_topic": f"{prefix}/_arming/{level}/state",
                "payload_on": ON, "payload_off": OFF, **avail,
                "unique_id": f"vigia_{node}_{level}",
                "device": {"identifiers": [f"vigia_{node}"], "name": "Vigia rules",
                           "manufacturer": "Vigia", "model": "rules"},
            }  # fmt: skip
            out[f"{ha}/switch/{node}/{level}/config"] = json.dumps(body).encode()
        return out
