"""The rules engine: events and camera status in, alarms and notifications out.

Fed from other threads (the analytics' detection thread, ingest status callbacks) through
``feed_event`` / ``feed_status``, which hand over to the engine's event loop. A matching rule
that is enabled, armed (its group not disarmed, its weekly schedule on) and out of its cooldown
fires its actions: the alarm first (the others name it), then bookmark, MQTT, webhook, e-mail,
PTZ preset and relay output concurrently, each with its own time-out, so one slow receiver
never holds up the rest. Recorder-wide troubles (disk, archive) come from probes of their
owners' state (``watch``); MQTT ``/set`` switches and Home Assistant discovery go through
``server.rules.switches``.
Every alarm and every change of its state is audited and published on NATS
(``vigia.<sid>.alarms.<camera>``), which workstations that see the camera may subscribe to.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec

from server.auth.audit import PTZ, Audit
from server.catalog import Catalog
from server.clock import Clock
from server.config import SmtpConfig
from server.protocol.live import alarms_subject
from server.protocol.models.rules import (
    Alarm,
    AlarmAction,
    BookmarkAction,
    Delivery,
    EmailAction,
    MqttAction,
    OutputAction,
    PtzPresetAction,
    Rule,
    WebhookAction,
)
from server.protocol.timeutil import US_PER_SECOND
from server.rules import schedule
from server.rules.devices import CameraDevices, DeviceResult
from server.rules.links import DEFAULT_TTL_S, LinkSigner, load_or_create_key
from server.rules.mqtt import MqttBridge, snapshot_path
from server.rules.notify import Mailer, post_webhook
from server.rules.store import RulesStore
from server.rules.switches import POLL_S as SWITCH_POLL_S
from server.rules.switches import Switches

log = logging.getLogger(__name__)
T = TypeVar("T")

ALARM_CHANGE = "alarm-change"
RULE_CHANGE = "rule-change"
ARMING_CHANGE = "arming-change"

ZONE_KINDS = ("enter", "leave", "loiter", "line")
MAX_TRACK_SNAPS = 1000
STATUS_TRIGGERS = {"offline": "camera_offline", "error": "recording_error"}
# the clip a signed link serves: this much before and after the alarm
CLIP_PRE_US = 10 * US_PER_SECOND
CLIP_POST_US = 20 * US_PER_SECOND
LINKS_PATH = "/api/v1/links/alarms/{id}/{what}"
# recorder-wide troubles (disk, archive) are read this often from their owners' state
SYSTEM_POLL_S = 1.0
SYSTEM_TRIGGERS = ("disk_trouble", "archive_trouble")
# a probe says whether that part is in trouble now, and why
Probe = Callable[[], tuple[bool, str]]


@dataclass
class _Compiled:
    rule: Rule
    ranges: tuple[schedule.WeeklyRange, ...]


@dataclass
class Firing:
    """What one rule did for one event (tests and the benchmark await it)."""

    rule_id: int
    camera: str
    alarm: Alarm | None = None
    results: dict[str, bool] = field(default_factory=dict)  # action kind -> delivered
    done: asyncio.Event = field(default_factory=asyncio.Event)


class RulesEngine:
    def __init__(
        self,
        catalog: Catalog,
        audit: Audit,
        clock: Clock,
        server_id: str,
        data_root: Path,
        *,
        smtp: SmtpConfig | None = None,
        tz: tzinfo | None = None,
    ) -> None:
        self.store = RulesStore(catalog)
        self.catalog, self.audit, self.clock = catalog, audit, clock
        self.server_id, self.root = server_id, data_root
        self.smtp, self.tz = smtp or SmtpConfig(), tz
        self.mailer = Mailer(self.smtp)  # one kept SMTP connection
        self.mqtt: MqttBridge | None = None
        self.links = LinkSigner(load_or_create_key(data_root))
        self.devices = CameraDevices(catalog)  # PTZ presets and relay outputs
        self.switches: Switches | None = None  # MQTT /set switches (with ``mqtt``)
        self.discovery_prefix = ""  # Home Assistant discovery topics; "": none
        self._switch_states: dict[str, str] = {}
        self._discovered: dict[str, bytes] = {}
        self.base_url = ""  # the API as receivers reach it (set once it listens)
        self.publish_nats: Callable[[str, bytes], Any] | None = None  # an async publish
        self.on_fired: list[Callable[[Firing], None]] = []
        self._rules: list[_Compiled] = []
        self._armed: dict[str, bool] = {}
        self._last: dict[tuple[int, str], float] = {}  # (rule, camera) -> monotonic fire time
        self._camera_state: dict[str, str] = {}
        self._track_snaps: dict[tuple, str] = {}  # (camera, track) -> latest snapshot
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="rules-db")
        self._probes: dict[str, Probe] = {}
        self._troubled: dict[str, bool] = {}
        self.fired = 0

    # --- life cycle -----------------------------------------------------------------------

    def watch(self, trigger: str, probe: Probe) -> None:
        """Fire ``trigger`` (``disk_trouble``, ``archive_trouble``) whenever ``probe`` turns
        from fine to troubled: the storage guard's and the archiver's own state, read on the
        loop every ``SYSTEM_POLL_S``, so neither needs to know of rules."""
        if trigger not in SYSTEM_TRIGGERS:
            raise ValueError(f"not a recorder-wide trigger: {trigger}")
        self._probes[trigger] = probe

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._http = aiohttp.ClientSession()
        await asyncio.to_thread(self.reload)
        if self.mqtt is not None:
            self.mqtt.start()
        if self._probes:
            task = self._loop.create_task(self._poll_system(), name="rules-system")
            self._tasks.add(task)
        if self.mqtt is not None and self.switches is not None:
            task = self._loop.create_task(self._run_switches(), name="rules-switches")
            self._tasks.add(task)

    # --- MQTT switches and discovery ------------------------------------------------------

    async def _run_switches(self) -> None:
        """Publish the switches' states and the discovery configs (retained), then again
        whenever they change (through the API too)."""
        assert self.mqtt is not None
        while True:
            try:
                await self.publish_switches()
            except Exception:
                log.exception("MQTT switches: cannot read their states")
            await asyncio.sleep(SWITCH_POLL_S)

    async def publish_switches(self) -> None:
        """Publish the states and discovery configs that changed since last time."""
        sw, mqtt = self.switches, self.mqtt
        if sw is None or mqtt is None:
            return
        states = await asyncio.to_thread(sw.states)
        configs = {}
        if self.discovery_prefix:
            configs = await asyncio.to_thread(
                sw.discovery, mqtt.prefix, self.discovery_prefix, self.server_id
            )
        for topic, body in configs.items():
            if self._discovered.get(topic) != body:
                mqtt.publish(topic, body, retain=True, absolute=True)
        for topic in set(self._discovered) - set(configs):  # a camera gone: its entities too
            mqtt.publish(topic, b"", retain=True, absolute=True)
        self._discovered = configs
        for topic, state in states.items():
            if self._switch_states.get(topic) != state:
                mqtt.publish(topic, state.encode(), retain=True)
        self._switch_states = states

    async def switch_command(self, subject: str, payload: bytes) -> None:
        """A ``<prefix>/.../set`` message (arriving as the NATS subject ``<prefix>.….set``)."""
        if self.switches is None or self.mqtt is None:
            return
        topic = subject.removeprefix(self.mqtt.prefix + ".").replace(".", "/")
        try:
            done = await asyncio.to_thread(self.switches.apply, topic, payload)
        except Exception:
            log.exception("MQTT %s: not applied", topic)
            return
        if done is not None:
            self._switch_states[done.state_topic] = done.state
            self.mqtt.publish(done.state_topic, done.state.encode(), retain=True)

    async def _poll_system(self) -> None:
        while True:
            self.check_system()
            await asyncio.sleep(SYSTEM_POLL_S)

    def check_system(self) -> None:
        """Read every probe once; a part newly in trouble fires its rules (on the loop)."""
        for trigger, probe in self._probes.items():
            try:
                bad, detail = probe()
            except Exception:
                log.exception("probe of %s failed", trigger)
                continue
            was = self._troubled.get(trigger, False)
            self._troubled[trigger] = bad
            if bad and not was:
                event = {"kind": trigger, "camera_id": "", "reason": detail}
                for c in self._rules:
                    if c.rule.trigger == trigger:
                        self._fire(c, "", self.clock.now_us(), trigger, event)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.mqtt is not None:
            await self.mqtt.close()
        await self.devices.close()
        await self.mailer.close()
        if self._http is not None:
            await self._http.close()
        self._executor.shutdown(wait=True)
        self._loop = None

    def reload(self) -> None:
        """Read rules and arming from the catalog (after every change through the API)."""
        compiled = []
        for r in self.store.rules():
            try:
                compiled.append(_Compiled(r, schedule.parse(r.schedule)))
            except schedule.ScheduleError as exc:  # refused by the API; never half-applied
                log.error("rule %d %r skipped: %s", r.id, r.name, exc)
        armed = {g: a.armed for g, a in self.store.arming().items()}
        self._rules, self._armed = compiled, armed

    # --- inputs, from any thread ----------------------------------------------------------

    def feed_event(self, msg: dict) -> None:
        """An analytics event as published on NATS (``phase`` plus the event row)."""
        self._call(self._on_event, msg)

    def feed_status(self, status: dict) -> None:
        """A stream status message (``stream_status_message``)."""
        self._call(self._on_status, status)

    def _call(self, fn: Callable, *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop closed: shutting down
            loop.call_soon_threadsafe(fn, *args)

    # --- matching, on the loop ------------------------------------------------------------

    def _on_event(self, msg: dict) -> None:
        if self.mqtt is not None:
            self.mqtt.event(msg)
        track = (msg.get("camera_id"), msg.get("track_id"))
        snap = snapshot_path(msg)
        if snap and track[1] is not None:
            self._track_snaps[track] = snap
            if len(self._track_snaps) > MAX_TRACK_SNAPS:
                self._track_snaps.pop(next(iter(self._track_snaps)))
        if msg.get("phase") not in ("start", "instant"):
            return  # a rule fires once per event, when it begins
        if snap is None and track in self._track_snaps:
            # zone and line events come without a picture: their object's best one
            msg = {**msg, "snapshot_path": self._track_snaps[track]}
        kind = msg.get("kind", "")
        for c in self._rules:
            if c.rule.trigger == kind and self._matches(c.rule, msg):
                self._fire(c, msg.get("camera_id", ""), msg.get("start_us") or 0, kind, msg)

    def _on_status(self, st: dict) -> None:
        if st.get("stream") != "main":
            return
        cam, state = st.get("camera", ""), st.get("state", "")
        before = self._camera_state.get(cam)
        self._camera_state[cam] = state
        if state == before:
            return
        trigger = STATUS_TRIGGERS.get(state)
        if trigger is None and state == "online" and before in ("offline", "error"):
            trigger = "camera_back"
        if trigger is None:
            return
        event = {"kind": trigger, "camera_id": cam, "reason": st.get("reason", "")}
        for c in self._rules:
            if c.rule.trigger == trigger and self._camera_ok(c.rule, cam):
                self._fire(c, cam, st.get("since_us") or self.clock.now_us(), trigger, event)

    @staticmethod
    def _camera_ok(rule: Rule, camera: str) -> bool:
        return not rule.filters.cameras or camera in rule.filters.cameras

    def _matches(self, rule: Rule, msg: dict) -> bool:
        f = rule.filters
        if not self._camera_ok(rule, msg.get("camera_id", "")):
            return False
        if f.labels and msg.get("label") not in f.labels:
            return False
        if f.zones and msg.get("zone_id") not in f.zones:
            return False
        return (msg.get("score") or 0.0) >= f.min_score

    def manual(self, rule_id: int, camera: str, by: str, comment: str) -> Firing | None:
        """A workstation's manual trigger (``POST /rules/{id}/trigger``)."""
        c = next((c for c in self._rules if c.rule.id == rule_id), None)
        if c is None:
            return None
        event = {"kind": "manual", "camera_id": camera, "by": by, "comment": comment}
        return self._fire(c, camera, self.clock.now_us(), "manual", event)

    def _fire(
        self, c: _Compiled, camera: str, ts_us: int, trigger: str, event: dict
    ) -> Firing | None:
        rule = c.rule
        if not rule.enabled or not self._armed.get(rule.group, True):
            return None
        if not schedule.armed_at(c.ranges, self.clock.now_us(), self.tz):
            return None
        now = time.monotonic()
        last = self._last.get((rule.id, camera))
        if last is not None and now - last < rule.cooldown_s:
            return None
        self._last[(rule.id, camera)] = now
        self.fired += 1
        firing = Firing(rule.id, camera)
        task = asyncio.get_running_loop().create_task(
            self._act(rule, camera, ts_us, trigger, event, firing)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return firing

    # --- actions --------------------------------------------------------------------------

    async def _act(
        self, rule: Rule, camera: str, ts_us: int, trigger: str, event: dict, firing: Firing
    ) -> None:
        try:
            alarm_action = next((a for a in rule.actions if isinstance(a, AlarmAction)), None)
            if alarm_action is not None:
                firing.alarm = await self._raise(rule, alarm_action, camera, ts_us, trigger, event)
                firing.results["alarm"] = True
            jobs = {}
            for a in rule.actions:
                if isinstance(a, BookmarkAction):
                    jobs["bookmark"] = self._bookmark(rule, a, camera, ts_us)
                elif isinstance(a, MqttAction):
                    jobs["mqtt"] = self._mqtt(a, camera, firing.alarm, event)
                elif isinstance(a, WebhookAction):
                    jobs["webhook"] = self._webhook(rule, a, camera, firing.alarm, event)
                elif isinstance(a, EmailAction):
                    jobs["email"] = self._email(rule, a, camera, firing.alarm, event)
                elif isinstance(a, PtzPresetAction):
                    jobs["ptz_preset"] = self._preset(rule, a, camera, firing.alarm)
                elif isinstance(a, OutputAction):
                    jobs["output"] = self._output(rule, a, camera, firing.alarm)
            results = await asyncio.gather(*jobs.values(), return_exceptions=True)
            for kind, res in zip(jobs, results, strict=True):
                if isinstance(res, BaseException):
                    log.error("rule %d: %s action failed: %s", rule.id, kind, res)
                firing.results[kind] = res is True
        except Exception:
            log.exception("rule %d: actions failed", rule.id)
        finally:
            firing.done.set()
            for cb in self.on_fired:
                cb(firing)

    async def _raise(
        self, rule: Rule, a: AlarmAction, camera: str, ts_us: int, trigger: str, event: dict
    ) -> Alarm:
        now = self.clock.now_us()
        kept = {k: v for k, v in event.items() if k != "path"}  # a long track's path stays out
        alarm = Alarm(0, rule.id, rule.name, camera, a.priority, "new", ts_us or now, trigger,
                      kept, snapshot_path(event), now)  # fmt: skip
        alarm = await self._db(self.store.add_alarm, alarm)
        await self._publish_alarm(alarm)  # workstations first, the audit trail right after
        detail = {"op": "raise", "id": alarm.id, "rule": rule.id}
        by = event.get("by", "") if trigger == "manual" else ""  # who pressed it, or the rule
        await self._db(self.audit.record, by, ALARM_CHANGE, camera, detail)
        return alarm

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Catalog work on the engine's own thread: the shared default pool may be busy with
        retention or API calls, and an alarm must not queue behind them."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def _publish_alarm(self, alarm: Alarm) -> None:
        if self.publish_nats is None:
            return
        try:
            await self.publish_nats(
                alarms_subject(self.server_id, alarm.camera), msgspec.json.encode(alarm)
            )
        except Exception as exc:  # the alarm is in the catalog; workstations re-read it
            log.warning("alarm %d not published: %s", alarm.id, exc)

    async def set_state(
        self, alarm_id: int, state: str, by: str, comment: str, remote: str = ""
    ) -> Alarm | None:
        """Acknowledge or close: stored, audited with who, published to every workstation."""
        now = self.clock.now_us()
        if not await self._db(self.store.set_state, alarm_id, state, by, comment, now):
            return None
        alarm = await self._db(self.store.alarm, alarm_id)
        assert alarm is not None
        await self._publish_alarm(alarm)
        detail = {"op": state, "id": alarm_id, "comment": comment}
        await self._db(self.audit.record, by, ALARM_CHANGE, alarm.camera, detail, remote)
        return alarm

    async def _bookmark(self, rule: Rule, a: BookmarkAction, camera: str, ts_us: int) -> bool:
        if not camera:
            return False
        start = max(1, ts_us - int(a.pre_s * US_PER_SECOND))
        end = ts_us + int(a.post_s * US_PER_SECOND)
        await asyncio.to_thread(
            self.catalog.add_bookmark, camera, start, end, name=f"alarm: {rule.name}",
            locked=a.lock, now_us=self.clock.now_us(), created_by=f"rule {rule.id}",
        )  # fmt: skip
        return True

    async def _mqtt(self, a: MqttAction, camera: str, alarm: Alarm | None, event: dict) -> bool:
        if self.mqtt is None:
            return False
        body = msgspec.json.encode(alarm) if alarm is not None else json.dumps(event).encode()
        topic = a.topic or "alarms"
        self.mqtt.publish(topic, body)
        self.mqtt.publish(f"{camera}/{topic}", body)
        return True

    def _links(self, alarm: Alarm | None, ttl_s: float) -> dict[str, str | None]:
        """Signed, short-lived links to the alarm's snapshot and clip (server/rules/links.py)."""
        if alarm is None:
            return {"snapshot": None, "clip": None}
        now = self.clock.now_us()

        def link(what: str) -> str:
            path = LINKS_PATH.format(id=alarm.id, what=what)
            return self.base_url + self.links.sign(path, now, ttl_s)

        return {"snapshot": link("snapshot") if alarm.snapshot else None, "clip": link("clip")}

    def _payload(
        self,
        rule: Rule,
        camera: str,
        alarm: Alarm | None,
        event: dict,
        ttl_s: float = DEFAULT_TTL_S,
    ) -> dict:
        return {
            "server_id": self.server_id,
            "rule": {"id": rule.id, "name": rule.name},
            "camera": camera,
            "event": event,
            "alarm": msgspec.to_builtins(alarm) if alarm is not None else None,
            "snapshot": f"/api/v1/events/{event['id']}/snapshot" if event.get("id") else None,
            "links": self._links(alarm, ttl_s),
        }

    async def _webhook(
        self, rule: Rule, a: WebhookAction, camera: str, alarm: Alarm | None, event: dict
    ) -> bool:
        assert self._http is not None
        payload = self._payload(rule, camera, alarm, event, a.links_ttl_s)
        body = json.dumps(payload, separators=(",", ":"))
        out = await post_webhook(self._http, a.url, body.encode(), a.secret, a.timeout_s,
                                 a.retries)  # fmt: skip
        if not out.ok:
            await self._failed(rule, alarm, "webhook", a.url, out.attempts, out.error)
        return out.ok

    async def _email(
        self, rule: Rule, a: EmailAction, camera: str, alarm: Alarm | None, event: dict
    ) -> bool:
        target = ", ".join(a.to)
        if not self.smtp.host:
            await self._failed(rule, alarm, "email", target, 0, "no [smtp] host configured")
            return False
        label = event.get("label") or event.get("kind", "")
        subject = a.subject or f"Vigia: {rule.name} on {camera} ({label})"
        text = json.dumps(self._payload(rule, camera, alarm, event), indent=2)
        snap = snapshot_path(event)
        out = await self.mailer.send(list(a.to), subject, text,
                                     self.root / snap if snap else None)  # fmt: skip
        if not out.ok:
            await self._failed(rule, alarm, "email", target, out.attempts, out.error)
        return out.ok

    async def _device_done(
        self, rule: Rule, alarm: Alarm | None, kind: str, out: DeviceResult
    ) -> bool:
        camera = out.target.split(" ", 1)[0]
        detail = {"op": kind, "target": out.target, "ok": out.ok, "error": out.error,
                  "rule": rule.id}  # fmt: skip
        await self._db(self.audit.record, f"rule {rule.id}", PTZ, camera, detail)
        if not out.ok:
            await self._failed(rule, alarm, kind, out.target, 1, out.error)
        return out.ok

    async def _preset(
        self, rule: Rule, a: PtzPresetAction, camera: str, alarm: Alarm | None
    ) -> bool:
        target = a.camera or camera
        if not target:
            out = DeviceResult(False, f"? preset {a.preset}", "the event names no camera")
        else:
            out = await self.devices.goto_preset(target, a.preset)
        return await self._device_done(rule, alarm, "ptz_preset", out)

    async def _output(self, rule: Rule, a: OutputAction, camera: str, alarm: Alarm | None) -> bool:
        target = a.camera or camera
        if not target:
            out = DeviceResult(False, f"? output {a.output}", "the event names no camera")
        else:
            out = await self.devices.set_output(target, a.output, a.active)
        ok = await self._device_done(rule, alarm, "output", out)
        if ok and a.revert_s > 0:

            async def revert() -> None:
                await asyncio.sleep(a.revert_s)
                back = await self.devices.set_output(target, a.output, not a.active)
                await self._device_done(rule, alarm, "output", back)

            task = asyncio.get_running_loop().create_task(revert())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return ok

    async def _failed(
        self, rule: Rule, alarm: Alarm | None, kind: str, target: str, attempts: int, error: str
    ) -> None:
        log.warning("rule %d: %s to %s failed after %d tries: %s", rule.id, kind, target,
                    attempts, error)  # fmt: skip
        d = Delivery(0, rule.id, alarm.id if alarm else None, kind, target, attempts, error,  # type: ignore[arg-type]
                     self.clock.now_us())  # fmt: skip
        await asyncio.to_thread(self.store.add_failed, d)
