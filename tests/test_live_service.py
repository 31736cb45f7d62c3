"""Live video from a real vigia-server process, through its embedded nats-server."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys

import aiohttp
import av
import nats
import pytest

from server.datadir import DataDir
from server.live.nats_server import load_or_create_credentials
from server.protocol.live import decode_live_packet, event_stream_name, live_subject
from tests.conftest import ROOT, camera_toml, wait_until


async def _receive(url: str, user: str, password: str, subject: str, count: int) -> list[bytes]:
    nc = await nats.connect(url, user=user, password=password, connect_timeout=5)
    got: list[bytes] = []
    done = asyncio.Event()

    async def on_msg(msg) -> None:
        got.append(msg.data)
        if len(got) >= count:
            done.set()

    await nc.subscribe(subject, cb=on_msg)
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await nc.close()
    return got


def test_recorder_publishes_every_packet_decodably(
    server_process, camera_host, camera_clips: list
) -> None:
    host = camera_host({"main": camera_clips[0][0]})
    toml = camera_toml([("cam", host.url("main"), None)])
    server = server_process(toml)
    server.start()
    port = server.ports()["nats"]
    state = server.data_dir / "nats"
    creds = load_or_create_credentials(state)
    sid = wait_until(
        lambda: (server.data_dir / "server-id").exists() and DataDir(server.data_dir).server_id(),
        10,
        "the server id",
    )
    subject = live_subject(sid, "cam", "main")
    msgs = asyncio.run(
        _receive(f"nats://127.0.0.1:{port}", creds.user, creds.password, subject, 100)
    )
    # a viewer may join mid-GOP: it starts at the first key frame it gets (there is one a second)
    first_key = next(i for i, m in enumerate(msgs) if decode_live_packet(m)[0].key)
    msgs = msgs[first_key:]
    assert len(msgs) >= 70
    headers = [decode_live_packet(m)[0] for m in msgs]
    assert [h.seq for h in headers] == list(range(headers[0].seq, headers[0].seq + len(msgs)))
    assert all(a.dts_us < b.dts_us for a, b in itertools.pairwise(headers))
    decoder = av.CodecContext.create("h264", "r")
    frames = 0
    for m in msgs:
        frames += len(decoder.decode(av.Packet(bytes(decode_live_packet(m)[1]))))
    assert frames >= len(msgs) - 2  # a decoder may hold a frame or two back

    async def events_kept() -> int:
        nc = await nats.connect(
            f"nats://127.0.0.1:{port}", user=creds.user, password=creds.password
        )
        js = nc.jetstream()
        await js.publish(f"vigia.{sid}.events.cam", b'{"type": "test"}')
        info = await js.stream_info(event_stream_name(sid))
        await nc.close()
        return info.state.messages

    assert asyncio.run(events_kept()) == 1, "events go to a JetStream stream"
    assert server.stop() == 0, server.log()


def test_viewer_gets_nats_credentials_for_its_cameras_only(
    server_process, camera_host, camera_clips: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = camera_host({"a": camera_clips[0][0], "b": camera_clips[1][0]})
    toml = camera_toml([("a", host.url("a"), None), ("b", host.url("b"), None)])
    monkeypatch.setenv("VIGIA_ADMIN_PASSWORD", "admin-password-1")
    server = server_process(toml)
    server.start()
    monkeypatch.setenv("VIGIA_PASSWORD", "viewer-password-1")
    add = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "user",
            "add",
            "view",
            "--role",
            "viewer",
            "--cameras",
            "a",
            "--data-dir",
            str(server.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert add.returncode == 0, add.stderr
    base = f"{server.base_url}/api/v1"  # once it is known, the API listens

    async def scenario() -> tuple[list[str], list[str]]:
        async with aiohttp.ClientSession() as http:
            login = {"name": "view", "password": "viewer-password-1"}
            async with http.post(f"{base}/auth/login", json=login) as r:
                session = await r.json()
                assert r.status == 200, session
        creds = session["nats"]
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(
            f"nats://127.0.0.1:{creds['port']}",
            user=creds["user"],
            password=creds["password"],
            error_cb=on_error,
        )
        sid = DataDir(server.data_dir).server_id()
        got: list[str] = []
        enough = asyncio.Event()

        async def on_msg(msg) -> None:
            got.append(msg.subject)
            if got.count(live_subject(sid, "a", "main")) >= 25:
                enough.set()

        await nc.subscribe(live_subject(sid, "a", "main"), cb=on_msg)
        await nc.subscribe(live_subject(sid, "b", "main"), cb=on_msg)
        await asyncio.wait_for(enough.wait(), 30)
        await nc.close()
        return got, errors

    got, errors = asyncio.run(scenario())
    assert set(got) == {live_subject(DataDir(server.data_dir).server_id(), "a", "main")}
    assert any("permissions violation for subscription" in e.lower() for e in errors), errors
    assert server.stop() == 0, server.log()
