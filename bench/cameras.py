"""ONVIF cameras: PTZ command latency (API call → first frame showing the move, p50/p95) and
WS-Discovery time, against real IPyCam devices.

    python bench/cameras.py [--quick] [--trials 20] [--json OUT]

Two IPyCam processes run in a network namespace joined to ours by a veth pair (as in
``tests/onvif_cameras.py``; needs root); the recorder's API runs in this process
(``tests/test_api.py``'s ``Api``). PTZ: each trial zooms in and centres (absolute move),
waits a second, takes the latest decoded frame of the camera's main stream as reference,
sends ``POST /ptz/move`` (pan right, 0.5) and times the first frame whose picture has shifted
more than 2 px (phase correlation), then stops. The latency includes the API and SOAP round
trip, IPyCam's crop, its H.264 encode (ffmpeg) and RTSP, and our decode: glass to glass for
the move, on this machine. Discovery: ``GET /discovery/onvif`` with the waits given, and how
many of the two devices each found. Camera events: a motion notification queued on a pull-point
device (``tests/onvif_events_device.py``; IPyCam has no events service) → the stored event
phase handed to the rules' feed (the recorder's subscriber, catalog write included), and
``PUT /cameras/{id}/outputs/{token}`` → the device's relay switched (API call time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/cameras.py` from a checkout

import aiohttp  # noqa: E402

from bench.record import git_state, machine  # noqa: E402
from server.api.app import API  # noqa: E402
from server.catalog.onvif import CameraOnvif, OnvifRow  # noqa: E402
from server.config import CameraConfig, OnvifConfig  # noqa: E402
from server.onvif.events import CameraEvents  # noqa: E402
from server.service import apply_camera  # noqa: E402
from tests.onvif_cameras import (  # noqa: E402
    PASSWORD,
    USERNAME,
    FrameWatch,
    IpyCam,
    scene_clip,
    shift,
)
from tests.onvif_events_device import EventsDevice, notification  # noqa: E402
from tests.test_api import Api  # noqa: E402
from tests.test_whep import NetNs, netns_unavailable  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


async def ptz_trials(http: aiohttp.ClientSession, base: str, watch: FrameWatch, n: int) -> dict:
    ptz = f"{base}{API}/cameras/dome/ptz"
    latencies, api_ms = [], []
    for _ in range(n):
        async with http.post(f"{ptz}/absolute", json={"pan": -0.5, "tilt": 0, "zoom": 0.5}) as r:
            assert r.status == 204, await r.text()
        await asyncio.sleep(1.0)
        _, before = await asyncio.to_thread(watch.latest, time.monotonic())
        sent = time.monotonic()
        async with http.post(f"{ptz}/move", json={"pan": 0.5}) as r:
            assert r.status == 204, await r.text()
        api_ms.append((time.monotonic() - sent) * 1000)
        moved = None
        deadline = sent + 3.0
        while moved is None and time.monotonic() < deadline:
            for t, frame in watch.since(sent):
                if abs(shift(before, frame)[0]) > 2:
                    moved = t
                    break
            await asyncio.sleep(0.01)
        async with http.post(f"{ptz}/stop") as r:
            assert r.status == 204
        if moved is not None:
            latencies.append((moved - sent) * 1000)
    return {
        "trials": n,
        "moved": len(latencies),
        "first_moved_frame_ms": {
            "p50": pct(latencies, 0.5),
            "p95": pct(latencies, 0.95),
            "min": min(latencies, default=None),
            "max": max(latencies, default=None),
        },
        "api_call_ms": {"p50": pct(api_ms, 0.5), "p95": pct(api_ms, 0.95)},
    }


async def discovery_runs(http: aiohttp.ClientSession, base: str, waits_ms: list[int], n: int):
    out = {}
    for wait in waits_ms:
        took, found = [], []
        for _ in range(n):
            t0 = time.monotonic()
            async with http.get(f"{base}{API}/discovery/onvif?timeout_ms={wait}") as r:
                devices = await r.json()
            took.append((time.monotonic() - t0) * 1000)
            found.append(len(devices))
        out[str(wait)] = {"call_ms_p50": statistics.median(took), "found_min": min(found),
                          "found_max": max(found)}  # fmt: skip
    return out


async def event_trials(
    http: aiohttp.ClientSession, base: str, api: Api, device: EventsDevice, n: int
) -> dict:
    s = api.services
    arrived = asyncio.Event()
    events = CameraEvents(s.catalog, s.clock, "bench", on_event=lambda _msg: arrived.set())
    await events.start()
    latencies, relay_ms = [], []
    try:
        sub = events.subscribers["door"]
        while sub.status.state != "subscribed":
            sub.changed.clear()
            await asyncio.wait_for(sub.changed.wait(), 10)
        topic = "tns1:RuleEngine/CellMotionDetector/Motion"
        for i in range(n):
            arrived.clear()
            msg = notification(topic, {"Rule": "MyMotionDetectorRule"},
                               {"IsMotion": "true" if i % 2 == 0 else "false"})  # fmt: skip
            t0 = time.monotonic()
            await asyncio.to_thread(device.send, msg)
            await asyncio.wait_for(arrived.wait(), 10)
            latencies.append((time.monotonic() - t0) * 1000)
        for i in range(n):
            t0 = time.monotonic()
            url = f"{base}{API}/cameras/door/outputs/AlarmOut_0"
            async with http.put(url, json={"active": i % 2 == 0}) as r:
                assert r.status == 204, await r.text()
            relay_ms.append((time.monotonic() - t0) * 1000)
    finally:
        await events.close()
    return {
        "notification_to_event_ms": {"p50": pct(latencies, 0.5), "p95": pct(latencies, 0.95)},
        "relay_switch_ms": {"p50": pct(relay_ms, 0.5), "p95": pct(relay_ms, 0.95)},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 PTZ trials, 2 discoveries per wait")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    reason = netns_unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    trials = 5 if args.quick else args.trials
    runs = 2 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="bench-cameras-") as tmp_name:
        tmp = Path(tmp_name)
        ns = NetNs()
        ns.create()
        clip = scene_clip(tmp / "scene.mp4")
        cams = [IpyCam(ns, tmp, clip, name="Dome"), IpyCam(ns, tmp, clip, name="Gate")]
        watch = None
        api = None
        device = EventsDevice().start()
        try:
            for cam in cams:
                cam.start()
            api = Api(tmp / "rec")
            api.ctx.onvif = OnvifConfig(discovery_interfaces=(ns.host_addr,))
            s = api.services
            apply_camera(s.catalog, CameraConfig("dome", "Dome", cams[0].main_url,
                                                 enabled=False), s.clock, "api")  # fmt: skip
            row = OnvifRow("dome", cams[0].address, USERNAME, PASSWORD, "Profile_Main", None)
            CameraOnvif(s.catalog).put(row, now_us=s.clock.now_us())
            # enabled (events follow enabled cameras), its stream refused: not pulled
            apply_camera(s.catalog, CameraConfig("door", "Door", "rtsp://127.0.0.1:9/x"),
                         s.clock, "api")  # fmt: skip
            row = OnvifRow("door", device.address, "admin", "secret", "main", None)
            CameraOnvif(s.catalog).put(row, now_us=s.clock.now_us())
            watch = FrameWatch(cams[0].main_url)
            watch.latest(timeout=30)
            result: dict = {}

            async def scenario(http: aiohttp.ClientSession, base: str) -> None:
                result["ptz"] = await ptz_trials(http, base, watch, trials)
                result["discovery"] = await discovery_runs(http, base, [300, 1500], runs)
                result["events"] = await event_trials(http, base, api, device, trials)

            api.run(scenario)
        finally:
            if watch is not None:
                watch.close()
            if api is not None:
                api.close()
            for cam in cams:
                cam.stop()
            device.stop()
            ns.delete()
    p = result["ptz"]["first_moved_frame_ms"]
    print(f"PTZ move → first moved frame: p50 {p['p50']:.0f} ms, p95 {p['p95']:.0f} ms "
          f"({result['ptz']['moved']}/{trials} moved); API call p50 "
          f"{result['ptz']['api_call_ms']['p50']:.1f} ms")  # fmt: skip
    for wait, d in result["discovery"].items():
        print(f"discovery, {wait} ms wait: call {d['call_ms_p50']:.0f} ms, found "
              f"{d['found_min']}..{d['found_max']} of 2")  # fmt: skip
    ev = result["events"]
    print(f"camera event, notification → stored and fed: p50 "
          f"{ev['notification_to_event_ms']['p50']:.1f} ms, p95 "
          f"{ev['notification_to_event_ms']['p95']:.1f} ms; relay switch API call p50 "
          f"{ev['relay_switch_ms']['p50']:.1f} ms")  # fmt: skip
    out = args.json or ROOT / "bench" / "results" / (
        f"cameras-{datetime.now():%Y%m%d-%H%M%S}{'-quick' if args.quick else ''}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "git": git_state(), **result}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
