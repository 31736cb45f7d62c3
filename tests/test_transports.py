"""RTSP transports per stream (issue 15): a camera whose RTSP server offers UDP only
(GStreamer's, limited with ``set_protocols``) is recorded with ``transport = "auto"`` (TCP is
refused, UDP works, the status says so); the same camera forced to TCP stays in error with the
reason; a stream's transport round-trips through the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from server.api.app import API
from server.sim.rtsp_cameras import RtspCameraHost
from tests.test_api import Api, check


def test_udp_only_camera_is_recorded_with_auto_and_status_says_udp(
    tmp_path: Path, camera_host: Callable[..., RtspCameraHost], camera_clips: list
) -> None:
    host = camera_host({"cam": camera_clips[0][0]}, udp_only=True, name="udp-only")
    api = Api(tmp_path)

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        cams = f"{base}{API}/cameras"
        for body in (
            {"id": "auto", "name": "Auto", "main": host.url("cam")},
            {"id": "tcp", "name": "TCP", "main": host.url("cam"), "transport_main": "tcp"},
        ):
            async with http.post(cams, json=body) as r:
                assert r.status == 201, await r.text()
                check(await r.json(), "Camera")
        deadline = time.monotonic() + 40
        while True:
            async with http.get(f"{cams}/auto") as r:
                main = (await r.json())["streams"][0]
            if main["state"] == "online" and main["packets"] > 25:
                break
            assert time.monotonic() < deadline, main
            await asyncio.sleep(0.2)
        assert (main["transport"], main["transport_in_use"]) == ("auto", "udp")
        async with http.get(f"{cams}/tcp") as r:
            forced = (await r.json())["streams"][0]
        # refused at once (RTSP 461): by the time auto has 25 packets, TCP has been refused
        assert (forced["transport"], forced["state"], forced["packets"]) == ("tcp", "error", 0)
        assert forced["reason"] and forced["transport_in_use"] is None
        async with http.patch(f"{cams}/tcp", json={"transport_main": "udp"}) as r:
            assert r.status == 200 and (await r.json())["streams"][0]["transport"] == "udp"
        async with http.patch(f"{cams}/tcp", json={"transport_main": "sctp"}) as r:
            assert r.status == 400

    try:
        api.run(scenario)
        cat = api.services.catalog
        segments = cat.segments(cat.stream_id("auto", "main"))
        assert segments and segments[0].bytes > 0
    finally:
        api.close()
