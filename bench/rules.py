"""Rules latency: event -> alarm on a workstation (NATS), -> MQTT message, -> webhook delivered,
p50/p95 with 16 cameras firing events.

    python bench/rules.py [--cameras 16] [--rate 2] [--seconds 20] [--json OUT]

The real engine with real parts around it, as in ``tests/test_rules.py``: the embedded
nats-server with its MQTT listener, a workstation's NATS subscription to the alarms subjects,
an aiomqtt client on ``vigia/events``, an aiohttp webhook receiver checking signatures, an
aiosmtpd server for the e-mail action, a catalog on disk. Each camera fires ``--rate`` "person
enters gate" events per second (as the analytics publishes them); the rule raises an alarm,
bookmarks, publishes to MQTT, calls the webhook and sends an e-mail for every one (no
cooldown). Latency is from handing the event to the engine to its arrival at each receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt
import msgspec
import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.config import CameraConfig
from server.protocol.models.rules import Alarm
from server.service import apply_camera
from tests.test_rules import all_actions, event, jpeg, rig


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


async def run(cameras: int, rate: float, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        async with rig(Path(tmp)) as r:
            cams = [f"cam{i:02d}" for i in range(cameras)]
            for cam in cams:
                apply_camera(r.catalog, CameraConfig(id=cam, name=cam, main="rtsp://127.0.0.1:9/x"),
                             r.engine.clock, "api")  # fmt: skip
            r.add_rule(actions=all_actions(r.hooks.url))
            sent: dict[int, float] = {}
            alarm_at: dict[int, float] = {}
            mqtt_at: dict[int, float] = {}
            creds = r.nats.credentials
            nc = await nats.connect(r.nats.url, **creds.connect_kwargs())

            async def on_alarm(msg) -> None:
                a = msgspec.json.decode(msg.data, type=Alarm)
                if a.state == "new":
                    alarm_at.setdefault(a.event["id"], time.monotonic())

            await nc.subscribe("vigia.srv1.alarms.>", cb=on_alarm)
            await nc.flush()
            login = {"username": creds.user, "password": creds.password}
            async with aiomqtt.Client("127.0.0.1", r.mqtt_port, identifier="bench", **login) as mq:
                await mq.subscribe("vigia/events")

                async def read_mqtt() -> None:
                    async for m in mq.messages:
                        mqtt_at.setdefault(json.loads(m.payload)["id"], time.monotonic())

                reader = asyncio.create_task(read_mqtt())
                eid = 0
                interval = 1.0 / (rate * cameras)
                t0 = time.monotonic()
                while time.monotonic() - t0 < seconds:
                    eid += 1
                    cam = cams[eid % cameras]
                    jpeg(r.root, f"events/{cam}/{eid}.jpg")
                    sent[eid] = time.monotonic()
                    r.engine.feed_event(event(eid, camera=cam))
                    await asyncio.sleep(max(0.0, t0 + eid * interval - time.monotonic()))
                deadline = time.monotonic() + 30
                while (
                    len(r.hooks.got) < eid or len(alarm_at) < eid
                ) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                reader.cancel()
            await nc.close()
            hook_at = {h["event"]["id"]: at for h, at in zip(r.hooks.got, r.hooks.at, strict=True)}
            out = {"cameras": cameras, "events": eid, "rate_per_camera": rate,
                   "mails": len(r.mailbox.messages)}  # fmt: skip
            for name, got in (("alarm", alarm_at), ("mqtt", mqtt_at), ("webhook", hook_at)):
                lat = [(got[i] - sent[i]) * 1e3 for i in sent if i in got]
                out[name] = {
                    "n": len(lat),
                    "p50_ms": round(pct(lat, 0.5), 1),
                    "p95_ms": round(pct(lat, 0.95), 1),
                    "mean_ms": round(statistics.fmean(lat), 1) if lat else None,
                }
            return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=16)
    ap.add_argument("--rate", type=float, default=2.0, help="events per second per camera")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = asyncio.run(run(args.cameras, args.rate, args.seconds))
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
