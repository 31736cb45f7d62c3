"""API hardening of issue 19: evidence, exports, logins, input and defaults, each tried the way
an attacker or a careless admin would, on real HTTP against a real recorder."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from server.api.app import API
from server.config import CameraConfig
from server.service import apply_camera
from tests.test_api import ADMIN_PASSWORD, Api

PASSWORD = "oper-password-1"
HOUR_US = 3600 * 1_000_000


@pytest.fixture
def api(tmp_path: Path):
    a = Api(tmp_path)
    s = a.services
    apply_camera(
        s.catalog, CameraConfig("a", "a", "rtsp://127.0.0.1:9/x", enabled=False), s.clock, "api"
    )
    a.users.add("oper", PASSWORD, "operator")
    yield a
    a.close()


async def _token(base: str, name: str, password: str) -> str:
    async with aiohttp.ClientSession() as anon:
        body = {"name": name, "password": password}
        async with anon.post(f"{base}{API}/auth/login", json=body) as r:
            assert r.status == 200, await r.text()
            return (await r.json())["token"]


def test_operator_cannot_delete_a_locked_bookmark(api: Api) -> None:
    """An operator may not delete the admin's locked bookmark, nor its own once locked; the
    admin may; an unlocked one is deleted by whoever has the bookmark right; all audited."""
    now = api.services.clock.now_us()

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        oper = {"Authorization": f"Bearer {await _token(base, 'oper', PASSWORD)}"}
        mark = {"camera": "a", "start_us": now - HOUR_US, "end_us": now, "locked": True}
        async with http.post(f"{base}{API}/bookmarks", json=mark) as r:
            admins = (await r.json())["id"]
        async with http.post(f"{base}{API}/bookmarks", json=mark, headers=oper) as r:
            own_locked = (await r.json())["id"]
        async with http.post(
            f"{base}{API}/bookmarks", json={**mark, "locked": False}, headers=oper
        ) as r:
            unlocked = (await r.json())["id"]
        for bid in (admins, own_locked):
            async with http.delete(f"{base}{API}/bookmarks/{bid}", headers=oper) as r:
                assert r.status == 403, await r.text()
                assert (await r.json())["error"]["code"] == "forbidden"
        async with http.delete(f"{base}{API}/bookmarks/{unlocked}", headers=oper) as r:
            assert r.status == 204
        async with http.delete(f"{base}{API}/bookmarks/{admins}") as r:
            assert r.status == 204
        async with http.get(f"{base}{API}/audit", params={"action": "bookmark-change"}) as r:
            ops = [(e["user"], e["detail"]["op"], e["detail"]["id"]) for e in await r.json()]
        assert ("oper", "delete", unlocked) in ops and ("admin", "delete", admins) in ops
        assert ("oper", "create", own_locked) in ops

    api.run(scenario)


def test_only_admins_unlock_and_owners_edit_unlocked_bookmarks(api: Api) -> None:
    """The rule of docs/design/auth.md: anyone with the right locks; only an admin unlocks or
    changes a locked bookmark; an unlocked one is changed by its owner or an admin; a lock
    keeps its bounds; each change is audited."""
    now = api.services.clock.now_us()

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        oper = {"Authorization": f"Bearer {await _token(base, 'oper', PASSWORD)}"}
        mark = {"camera": "a", "start_us": now - HOUR_US, "end_us": now}
        ids = {}
        for who, headers, locked in (
            ("admin", {}, True),
            ("oper", oper, True),
            ("admin-open", {}, False),
            ("oper-open", oper, False),
        ):
            async with http.post(
                f"{base}{API}/bookmarks", json={**mark, "locked": locked}, headers=headers
            ) as r:
                ids[who] = (await r.json())["id"]  # fmt: skip
        long = {**mark, "start_us": now - 30 * 24 * HOUR_US}
        async with http.post(f"{base}{API}/bookmarks", json=long, headers=oper) as r:
            ids["long"] = (await r.json())["id"]

        async def patch(key: str, body: dict, headers: dict) -> int:
            async with http.patch(
                f"{base}{API}/bookmarks/{ids[key]}", json=body, headers=headers
            ) as r:
                return r.status

        assert await patch("admin", {"locked": False}, oper) == 403
        assert await patch("oper", {"locked": False}, oper) == 403
        assert await patch("oper", {"name": "renamed"}, oper) == 403
        assert await patch("admin-open", {"name": "mine now"}, oper) == 403
        assert await patch("oper-open", {"name": "door"}, oper) == 200
        assert await patch("admin-open", {"locked": True}, oper) == 200  # anyone may lock
        assert await patch("long", {"locked": True}, oper) == 400  # 30 days: too long a lock
        assert await patch("oper", {"locked": False}, {}) == 200  # the admin unlocks
        async with http.delete(f"{base}{API}/bookmarks/{ids['oper']}", headers=oper) as r:
            assert r.status == 204
        async with http.get(f"{base}{API}/audit", params={"action": "bookmark-change"}) as r:
            updates = [e for e in await r.json() if e["detail"]["op"] == "update"]
        assert len(updates) == 3
        assert {(e["user"], e["detail"]["was_locked"], e["detail"]["locked"]) for e in updates} == {
            ("oper", False, False), ("oper", False, True), ("admin", True, False)}  # fmt: skip

    api.run(scenario)


@pytest.mark.parametrize(
    "change",
    [
        {"start_us": 0},  # "keep everything this camera recorded, forever"
        {"end_us": "later"},  # ends a day in the future
        {"description": "x" * 500_000},
    ],
    ids=["all-time", "future", "500kB"],
)
def test_locked_bookmark_windows_and_descriptions_are_bounded(api: Api, change: dict) -> None:
    now = api.services.clock.now_us()
    mark = {"camera": "a", "start_us": now - HOUR_US, "end_us": now, "locked": True, **change}
    if mark["end_us"] == "later":
        mark["end_us"] = now + 24 * HOUR_US

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        oper = {"Authorization": f"Bearer {await _token(base, 'oper', PASSWORD)}"}
        async with http.post(f"{base}{API}/bookmarks", json=mark, headers=oper) as r:
            assert r.status == 400, await r.text()
        window = {"start_us": now - 2 * HOUR_US, "end_us": now + HOUR_US}
        async with http.get(f"{base}{API}/bookmarks", params=window) as r:
            assert await r.json() == []

    api.run(scenario)


def test_login_is_json_only_and_refuses_control_characters(api: Api) -> None:
    """A cross-site form posts ``text/plain``: 415, and the password is not even checked
    (no failure counted); a name with a newline would forge a log line: 400."""

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        url = f"{base}{API}/auth/login"
        good = json.dumps({"name": "oper", "password": PASSWORD})
        async with aiohttp.ClientSession() as anon:
            for ctype in ("text/plain", "application/x-www-form-urlencoded"):
                async with anon.post(url, data=good, headers={"Content-Type": ctype}) as r:
                    assert r.status == 415, await r.text()
            forged = {"name": "oper\nINFO login admin", "password": PASSWORD}
            async with anon.post(url, json=forged) as r:
                assert r.status == 400
            async with anon.post(url, json={"name": "oper", "password": PASSWORD}) as r:
                assert r.status == 200

    api.run(scenario)


def test_five_bad_logins_do_not_lock_out_the_other_users_of_an_address(api: Api) -> None:
    """Five wrong passwords for ``oper`` from 127.0.0.1: ``oper`` from there waits (429),
    the admin from the same address logs in at once."""

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        url = f"{base}{API}/auth/login"
        async with aiohttp.ClientSession() as anon:
            statuses = []
            for _ in range(6):
                async with anon.post(url, json={"name": "oper", "password": "wrong-pass"}) as r:
                    statuses.append(r.status)
            assert statuses == [401] * 5 + [429]
            admin = {"name": "admin", "password": ADMIN_PASSWORD}
            async with anon.post(url, json=admin) as r:
                assert r.status == 200, await r.text()

    api.run(scenario)


@pytest.mark.parametrize("password", [" " * 8, "\t" * 12, "aaaaaaaaaa", "abc\x00defgh"])
def test_weak_passwords_are_refused(api: Api, password: str) -> None:
    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        body = {"name": "weak", "password": password}
        async with http.post(f"{base}{API}/users", json=body) as r:
            assert r.status == 400, await r.text()
        async with http.patch(f"{base}{API}/users/oper", json={"password": password}) as r:
            assert r.status == 400, await r.text()

    api.run(scenario)


@pytest.mark.parametrize("path", ["/auth/login", "/bookmarks", "/users"])
def test_deeply_nested_json_is_a_400(api: Api, path: str) -> None:
    """Issue 19: 100,000 nested arrays exhausted the decoder's recursion: a 500, even on login."""
    deep = b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b', "password": "x"}'
    just_too_deep = b'{"name": ' + b"[" * 32 + b"]" * 32 + b"}"

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        for raw in (deep, just_too_deep):
            async with http.post(
                f"{base}{API}{path}", data=raw, headers={"Content-Type": "application/json"}
            ) as r:
                assert r.status == 400, await r.text()
                assert (await r.json())["error"]["code"] == "bad_json"

    api.run(scenario)


@pytest.mark.parametrize("camera_id", ["nl\n", "a\n", "x" * 64 + "\n"])
def test_ids_with_a_trailing_newline_are_refused(api: Api, camera_id: str) -> None:
    """Issue 19: ``^…$`` with ``re.match``/``re.search`` accepts a trailing newline (camera id
    ``"nl\\n"`` reached SQLite); ids are matched whole now, in the API and in the config."""
    from server.config import CAMERA_ID, ConfigError, parse_camera

    assert not CAMERA_ID.fullmatch(camera_id)
    with pytest.raises(ConfigError):
        parse_camera({"id": camera_id, "name": "n", "main": "rtsp://h/"})
    with pytest.raises(ConfigError):  # "" is no sub stream; "\n" is not "" (it was, by ^$)
        parse_camera({"id": "a", "name": "n", "main": "rtsp://h/", "sub": "\n"})

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        cam = {"id": camera_id, "name": "n", "main": "rtsp://h/", "enabled": False}
        async with http.post(f"{base}{API}/cameras", json=cam) as r:
            assert r.status == 400, await r.text()
        async with http.get(f"{base}{API}/cameras") as r:
            assert [c["id"] for c in await r.json()] == ["a"]

    api.run(scenario)


def test_metrics_need_the_scrape_token_when_one_is_set(api: Api) -> None:
    """Issue 19: /metrics was public and lists cameras. With ``[server] metrics_token`` it
    needs that bearer token; without one it answers loopback clients only."""
    from server.api.server import _loopback

    api.ctx.metrics_token = "scrape-token-1"

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        async with aiohttp.ClientSession() as anon:
            async with anon.get(f"{base}/metrics") as r:
                assert r.status == 401
            wrong = {"Authorization": "Bearer scrape-token-2"}
            async with anon.get(f"{base}/metrics", headers=wrong) as r:
                assert r.status == 401
            good = {"Authorization": "Bearer scrape-token-1"}
            async with anon.get(f"{base}/metrics", headers=good) as r:
                assert r.status == 200 and "vigia_" in await r.text()

    api.run(scenario)
    assert _loopback("127.0.0.1") and _loopback("::1")
    assert not _loopback("192.0.2.1") and not _loopback("") and not _loopback(None)


def test_web_viewer_sends_security_headers_and_checks_host(api: Api) -> None:
    """Issue 19: no CSP, frame or referrer policy, and any ``Host`` (DNS rebinding) before."""
    api.ctx.allowed_hosts = ("vms.example.org",)

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        async with aiohttp.ClientSession() as anon:
            for path in ("/", "/web/app.js"):
                async with anon.get(f"{base}{path}") as r:
                    assert r.status == 200
                    csp = r.headers["Content-Security-Policy"]
                    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
                    assert r.headers["X-Frame-Options"] == "DENY"
                    assert r.headers["Referrer-Policy"] == "no-referrer"
                    assert r.headers["X-Content-Type-Options"] == "nosniff"
            for host, status in (
                ("evil.example.com", 421),
                ("localhost:8480", 200),
                ("vms.example.org", 200),
                ("[::1]:8480", 200),
            ):
                async with anon.get(f"{base}/", headers={"Host": host}) as r:
                    assert r.status == status, host

    api.run(scenario)


def test_healthz_reports_live_distribution_and_storage(api: Api) -> None:
    """Issue 19: a recorder whose live distribution is down said ``ok``. Live here is a real
    publisher pointed at a port where no NATS listens; storage is the real volume guard."""
    from server.live.publisher import LivePublisher
    from tests.helpers import refused_port

    guard = api.services.retention.guard
    assert guard is not None
    closed = refused_port()  # bound, never listening: the publisher never connects
    publisher = LivePublisher(f"nats://127.0.0.1:{closed.__enter__()}", api.ctx.server_id)
    publisher.start(wait_s=None)
    api.ctx.live_connected = lambda: publisher.connected
    api.ctx.storage_state = lambda: guard.state
    guard.set_state("ok")  # whatever this machine's free space: the states below are set

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        async with aiohttp.ClientSession() as anon:
            async with anon.get(f"{base}/healthz") as r:
                body = await r.json()
            assert r.status == 200
            assert body["live"] == "disconnected" and body["storage"] == "ok", body
            assert body["status"] == "degraded"
            guard.set_state("full", "test")
            async with anon.get(f"{base}/healthz") as r:
                body = await r.json()
            assert (body["status"], body["storage"]) == ("degraded", "full")
            guard.set_state("ok")

    try:
        api.run(scenario)
    finally:
        publisher.close()
        closed.__exit__(None, None, None)
    api.ctx.live_connected = None  # a process that distributes no live video

    async def without_live(http: aiohttp.ClientSession, base: str) -> None:
        async with http.get(f"{base}/healthz") as r:
            body = await r.json()
        assert (body["status"], body["live"], body["storage"]) == ("ok", "off", "ok"), body

    api.run(without_live)
