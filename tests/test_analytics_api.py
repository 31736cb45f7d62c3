"""Analytics in a real recorder: vtest served as a camera, the default model converted on first
start, detections on NATS, events and snapshots, tracks (JSON and Arrow), motion search, zones
through the API, metrics; and a broken model that leaves recording alone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import cv2
import nats
import numpy as np
import pyarrow as pa
import pytest

from server.datadir import DataDir
from server.protocol.live import ai_subject
from server.sim.clips import transcode_to_h264
from server.sim.footage import VTEST
from tests.conftest import EVERY_FRAME, camera_toml

ADMIN = {"name": "admin", "password": "admin-password-1"}


def _toml(url: str, analytics: str) -> str:
    return camera_toml([("vt", url, None)], analytics=analytics)


async def _login(http: aiohttp.ClientSession, base: str) -> dict:
    async with http.post(f"{base}/auth/login", json=ADMIN) as r:
        assert r.status == 200
        return await r.json()


async def _poll(fetch, ok, timeout: float, what: str):
    """Poll an HTTP view until ``ok(value)``: the recorder has no push for these."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fetch()
        if ok(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}: {value!r}"[:2000])
        await asyncio.sleep(0.25)


def test_analytics_through_the_api_and_nats(
    server_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = transcode_to_h264(VTEST, tmp_path / "vtest.mp4", max_seconds=30)
    monkeypatch.setenv("VIGIA_ADMIN_PASSWORD", ADMIN["password"])
    server = server_process(_toml(f"file://{clip}", f"fps = 5\n{EVERY_FRAME}"))
    server.start()
    base = f"{server.base_url}/api/v1"  # known once the API listens

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            session = await _login(http, base)
            auth = {"Authorization": f"Bearer {session['token']}"}

            async def get(path: str, **params):
                async with http.get(f"{base}{path}", headers=auth, params=params) as r:
                    return r.status, await r.read(), r.headers.get("Content-Type", "")

            async def js(path: str, **params):
                status, body, _ = await get(path, **params)
                assert status == 200, body
                return json.loads(body)

            # a zone over the right-hand walkway, and a line across it
            zone = {"name": "Walkway", "points": [[0.55, 0.35], [0.95, 0.35], [0.95, 0.7],
                                                  [0.55, 0.7]], "labels": ["person"]}  # fmt: skip
            async with http.put(f"{base}/cameras/vt/zones/walkway", headers=auth, json=zone) as r:
                assert r.status == 200, await r.text()
            bad = {"kind": "line", "points": [[0.1, 0.1]]}
            async with http.put(f"{base}/cameras/vt/zones/x", headers=auth, json=bad) as r:
                assert r.status == 400
            assert [z["id"] for z in await js("/cameras/vt/zones")] == ["walkway"]

            # detections of each analysed frame on NATS, with the API's credentials
            creds = session["nats"]
            nc = await nats.connect(
                f"nats://127.0.0.1:{creds['port']}", user=creds["user"], password=creds["password"]
            )
            got: list[dict] = []
            enough = asyncio.Event()

            async def on_msg(msg) -> None:
                got.append(json.loads(msg.data))
                if sum(1 for m in got if m["objects"]) >= 5:
                    enough.set()

            sid = DataDir(server.data_dir).server_id()
            await nc.subscribe(ai_subject(sid, "vt"), cb=on_msg)
            await asyncio.wait_for(enough.wait(), 90)
            await nc.close()
            labels = {o["label"] for m in got for o in m["objects"]}
            assert "person" in labels
            box = next(o["box"] for m in got for o in m["objects"])
            assert all(0 <= v <= 1 for v in box)

            status = await js("/cameras/vt/analytics")
            assert status["status"]["state"] == "running", status
            assert status["status"]["provider"] == "CPUExecutionProvider"
            cams = await js("/cameras")
            assert cams[0]["analytics"]["state"] == "running"

            now = (await js("/server"))["time_us"]
            window = {"start_us": now - 600_000_000, "end_us": now + 60_000_000}
            events = await _poll(
                lambda: js("/events", camera="vt", kind="object", **window),
                lambda ev: any(e["snapshot"] for e in ev),
                60,
                "an object event with a snapshot",
            )
            ev = next(e for e in events if e["snapshot"])
            status_code, jpeg, ctype = await get(f"/events/{ev['id']}/snapshot")
            assert status_code == 200 and ctype == "image/jpeg"
            img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert img.shape[:2] == (576, 768)
            assert (await js(f"/events/{ev['id']}"))["id"] == ev["id"]
            assert (await get("/events/999999"))[0] == 404
            people = await js("/events", camera="vt", label="person", min_score="0.3", **window)
            assert people and all(e["label"] == "person" for e in people)

            # tracks for playback overlays, as JSON and as an Arrow IPC stream
            t_window = {"start_us": now - 120_000_000, "end_us": now + 60_000_000}
            rows = await _poll(
                lambda: js("/tracks", camera="vt", **t_window), bool, 30, "stored track rows"
            )
            assert {"ts_us", "track_id", "label", "score", "x1", "y1", "x2", "y2"} <= set(rows[0])
            assert [r["ts_us"] for r in rows] == sorted(r["ts_us"] for r in rows)
            status_code, body, ctype = await get("/tracks", camera="vt", format="arrow", **t_window)
            assert status_code == 200 and ctype == "application/vnd.apache.arrow.stream"
            table = pa.ipc.open_stream(body).read_all()
            assert table.num_rows >= len(rows) and table.schema.names[0] == "ts_us"
            far = {"start_us": 2**62 - 1000, "end_us": 2**62}  # past the calendar: nothing
            assert await js("/tracks", camera="vt", **far) == []
            too_long = {"start_us": now - 7200_000_000, "end_us": now}
            assert (await get("/tracks", camera="vt", **too_long))[0] == 400

            # area motion search over the window
            search = {"camera": "vt", "region": [0, 0, 1, 1], **window}
            async with http.post(f"{base}/search/motion", headers=auth, json=search) as r:
                found = await r.json()
                assert r.status == 200, found
            assert found["ranges"] and all(g["start_us"] < g["end_us"] for g in found["ranges"])
            search["region"] = [0.5, 0.5, 0.2, 0.9]
            async with http.post(f"{base}/search/motion", headers=auth, json=search) as r:
                assert r.status == 400

            # metrics show the pipeline as counters (rates are rate() in Prometheus: no state
            # between scrapes, right with any number of scrapers); settings apply live
            async def scrape() -> str:
                async with http.get(f"{server.base_url}/metrics") as r:
                    return await r.text()

            analysed = 'vigia_analytics_frames_analysed_total{camera="vt"}'

            def count(text: str) -> float:
                (line,) = [x for x in text.splitlines() if x.startswith(analysed + " ")]
                return float(line.split()[1])

            text = await scrape()
            for name in (
                analysed,
                'vigia_analytics_detections_total{camera="vt",label="person"}',
                "vigia_analytics_inference_ms",
            ):
                assert name in text, name
            assert "vigia_analytics_fps" not in text
            first = count(text)
            await _poll(scrape, lambda t: count(t) > first, 30, "the analysed frames counter")
            async with http.patch(
                f"{base}/cameras/vt/analytics", headers=auth, json={"fps": 2}
            ) as r:
                assert r.status == 200 and (await r.json())["fps"] == 2
            status = await _poll(
                lambda: js("/cameras/vt/analytics"),
                lambda s: s["status"]["state"] == "running" and s["status"]["analysed"] > 0,
                30,
                "analytics at the new rate",
            )
            assert status["status"]["fps"] == 2

    asyncio.run(scenario())
    assert server.stop() == 0, server.log()


def test_broken_model_is_reported_and_recording_goes_on(
    server_process, camera_clips: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model" * 100)
    monkeypatch.setenv("VIGIA_ADMIN_PASSWORD", ADMIN["password"])
    clip = camera_clips[0][0]
    server = server_process(_toml(f"file://{clip}", f'model = "{broken}"'))
    server.start()
    base = f"{server.base_url}/api/v1"

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            session = await _login(http, base)
            auth = {"Authorization": f"Bearer {session['token']}"}

            async def analytics():
                async with http.get(f"{base}/cameras/vt/analytics", headers=auth) as r:
                    return (await r.json())["status"]

            status = await _poll(analytics, lambda s: s["state"] == "error", 30, "an error")
            assert "broken.onnx" in status["reason"], status

            async with http.get(f"{base}/server", headers=auth) as r:
                now_us = (await r.json())["time_us"]

            async def segments():
                params = {"start_us": now_us - 60_000_000, "end_us": now_us + 600_000_000}
                async with http.get(
                    f"{base}/cameras/vt/segments", headers=auth, params=params
                ) as r:
                    return await r.json()

            segs = await _poll(
                segments, lambda s: s and s[-1]["fragments"], 30, "recorded fragments"
            )
            assert segs[-1]["frames"] > 0

    asyncio.run(scenario())
    assert server.stop() == 0, server.log()
