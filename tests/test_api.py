"""The HTTP API on real loopback HTTP, with a real recorder and a real RTSP camera."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import av
import cv2
import jsonschema
import msgspec
import numpy as np
import pytest
from aiohttp import web

from server.api.app import API, ApiContext, make_app
from server.api.auth import PUBLIC_PATHS, PUBLIC_PREFIXES, Security
from server.api.openapi import openapi_document
from server.auth import Audit, LoginRateLimiter, Tokens, Users
from server.config import Config, NatsConfig
from server.datadir import DataDir
from server.export.jobs import ExportJobs
from server.ingest.source import PROBE_FAILED
from server.protocol import models
from server.service import open_services
from tests.conftest import wait_until


def _validator(schema_name: str | dict) -> jsonschema.protocols.Validator:
    doc = openapi_document()
    schema = (
        {"$ref": f"#/components/schemas/{schema_name}"}
        if isinstance(schema_name, str)
        else schema_name
    )
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


def check(body: Any, schema: str | dict) -> None:
    _validator(schema).validate(body)


ADMIN_PASSWORD = "admin-password-1"


class Api:
    """A real recorder (no live distribution) with its API on a free loopback port."""

    def __init__(self, tmp_path: Path) -> None:
        config = Config(nats=NatsConfig(enabled=False))
        self.services = open_services(config, DataDir(tmp_path / "data"))
        s = self.services
        self.users = Users(s.catalog, s.clock)
        self.users.add("admin", ADMIN_PASSWORD, "admin")
        security = Security(
            self.users,
            Tokens(s.catalog, s.clock),
            Audit(s.catalog, s.clock),
            LoginRateLimiter(s.clock),
        )
        self.exports = ExportJobs(s.catalog, s.data, clock=s.clock)
        self.ctx = ApiContext(
            s.catalog,
            s.recorder,
            s.data,
            s.clock,
            s.data.server_id(),
            "t",
            security,
            self.exports,
        )

    def run(
        self,
        scenario: Callable[[aiohttp.ClientSession, str], Coroutine[Any, Any, None]],
        user: str = "admin",
        password: str = ADMIN_PASSWORD,
    ):
        """Run ``scenario`` with an HTTP session logged in as ``user``."""

        async def main() -> None:
            runner = web.AppRunner(make_app(self.ctx))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            try:
                async with aiohttp.ClientSession() as anon:
                    login = {"name": user, "password": password}
                    async with anon.post(f"{base}{API}/auth/login", json=login) as r:
                        token = (await _json(r, 200, "Session"))["token"]
                auth = {"Authorization": f"Bearer {token}"}
                async with aiohttp.ClientSession(headers=auth) as http:
                    await scenario(http, base)
            finally:
                await runner.cleanup()

        asyncio.run(main())

    def close(self) -> None:
        self.exports.close()
        self.services.recorder.stop()
        self.services.catalog.close()


@pytest.fixture
def api(tmp_path: Path):
    a = Api(tmp_path)
    yield a
    a.close()


def test_every_route_is_documented_and_every_documented_path_exists(api: Api) -> None:
    app = make_app(api.ctx)
    routes = {
        (r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"
    }
    documented = {(m, p) for p, ops in openapi_document()["paths"].items() for m in ops}
    assert routes == documented
    # 44 + PATCH /bookmarks/{id} + PTZ, ONVIF discovery (11) + rules (12 + 2 signed links +
    # manual triggers) + archive (3) + site + relay outputs (2)
    assert len(documented) == 44 + 1 + 11 + 15 + 3 + 1 + 2
    jsonschema.Draft202012Validator.check_schema({"components": openapi_document()["components"]})
    # what the document calls public is what the token middleware lets through
    public = {
        p for p, ops in openapi_document()["paths"].items() for op in ops.values()
        if op.get("security") == []
    }  # fmt: skip
    links = {p for p in public if p.startswith(PUBLIC_PREFIXES)}  # signed by the route
    assert links == {
        "/api/v1/links/alarms/{alarm_id}/snapshot",
        "/api/v1/links/alarms/{alarm_id}/clip",
    }
    assert public == PUBLIC_PATHS | {"/", "/web/{name}"} | links


async def _json(resp: aiohttp.ClientResponse, status: int, schema: str | dict | None = None):
    body = await resp.json()
    assert resp.status == status, body
    if schema is not None:
        check(body, schema)
    return body


def test_camera_lifecycle_segments_range_and_timeline(
    api: Api, camera_host, camera_clips: list
) -> None:
    host = camera_host({"main": camera_clips[0][0], "sub": camera_clips[0][1]})

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        new = {"id": "door", "name": "Door", "main": host.url("main"), "sub": host.url("sub")}
        async with http.post(f"{base}{API}/cameras", json=new) as r:
            cam = await _json(r, 201, "Camera")
        assert [s["name"] for s in cam["streams"]] == ["main", "sub"]
        async with http.post(f"{base}{API}/cameras", json=new) as r:
            await _json(r, 409, "Error")

        def recording() -> bool:
            sid = api.services.catalog.stream_id("door", "main")
            return any(s.frames >= 50 for s in api.services.catalog.segments(sid))

        await asyncio.to_thread(wait_until, recording, 30, "two fragments over the API camera")
        now = api.services.clock.now_us()
        window = {"start_us": now - 600_000_000, "end_us": now + 1_000_000}
        async with http.get(f"{base}{API}/cameras/door/segments", params=window) as r:
            (seg,) = await _json(
                r, 200, {"type": "array", "items": {"$ref": "#/components/schemas/Segment"}}
            )
        assert seg["state"] == "open" and len(seg["fragments"]) >= 2
        frag = seg["fragments"][1]
        url = f"{base}{API}/segments/{seg['id']}/media"
        async with http.get(url, headers={"Range": f"bytes=0-{seg['init_bytes'] - 1}"}) as r:
            assert r.status == 206
            init = await r.read()
        end = frag["offset"] + frag["bytes"] - 1
        async with http.get(url, headers={"Range": f"bytes={frag['offset']}-{end}"}) as r:
            assert r.status == 206 and r.headers["Content-Type"] == "video/mp4"
            body = await r.read()
        assert len(body) == frag["bytes"] and body[4:8] == b"moof"
        with av.open(io.BytesIO(init + body)) as c:  # init + one fragment play on their own
            frames = list(c.decode(video=0))
        assert len(frames) == 25  # one GOP of the 25 fps clip

        params = {**window, "camera": "door", "resolution_us": 1_000_000}
        async with http.get(f"{base}{API}/recordings", params=params) as r:
            rec = await _json(r, 200, "Recordings")
        assert len(rec["ranges"]) == 1 and rec["ranges"][0]["start_us"] == seg["start_us"]

        async with http.get(f"{base}{API}/cameras/door/snapshot", params={"stream": "main"}) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
            jpeg = await r.read()
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (360, 640, 3)
        async with http.get(f"{base}/metrics") as r:
            text = await r.text()
        assert 'vigia_stream_online{camera="door",stream="main"} 1.0' in text
        assert 'vigia_api_request_seconds_count{method="GET",route="/api/v1/recordings"}' in text

        async with http.patch(f"{base}{API}/cameras/door", json={"name": "Front door"}) as r:
            assert (await _json(r, 200, "Camera"))["name"] == "Front door"
        async with http.delete(f"{base}{API}/cameras/door") as r:
            assert r.status == 204
        async with http.get(f"{base}{API}/cameras/door") as r:
            cam = await _json(r, 200, "Camera")
        assert not cam["enabled"] and {s["state"] for s in cam["streams"]} == {"stopped"}

    api.run(scenario)


def test_bookmarks_and_probe(api: Api, camera_host, camera_clips: list) -> None:
    host = camera_host({"main": camera_clips[0][0]})

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        async with http.post(f"{base}{API}/cameras/probe", json={"url": host.url("main")}) as r:
            assert await _json(r, 200, "ProbeResult") == {
                "codec": "h264",
                "width": 640,
                "height": 360,
                "fps": 25.0,
            }
        with_picture = {"url": host.url("main"), "snapshot": True}
        async with http.post(f"{base}{API}/cameras/probe", json=with_picture) as r:
            got = await _json(r, 200, "ProbeResult")
        jpeg = base64.b64decode(got["snapshot_jpeg"])
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (360, 640, 3)
        bad = {"url": host.url("nothing-here")}
        async with http.post(f"{base}{API}/cameras/probe", json=bad) as r:
            # one message whatever went wrong: a probe must not map ports (details in the log)
            assert (await _json(r, 422, "Error"))["error"]["message"] == PROBE_FAILED
        cam = {"id": "c1", "name": "C1", "main": host.url("main"), "enabled": False}
        async with http.post(f"{base}{API}/cameras", json=cam) as r:
            await _json(r, 201, "Camera")
        mark = {"camera": "c1", "start_us": 10, "end_us": 20, "name": "x", "locked": True}
        async with http.post(f"{base}{API}/bookmarks", json=mark) as r:
            b = await _json(r, 201, "Bookmark")
        assert b["locked"] is True
        async with http.get(f"{base}{API}/bookmarks", params={"start_us": 0, "end_us": 100}) as r:
            assert [x["id"] for x in await _json(r, 200)] == [b["id"]]
        async with http.delete(f"{base}{API}/bookmarks/{b['id']}") as r:
            assert r.status == 204
        async with http.delete(f"{base}{API}/bookmarks/{b['id']}") as r:
            await _json(r, 404, "Error")

    api.run(scenario)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/cameras", "{not json", 400),
        ("post", "/cameras", "[1, 2]", 400),
        ("post", "/cameras", json.dumps({"id": "UPPER", "name": "x", "main": "rtsp://h/"}), 400),
        ("post", "/cameras", json.dumps({"id": "a", "name": 5, "main": "rtsp://h/"}), 400),
        (
            "post",
            "/cameras",
            json.dumps({"id": "a", "name": "x", "main": "rtsp://h/", "bogus": 1}),
            400,
        ),
        ("get", "/cameras/nope", None, 404),
        ("patch", "/cameras/nope", "{}", 404),
        ("get", "/cameras/nope/segments?start_us=0&end_us=10", None, 404),
        ("get", "/cameras/x/segments?start_us=abc&end_us=10", None, 400),
        ("get", "/cameras/x/segments?start_us=0&end_us=99999999999999999999999", None, 400),
        ("get", "/segments/123456/media", None, 404),
        ("get", "/segments/abc/media", None, 400),
        ("get", "/recordings?start_us=0&end_us=10", None, 400),
        ("get", "/recordings?camera=x&start_us=10&end_us=5", None, 400),
        ("post", "/bookmarks", json.dumps({"camera": "x", "start_us": -1, "end_us": 5}), 400),
        ("post", "/cameras/probe", json.dumps({"url": "file:///etc/passwd"}), 400),
        ("delete", "/bookmarks/99", None, 404),
    ],
)
def test_malformed_requests_get_clear_errors(
    api: Api, method: str, path: str, body: str | None, status: int
) -> None:
    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        async with http.request(
            method, f"{base}{API}{path}", data=body, headers={"Content-Type": "application/json"}
        ) as r:
            err = await _json(r, status, "Error")
        assert err["error"]["message"]

    api.run(scenario)


def test_wall_layouts_per_user_and_shared(api: Api) -> None:
    api.users.add("op", "operator-password-1", "operator")
    wall = {"rows": 2, "cols": 2, "cells": [{"row": 0, "col": 0, "camera": "s/c1"}]}

    async def as_admin(http: aiohttp.ClientSession, base: str) -> None:
        body = {"layout": wall, "shared": True}
        async with http.put(f"{base}{API}/layouts/Lobby", json=body) as r:
            row = await _json(r, 200, "Layout")
        assert row["owner"] == "admin" and row["shared"] is True and row["layout"] == wall
        async with http.put(f"{base}{API}/layouts/Mine", json={"layout": {"rows": 1}}) as r:
            await _json(r, 200, "Layout")
        async with http.put(f"{base}{API}/layouts/Bad", json={"layout": [1, 2]}) as r:
            await _json(r, 400, "Error")

    async def as_operator(http: aiohttp.ClientSession, base: str) -> None:
        async with http.get(f"{base}{API}/layouts") as r:
            seen = await _json(
                r, 200, {"type": "array", "items": {"$ref": "#/components/schemas/Layout"}}
            )
        assert [(x["owner"], x["name"]) for x in seen] == [("admin", "Lobby")]  # not "Mine"
        async with http.put(f"{base}{API}/layouts/Desk", json={"layout": wall}) as r:
            await _json(r, 200, "Layout")
        async with http.put(
            f"{base}{API}/layouts/Desk", json={"layout": wall, "shared": True}
        ) as r:
            await _json(r, 403, "Error")  # sharing is the admins' call
        async with http.delete(f"{base}{API}/layouts/Lobby", params={"owner": "admin"}) as r:
            await _json(r, 403, "Error")
        async with http.get(f"{base}{API}/layouts") as r:
            assert {x["name"] for x in await _json(r, 200)} == {"Lobby", "Desk"}
        async with http.delete(f"{base}{API}/layouts/Desk") as r:
            assert r.status == 204
        async with http.delete(f"{base}{API}/layouts/Desk") as r:
            await _json(r, 404, "Error")

    api.run(as_admin)
    api.run(as_operator, "op", "operator-password-1")


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "field"),
    [
        ("post", "/cameras", {"id": "a", "name": 5, "main": "rtsp://h/"}, "bad_request", "$.name"),
        ("post", "/cameras", {"name": "x", "main": "rtsp://h/"}, "bad_request", "`id`"),
        ("post", "/cameras", {"id": "a", "name": "x", "main": "rtsp://h/", "bogus": 1},
         "bad_request", "`bogus`"),
        ("patch", "/cameras/a", {"retention_days": "30"}, "bad_request", "$.retention_days"),
        ("post", "/bookmarks", {"camera": "a", "start_us": "10", "end_us": 20}, "bad_request",
         "$.start_us"),
        ("post", "/exports", {"cameras": [{"camera": "a", "stream": "hd"}], "start_us": 0,
                              "end_us": 5}, "bad_request", "$.cameras[0].stream"),
        ("put", "/layouts/x", {"layout": {}, "shared": "yes"}, "bad_parameter", "$.shared"),
        ("patch", "/users/admin", {"disabled": "true"}, "bad_request", "$.disabled"),
        ("post", "/users", {"name": "u", "password": "p", "role": "root"}, "bad_request",
         "$.role"),
        ("post", "/search/motion", {"camera": "a", "start_us": 0, "end_us": 1.5},
         "bad_parameter", "$.end_us"),
        ("post", "/auth/login", {"name": 1, "password": "x"}, "bad_request", "$.name"),
    ],
)  # fmt: skip
def test_a_malformed_body_gets_400_naming_the_field(
    api: Api, method: str, path: str, body: dict, code: str, field: str
) -> None:
    """Bodies decode strictly into their Structs: a wrong type ("30" for a number), a missing
    or an unknown field is a 400 whose message says which field."""

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        async with http.request(method, f"{base}{API}{path}", json=body) as r:
            err = await _json(r, 400, "Error")
        assert err["error"]["code"] == code
        assert field in err["error"]["message"], err

    api.run(scenario)


def test_the_document_is_generated_from_the_body_types() -> None:
    """Each body's schema in the document is the one msgspec derives from its Struct."""
    doc = openapi_document()["components"]["schemas"]
    structs = [models.CameraInput, models.Camera, models.ZoneInput, models.Export]
    _, generated = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    for name, schema in generated.items():
        assert doc[name] == schema, name
    assert doc["CameraInput"]["additionalProperties"] is False
    # (?!\n): no trailing newline before $ (issue 19)
    assert doc["CameraInput"]["properties"]["id"]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,63}(?!\\n)$"
