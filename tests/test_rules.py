"""The rules engine with real parts around it: a catalog, the embedded nats-server with its MQTT
listener, an aiomqtt client, an aiohttp webhook receiver and an aiosmtpd mail server, all on
127.0.0.1. Events go in as the analytics publishes them (``phase`` plus the event row); what
comes out is checked where it lands."""

from __future__ import annotations

import asyncio
import contextlib
import email
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import cv2
import msgspec
import nats
import numpy as np
import pytest
from aiohttp import web

from server.api.auth import NatsGrants
from server.auth import Audit, Role, User
from server.catalog import Catalog
from server.clock import SystemClock
from server.config import CameraConfig, SmtpConfig
from server.datadir import DataDir
from server.live.nats_server import EmbeddedNats
from server.protocol.live import alarms_subject
from server.protocol.models.rules import Alarm, RuleInput
from server.recording.diskspace import StorageGuard
from server.rules import schedule
from server.rules.engine import Firing, RulesEngine
from server.rules.mqtt import MqttBridge
from server.rules.notify import SIGNATURE_HEADER, send_email
from server.service import apply_camera
from tests.helpers import refused_port, smtp_server

SID = "srv1"
SECRET = "hook-secret"
T_S = 20  # generous bound for anything awaited


# --- real receivers ------------------------------------------------------------------------


class Hooks:
    """An aiohttp webhook receiver that checks the HMAC-SHA256 signature of what it gets."""

    def __init__(self) -> None:
        self.got: list[dict] = []
        self.at: list[float] = []  # when each arrived (time.monotonic)
        self.bad_signatures = 0
        self.arrived = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if request.headers.get(SIGNATURE_HEADER) != want:
            self.bad_signatures += 1
            return web.Response(status=401)
        self.got.append(json.loads(body))
        self.at.append(time.monotonic())
        self.arrived.set()
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Mailbox:
    """aiosmtpd's handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class Rig:
    engine: RulesEngine
    catalog: Catalog
    hooks: Hooks
    mailbox: Mailbox
    mqtt_port: int
    nats: EmbeddedNats
    root: Path
    fired: list[Firing] = field(default_factory=list)

    async def fire(self, msg: dict, timeout: float = T_S) -> Firing | None:
        """Feed one event; the firing it caused once its actions are done, or None."""
        n = len(self.fired)
        before = self.engine.fired
        self.engine.feed_event(msg)
        await asyncio.sleep(0)  # the engine takes it on this loop (call_soon_threadsafe)
        await asyncio.sleep(0)
        if self.engine.fired == before:
            return None
        deadline = time.monotonic() + timeout
        while len(self.fired) == n:
            assert time.monotonic() < deadline, "actions did not finish"
            await asyncio.sleep(0.01)
        return self.fired[n]

    def add_rule(self, **kw) -> int:
        body = {"name": "gate", "trigger": "enter", "cooldown_s": 0, **kw}
        rid = self.engine.store.add_rule(msgspec.convert(body, RuleInput), 1)
        self.engine.reload()
        return rid


def jpeg(root: Path, rel: str) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
    assert ok
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(buf.tobytes())
    return buf.tobytes()


def event(eid: int = 1, kind: str = "enter", label: str = "person", zone: str = "gate",
          camera: str = "gatecam", score: float = 0.8, phase: str = "instant") -> dict:  # fmt: skip
    now = time.time_ns() // 1000
    return {"phase": phase, "id": eid, "camera_id": camera, "kind": kind, "label": label,
            "score": score, "start_us": now, "end_us": now, "track_id": 7, "zone_id": zone,
            "direction": None, "box": [0.1, 0.1, 0.2, 0.3], "path": [],
            "snapshot": True}  # fmt: skip


@contextlib.asynccontextmanager
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    root = tmp_path / "data"
    root.mkdir()
    catalog = Catalog(root / "catalog.db")
    clock = SystemClock()
    for cam in ("gatecam", "yard"):
        apply_camera(catalog, CameraConfig(id=cam, name=cam, main="rtsp://127.0.0.1:9/x"),
                     clock, "api")  # fmt: skip
    nats_srv = EmbeddedNats(root / "nats", mqtt_listen="127.0.0.1:0")
    await asyncio.to_thread(nats_srv.start)
    mailbox = Mailbox()
    smtp = smtp_server(mailbox)
    hooks = Hooks()
    await hooks.start()
    engine = RulesEngine(catalog, Audit(catalog, clock), clock, SID, root, tz=UTC,
                         smtp=SmtpConfig(host="127.0.0.1", port=smtp.port))  # fmt: skip
    creds = nats_srv.credentials
    nc = await nats.connect(nats_srv.url, **creds.connect_kwargs())
    engine.publish_nats = nc.publish
    assert nats_srv.mqtt_port
    engine.mqtt = MqttBridge("127.0.0.1", nats_srv.mqtt_port, creds.user, creds.password, "vigia",
                             root)  # fmt: skip
    engine.mqtt.nats_publish = nc.publish
    await engine.start()
    r = Rig(engine, catalog, hooks, mailbox, nats_srv.mqtt_port, nats_srv, root)
    engine.on_fired.append(r.fired.append)
    try:
        await asyncio.wait_for(engine.mqtt.connected.wait(), T_S)
        yield r
    finally:
        await engine.close()
        await nc.close()
        await hooks.stop()
        smtp.stop()
        await asyncio.to_thread(nats_srv.stop)
        catalog.close()


def all_actions(url: str, **webhook) -> list[dict]:
    return [
        {"type": "alarm", "priority": 2},
        {"type": "bookmark", "pre_s": 5, "post_s": 10},
        {"type": "mqtt"},
        {"type": "webhook", "url": url, "secret": SECRET, **webhook},
        {"type": "email", "to": ["guard@example.org"]},
    ]


# --- schedules -------------------------------------------------------------------------------


def test_schedule_ranges_parse_and_cross_midnight() -> None:
    def at(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1e6)

    night = schedule.parse(["fri 22:00-06:00"])  # 2026-12-04 is a Friday
    assert schedule.armed_at(night, at("2026-12-04T23:00"), UTC)
    assert schedule.armed_at(night, at("2026-12-05T05:59"), UTC)
    assert not schedule.armed_at(night, at("2026-12-05T06:00"), UTC)
    assert not schedule.armed_at(night, at("2026-12-04T21:59"), UTC)
    weekend = schedule.parse(["sat,sun 00:00-24:00", "mon-wed 08:00-09:00"])
    assert schedule.armed_at(weekend, at("2026-12-06T12:00"), UTC)
    assert schedule.armed_at(weekend, at("2026-12-02T08:30"), UTC)  # Wednesday
    assert not schedule.armed_at(weekend, at("2026-12-03T08:30"), UTC)  # Thursday
    assert schedule.armed_at((), at("2026-12-03T08:30"), UTC)
    for bad in ("every day 8-9", "mon 25:00-26:00", "funday 08:00-09:00", "mon 08:00-08:00"):
        with pytest.raises(schedule.ScheduleError):
            schedule.parse([bad])


# --- actions ---------------------------------------------------------------------------------


def test_a_matching_event_raises_an_alarm_and_every_notification(tmp_path: Path) -> None:
    """Alarm on NATS, bookmark locked, MQTT event + alarm + snapshot, signed webhook, e-mail
    with the snapshot attached; events that do not match the filters do nothing."""

    async def main() -> None:
        async with rig(tmp_path) as r:
            snap = jpeg(r.root, "events/gatecam/1.jpg")
            creds = r.nats.credentials
            async with aiomqtt.Client("127.0.0.1", r.mqtt_port, username=creds.user,
                                      password=creds.password, identifier="ha") as mq:  # fmt: skip
                await mq.subscribe("vigia/#")
                nc = await nats.connect(r.nats.url, **creds.connect_kwargs())
                alarms = await nc.subscribe(alarms_subject(SID, "gatecam"))
                r.add_rule(filters={"cameras": ["gatecam"], "labels": ["person"],
                                    "zones": ["gate"], "min_score": 0.5},
                           actions=all_actions(r.hooks.url))  # fmt: skip
                # not matching: another label, zone, camera, a low score, a leave
                for ev in (event(label="car"), event(zone="door"), event(camera="yard"),
                           event(score=0.3), event(kind="leave")):  # fmt: skip
                    assert await r.fire(ev) is None
                firing = await r.fire(event())
                assert firing is not None and firing.alarm is not None
                assert firing.results == {"alarm": True, "bookmark": True, "mqtt": True,
                                          "webhook": True, "email": True}  # fmt: skip
                msg = await alarms.next_msg(T_S)
                alarm = msgspec.json.decode(msg.data, type=Alarm)
                assert (alarm.id, alarm.state, alarm.priority, alarm.camera) == (
                    firing.alarm.id,
                    "new",
                    2,
                    "gatecam",
                )
                assert alarm.event["zone_id"] == "gate"
                # the footage around it is bookmarked and locked
                marks = r.catalog.bookmarks("gatecam", 0, 2**62)
                assert len(marks) == 1 and marks[0]["locked"]
                assert marks[0]["end_us"] - marks[0]["start_us"] == 15_000_000
                # webhook: signed (the receiver checked), with the event
                assert r.hooks.bad_signatures == 0 and len(r.hooks.got) == 1
                hook = r.hooks.got[0]
                assert hook["camera"] == "gatecam" and hook["alarm"]["id"] == alarm.id
                assert hook["event"]["label"] == "person"
                # e-mail with the snapshot attached
                assert len(r.mailbox.messages) == 1
                mail = r.mailbox.messages[0]
                assert mail["To"] == "guard@example.org" and "gate" in mail["Subject"]
                parts = [p for p in mail.walk() if p.get_content_type() == "image/jpeg"]
                assert parts and parts[0].get_payload(decode=True) == snap
                # MQTT: every event (also those no rule picked), the alarm, the snapshot
                seen: dict[str, list[bytes]] = {}
                want = {"vigia/events", "vigia/alarms", "vigia/gatecam/person/snapshot",
                        "vigia/available"}  # fmt: skip

                async def collect() -> None:
                    async for m in mq.messages:
                        seen.setdefault(str(m.topic), []).append(bytes(m.payload))
                        if want <= seen.keys() and len(seen["vigia/events"]) >= 6:
                            return

                await asyncio.wait_for(collect(), T_S)
                assert seen["vigia/available"][-1] == b"online"
                labels = [json.loads(b)["label"] for b in seen["vigia/events"]]
                assert "car" in labels and "person" in labels
                assert json.loads(seen["vigia/alarms"][0])["id"] == alarm.id
                assert seen["vigia/gatecam/person/snapshot"][-1] == snap
                await nc.close()

    asyncio.run(main())


def test_webhook_down_retries_then_lists_a_failed_delivery_without_blocking(
    tmp_path: Path,
) -> None:
    """Nothing listens on the webhook's port: 2 retries with backoff, then one failed delivery
    in the catalog; the alarm, bookmark and e-mail are done before the webhook gives up."""

    async def main(closed: int) -> None:
        async with rig(tmp_path) as r:
            jpeg(r.root, "events/gatecam/1.jpg")
            dead = f"http://127.0.0.1:{closed}/hook"
            r.add_rule(actions=all_actions(dead, retries=2, timeout_s=1))
            done_at: dict[str, float] = {}
            t0 = time.monotonic()
            task = asyncio.create_task(r.fire(event()))
            while not r.mailbox.messages:
                assert time.monotonic() - t0 < T_S
                await asyncio.sleep(0.01)
            done_at["email"] = time.monotonic() - t0
            firing = await task
            done_at["all"] = time.monotonic() - t0
            assert firing is not None and firing.alarm is not None
            assert firing.results["webhook"] is False
            assert firing.results["email"] and firing.results["bookmark"]
            assert done_at["email"] < done_at["all"]  # e-mail never waited for the webhook
            assert done_at["all"] >= 2 * 0.5  # two retries, each after >= 0.5 s
            failed = r.engine.store.failed()
            assert len(failed) == 1
            f = failed[0]
            assert (f.kind, f.target, f.attempts, f.alarm_id) == (
                "webhook",
                dead,
                3,
                firing.alarm.id,
            )
            assert "Connect" in f.error or "refused" in f.error.lower()

    with refused_port() as closed:  # bound, never listening, for the whole test
        asyncio.run(main(closed))


def test_schedule_cooldown_and_disarmed_group(tmp_path: Path) -> None:
    """Outside the schedule nothing fires; inside, the cooldown holds; a disarmed camera
    group is silent until armed again."""

    async def main() -> None:
        async with rig(tmp_path) as r:
            now = datetime.now(UTC)

            def hm(d: timedelta) -> str:
                return (now + d).strftime("%H:%M")

            later = f"daily {hm(timedelta(hours=2))}-{hm(timedelta(hours=3))}"
            rid = r.add_rule(schedule=[later], actions=[{"type": "alarm"}])
            assert await r.fire(event(1)) is None
            assert r.engine.store.alarms() == []
            # armed now, with a cooldown
            body = {"name": "gate", "trigger": "enter", "cooldown_s": 3600, "group": "perimeter",
                    "schedule": [f"daily {hm(-timedelta(hours=1))}-{hm(timedelta(hours=1))}"],
                    "actions": [{"type": "alarm"}]}  # fmt: skip
            r.engine.store.put_rule(rid, msgspec.convert(body, RuleInput), 2)
            r.engine.reload()
            assert await r.fire(event(2)) is not None
            assert await r.fire(event(3)) is None  # cooling down (same camera)
            assert await r.fire(event(4, camera="yard")) is not None  # per camera
            # disarm the group: silent; arm it: fires (cooldown off to show it)
            body["cooldown_s"] = 0
            r.engine.store.put_rule(rid, msgspec.convert(body, RuleInput), 3)
            r.engine.store.set_armed("perimeter", False, 4, "admin")
            r.engine.reload()
            assert await r.fire(event(5)) is None
            r.engine.store.set_armed("perimeter", True, 5, "admin")
            r.engine.reload()
            assert await r.fire(event(6)) is not None
            assert len(r.engine.store.alarms()) == 3

    asyncio.run(main())


def test_camera_offline_and_back_and_recording_error_raise_alarms(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path) as r:
            for trig in ("camera_offline", "camera_back", "recording_error"):
                r.add_rule(trigger=trig, actions=[{"type": "alarm", "priority": 1}])

            def status(state: str) -> dict:
                return {"type": "stream", "camera": "yard", "stream": "main", "state": state,
                        "reason": "", "since_us": time.time_ns() // 1000}  # fmt: skip

            for state in ("connecting", "online", "offline", "offline", "online", "error"):
                r.engine.feed_status(status(state))
            deadline = time.monotonic() + T_S
            while len(r.fired) < 3:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # nothing more follows (a repeated state is no change)
            got = sorted(a.trigger for a in r.engine.store.alarms())
            assert got == ["camera_back", "camera_offline", "recording_error"]

    asyncio.run(main())


def test_disk_trouble_fires_from_the_storage_guards_state(tmp_path: Path) -> None:
    """The recorder's real ``StorageGuard`` goes full: one alarm (recorder-wide, no camera);
    still full, nothing more; ok, then unfreeable: a second one, with the guard's reason."""

    async def main() -> None:
        async with rig(tmp_path) as r:
            guard = StorageGuard(DataDir(r.root), 0)
            r.engine.watch("disk_trouble", lambda: (guard.state != "ok", guard.detail))
            r.add_rule(trigger="disk_trouble", filters={"cameras": ["yard"]},
                       actions=[{"type": "alarm", "priority": 1}])  # fmt: skip
            r.engine.check_system()
            assert r.engine.fired == 0
            for state, detail in (("full", "1 MB free"), ("full", "0 MB free"), ("ok", ""),
                                  ("unfreeable", "all locked")):  # fmt: skip
                guard.set_state(state, detail)
                r.engine.check_system()
            assert r.engine.fired == 2
            deadline = time.monotonic() + T_S
            while len(r.fired) < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            alarms = sorted(r.engine.store.alarms(), key=lambda a: a.id)
            assert [(a.trigger, a.camera, a.event["reason"]) for a in alarms] == [
                ("disk_trouble", "", "1 MB free"),
                ("disk_trouble", "", "all locked"),
            ]
            with pytest.raises(ValueError):
                r.engine.watch("camera_back", lambda: (False, ""))

    asyncio.run(main())


def test_an_mqtt_login_sees_only_its_cameras(tmp_path: Path) -> None:
    """The per-login NATS user (``NatsGrants``) logs in to MQTT too: topics of the cameras the
    Vigia user may see arrive, others are refused by the server."""

    async def main() -> None:
        async with rig(tmp_path) as r:
            user = User(2, "guard", Role.OPERATOR, False, frozenset({"gatecam"}), False)
            grants = NatsGrants(r.nats, SID, None, "vigia")  # type: ignore[arg-type]
            assert grants.publish_subjects(user) == ["vigia._arming.*.set"]  # no config right
            viewer = User(3, "eye", Role.VIEWER, False, frozenset({"gatecam"}), False)
            assert grants.publish_subjects(viewer) == []
            ha = NatsGrants(r.nats, SID, None, "vigia", "homeassistant")  # type: ignore[arg-type]
            assert f"homeassistant.*.{SID}_gatecam.>" in ha.subjects(viewer)
            assert not any(s.startswith("homeassistant.switch") for s in ha.subjects(viewer))
            await asyncio.to_thread(r.nats.set_client, "ws-guard", "guard-pass-123456",
                                    grants.subjects(user),
                                    publish=grants.publish_subjects(user))  # fmt: skip
            creds = r.nats.credentials
            nc = await nats.connect(r.nats.url, **creds.connect_kwargs())
            sets = await nc.subscribe("vigia.*.*.set")
            await nc.flush()
            login = {"username": "ws-guard", "password": "guard-pass-123456"}
            async with aiomqtt.Client("127.0.0.1", r.mqtt_port, identifier="g", **login) as mq:
                await mq.subscribe("vigia/gatecam/#")
                await mq.subscribe("vigia/yard/#")  # refused: not the guard's camera
                await mq.subscribe("vigia/available")
                jpeg(r.root, "events/yard/1.jpg")
                jpeg(r.root, "events/gatecam/2.jpg")
                await r.fire(event(1, camera="yard"))
                await r.fire(event(2, camera="gatecam"))
                topics: set[str] = set()

                async def collect() -> None:
                    async for m in mq.messages:
                        topics.add(str(m.topic))
                        if "vigia/gatecam/person/snapshot" in topics:
                            return

                await asyncio.wait_for(collect(), T_S)
                assert "vigia/gatecam/events" in topics and "vigia/available" in topics
                assert not any(t.startswith("vigia/yard") for t in topics)
                # /set: arming yes (bookmarks right), recording no (config right); in this order
                # on one connection, the refused one would have arrived first
                await mq.publish("vigia/gatecam/recording/set", b"OFF")
                await mq.publish("vigia/_arming/night/set", b"OFF")
                msg = await sets.next_msg(T_S)
                assert (msg.subject, msg.data) == ("vigia._arming.night.set", b"OFF")
            await nc.close()

    asyncio.run(main())


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM), made here."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp / "smtp.crt", tmp / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def test_email_uses_starttls_when_the_server_offers_it(tmp_path: Path) -> None:
    """aiosmtpd requiring STARTTLS: the mail gets through, encrypted, with its attachment."""
    import ssl

    cert, key = _self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    mailbox = Mailbox()
    smtp = smtp_server(mailbox, tls_context=ctx, require_starttls=True)
    snap = tmp_path / "snap.jpg"
    snap.write_bytes(b"\xff\xd8jpeg")
    try:
        cfg = SmtpConfig(host="127.0.0.1", port=smtp.port, ca_file=str(cert))
        out = asyncio.run(send_email(cfg, ["a@example.org"], "s", "body", snap))
        assert out.ok, out.error
        (mail,) = mailbox.messages
        assert [p.get_content_type() for p in mail.walk()][-1] == "image/jpeg"
        # without trusting the certificate it is refused, never sent in the clear
        out = asyncio.run(send_email(SmtpConfig(host="127.0.0.1", port=smtp.port),
                                     ["a@example.org"], "s", "body", None))  # fmt: skip
        assert not out.ok and "certificate" in out.error.lower()
        assert len(mailbox.messages) == 1
    finally:
        smtp.stop()


def test_the_bookmark_action_locks_footage_that_retention_keeps(
    tmp_path: Path, camera_clips: list
) -> None:
    """Real segments 3 days old, camera retention 1 day: the segment around an event whose rule
    bookmarks it survives retention, the one before it goes."""
    from server.recording.retention import Retention, VolumeLimits
    from tests.test_retention import NOW, _setup

    data, catalog, clock = _setup(tmp_path, camera_clips, {"a": 1.0})
    segs = catalog.segments(catalog.stream_id("a", "main"))
    kept = segs[1]
    engine = RulesEngine(catalog, Audit(catalog, clock), clock, SID, data.root, tz=UTC)
    rule = {"name": "evidence", "trigger": "enter", "cooldown_s": 0,
            "actions": [{"type": "bookmark", "pre_s": 0.5, "post_s": 0.5}]}  # fmt: skip
    engine.store.add_rule(msgspec.convert(rule, RuleInput), NOW)
    fired: list[Firing] = []

    async def main() -> None:
        await engine.start()
        engine.on_fired.append(fired.append)
        try:
            ev = {**event(1, camera="a"), "start_us": kept.start_us + 1_000_000}
            engine.feed_event(ev)
            while not fired:
                await asyncio.sleep(0.01)
        finally:
            await engine.close()

    asyncio.run(main())
    assert fired[0].results == {"bookmark": True}
    Retention(catalog, data, VolumeLimits(), clock).run_once()
    left = {s.path for s in catalog.segments()}
    assert kept.path in left and segs[0].path not in left
    assert (data.root / kept.path).exists()
    catalog.close()


def test_the_mailer_keeps_one_connection_and_makes_it_again_when_dropped(tmp_path: Path) -> None:
    """Three alarms' mails over one SMTP connection; the server restarts (the kept connection
    dies with it): the next mail goes over a new one; a server that is gone is a failure."""
    from aiosmtpd.controller import Controller

    from server.rules.notify import Mailer

    mailbox = Mailbox()
    smtp = smtp_server(mailbox)
    port = smtp.port

    async def main() -> None:
        nonlocal smtp
        mailer = Mailer(SmtpConfig(host="127.0.0.1", port=port))
        try:
            for i in range(3):
                out = await mailer.send(["a@example.org"], f"alarm {i}", "body", None)
                assert out.ok, out.error
            assert mailer.connections == 1 and len(mailbox.messages) == 3
            await asyncio.to_thread(smtp.stop)
            smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
            await asyncio.to_thread(smtp.start)
            out = await mailer.send(["a@example.org"], "after the restart", "body", None)
            assert out.ok, out.error
            assert (
                mailer.connections == 2 and mailbox.messages[-1]["Subject"] == "after the restart"
            )
            await asyncio.to_thread(smtp.stop)
            out = await mailer.send(["a@example.org"], "nobody there", "body", None)
            assert not out.ok and out.error
        finally:
            await mailer.close()

    try:
        asyncio.run(main())
    finally:
        with contextlib.suppress(Exception):
            smtp.stop()


def test_archive_trouble_fires_when_the_archivers_store_fails(tmp_path: Path) -> None:
    """A real ``Archiver`` whose store does not answer (nothing listens on its port) turns to
    ``error`` trying to upload a closed segment: one ``archive_trouble`` alarm, with its error."""
    from types import SimpleNamespace

    from tests.test_archive_tiers import Site

    store = SimpleNamespace(endpoint=f"http://127.0.0.1:{refused_port()}", bucket="vigia")
    site = Site(tmp_path / "archive", store)  # type: ignore[arg-type]

    async def main() -> None:
        async with rig(tmp_path) as r:
            archiver = site.archiver
            r.engine.watch("archive_trouble",
                           lambda: (archiver.state == "error", archiver.error or ""))  # fmt: skip
            r.add_rule(trigger="archive_trouble", actions=[{"type": "alarm", "priority": 2}])
            r.engine.check_system()
            assert r.engine.fired == 0  # starting: not trouble
            run = site.camera("door")
            site.segment("door", run, site.clock.t - 3600 * 1_000_000)
            archiver.start()
            deadline = time.monotonic() + T_S
            while archiver.state != "error":
                assert time.monotonic() < deadline, archiver.status()
                await asyncio.sleep(0.05)
            r.engine.check_system()
            r.engine.check_system()  # still failing: no second alarm
            assert r.engine.fired == 1
            while not r.fired:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            (alarm,) = r.engine.store.alarms()
            assert alarm.trigger == "archive_trouble" and alarm.event["reason"] == archiver.error

    try:
        asyncio.run(main())
    finally:
        site.close()
