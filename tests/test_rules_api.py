"""Rules, arming and alarms through the API of a real recorder (in process, real HTTP on
127.0.0.1): admins only for rules, every change audited, bad rules refused with the reason,
operators acknowledge and close alarms, failed deliveries listed."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import aiohttp
import av
import msgspec

from server.api.app import API
from server.config import CameraConfig
from server.service import apply_camera
from tests.conftest import wait_until
from tests.test_api import Api, _json
from tests.test_rules import SECRET, Hooks

RULE = {
    "name": "door at night",
    "trigger": "manual",
    "filters": {"cameras": ["door"]},
    "group": "ground-floor",
    "cooldown_s": 0,
    "actions": [
        {"type": "alarm", "priority": 2},
        {"type": "webhook", "url": "http://127.0.0.1:9/unused", "retries": 0, "timeout_s": 1},
    ],
}


def test_rules_crud_bad_rules_arming_alarms_and_failed_deliveries(tmp_path: Path) -> None:
    api = Api(tmp_path)
    s = api.services
    assert s.rules is not None
    api.ctx.rules = s.rules
    apply_camera(s.catalog, CameraConfig(id="door", name="Door", main="rtsp://127.0.0.1:9/x",
                                         enabled=False), s.clock, "api")  # fmt: skip
    api.users.add("op", "operator-password-1", "operator")

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        await s.rules.start()
        try:
            await steps(http, base)
        finally:
            await s.rules.close()

    async def steps(http: aiohttp.ClientSession, base: str) -> None:
        for change, reason in (
            ({"filters": {"cameras": ["garage"]}}, "unknown camera 'garage'"),
            ({"filters": {"zones": ["gate"]}}, "unknown zone or line 'gate'"),
            ({"schedule": ["mon-fri 08:00-25:00"]}, "time out of range"),
            ({"schedule": ["someday 08:00-09:00"]}, "unknown day"),
            ({"actions": []}, "actions"),
            ({"trigger": "earthquake"}, "trigger"),
        ):
            async with http.post(f"{base}{API}/rules", json={**RULE, **change}) as r:
                body = await _json(r, 400, "Error")
                assert reason in body["error"]["message"], body
        async with http.post(f"{base}{API}/rules", json=RULE) as r:
            rule = await _json(r, 201, "Rule")
        rid = rule["id"]
        async with http.put(f"{base}{API}/rules/{rid}", json={**RULE, "name": "door"}) as r:
            assert (await _json(r, 200, "Rule"))["name"] == "door"
        async with http.get(f"{base}{API}/rules") as r:
            assert [x["name"] for x in await _json(r, 200)] == ["door"]
        # disarmed group: a manual trigger does nothing; armed: an alarm
        async with http.put(f"{base}{API}/arming/ground-floor", json={"armed": False}) as r:
            await _json(r, 200, "Arming")
        trigger = {"camera": "door", "comment": "test"}
        async with http.post(f"{base}{API}/rules/{rid}/trigger", json=trigger) as r:
            assert r.status == 204
        async with http.put(f"{base}{API}/arming/ground-floor", json={"armed": True}) as r:
            await _json(r, 200, "Arming")
        async with http.post(f"{base}{API}/rules/{rid}/trigger", json=trigger) as r:
            assert r.status == 202

        async def alarms(http: aiohttp.ClientSession) -> list[dict]:
            async with http.get(f"{base}{API}/alarms") as r:
                return await _json(r, 200, {"type": "array"})

        deadline = asyncio.get_running_loop().time() + 20
        while not await alarms(http) or not s.rules.store.failed():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        (alarm,) = await alarms(http)
        assert (alarm["state"], alarm["priority"], alarm["trigger"]) == ("new", 2, "manual")
        async with http.get(f"{base}{API}/deliveries/failed") as r:
            (failed,) = await _json(r, 200, {"type": "array"})
        assert failed["kind"] == "webhook" and failed["alarm_id"] == alarm["id"]
        # an operator acknowledges, then closes; a closed alarm stays closed
        async with aiohttp.ClientSession() as anon:
            login = {"name": "op", "password": "operator-password-1"}
            async with anon.post(f"{base}{API}/auth/login", json=login) as r:
                token = (await _json(r, 200))["token"]
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as op:
            async with op.get(f"{base}{API}/rules") as r:
                await _json(r, 403, "Error")  # rules are for admins
            url = f"{base}{API}/alarms/{alarm['id']}"
            async with op.patch(url, json={"state": "acknowledged", "comment": "on it"}) as r:
                body = await _json(r, 200, "Alarm")
            assert (body["state"], body["by"], body["comment"]) == ("acknowledged", "op", "on it")
            async with op.patch(url, json={"state": "closed", "comment": "done"}) as r:
                assert (await _json(r, 200, "Alarm"))["state"] == "closed"
            async with op.patch(url, json={"state": "acknowledged"}) as r:
                await _json(r, 409, "Error")
            async with op.patch(url, json={"state": "new"}) as r:
                await _json(r, 400, "Error")
        async with http.delete(f"{base}{API}/rules/{rid}") as r:
            assert r.status == 204
        async with http.get(f"{base}{API}/rules/{rid}") as r:
            await _json(r, 404, "Error")
        async with http.get(f"{base}{API}/audit") as r:
            entries = await _json(r, 200)
        trail = [(e["user"], e["action"], e["detail"].get("op")) for e in reversed(entries)
                 if e["action"] in ("rule-change", "arming-change", "alarm-change")]  # fmt: skip
        raised = ("admin", "alarm-change", "raise")  # by whoever pressed the manual trigger
        assert raised in trail
        trail.remove(raised)  # written by the engine, concurrently with the trigger's entry
        assert trail == [
            ("admin", "rule-change", "create"),
            ("admin", "rule-change", "update"),
            ("admin", "arming-change", None),
            ("admin", "rule-change", "trigger"),
            ("admin", "arming-change", None),
            ("admin", "rule-change", "trigger"),
            ("op", "alarm-change", "acknowledged"),
            ("op", "alarm-change", "closed"),
            ("admin", "rule-change", "delete"),
        ]

    try:
        api.run(scenario)
    finally:
        api.close()


def test_webhook_links_serve_the_snapshot_and_clip_while_signed_and_fresh(
    tmp_path: Path, camera_host, camera_clips
) -> None:
    """A camera records over RTSP; a manual rule's webhook (a real receiver checking the HMAC
    header) carries signed links: the clip link answers an MP4 of the alarm's moment without a
    token, the snapshot link the JPEG; a changed signature, path or expiry and an expired link
    get 403."""
    api = Api(tmp_path)
    s = api.services
    assert s.rules is not None
    api.ctx.rules = s.rules
    host = camera_host({"main": camera_clips[0][0]})

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        hooks = Hooks()
        await hooks.start()
        s.rules.base_url = base
        await s.rules.start()
        try:
            await steps(http, base, hooks)
        finally:
            await s.rules.close()
            await hooks.stop()

    async def steps(http: aiohttp.ClientSession, base: str, hooks: Hooks) -> None:
        new = {"id": "door", "name": "Door", "main": host.url("main")}
        async with http.post(f"{base}{API}/cameras", json=new) as r:
            await _json(r, 201, "Camera")

        def recording() -> bool:
            sid = s.catalog.stream_id("door", "main")
            return any(seg.frames >= 75 for seg in s.catalog.segments(sid))

        await asyncio.to_thread(wait_until, recording, 30, "three seconds of the door")
        rule = {"name": "door", "trigger": "manual", "cooldown_s": 0, "actions": [
            {"type": "alarm"}, {"type": "webhook", "url": hooks.url, "secret": SECRET,
                                "links_ttl_s": 60}]}  # fmt: skip
        async with http.post(f"{base}{API}/rules", json=rule) as r:
            rid = (await _json(r, 201, "Rule"))["id"]
        async with http.post(f"{base}{API}/rules/{rid}/trigger", json={"camera": "door"}) as r:
            assert r.status == 202
        await asyncio.wait_for(hooks.arrived.wait(), 20)
        assert hooks.bad_signatures == 0
        links = hooks.got[0]["links"]
        assert links["snapshot"] is None  # a manual alarm has no picture
        clip = links["clip"]
        assert clip.startswith(f"{base}{API}/links/alarms/")
        async with aiohttp.ClientSession() as anon:  # no token
            async with anon.get(clip) as r:
                assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"
                body = await r.read()
            with av.open(io.BytesIO(body)) as mp4:
                assert sum(1 for _ in mp4.decode(video=0)) >= 25
            path, _, query = clip.partition("?")
            sig = query.rsplit("=", 1)[1]
            exp = int(query.split("&")[0].split("=")[1])
            other = "0" * len(sig)
            for bad in (f"{path}?exp={exp}&sig={other}",  # forged
                        f"{path}?exp={exp + 3600}&sig={sig}",  # prolonged
                        clip.replace("/clip?", "/snapshot?"),  # another resource
                        f"{path}?sig={sig}"):  # fmt: skip
                async with anon.get(bad) as r:
                    await _json(r, 403, "Error")
            # an alarm with a snapshot: its link serves the JPEG; expired, it is refused
            alarm = s.rules.store.alarms((), 1)[0]
            (s.data.root / "events/door").mkdir(parents=True, exist_ok=True)
            (s.data.root / "events/door/9.jpg").write_bytes(b"\xff\xd8jpeg")
            snap = s.rules.store.add_alarm(
                msgspec.structs.replace(alarm, id=0, snapshot="events/door/9.jpg")
            )
            now = s.clock.now_us()
            link = f"{API}/links/alarms/{snap.id}/snapshot"
            async with anon.get(base + s.rules.links.sign(link, now, 60)) as r:
                assert r.status == 200 and await r.read() == b"\xff\xd8jpeg"
            async with anon.get(base + s.rules.links.sign(link, now - 120_000_000, 60)) as r:
                assert "expired" in (await _json(r, 403, "Error"))["error"]["message"]

    try:
        api.run(scenario)
    finally:
        api.close()
