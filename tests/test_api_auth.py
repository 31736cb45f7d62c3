"""Who may do what over the API: roles × endpoint classes, per-camera rights, the login limit
and the audit trail."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from server.api.app import API
from server.config import CameraConfig
from server.recording.segmenter import RecordingSettings, SegmentWriter
from server.service import apply_camera
from tests.conftest import ROOT
from tests.helpers import clip_packets, ingest_packet
from tests.test_api import Api

PASSWORD = "secret-password-1"


@pytest.fixture
def api(tmp_path: Path, camera_clips: list):
    a = Api(tmp_path)
    s = a.services
    for cam in ("a", "b"):  # cameras with recordings, not pulled (enabled = False)
        apply_camera(
            s.catalog, CameraConfig(cam, cam, "rtsp://127.0.0.1:9/x", enabled=False), s.clock, "api"
        )
        rec = SegmentWriter(s.catalog, s.data.root, cam, "main", RecordingSettings())
        info, packets = clip_packets(camera_clips[0][0])
        rec.on_connect(info)
        t0 = s.clock.now_us() - 60_000_000
        for data, pts, dts, key in packets:
            recv = t0 + int((dts - packets[0][2]) * info.time_base * 1_000_000)
            rec.on_packet(ingest_packet(data, pts, dts, key, recv, info.time_base))
        rec.close()
    a.users.add("oper", PASSWORD, "operator")
    a.users.add("view", PASSWORD, "viewer", cameras=["a"])
    yield a
    a.close()


def _fill(value: object, fill: dict) -> object:
    if isinstance(value, str):
        text = value.format(**fill)
        return int(text) if text.isdigit() and value.startswith("{") else text
    return value


def _segment_of(api: Api, camera: str) -> int:
    cat = api.services.catalog
    return cat.segments(cat.stream_id(camera, "main"))[0].id


EXPECTED = {
    # name: (method, path, body, {role: status})
    "list cameras": ("get", "/cameras", None, {"admin": 200, "oper": 200, "view": 200}),
    "camera a": ("get", "/cameras/a", None, {"admin": 200, "oper": 200, "view": 200}),
    "camera b": ("get", "/cameras/b", None, {"admin": 200, "oper": 200, "view": 403}),
    "add camera": (
        "post",
        "/cameras",
        {"id": "c-{role}", "name": "c", "main": "rtsp://h/", "enabled": False},
        {"admin": 201, "oper": 403, "view": 403},
    ),
    "change camera": (
        "patch",
        "/cameras/a",
        {"name": "A"},
        {"admin": 200, "oper": 403, "view": 403},
    ),
    "probe": (
        "post",
        "/cameras/probe",
        {"url": "rtsp://127.0.0.1:9/x"},
        {"admin": 422, "oper": 403, "view": 403},
    ),
    "segments a": (
        "get",
        "/cameras/a/segments?start_us={start}&end_us={now}",
        None,
        {"admin": 200, "oper": 200, "view": 200},
    ),
    "segments b": (
        "get",
        "/cameras/b/segments?start_us={start}&end_us={now}",
        None,
        {"admin": 200, "oper": 200, "view": 403},
    ),
    "media a": ("get", "/segments/{seg_a}/media", None, {"admin": 200, "oper": 200, "view": 200}),
    "media b": ("get", "/segments/{seg_b}/media", None, {"admin": 200, "oper": 200, "view": 403}),
    "timeline b": (
        "get",
        "/recordings?camera=b&start_us={start}&end_us={now}",
        None,
        {"admin": 200, "oper": 200, "view": 403},
    ),
    "bookmark a": (
        "post",
        "/bookmarks",
        {"camera": "a", "start_us": 1, "end_us": 2},
        {"admin": 201, "oper": 201, "view": 403},
    ),
    "audit": ("get", "/audit", None, {"admin": 200, "oper": 403, "view": 403}),
    "users": ("get", "/users", None, {"admin": 200, "oper": 403, "view": 403}),
    "export a": (
        "post",
        "/exports",
        {"cameras": [{"camera": "a"}], "start_us": "{start}", "end_us": "{now}"},
        {"admin": 202, "oper": 202, "view": 403},
    ),
}


@pytest.mark.parametrize("role", ["admin", "oper", "view"])
def test_role_matrix(api: Api, role: str) -> None:
    now = api.services.clock.now_us()
    fill = {
        "role": role,
        "now": now,
        "start": now - 600_000_000,
        "seg_a": _segment_of(api, "a"),
        "seg_b": _segment_of(api, "b"),
    }
    got: dict[str, int] = {}

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        for name, (method, path, body, _) in EXPECTED.items():
            if isinstance(body, dict):
                body = {k: _fill(v, fill) for k, v in body.items()}
            async with http.request(method, f"{base}{API}{path.format(**fill)}", json=body) as r:
                got[name] = r.status
                if r.status >= 400:
                    assert "error" in await r.json()
        async with http.get(f"{base}{API}/cameras") as r:
            seen = {c["id"] for c in await r.json()}
        assert seen == (
            {"a"}
            if role == "view"
            else {"a", "b", "c-admin"} - (set() if role == "admin" else {"c-admin"})
        )

    api.run(
        scenario,
        user="admin" if role == "admin" else role,
        password=PASSWORD if role != "admin" else "admin-password-1",
    )
    assert got == {name: exp[3][role] for name, exp in EXPECTED.items()}


def test_no_token_bad_token_and_login_limit(api: Api) -> None:
    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        async with aiohttp.ClientSession() as anon:
            async with anon.get(f"{base}{API}/cameras") as r:
                assert r.status == 401
            bad = {"Authorization": "Bearer not-a-token"}
            async with anon.get(f"{base}{API}/cameras", headers=bad) as r:
                assert r.status == 401
            async with anon.get(f"{base}/healthz") as r:
                assert r.status == 200  # public
            wrong = {"name": "oper", "password": "nope-nope"}
            statuses = []
            for _ in range(6):
                async with anon.post(f"{base}{API}/auth/login", json=wrong) as r:
                    statuses.append(r.status)
            assert statuses == [401] * 5 + [429]
        async with http.post(f"{base}{API}/auth/logout") as r:
            assert r.status == 204
        async with http.get(f"{base}{API}/cameras") as r:
            assert r.status == 401, "a revoked token no longer works"

    api.run(scenario)
    entries = api.ctx.security.audit.query(0, 2**62, None, None, 100)
    actions = [e.action for e in entries]
    assert actions.count("login-failed") == 5 and "login-refused" in actions
    assert "logout" in actions


def test_changes_and_archive_access_are_audited(api: Api) -> None:
    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        async with http.patch(f"{base}{API}/cameras/a", json={"name": "Gate"}) as r:
            assert r.status == 200
        now = api.services.clock.now_us()
        window = {"start_us": now - 600_000_000, "end_us": now}
        async with http.get(f"{base}{API}/cameras/b/segments", params=window) as r:
            assert r.status == 200
        async with http.get(f"{base}{API}/audit", params={"action": "config-change"}) as r:
            (entry,) = await r.json()
        assert (entry["user"], entry["target"]) == ("admin", "a")

    api.run(scenario)
    access = api.ctx.security.audit.query(0, 2**62, "admin", "archive-access", 10)
    assert [e.target for e in access] == ["b"]


def test_export_over_the_api_is_signed_and_verifiable(api: Api, tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        seg = api.services.catalog.segment(_segment_of(api, "a"))
        assert seg is not None
        body = {
            "cameras": [{"camera": "a"}],
            "start_us": seg.start_us + 1_000_000,
            "end_us": seg.end_us - 1_000_000,
            "format": "mkv",
        }
        async with http.post(f"{base}{API}/exports", json=body) as r:
            job = await r.json()
            assert r.status == 202, job
        for _ in range(200):  # the job runs in the background: poll its state, as clients do
            async with http.get(f"{base}{API}/exports/{job['id']}") as r:
                job = await r.json()
            if job["state"] in ("done", "failed"):
                break
            await asyncio.sleep(0.05)
        assert job["state"] == "done", job
        for name in job["files"]:
            async with http.get(f"{base}{API}/exports/{job['id']}/files/{name}") as r:
                assert r.status == 200
                (out / name).write_bytes(await r.read())

    api.run(scenario)
    ok = _verify(out)
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
    video = next(p for p in out.iterdir() if p.suffix == ".mkv")
    data = bytearray(video.read_bytes())
    data[len(data) // 2] ^= 0x01
    video.write_bytes(bytes(data))
    bad = _verify(out)
    assert bad.returncode == 1 and "FAILED" in bad.stdout


def test_exports_are_their_owners_and_quota_is_429(api: Api) -> None:
    """Issue 19: an operator may not read, download or delete the admin's export (403); the
    owner and admins may, and each access is audited; a used-up quota answers 429."""

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        seg = api.services.catalog.segment(_segment_of(api, "a"))
        assert seg is not None
        body = {"cameras": [{"camera": "a"}], "start_us": seg.start_us, "end_us": seg.end_us}
        async with http.post(f"{base}{API}/exports", json=body) as r:
            job = await r.json()
            assert r.status == 202, job
        for _ in range(200):  # the job runs in the background: poll its state, as clients do
            async with http.get(f"{base}{API}/exports/{job['id']}") as r:
                job = await r.json()
            if job["state"] in ("done", "failed"):
                break
            await asyncio.sleep(0.05)
        assert job["state"] == "done", job
        url = f"{base}{API}/exports/{job['id']}"
        async with aiohttp.ClientSession() as anon:
            login = {"name": "oper", "password": PASSWORD}
            async with anon.post(f"{base}{API}/auth/login", json=login) as r:
                oper = {"Authorization": f"Bearer {(await r.json())['token']}"}
        for method, path in (("get", ""), ("get", f"/files/{job['files'][0]}"), ("delete", "")):
            async with http.request(method, url + path, headers=oper) as r:
                assert r.status == 403, (method, path, await r.text())
        async with http.get(f"{url}/files/{job['files'][0]}") as r:
            assert r.status == 200
        async with http.delete(url) as r:
            assert r.status == 204
        async with http.get(f"{base}{API}/audit", params={"action": "export"}) as r:
            ops = [e["detail"].get("op") for e in await r.json()]
        assert {"create", "download", "delete"} <= set(ops), ops
        api.exports.max_pending_per_user = 0  # the operator's quota is used up
        async with http.post(f"{base}{API}/exports", json=body, headers=oper) as r:
            assert r.status == 429, await r.text()
            assert (await r.json())["error"]["code"] == "quota"

    api.run(scenario)


def _verify(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "verify",
            str(directory),
            "--key",
            str(directory / "server.pub"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_admin_manages_users_over_the_api(api: Api) -> None:
    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        new = {"name": "guard", "password": "guard-password-1", "role": "viewer", "cameras": ["b"]}
        async with http.post(f"{base}{API}/users", json=new) as r:
            assert r.status == 201 and (await r.json())["cameras"] == ["b"]
        async with http.post(f"{base}{API}/users", json=new) as r:
            assert r.status == 409
        weak = {**new, "name": "weak", "password": "x"}
        async with http.post(f"{base}{API}/users", json=weak) as r:
            assert r.status == 400
        async with http.patch(f"{base}{API}/users/guard", json={"disabled": True}) as r:
            assert r.status == 200 and (await r.json())["disabled"] is True
        async with http.patch(f"{base}{API}/users/admin", json={"role": "viewer"}) as r:
            assert r.status == 400, "the last admin stays an admin"

    api.run(scenario)
    assert [e.action for e in api.ctx.security.audit.query(0, 2**62, "admin", "user-change", 10)]
