"""The workstation's recorder list: zeroconf on 127.0.0.1 only, and typed addresses.

The must-show scenario: a real recorder process started here is found by zeroconf, logged in to
(cameras in the tree, live packets over NATS), removed when it stops (goodbye) while its session
goes to 'reconnecting', and back online when it starts again.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest

from app.discovery import Discovery, ServerEntry, entry_from_service, normalize_url
from app.loop import AsyncRunner
from app.session import Sessions
from server.datadir import DataDir
from server.discovery import Advertisement, Advertiser
from server.protocol.live import decode_live_packet, live_subject
from server.sim.rtsp_cameras import RtspCameraHost
from tests.conftest import START_S, ServerProcess, camera_toml, wait_until
from tests.test_app_session import ADMIN_PASSWORD, api_up, start_recorder

LOOPBACK = ["127.0.0.1"]


class Events:
    """What a Discovery emitted, in order (callbacks arrive on the runner's thread)."""

    def __init__(self, discovery: Discovery) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, ServerEntry]] = []
        for kind in ("added", "updated", "removed"):
            getattr(discovery, kind).connect(lambda e, kind=kind: self._put(kind, e))

    def _put(self, kind: str, entry: ServerEntry) -> None:
        with self.lock:
            self.seen.append((kind, entry))

    def of(self, server_id: str) -> list[tuple[str, ServerEntry]]:
        with self.lock:
            return [(k, e) for k, e in self.seen if e.server_id == server_id]

    def count(self, kind: str, server_id: str) -> int:
        return sum(1 for k, _ in self.of(server_id) if k == kind)


@pytest.fixture
def runner() -> Iterator[AsyncRunner]:
    with AsyncRunner("test-io") as r:
        yield r


@pytest.fixture
def discovery(runner: AsyncRunner) -> Iterator[Discovery]:
    d = Discovery(runner, interfaces=LOOPBACK)  # never the machine's real network
    d.start()
    try:
        yield d
    finally:
        d.stop()


# --- pure ---------------------------------------------------------------------------------


def test_addresses_are_normalised_or_refused() -> None:
    assert normalize_url("192.0.2.7") == "http://192.0.2.7:8480"
    assert normalize_url(" 192.0.2.7:9000 ") == "http://192.0.2.7:9000"
    assert normalize_url("https://NVR.example/api/v1/") == "https://nvr.example:443"
    assert normalize_url("http://[2001:db8::1]:8480") == "http://[2001:db8::1]:8480"
    for bad in ("", "ftp://host", "http://u:p@host", "http://host:99999", "http://host/x", "://"):
        with pytest.raises(ValueError):
            normalize_url(bad)


def test_service_entries_prefer_ipv4_and_read_the_nats_port() -> None:
    adv = Advertisement("0123456789ab", "Gate", 8480, "1", nats="4222")
    entry = entry_from_service(adv, ["fe80::1%2", "192.0.2.7"])
    assert entry == ServerEntry(
        "0123456789ab", "Gate", "http://192.0.2.7:8480", 4222, "zeroconf", version="1"
    )
    tls = Advertisement("0123456789ab", "Gate", 8443, "1", tls=True, nats="nats://10.0.0.5:4223")
    assert entry_from_service(tls, ["2001:db8::5"]).base_url == "https://[2001:db8::5]:8443"
    assert entry_from_service(tls, ["2001:db8::5"]).nats_port == 4223
    assert entry_from_service(adv, ["fe80::1%2"]) is None  # nothing a URL can reach


def test_manual_addresses(runner: AsyncRunner) -> None:
    d = Discovery(runner, interfaces=LOOPBACK)  # not started: manual entries need no mDNS
    events = Events(d)
    entry = d.add_manual("192.0.2.7:9000")
    assert entry.source == "manual" and entry.server_id == "" and entry.key == entry.base_url
    assert d.add_manual("http://192.0.2.7:9000/api/v1") == entry  # the same address again
    assert d.servers() == [entry] and d.get("192.0.2.7:9000") == entry
    with pytest.raises(ValueError):
        d.add_manual("not a url at all")
    known = d.identify("192.0.2.7:9000", "0123456789ab", "Gate")
    assert known is not None and known.key == "0123456789ab" and known.name == "Gate"
    assert d.get("0123456789ab") == known and d.get("http://192.0.2.7:9000") == known
    assert d.remove("0123456789ab") and d.servers() == []
    assert not d.remove("0123456789ab")
    assert [k for k, _ in events.seen] == ["added", "updated", "removed"]


# --- real mDNS on loopback ----------------------------------------------------------------


def test_appear_rename_and_vanish(runner: AsyncRunner, discovery: Discovery) -> None:
    sid = secrets.token_hex(6)  # fresh per run: other recorders on loopback cannot confuse us
    events = Events(discovery)
    advertiser = Advertiser(
        Advertisement(sid, "Front office", 48123, "1", nats="4222"), interfaces=LOOPBACK
    )
    try:
        runner.call(advertiser.start(), 15)
        wait_until(lambda: events.count("added", sid), 10, "the advertised recorder")
        entry = discovery.get(sid)
        assert entry == ServerEntry(
            sid, "Front office", "http://127.0.0.1:48123", 4222, "zeroconf", version="1"
        )
        # a rename announces a new instance name and withdraws the old one: still one server
        runner.call(advertiser.update(Advertisement(sid, "Back door", 48123, "1")), 15)
        wait_until(
            lambda: (discovery.get(sid) or entry).name == "Back door", 10, "the renamed recorder"
        )
        assert discovery.get(sid).nats_port is None
    finally:
        runner.call(advertiser.close(), 15)
    wait_until(lambda: events.count("removed", sid), 10, "the goodbye")
    assert discovery.get(sid) is None
    assert [k for k, _ in events.of(sid)] == ["added", "updated", "removed"]


def test_a_recorder_is_discovered_logged_in_removed_and_back(
    gst: None, camera_clips: list, tmp_path, runner: AsyncRunner, discovery: Discovery
) -> None:
    host = RtspCameraHost({"cam": camera_clips[2][0]})
    host.start()

    def config(api_port: int = 0, nats_port: int = 0) -> str:
        toml = camera_toml([("cam", host.url("cam"), None)], api_port=api_port, nats_port=nats_port)
        return toml.replace("discovery = false", 'discovery = true\nname = "Gate recorder"')

    toml = config()  # any free ports: the recorder says which it took
    events = Events(discovery)
    sessions = Sessions(runner)
    server: ServerProcess | None = None
    try:
        server = start_recorder(tmp_path, toml)
        sid = wait_until(
            lambda: (
                (server.data_dir / "server-id").exists() and DataDir(server.data_dir).server_id()
            ),
            20,
            "the server id",
        )
        api_port, nats_port = server.api_port, server.ports()["nats"]
        wait_until(
            lambda: discovery.get(sid), START_S, f"the recorder in discovery ({server.log()})"
        )
        entry = discovery.get(sid)
        assert entry.base_url == f"http://127.0.0.1:{api_port}" and entry.name == "Gate recorder"
        assert entry.nats_port == nats_port and entry.source == "zeroconf"

        # log in to what discovery found, as a saved server with credentials would
        sessions.follow(
            discovery, lambda e: ("admin", ADMIN_PASSWORD) if e.server_id == sid else None
        )
        wait_until(
            lambda: sessions.get(sid) and sessions.get(sid).state == "online", START_S, "login"
        )
        session = sessions.get(sid)
        assert session.name == "Gate recorder" and session.nats is not None
        rec = sessions.tree.recorder(sid)
        assert rec is not None and [c.camera_id for c in rec.cameras] == ["cam"]

        got: list = []

        async def on_packet(msg) -> None:
            got.append(decode_live_packet(msg.data)[0])

        runner.call(session.subscribe(live_subject(sid, "cam", "main"), on_packet))
        wait_until(lambda: len(got) >= 25, 20, "live packets over NATS")

        states: list[str] = []
        session.changed.connect(lambda s: states.append(s.state))
        assert server.stop() == 0, server.log()
        wait_until(lambda: events.count("removed", sid), 10, "the recorder's goodbye")
        assert discovery.get(sid) is None
        wait_until(lambda: session.state == "reconnecting", 15, "the session to notice")
        assert sessions.tree.recorder(sid).state == "reconnecting"

        # the same recorder starts again at the same address: found again, and the same session
        # is online again
        server.config.write_text(config(api_port, nats_port))
        server.start()
        wait_until(lambda: events.count("added", sid) >= 2, START_S, "the recorder's return")
        wait_until(
            lambda: session.state == "online", START_S, f"the session back ({session.error})"
        )
        assert sessions.get(sid) is session and sessions.tree.recorder(sid).state == "online"
        before = len(got)
        wait_until(lambda: len(got) >= before + 25, 20, "live packets after the restart")
        assert states[0] == "reconnecting" and states[-1] == "online"
    finally:
        sessions.close()
        if server is not None and server.proc is not None and server.proc.poll() is None:
            server.stop()
        host.stop()
    assert api_up(f"http://127.0.0.1:{api_port}") is False
