"""Workstation credentials on the embedded nats-server: subscribe only to what is granted."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import nats
import pytest

from server.live.nats_server import EmbeddedNats

EVENT_S = 30.0  # awaited events (come in milliseconds); generous for a loaded machine


async def _scenario(server: EmbeddedNats) -> tuple[list[bytes], list[str]]:
    creds = server.credentials
    publisher = await nats.connect(server.url, user=creds.user, password=creds.password)
    errors: list[str] = []

    publish_refused = asyncio.Event()

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))
        if "publish" in str(exc).lower():
            publish_refused.set()

    client = await nats.connect(server.url, user="ws-1", password="pw-ws-1-long", error_cb=on_error)
    got: list[bytes] = []
    seen_a = asyncio.Event()

    async def on_msg(msg) -> None:
        got.append(msg.data)
        seen_a.set()

    await client.subscribe("vigia.s1.live.a.main", cb=on_msg)
    await client.subscribe("vigia.s1.live.b.main", cb=on_msg)
    await client.flush()
    await publisher.publish("vigia.s1.live.b.main", b"for b")
    deadline = asyncio.get_running_loop().time() + EVENT_S
    while not seen_a.is_set():  # sent again until seen: a loaded machine once lost the first
        assert asyncio.get_running_loop().time() < deadline, f"camera a never arrived: {errors}"
        await publisher.publish("vigia.s1.live.a.main", b"for a")
        await publisher.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen_a.wait(), 1.0)
    await client.publish("vigia.s1.live.a.main", b"forged")  # a client may not publish
    with contextlib.suppress(Exception):
        await client.flush(timeout=2)
    # the server's refusal comes back asynchronously: wait for it rather than for a flush
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(publish_refused.wait(), EVENT_S)
    await client.close()
    await publisher.close()
    return got, errors


def test_a_client_sees_only_the_cameras_granted(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats", port=0)
    server.start()
    try:
        server.set_client("ws-1", "pw-ws-1-long", ["vigia.s1.live.a.>", "vigia.s1.status"])
        got, errors = asyncio.run(_scenario(server))
        assert got and set(got) == {b"for a"}, "camera b's packets never reach the client"
        text = " ".join(errors).lower()
        assert "permissions violation for subscription" in text, errors
        assert "permissions violation for publish" in text, errors
        server.remove_client("ws-1")
        with pytest.raises(Exception):  # noqa: B017 - nats-py raises several kinds
            asyncio.run(
                nats.connect(
                    server.url,
                    user="ws-1",
                    password="pw-ws-1-long",
                    allow_reconnect=False,
                    connect_timeout=2,
                )
            )
    finally:
        server.stop()
