"""API hardening of issue 19: evidence, exports, logins, input and defaults, each tried the way
an attacker or a careless admin would, on real HTTP against a real recorder."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from server.api.app import API
from server.config import CameraConfig
from server.service import apply_camera
from tests.test_api import Api

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
