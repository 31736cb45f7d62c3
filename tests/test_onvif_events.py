"""Camera events (issue 15, deliverable 5): ONVIF pull-point events become events of kind
``camera``, and relay outputs are switched through the API.

IPyCam, the real ONVIF camera of the other ONVIF tests, has no events service and no relay
outputs (``tests/test_onvif_ptz.py`` shows how the recorder answers that); these tests talk to
``tests/onvif_events_device.py``, a small SOAP device with a pull point and a relay, over real
HTTP through onvif-zeep-async, sending notifications written as cameras write them
(``tests/fixtures/onvif/notifications.xml``). Everything of ours is real: the subscriber, the
catalog, the API, the recorder process and its rules engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import nats
import pytest

from server.api.app import API
from server.catalog import Catalog
from server.catalog.analytics import AnalyticsCatalog
from server.catalog.catalog import SegmentRow
from server.catalog.onvif import CameraOnvif, OnvifRow
from server.clock import SystemClock
from server.config import CameraConfig
from server.datadir import DataDir
from server.onvif import events as camera_events
from server.onvif.device import OnvifError
from server.onvif.events import CameraEvents
from server.onvif.notifications import label_of
from server.onvif.outputs import switch_output
from server.protocol.live import events_subject
from server.service import apply_camera
from tests.conftest import ServerProcess, camera_toml
from tests.helpers import refused_port
from tests.onvif_events_device import FIXTURES, EventsDevice, notification
from tests.test_api import Api, check

USER_PASSWORD = "user-password-1"
ADMIN_PASSWORD = "admin-password-1"
MOTION = "tns1:RuleEngine/CellMotionDetector/Motion"
HIK_SOURCE = {
    "VideoSourceConfigurationToken": "VideoSourceToken",
    "VideoAnalyticsConfigurationToken": "VideoAnalyticsToken",
    "Rule": "MyMotionDetectorRule",
}


def fixture_messages() -> list[str]:
    text = (FIXTURES / "notifications.xml").read_text()
    return re.findall(r"<wsnt:NotificationMessage>.*?</wsnt:NotificationMessage>", text, re.S)


@pytest.fixture
def device() -> Iterator[EventsDevice]:
    dev = EventsDevice().start()
    try:
        yield dev
    finally:
        dev.stop()


def _add(catalog: Catalog, camera_id: str, address: str, enabled: bool = True) -> None:
    """A camera as the recorder keeps one added from its device (its RTSP address refuses:
    these tests are about events, not video)."""
    url = f"rtsp://127.0.0.1:{refused_port()}/x"
    clock = SystemClock()
    apply_camera(catalog, CameraConfig(camera_id, camera_id, url, enabled=enabled), clock, "api")
    row = OnvifRow(camera_id, address, "admin", "secret", "main", None)
    CameraOnvif(catalog).put(row, now_us=clock.now_us())


@pytest.mark.parametrize(
    ("topic", "label"),
    [
        ("tns1:RuleEngine/CellMotionDetector/Motion", "motion"),  # Hikvision, Dahua, most
        ("tns1:VideoSource/MotionAlarm", "motion"),  # the ONVIF profile S property
        ("tns1:RuleEngine/MotionRegionDetector/Motion", "motion"),
        ("tns1:Device/tnsaxis:Sensor/PIR", "motion"),  # Axis PIR sensor
        ("tns1:RuleEngine/TamperDetector/Tamper", "tamper"),
        ("tns1:VideoSource/GlobalSceneChange/ImagingService", "tamper"),
        ("tns1:VideoSource/ImageTooBlurry/AnalyticsService", "tamper"),
        ("tns1:Device/Trigger/DigitalInput", "input"),
        ("tns1:Device/tnsaxis:IO/Port", "input"),
        ("tns1:Device/Trigger/Relay", "relay"),
        ("tns1:RuleEngine/LineDetector/Crossed", "analytics"),
        ("tns1:RuleEngine/FieldDetector/ObjectsInside", "analytics"),
        ("tns1:RuleEngine/MyRuleDetector/PeopleDetect", "analytics"),  # Reolink
        ("tns1:Monitoring/ProcessorUsage", None),
        ("tns1:Device/HardwareFailure/StorageFailure", None),
        ("tns1:Monitoring/OperatingTime/LastReset", None),
        ("tns1:RecordingConfig/JobState", None),
        ("tns1:Device/Trigger/SubscriptionExpired", None),  # 'pir' inside a word is no PIR
        ("", None),
    ],
)
def test_topics_read_as_camera_event_labels(topic: str, label: str | None) -> None:
    assert label_of(topic) == label


def test_notifications_become_camera_events_renewed_and_resubscribed(
    device: EventsDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixture's notifications through the pull point into the catalog and to the rules'
    feed; a short-lived subscription is renewed; a device that forgets it (a reboot) gets a
    new one, and what was going on when it was lost ends there."""
    monkeypatch.setattr(camera_events, "RETRY_INITIAL_S", 0.2)
    device.max_lifetime_s = 2.0  # renewed at 80 %: 1.6 s
    catalog = Catalog(tmp_path / "catalog.db")
    _add(catalog, "door", device.address)
    _add(catalog, "off", device.address, enabled=False)  # disabled: no subscription
    fed: list[dict] = []
    figures: dict[str, float] = {}
    manager = CameraEvents(catalog, SystemClock(), "srv", on_event=fed.append)

    async def until(what: str, ok, timeout: float = 15.0) -> None:
        sub = manager.subscribers["door"]
        deadline = time.monotonic() + timeout
        while not ok():
            left = deadline - time.monotonic()
            assert left > 0, f"{what}: {sub.status}, fed {fed}"
            sub.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.changed.wait(), min(left, 0.5))

    async def scenario() -> None:
        await manager.start()
        try:
            assert set(manager.subscribers) == {"door"}
            sub = manager.subscribers["door"]
            await until("subscribed", lambda: sub.status.state == "subscribed")
            messages = fixture_messages()
            assert len(messages) == 11
            sent = time.monotonic()
            assert await asyncio.to_thread(device.send, *messages) == 1
            await until("9 phases", lambda: len(fed) >= 9)
            figures["first_9_phases_ms"] = (time.monotonic() - sent) * 1000
            phases = [(m["phase"], m["label"], m["topic"].rsplit("/", 1)[-1]) for m in fed]
            assert phases == [
                ("start", "motion", "Motion"),
                ("start", "tamper", "Tamper"),
                ("start", "input", "Port"),
                ("start", "input", "DigitalInput"),
                ("instant", "analytics", "Crossed"),
                ("start", "analytics", "PeopleDetect"),
                ("end", "motion", "Motion"),
                ("end", "input", "DigitalInput"),
                ("start", "tamper", "ImagingService"),
            ], phases
            assert all(m["kind"] == "camera" and m["camera_id"] == "door" for m in fed)
            motion = fed[0]
            assert motion["source"] == (
                "VideoSourceConfigurationToken=VideoSourceToken,"
                "VideoAnalyticsConfigurationToken=VideoAnalyticsToken,Rule=MyMotionDetectorRule"
            )
            assert fed[6]["id"] == motion["id"] and fed[6]["end_us"] >= motion["start_us"]
            assert fed[3]["source"] == "InputToken=DI_0" and fed[2]["source"] == "port=1"
            # the fixture's times are from 2024: the recorder's clock places them
            assert abs(motion["start_us"] - SystemClock().now_us()) < 60_000_000

            # a device time that agrees with ours is kept
            when = SystemClock().now_us() - 2_000_000
            msg = notification(MOTION, HIK_SOURCE, {"IsMotion": "true"})
            msg = re.sub(r'UtcTime="[^"]+"', f'UtcTime="{_iso(when)}"', msg)
            await asyncio.to_thread(device.send, msg)
            await until("motion again", lambda: len(fed) >= 10)
            assert fed[9]["phase"] == "start" and abs(fed[9]["start_us"] - when) < 1000

            await until("renewed", lambda: sub.status.renewals >= 2, timeout=10)
            assert sub.status.subscriptions == 1

            # the camera restarts: the subscription is gone; what was on ends at the loss
            open_before = {m["id"] for m in fed if m["phase"] == "start"} - {
                m["id"] for m in fed if m["phase"] == "end"
            }
            assert len(open_before) == 5
            device.initial = [notification(MOTION, HIK_SOURCE, {"IsMotion": "true"}, "Initialized")]
            await asyncio.to_thread(device.reboot)
            await until("resubscribed", lambda: sub.status.subscriptions == 2)
            await until("motion said again", lambda: len(fed) >= 16)
            ends = {m["id"] for m in fed[10:15] if m["phase"] == "end"}
            assert ends == open_before
            assert fed[15]["phase"] == "start" and fed[15]["label"] == "motion"
        finally:
            await manager.close()

    asyncio.run(scenario())
    db = AnalyticsCatalog(catalog)
    rows = db.events(0, 2**62, kinds=["camera"])
    assert len(rows) == 9  # 8 lasting or instant, + the motion after the reboot
    assert {r.label for r in rows} == {"motion", "tamper", "input", "analytics"}
    # closing unsubscribed and ended the motion the device said was on
    assert all(r.end_us is not None for r in rows)
    assert device.counts.get("Unsubscribe", 0) >= 1 and not device.subscriptions
    # retention without analytics: camera events go with the video older than the oldest kept
    manager.trim_all()
    assert len(db.events(0, 2**62, kinds=["camera"])) == 9  # no video yet: all kept
    stream = catalog.stream_id("door", "main")
    after = max(r.end_us or r.start_us for r in rows) + 1
    catalog.insert_segment(SegmentRow(0, stream, catalog.begin_run(stream, after), after,
                                      after + 1, 1, "door/x.mp4", 1, 1, "h264", 1, 1, b"",
                                      "closed"))  # fmt: skip
    manager.trim_all()
    assert db.events(0, 2**62, kinds=["camera"]) == []
    print(f"camera event figures: {figures}")
    catalog.close()


def test_firmware_refusing_a_subscription_time_gets_its_own(
    device: EventsDevice, tmp_path: Path
) -> None:
    device.refuse_initial_time = True
    catalog = Catalog(tmp_path / "catalog.db")
    _add(catalog, "door", device.address)
    manager = CameraEvents(catalog, SystemClock(), "srv")

    async def scenario() -> None:
        await manager.start()
        sub = manager.subscribers["door"]
        try:
            while sub.status.state == "starting":
                sub.changed.clear()
                await asyncio.wait_for(sub.changed.wait(), 15)
            assert sub.status.state == "subscribed", sub.status
        finally:
            await manager.close()

    asyncio.run(scenario())
    catalog.close()
    assert device.counts["CreatePullPointSubscription"] == 2  # refused, then without a time


def _iso(us: int) -> str:
    t = time.gmtime(us // 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{us % 1_000_000:06d}Z"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    a = Api(tmp_path)
    a.users.add("oper", USER_PASSWORD, "operator")
    a.users.add("view", USER_PASSWORD, "viewer")
    yield a
    a.close()


async def _login(base: str, name: str) -> aiohttp.ClientSession:
    async with aiohttp.ClientSession() as anon:
        body = {"name": name, "password": USER_PASSWORD}
        async with anon.post(f"{base}{API}/auth/login", json=body) as r:
            assert r.status == 200, await r.text()
            token = (await r.json())["token"]
    return aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})


async def _call(http: aiohttp.ClientSession, method: str, url: str, status: int, **kw) -> object:
    async with http.request(method, url, **kw) as r:
        text = await r.text()
        assert r.status == status, f"{method} {url}: {r.status} {text}"
        return await r.json() if text else None


def test_relay_outputs_switched_by_operators_and_audited(api: Api, device: EventsDevice) -> None:
    s = api.services
    _add(s.catalog, "gate", device.address, enabled=False)
    apply_camera(s.catalog, CameraConfig("plain", "Plain", "rtsp://127.0.0.1:9/x", enabled=False),
                 s.clock, "api")  # fmt: skip

    async def scenario(admin: aiohttp.ClientSession, base: str) -> None:
        outs = f"{base}{API}/cameras/gate/outputs"
        oper, view = await _login(base, "oper"), await _login(base, "view")
        try:
            listed = await _call(oper, "GET", outs, 200)
            for o in listed:
                check(o, "RelayOutput")
            assert listed == [
                {"token": "AlarmOut_0", "mode": "Bistable", "idle_state": "open", "delay_s": 0.0}
            ]
            await _call(oper, "PUT", f"{outs}/AlarmOut_0", 204, json={"active": True})
            assert device.relays == {"AlarmOut_0": True}
            err = await _call(view, "PUT", f"{outs}/AlarmOut_0", 403, json={"active": False})
            assert err["error"]["code"] == "forbidden"
            await _call(view, "GET", outs, 403)
            assert device.relays == {"AlarmOut_0": True}
            err = await _call(oper, "PUT", f"{outs}/Siren_9", 422, json={"active": True})
            assert err["error"]["code"] == "no_outputs" and "AlarmOut_0" in err["error"]["message"]
            await _call(oper, "PUT", f"{outs}/AlarmOut_0", 400, json={"active": "yes"})
            err = await _call(admin, "GET", f"{base}{API}/cameras/plain/outputs", 409)
            assert err["error"]["code"] == "no_outputs"
            await _call(admin, "GET", f"{base}{API}/cameras/nowhere/outputs", 404)
            log = await _call(admin, "GET", f"{base}{API}/audit?action=relay", 200)
            seen = [(e["user"], e["target"], e["detail"]["token"], e["detail"]["active"],
                     e["detail"]["outcome"]) for e in reversed(log)]  # fmt: skip
            assert seen == [
                ("oper", "gate", "AlarmOut_0", True, "ok"),
                ("oper", "gate", "Siren_9", True, "unsupported"),
            ], seen
            # the rules engine's action: the first output when none is named
            assert await switch_output(s.catalog, "gate", False) == "AlarmOut_0"
            assert device.relays == {"AlarmOut_0": False}
            with pytest.raises(OnvifError) as exc:
                await switch_output(s.catalog, "plain", True)
            assert exc.value.kind == "unsupported" and "no outputs" in exc.value.message
        finally:
            await oper.close()
            await view.close()

    api.run(scenario)


def test_camera_events_in_search_and_rules_of_a_running_recorder(
    device: EventsDevice, tmp_path: Path
) -> None:
    """A recorder process subscribes by itself; the camera's motion and input are in GET
    /events with kind=camera, reach workstations on the events NATS subject, and the input
    raises the alarm of a rule whose trigger is 'camera' (label filter: tamper, input)."""
    data = DataDir(tmp_path / "data")
    data.create()
    catalog = Catalog(data.catalog)
    _add(catalog, "door", device.address)
    catalog.close()
    (tmp_path / "vigia.toml").write_text(camera_toml([]))
    server = ServerProcess(tmp_path / "data", tmp_path / "vigia.toml", tmp_path / "server.log")
    server.start(env={"VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    try:
        asyncio.run(_recorder_scenario(server.base_url, device, server))
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


async def _recorder_scenario(base: str, device: EventsDevice, server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as anon:
        body = {"name": "admin", "password": ADMIN_PASSWORD}
        async with anon.post(f"{base}{API}/auth/login", json=body) as r:
            assert r.status == 200, await r.text()
            session = await r.json()
    token, grant = session["token"], session["nats"]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        sid = (await _call(http, "GET", f"{base}{API}/server", 200))["id"]
        nc = await nats.connect(grant["url"], user=grant["user"], password=grant["password"])
        live: list[dict] = []

        async def on_event(msg) -> None:
            live.append(json.loads(msg.data))

        await nc.subscribe(events_subject(sid, "door"), cb=on_event)
        await nc.flush()
        try:
            await _events_reach_search_rules_and_nats(base, http, device, server, live)
        finally:
            await nc.close()


async def _events_reach_search_rules_and_nats(
    base: str,
    http: aiohttp.ClientSession,
    device: EventsDevice,
    server: ServerProcess,
    live: list[dict],
) -> None:
    rule = {"name": "door tamper or input", "trigger": "camera",
            "filters": {"cameras": ["door"], "labels": ["tamper", "input"]},
            "actions": [{"type": "alarm", "priority": 1}], "cooldown_s": 0}  # fmt: skip
    await _call(http, "POST", f"{base}{API}/rules", 201, json=rule)
    bad = {**rule, "filters": {"labels": ["person"]}}
    err = await _call(http, "POST", f"{base}{API}/rules", 400, json=bad)
    assert "tamper" in err["error"]["message"]
    deadline = time.monotonic() + 30
    while not device.subscriptions:  # the recorder subscribed on its own
        assert time.monotonic() < deadline, server.log()
        await asyncio.sleep(0.1)
    await asyncio.to_thread(
        device.send,
        notification(MOTION, HIK_SOURCE, {"IsMotion": "true"}),
        notification(
            "tns1:Device/Trigger/DigitalInput", {"InputToken": "DI_0"}, {"LogicalState": "true"}
        ),
    )
    now = int(time.time() * 1e6)
    window = f"start_us={now - 3_600_000_000}&end_us={now + 600_000_000}"
    url = f"{base}{API}/events?kind=camera&{window}"
    while True:
        found = await _call(http, "GET", url, 200)
        alarms = await _call(http, "GET", f"{base}{API}/alarms", 200)
        if len(found) >= 2 and alarms:
            break
        assert time.monotonic() < deadline, (found, alarms, server.log())
        await asyncio.sleep(0.2)
    for ev in found:
        check(ev, "Event")
    assert sorted(e["label"] for e in found) == ["input", "motion"]
    motion = next(e for e in found if e["label"] == "motion")
    assert motion["topic"] == MOTION and motion["end_us"] is None
    mine = await _call(http, "GET", f"{base}{API}/events?kind=motion&{window}", 200)
    assert mine == []  # kind filters: our own motion is another kind
    assert len(alarms) == 1, alarms
    assert alarms[0]["trigger"] == "camera" and alarms[0]["event"]["label"] == "input"
    assert alarms[0]["camera"] == "door" and alarms[0]["priority"] == 1
    while len(live) < 2:  # workstations get them live, as analytics events
        assert time.monotonic() < deadline, live
        await asyncio.sleep(0.05)
    assert sorted((m["phase"], m["label"], m["kind"]) for m in live) == [
        ("start", "input", "camera"),
        ("start", "motion", "camera"),
    ]
    cam = await _call(http, "GET", f"{base}{API}/cameras/door", 200)
    check(cam, "Camera")
    assert cam["events"] == {"state": "subscribed", "reason": "", "events": 2}, cam
