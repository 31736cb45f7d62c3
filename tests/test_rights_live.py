"""A change of a user's rights holds on their live NATS connections within 1 s (issue 19): a
real nats-server, a real API on loopback, a real subscriber with the credentials of a login."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import nats
import pytest

from server.api.app import API
from server.api.auth import NatsGrants
from server.live.nats_server import EmbeddedNats
from server.live.publisher import LivePublisher
from tests.test_api import Api

PASSWORD = "viewer-password-1"


@pytest.fixture
def api(tmp_path: Path):
    a = Api(tmp_path)
    server = EmbeddedNats(tmp_path / "nats", port=0)
    server.start()
    sid = a.ctx.server_id
    a.ctx.security.nats = NatsGrants(server, sid, a.ctx.security.tokens)
    a.users.add("view", PASSWORD, "viewer", cameras=["a"])
    a.nats = server  # type: ignore[attr-defined]
    yield a
    server.stop()
    a.close()


async def _login(http: aiohttp.ClientSession, base: str) -> dict:
    async with http.post(
        f"{base}{API}/auth/login", json={"name": "view", "password": PASSWORD}
    ) as r:
        assert r.status == 200
        return (await r.json())["nats"]


async def _connect(grant: dict, errors: list[str] | None = None):
    async def on_error(exc: Exception) -> None:
        if errors is not None:
            errors.append(str(exc))

    return await nats.connect(
        grant["url"],
        user=grant["user"],
        password=grant["password"],
        allow_reconnect=False,
        connect_timeout=2,
        error_cb=on_error,
    )


@pytest.mark.parametrize(
    "change",
    [{"cameras": ["b"]}, {"disabled": True}, {"password": "another-password-2"}],
    ids=["cameras", "disabled", "password"],
)
def test_changed_rights_end_live_messages_within_1s(api: Api, change: dict) -> None:
    """The viewer of camera ``a`` keeps a subscription open while its rights change; camera
    ``a``'s live messages (published every 20 ms, and seen meanwhile by an admin's control
    subscriber) stop reaching it within 1 s of the request, and a new connection with the same
    credentials fails (disabled, new password) or is refused camera ``a`` (cameras)."""
    nats_server: EmbeddedNats = api.nats  # type: ignore[attr-defined]
    sid = api.ctx.server_id
    subject = f"vigia.{sid}.live.a.main"

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        async with aiohttp.ClientSession() as anon:
            grant = await _login(anon, base)
        creds = nats_server.credentials
        pub = await nats.connect(nats_server.url, user=creds.user, password=creds.password)
        viewer = await _connect(grant)
        seen: list[float] = []
        control: list[float] = []
        first = asyncio.Event()

        async def on_view(_msg) -> None:
            seen.append(time.monotonic())
            first.set()

        async def on_control(_msg) -> None:
            control.append(time.monotonic())

        await viewer.subscribe(subject, cb=on_view)
        await pub.subscribe(subject, cb=on_control)
        await viewer.flush()
        stop = asyncio.Event()

        async def publish() -> None:
            while not stop.is_set():
                await pub.publish(subject, b"x")
                await pub.flush()
                await asyncio.sleep(0.02)

        task = asyncio.create_task(publish())
        try:
            await asyncio.wait_for(first.wait(), 5)
            t_change = time.monotonic()
            async with http.patch(f"{base}{API}/users/view", json=change) as r:
                assert r.status == 200, await r.text()
            deadline = t_change + 1.0
            await asyncio.sleep(max(0.0, deadline + 0.5 - time.monotonic()))
        finally:
            stop.set()
            await task
        late = [t for t in seen if t > t_change + 1.0]
        assert not late, f"{len(late)} live messages of camera a arrived more than 1 s after"
        assert [t for t in control if t > t_change + 1.0], "the publisher kept publishing"
        with contextlib.suppress(Exception):
            await viewer.close()
        if "cameras" in change:
            errors: list[str] = []
            again = await _connect(grant, errors)
            await again.subscribe(subject)
            with contextlib.suppress(Exception):
                await again.flush(timeout=2)
            for _ in range(100):
                if errors:
                    break
                await asyncio.sleep(0.05)
            assert any("permissions violation" in e.lower() for e in errors), errors
            await again.close()
        else:
            with pytest.raises(Exception):  # noqa: B017 - nats-py raises several kinds
                await _connect(grant)
        await pub.close()

    api.run(scenario)


def test_restricted_viewer_gets_only_its_cameras_status(api: Api) -> None:
    """Status messages go on the shared subject and on one per camera; a viewer of camera ``a``
    receives ``a``'s and not ``b``'s, and may subscribe neither to ``b``'s nor to the shared
    subject nor to every camera's."""
    nats_server: EmbeddedNats = api.nats  # type: ignore[attr-defined]
    sid = api.ctx.server_id

    async def scenario(http: aiohttp.ClientSession, base: str) -> None:
        async with aiohttp.ClientSession() as anon:
            grant = await _login(anon, base)
        errors: list[str] = []
        viewer = await _connect(grant, errors)
        got: list[bytes] = []
        seen_a = asyncio.Event()

        async def on_msg(msg) -> None:
            got.append(msg.data)
            if b'"camera":"a"' in msg.data:
                seen_a.set()

        for subject in ("status.a", "status.b", "status", "status.>"):
            await viewer.subscribe(f"vigia.{sid}.{subject}", cb=on_msg)
        await viewer.flush()
        publisher = LivePublisher(nats_server.url, sid, nats_server.credentials)
        await publisher.start_async()
        try:
            for _ in range(100):
                if publisher.connected:
                    break
                await asyncio.sleep(0.05)
            publisher.publish_status({"type": "stream", "camera": "b", "state": "recording"})
            publisher.publish_status({"type": "stream", "camera": "a", "state": "recording"})
            await asyncio.wait_for(seen_a.wait(), 5)
            for _ in range(100):  # b's message went out too (it must not arrive)
                if len(publisher.stats()) == 4 and all(
                    st.published for st in publisher.stats().values()
                ):
                    break
                await asyncio.sleep(0.05)
        finally:
            await publisher.aclose()
        await viewer.flush()
        assert len(got) == 1 and b'"camera":"a"' in got[0], got
        assert any("permissions violation for subscription" in e.lower() for e in errors), errors
        await viewer.close()

    api.run(scenario)
